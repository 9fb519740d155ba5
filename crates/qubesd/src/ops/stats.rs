//! `vm-stats` (admin-api.md §4.5): one round of statistics for the running qubes, dom0 first,
//! and the host figures dom0's row and `admin.vm.CurrentState` use.

use std::collections::HashMap;
use std::time::Instant;

use qubes_api::Event;

use crate::hypervisor::DomainStatus;
use crate::model::{PowerState, State};

/// Host memory total and available, in KiB (dom0's figures).
pub fn host_memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (get("MemTotal:"), get("MemAvailable:"))
}

/// Total CPU time the host spent, in milliseconds (dom0's `cpu_time`).
pub fn host_cpu_ms() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = text
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(3)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks * 10
}

/// One round of `vm-stats` events for running qubes, dom0 first, then by hypervisor id.
/// `prev` keeps each qube's CPU time of the previous round for `cpu_usage`.
pub fn round(
    st: &State,
    list: &[(String, DomainStatus)],
    prev: &mut HashMap<String, (u64, Instant)>,
) -> Vec<Event> {
    let now = Instant::now();
    let mut rows: Vec<(i64, String, u64, u64, u32)> = Vec::new();
    let (total, avail) = host_memory_kib();
    rows.push((
        0,
        "dom0".into(),
        total.saturating_sub(avail),
        host_cpu_ms() * 1_000_000,
        st.host.cpus as u32,
    ));
    for (name, s) in list {
        let Some(d) = st.domain(name) else {
            continue;
        };
        if !d.class.is_local_qube()
            || !matches!(
                s.state,
                PowerState::Running | PowerState::Paused | PowerState::Transient
            )
        {
            continue;
        }
        rows.push((
            s.id.max(1),
            name.clone(),
            s.mem_kib,
            s.cputime_ns,
            s.vcpus.max(1),
        ));
    }
    rows.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(rows.len());
    let mut seen = HashMap::new();
    for (_, name, mem, cpu_ns, vcpus) in rows {
        let cpu_ms = cpu_ns / 1_000_000;
        let usage = match prev.get(&name) {
            Some((last_ms, at)) if cpu_ms >= *last_ms => {
                let wall_ms = now.duration_since(*at).as_millis().max(1) as u64;
                ((cpu_ms - last_ms) * 100 / wall_ms / u64::from(vcpus)).min(100)
            }
            _ => 0,
        };
        seen.insert(name.clone(), (cpu_ms, now));
        let mem = mem.to_string();
        out.push(
            Event::new(name, "vm-stats")
                .kw("memory_kb", &mem)
                .kw("memory_assigned_total", &mem)
                .kw("memory_assigned_usable", &mem)
                .kw("memory_with_swap_used", &mem)
                .kw("cpu_time", cpu_ms.to_string())
                .kw("cpu_usage", usage.to_string())
                .kw("online_vcpus", vcpus.to_string()),
        );
    }
    *prev = seen;
    out
}
