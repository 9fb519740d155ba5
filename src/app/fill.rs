//! Filling the rows after `admin.vm.List`: each qube's properties and features, then its
//! volumes (disk usage, restart needed), read by a few worker threads in the order the window
//! asks — the rows on screen first, then the rest — so that the table is there at once and
//! what is seen is complete soon, however slow each call of the daemon is (the reference
//! qubesd serves one call at a time, a few milliseconds each).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use qubes_api::{Client, VmEntry};

use super::Msg;

/// Worker threads: enough to keep a daemon that serves one call at a time busy (the time on
/// the wire and in the client overlaps), few enough not to crowd one that serves many.
const WORKERS: usize = 4;

/// How long results gather before they go to the window together: a fast daemon's thousand
/// answers make a few messages, not a thousand; a slow one's come a few at a time.
const GATHER: std::time::Duration = std::time::Duration::from_millis(25);

/// What the workers read, waiting to go to the window.
#[derive(Default)]
struct Outbox {
    filled: Vec<(String, Option<Box<crate::model::QubeInfo>>)>,
    volumes: Vec<(String, Option<u64>, bool)>,
    stop: bool,
}

/// What is still to be read, in the order it will be.
#[derive(Default)]
struct Queue {
    /// Qubes whose properties are to be read.
    props: VecDeque<VmEntry>,
    /// Qubes whose volumes are to be read.
    volumes: VecDeque<String>,
    /// The qubes on screen (their volumes come before other qubes' properties).
    preferred: std::collections::HashSet<String>,
    /// The window is gone: workers stop.
    stop: bool,
}

impl Queue {
    /// What to read next: the qubes on screen completely (properties, then volumes) before
    /// the others (properties, then volumes).
    fn next(&mut self) -> Option<Job> {
        let on_screen = |name: &str| self.preferred.contains(name);
        let props_first = self.props.front().is_some_and(|e| on_screen(&e.name));
        let volumes_first = self.volumes.front().is_some_and(|v| on_screen(v));
        if !props_first && volumes_first {
            return self.volumes.pop_front().map(Job::Volumes);
        }
        if let Some(e) = self.props.pop_front() {
            return Some(Job::Props(e));
        }
        self.volumes.pop_front().map(Job::Volumes)
    }

    /// Moves the qubes named in `first` to the front of both lists, in that order.
    fn prefer(&mut self, first: &[String]) {
        self.preferred = first.iter().cloned().collect();
        for name in first.iter().rev() {
            if let Some(i) = self.props.iter().position(|e| &e.name == name)
                && let Some(e) = self.props.remove(i)
            {
                self.props.push_front(e);
            }
            if let Some(i) = self.volumes.iter().position(|v| v == name)
                && let Some(v) = self.volumes.remove(i)
            {
                self.volumes.push_front(v);
            }
        }
    }
}

/// The workers and their queue.
pub(super) struct Filler {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    outbox: Arc<(Mutex<Outbox>, Condvar)>,
}

impl Filler {
    /// Starts the workers; what they read goes to the window as [`Msg::Filled`] and
    /// [`Msg::Volumes`].
    pub(super) fn start(client: Client, input: relm4::Sender<Msg>) -> Filler {
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let outbox: Arc<(Mutex<Outbox>, Condvar)> = Arc::default();
        for n in 0..WORKERS {
            let (shared, outbox, client) = (shared.clone(), outbox.clone(), client.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("qubes-fill-{n}"))
                .spawn(move || work(&shared, &outbox, &client));
            if let Err(e) = spawned {
                tracing::warn!("cannot start a reader: {e}");
            }
        }
        let post = outbox.clone();
        let spawned = std::thread::Builder::new()
            .name("qubes-fill-post".into())
            .spawn(move || deliver(&post, &input));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the reader's postman: {e}");
        }
        Filler { shared, outbox }
    }

    fn with(&self, change: impl FnOnce(&mut Queue)) {
        let (lock, wake) = &*self.shared;
        if let Ok(mut q) = lock.lock() {
            change(&mut q);
            wake.notify_all();
        }
    }

    /// Reads the properties of `entries`, those named in `first` first (a new listing: what
    /// was waiting is dropped).
    pub(super) fn fill(&self, entries: Vec<VmEntry>, first: &[String]) {
        self.with(|q| {
            q.props = entries.into();
            q.volumes.clear();
            q.prefer(first);
        });
    }

    /// Reads the volumes of `names` after the properties waiting.
    pub(super) fn volumes(&self, names: Vec<String>) {
        self.with(|q| {
            for n in names {
                if !q.volumes.contains(&n) {
                    q.volumes.push_back(n);
                }
            }
        });
    }

    /// Reads these qubes before the others (the rows on screen, top first).
    pub(super) fn prefer(&self, first: &[String]) {
        self.with(|q| q.prefer(first));
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.with(|q| q.stop = true);
        let (lock, wake) = &*self.outbox;
        if let Ok(mut o) = lock.lock() {
            o.stop = true;
            wake.notify_all();
        }
    }
}

