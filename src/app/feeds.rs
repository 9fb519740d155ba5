//! What flows into the window from the daemon, each on a thread of its own: the event stream,
//! the statistics rounds, the refetch worker's answers, the disk usage of the volumes (at start,
//! on changes and every minute for running qubes), and one-off work whose result is a [`Msg`].

use std::time::Duration;

use qubes_api::Client;

use super::Msg;
use crate::loader::{Refetch, Refetched};
use crate::model::{Change, change_for};

/// Bytes used by a qube's volumes and whether one is outdated (`admin.vm.volume.List`, then
/// `Info` per volume, as the reference manager does). `None` when they cannot be read (dom0,
/// a qube without storage, a daemon without the storage calls).
pub fn read_volumes(client: &Client, vm: &str) -> (Option<u64>, bool) {
    let Ok(list) = client.call("admin.vm.volume.List", vm, "", b"") else {
        return (None, false);
    };
    let (mut total, mut outdated, mut any) = (0u64, false, false);
    for vol in list.lines() {
        let Ok(info) = client.call("admin.vm.volume.Info", vm, vol, b"") else {
            continue;
        };
        for line in info.lines() {
            if let Some(u) = line.strip_prefix("usage=") {
                total = total.saturating_add(u.parse().unwrap_or(0));
                any = true;
            } else if line == "is_outdated=True" {
                outdated = true;
            }
        }
    }
    (any.then_some(total), outdated)
}

/// Reads the volumes of `names` with bounded parallelism and sends one message.
pub(super) fn scan_volumes(client: &Client, input: &relm4::Sender<Msg>, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let (client, input) = (client.clone(), input.clone());
    std::thread::spawn(move || {
        let chunk = names.len().div_ceil(VOLUME_PARALLELISM).max(1);
        let results = std::thread::scope(|s| {
            let handles: Vec<_> = names
                .chunks(chunk)
                .map(|part| {
                    let client = &client;
                    s.spawn(move || {
                        part.iter()
                            .map(|vm| {
                                let (disk, outdated) = read_volumes(client, vm);
                                (vm.clone(), disk, outdated)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect::<Vec<_>>()
        });
        input.emit(Msg::Volumes(results));
    });
}

/// Volume reads run on this many threads (they are many small calls).
const VOLUME_PARALLELISM: usize = 2;

/// How often the disk usage of running qubes is read again.
const DISK_REFRESH: Duration = Duration::from_secs(60);

/// Sends [`Msg::DiskTick`] every [`DISK_REFRESH`] (without its thread, the disk usage is read
/// at start and on changes only).
pub(super) fn disk_timer(input: relm4::Sender<Msg>) {
    let spawned = std::thread::Builder::new()
        .name("qubes-disk-usage".into())
        .spawn(move || {
            loop {
                std::thread::sleep(DISK_REFRESH);
                if input.send(Msg::DiskTick).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the disk usage timer: {e}");
    }
}

/// Sends the table's changes from `admin.Events` to the window (without its thread, the table
/// shows what was read at start).
pub(super) fn follow_events(client: Client, input: relm4::Sender<Msg>) {
    let followed = crate::loader::follow_events(client, move |event| match event {
        Ok(ev) => {
            let change = change_for(&ev);
            change == Change::None || input.send(Msg::Change(change)).is_ok()
        }
        Err(e) => input.send(Msg::Error(crate::errors::describe(&e))).is_ok(),
    });
    if let Err(e) = followed {
        tracing::warn!("cannot start following the events: {e}");
    }
}

/// Starts the refetch worker, whose results come to the window as messages. Without its thread
/// the queue leads nowhere: the table then misses what events ask to read again.
pub(super) fn refetch_worker(
    client: Client,
    input: relm4::Sender<Msg>,
) -> std::sync::mpsc::Sender<Refetch> {
    let started = crate::loader::refetch_worker(client, move |r| {
        let msg = match r {
            Refetched::Listed(listed) => Msg::Listed(listed),
            // The window asks for the list, never for everything at once.
            Refetched::All(_) => return true,
            Refetched::Qube(_, Some(info)) => Msg::Qube(info),
            Refetched::Qube(_, None) => return true,
            Refetched::Property(vm, prop, value) => Msg::Property { vm, prop, value },
            Refetched::Feature(vm, feature, value) => Msg::Feature { vm, feature, value },
            Refetched::State(vm, state) => Msg::Change(Change::State { vm, state }),
        };
        input.send(msg).is_ok()
    });
    started.unwrap_or_else(|e| {
        tracing::warn!("cannot start the refetch worker: {e}");
        std::sync::mpsc::channel().0
    })
}

/// Sends rounds of `admin.vm.Stats` to the window (without its thread, no CPU and memory
/// figures).
pub(super) fn follow_stats(client: Client, input: relm4::Sender<Msg>) {
    let followed = crate::loader::follow_stats(client, move |round| {
        input.send(Msg::StatsRound(round)).is_ok()
    });
    if let Err(e) = followed {
        tracing::warn!("cannot start following the statistics: {e}");
    }
}

/// Runs `work` on a thread; its message, if any, goes to the window.
pub(super) fn spawn_work(
    client: &Client,
    input: &relm4::Sender<Msg>,
    work: impl FnOnce(&Client) -> Option<Msg> + Send + 'static,
) {
    let (client, input) = (client.clone(), input.clone());
    std::thread::spawn(move || {
        if let Some(msg) = work(&client) {
            input.emit(msg);
        }
    });
}
