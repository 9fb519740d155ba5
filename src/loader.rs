//! Reading qubes from the daemon, shared by the Qube Manager and the tray: the initial load
//! (labels, `admin.vm.List`, then `GetAll` and the watched features with bounded parallelism)
//! the event and statistics streams, and waiting for a qube to halt. Blocking: callers run these on worker threads.

use std::time::Duration;

use qubes_api::{CallError, Client, Event, PropValue, VmEntry};

use crate::model::{Change, QubeInfo, WATCHED_FEATURES, change_for};

/// Largest number of concurrent GetAll calls during the initial load.
const LOAD_PARALLELISM: usize = 8;

/// Reads label colours and every qube (GetAll with bounded parallelism).
/// Labels (name, colour) in index order, and every qube.
pub type LoadedAll = (Vec<(String, String)>, Vec<QubeInfo>);

pub fn load_all(client: &Client) -> Result<LoadedAll, CallError> {
    let (colors, list) = list_all(client)?;
    let chunk = list.len().div_ceil(LOAD_PARALLELISM).max(1);
    let infos = std::thread::scope(|s| {
        let handles: Vec<_> = list
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|e| read_qube(client, e))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .flatten()
            .collect::<Vec<_>>()
    });
    Ok((colors, infos))
}

/// One qube's row: its properties and watched features; `None` if it is gone or hidden.
pub fn read_qube(client: &Client, e: &VmEntry) -> Option<QubeInfo> {
    // A qube removed meanwhile, or hidden by policy, is simply skipped.
    let mut info = client
        .property_get_all(&e.name)
        .ok()
        .map(|p| QubeInfo::new(e, p))?;
    if let Ok(tags) = client.call("admin.vm.tag.List", &e.name, "", b"") {
        for t in tags.lines().filter(|t| !t.is_empty()) {
            info.set_tag(t, true);
        }
    }
    // One List per qube; a Get only for the few watched features it actually has.
    if let Ok(names) = client.call("admin.vm.feature.List", &e.name, "", b"") {
        for f in names.lines().filter(|f| WATCHED_FEATURES.contains(f)) {
            if let Ok(v) = client.call("admin.vm.feature.Get", &e.name, f, b"") {
                info.features.insert(f.to_string(), v);
            }
        }
    }
    Some(info)
}

/// The qube's `shutdown_timeout` in seconds (60 if it cannot be read).
pub fn shutdown_timeout(c: &Client, vm: &str) -> u64 {
    c.call("admin.vm.property.Get", vm, "shutdown_timeout", b"")
        .ok()
        .and_then(|raw| PropValue::parse(&raw).ok())
        .and_then(|p| p.value.parse::<u64>().ok())
        .unwrap_or(60)
}

/// The power state the daemon reports for `vm` (`admin.vm.CurrentState`), if it answers.
pub fn current_state(c: &Client, vm: &str) -> Option<String> {
    let answer = c.call("admin.vm.CurrentState", vm, "", b"").ok()?;
    answer
        .split(' ')
        .find_map(|kv| kv.strip_prefix("power_state="))
        .map(str::to_string)
}

/// Waits until `vm` is halted, polling its power state, for `timeout` seconds at most.
/// `Ok(false)` when it is still up then.
pub fn wait_halted(c: &Client, vm: &str, timeout: u64) -> Result<bool, CallError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let state = c.call("admin.vm.CurrentState", vm, "", b"")?;
        if state.split(' ').any(|kv| kv == "power_state=Halted") {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Label colours (in index order) and every qube as `admin.vm.List` gives it: what a table
/// shows first, before each qube's properties are read ([`read_qube`]).
pub type Listed = (Vec<(String, String)>, Vec<VmEntry>);

/// Reads label colours and `admin.vm.List`: a few calls, however many qubes there are.
pub fn list_all(client: &Client) -> Result<Listed, CallError> {
    let mut colors = Vec::new();
    for l in client.call("admin.label.List", "dom0", "", b"")?.lines() {
        if let Ok(c) = client.call("admin.label.Get", "dom0", l, b"") {
            colors.push((l.to_string(), c));
        }
    }
    Ok((colors, client.vm_list()?))
}

/// Something to read again after an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Refetch {
    /// Labels and every qube (the event stream started again).
    All,
    /// Labels and the list of qubes only (the Qube Manager reads each qube's properties
    /// itself, those on screen first).
    List,
    /// One qube, which appeared.
    Qube(String),
    /// One property of a qube.
    Property(String, String),
    /// One feature of a qube.
    Feature(String, String),
    /// A qube's power state.
    State(String),
}

/// What was read again.
#[derive(Debug)]
pub enum Refetched {
    /// Labels and every qube, or why not.
    All(Result<LoadedAll, String>),
    /// Labels and the list of qubes, or why not.
    Listed(Result<Listed, String>),
    /// A qube (`None`: gone or hidden).
    Qube(String, Option<QubeInfo>),
    /// A property's value.
    Property(String, String, PropValue),
    /// A feature's value (`None`: not set).
    Feature(String, String, Option<String>),
    /// A qube's power state (`admin.vm.CurrentState`).
    State(String, String),
}

