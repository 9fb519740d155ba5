//! Policy benchmark: evaluation latency with 5,000 rules and 500 qubes, an explanation ("What
//! would happen?") of the same requests, and directory reload time. Prints a table. Run:
//! `cargo bench -p qrexec-policy`.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use qrexec_policy::explain::explain;
use qrexec_policy::{QubeInfo, Request, SystemInfo, evaluate, load_policy_dirs};

/// Policy files, 200 rules each.
const FILES: u32 = 25;
/// Rules in all.
const RULES: u32 = FILES * 200;

#[path = "../../../benches/support/measure.rs"]
mod measure;
use measure::percentile;

fn main() {
    let mut info = SystemInfo::default();
    for i in 0..500 {
        let name = format!("vm{i}");
        info.domains.insert(
            name.clone(),
            QubeInfo {
                name,
                class: "AppVM".into(),
                tags: vec![format!("t{}", i % 20)],
                power_state: "Running".into(),
                uuid: format!("00000000-0000-4000-8000-{i:012}"),
                default_dispvm: Some("vm0".into()),
                template_for_dispvms: i % 50 == 0,
                ..QubeInfo::default()
            },
        );
    }
    // 5,000 rules across 25 files: specific services, tags, types, literals; the catch-all last.
    let dir = tempfile::tempdir().unwrap();
    for f in 0..FILES {
        let mut text = String::new();
        for r in 0..200 {
            let n = f * 200 + r;
            let line = match n % 4 {
                0 => format!("svc.S{n} * @tag:t{} @anyvm allow target=dom0\n", n % 20),
                1 => format!("svc.S{n} +arg{n} vm{} vm{} allow\n", n % 500, (n + 1) % 500),
                2 => format!("svc.S{n} * @type:AppVM @dispvm allow\n"),
                _ => format!(
                    "svc.S{n} * @anyvm @tag:t{} ask default_target=vm1\n",
                    n % 20
                ),
            };
            text.push_str(&line);
        }
        if f == FILES - 1 {
            text.truncate(text.len() - text.lines().last().unwrap().len() - 1);
            text.push_str("* * @anyvm @anyvm deny\n");
        }
        std::fs::write(dir.path().join(format!("{f:02}-bench.policy")), text).unwrap();
    }
    let fs = qrexec_policy::parser::FileSystem::default();
    let mut reloads = Vec::new();
    let mut rules = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        rules = load_policy_dirs(&fs, &[dir.path().to_path_buf()]).unwrap();
        reloads.push(t.elapsed());
    }
    assert_eq!(rules.len(), RULES as usize);
    // Requests that match early, late, and nothing but the final deny.
    let mut lat = Vec::new();
    let mut explained = Vec::new();
    for i in 0..20_000u32 {
        let svc = match i % 3 {
            0 => format!("svc.S{}", (i * 7) % RULES),
            1 => format!("svc.S{}+arg{}", (i * 13) % RULES, (i * 13) % RULES),
            _ => "svc.Unknown".to_string(),
        };
        let src = format!("vm{}", i % 500);
        let dst = format!("vm{}", (i + 1) % 500);
        let t = Instant::now();
        let req = Request::new(&svc, &src, &dst, &info).unwrap();
        std::hint::black_box(evaluate(&rules, &req));
        lat.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(explain(&rules, &req));
        explained.push(t.elapsed());
    }
    let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!("qrexec policy benchmark: {RULES} rules in {FILES} files, 500 qubes, 20000 requests");
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!(
        "| evaluation p50 / p99 | {} / {} | p99 < 50 us |",
        us(percentile(&mut lat, 0.5)),
        us(percentile(&mut lat, 0.99))
    );
    println!(
        "| explanation p50 / p99 | {} / {} | |",
        us(percentile(&mut explained, 0.5)),
        us(percentile(&mut explained, 0.99))
    );
    println!(
        "| policy directory reload p50 | {} | |",
        ms(percentile(&mut reloads, 0.5))
    );
}