/// Sends what the workers read to the window, gathered for [`GATHER`] after the first result.
fn deliver(outbox: &(Mutex<Outbox>, Condvar), input: &relm4::Sender<Msg>) {
    let (lock, wake) = outbox;
    loop {
        {
            let Ok(mut o) = lock.lock() else { return };
            while o.filled.is_empty() && o.volumes.is_empty() && !o.stop {
                o = match wake.wait(o) {
                    Ok(o) => o,
                    Err(_) => return,
                };
            }
            if o.stop {
                return;
            }
        }
        std::thread::sleep(GATHER);
        let (filled, volumes) = {
            let Ok(mut o) = lock.lock() else { return };
            (
                std::mem::take(&mut o.filled),
                std::mem::take(&mut o.volumes),
            )
        };
        let sent = (filled.is_empty() || input.send(Msg::Filled(filled)).is_ok())
            && (volumes.is_empty() || input.send(Msg::Volumes(volumes)).is_ok());
        if !sent {
            return;
        }
    }
}

/// One read.
enum Job {
    /// A qube's properties and features.
    Props(VmEntry),
    /// A qube's volumes.
    Volumes(String),
}

/// A worker: reads what [`Queue::next`] gives until the window goes.
fn work(shared: &(Mutex<Queue>, Condvar), outbox: &(Mutex<Outbox>, Condvar), client: &Client) {
    loop {
        let job = {
            let (lock, wake) = shared;
            let Ok(mut q) = lock.lock() else { return };
            loop {
                if q.stop {
                    return;
                }
                if let Some(job) = q.next() {
                    break job;
                }
                q = match wake.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        };
        let result = match job {
            Job::Props(entry) => {
                let info = crate::loader::read_qube(client, &entry);
                Ok((entry.name, info.map(Box::new)))
            }
            Job::Volumes(vm) => {
                let (disk, outdated) = super::feeds::read_volumes(client, &vm);
                Err((vm, disk, outdated))
            }
        };
        let (lock, wake) = outbox;
        let Ok(mut o) = lock.lock() else { return };
        match result {
            Ok(filled) => o.filled.push(filled),
            Err(volumes) => o.volumes.push(volumes),
        }
        wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> VmEntry {
        VmEntry {
            name: name.into(),
            class: "AppVM".into(),
            state: "Halted".into(),
            uuid: String::new(),
        }
    }

    #[test]
    fn preferred_qubes_come_first_in_the_order_given() {
        let mut q = Queue {
            props: ["a", "b", "c", "d", "e"].map(entry).into(),
            volumes: ["a", "e"].map(String::from).into(),
            ..Queue::default()
        };
        q.prefer(&["d".into(), "b".into(), "x".into(), "e".into()]);
        let order: Vec<&str> = q.props.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(order, ["d", "b", "e", "a", "c"]);
        assert_eq!(q.volumes, ["e", "a"]);
        // On screen: d, b, e's properties, then e's volumes (before a's and c's properties),
        // then the others'.
        let mut taken = Vec::new();
        while let Some(job) = q.next() {
            taken.push(match job {
                Job::Props(e) => format!("p:{}", e.name),
                Job::Volumes(v) => format!("v:{v}"),
            });
        }
        assert_eq!(taken, ["p:d", "p:b", "p:e", "v:e", "p:a", "p:c", "v:a"]);
    }
}