/// Starts the thread that reads again what events made stale, and returns its queue. It takes
/// every request waiting at once: a reload makes the rest moot, repeated requests are read
/// once, and a burst of events (a global default changed for a thousand qubes) costs one
/// thread, not one each. `deliver` gets each result and returns `false` to stop. A property
/// or feature that cannot be read (the daemon went away: the reconnection reloads everything)
/// is skipped.
pub fn refetch_worker(
    client: Client,
    deliver: impl Fn(Refetched) -> bool + Send + 'static,
) -> std::io::Result<std::sync::mpsc::Sender<Refetch>> {
    let (queue, requests) = std::sync::mpsc::channel::<Refetch>();
    std::thread::Builder::new()
        .name("qubes-refetch".into())
        .spawn(move || {
            while let Ok(first) = requests.recv() {
                let waiting = std::iter::once(first).chain(requests.try_iter()).collect();
                for what in plan(waiting) {
                    if let Some(result) = read_again(&client, what)
                        && !deliver(result)
                    {
                        return;
                    }
                }
            }
        })?;
    Ok(queue)
}

/// What to read for the requests waiting: everything once if a reload is among them, else
/// each request once, in order.
fn plan(waiting: Vec<Refetch>) -> Vec<Refetch> {
    for whole in [Refetch::All, Refetch::List] {
        if waiting.contains(&whole) {
            return vec![whole];
        }
    }
    let mut seen = std::collections::HashSet::new();
    waiting
        .into_iter()
        .filter(|r| seen.insert(r.clone()))
        .collect()
}

/// Reads one thing again (blocking).
fn read_again(client: &Client, what: Refetch) -> Option<Refetched> {
    Some(match what {
        Refetch::All => Refetched::All(load_all(client).map_err(|e| crate::errors::describe(&e))),
        Refetch::List => {
            Refetched::Listed(list_all(client).map_err(|e| crate::errors::describe(&e)))
        }
        Refetch::Qube(vm) => {
            let entry = client
                .vm_list()
                .ok()
                .and_then(|l| l.into_iter().find(|e| e.name == vm));
            let info = entry.and_then(|e| read_qube(client, &e));
            Refetched::Qube(vm, info)
        }
        Refetch::Property(vm, prop) => {
            let raw = client.call("admin.vm.property.Get", &vm, &prop, b"").ok()?;
            Refetched::Property(vm, prop, PropValue::parse(&raw).ok()?)
        }
        Refetch::State(vm) => {
            let state = current_state(client, &vm)?;
            Refetched::State(vm, state)
        }
        Refetch::Feature(vm, feature) => {
            let value = match client.call("admin.vm.feature.Get", &vm, &feature, b"") {
                Ok(v) => Some(v),
                Err(CallError::Exception { .. }) => None,
                Err(_) => return None,
            };
            Refetched::Feature(vm, feature, value)
        }
    })
}

/// Follows `admin.Events` on a thread of its own, forever, reconnecting one second after the
/// stream ends (the new stream starts with `connection-established`). `deliver` gets each event,
/// or the error when the stream cannot be opened, and returns `false` to stop. Fails when the
/// thread cannot be started.
pub fn follow_events(
    client: Client,
    deliver: impl Fn(Result<Event, CallError>) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("qubes-events".into())
        .spawn(move || {
            loop {
                match client.events("dom0") {
                    Ok(mut reader) => {
                        while let Ok(Some(ev)) = reader.next_event() {
                            if !deliver(Ok(ev)) {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        if !deliver(Err(e)) {
                            return;
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })?;
    Ok(())
}

/// Follows `admin.vm.Stats` on a thread of its own, forever, reconnecting after one second.
/// `deliver` gets each [`Change::Stats`] as it arrives and returns `false` to stop. Fails when
/// the thread cannot be started.
pub fn follow_stats_each(
    client: Client,
    mut deliver: impl FnMut(Change) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("qubes-stats".into())
        .spawn(move || {
            loop {
                if let Ok(mut reader) = client.stats("dom0") {
                    while let Ok(Some(ev)) = reader.next_event() {
                        if let change @ Change::Stats { .. } = change_for(&ev)
                            && !deliver(change)
                        {
                            return;
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })?;
    Ok(())
}

/// As [`follow_stats_each`], one round at a time (every running qube once): a round is
/// delivered when the next begins, with dom0 (lowest id) or, where policy hides dom0, with a
/// qube seen before. Fails when the thread cannot be started.
pub fn follow_stats(
    client: Client,
    deliver: impl Fn(Vec<Change>) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let mut round: Vec<Change> = Vec::new();
    follow_stats_each(client, move |change| {
        let Change::Stats { vm: subject, .. } = &change else {
            return true;
        };
        let new_round = subject == "dom0"
            || round
                .iter()
                .any(|c| matches!(c, Change::Stats { vm, .. } if vm == subject));
        if new_round && !round.is_empty() && !deliver(std::mem::take(&mut round)) {
            return false;
        }
        round.push(change);
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_requests_are_read_once_and_a_reload_covers_all() {
        let prop = |vm: &str| Refetch::Property(vm.into(), "netvm".into());
        let burst: Vec<Refetch> = (0..1000).map(|i| prop(&format!("q{}", i % 10))).collect();
        assert_eq!(
            plan(burst),
            (0..10).map(|i| prop(&format!("q{i}"))).collect::<Vec<_>>()
        );
        let with_reload = vec![prop("a"), Refetch::All, Refetch::Qube("b".into())];
        assert_eq!(plan(with_reload), [Refetch::All]);
        let mixed = vec![
            Refetch::Feature("a".into(), "internal".into()),
            prop("a"),
            Refetch::Feature("a".into(), "internal".into()),
        ];
        assert_eq!(plan(mixed.clone()), mixed[..2]);
    }
}
