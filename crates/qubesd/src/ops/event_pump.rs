//! Applying the hypervisor's lifecycle events in order without one qube holding up the rest.
//!
//! A qube's events are applied under its lock (see [`crate::core::Core::qube_lock`]), which a start holds
//! for as long as the qube takes to come up. An event for a qube whose lock is busy waits on a
//! thread of its own, with every later event of that qube behind it in order; events of
//! other qubes go on at once. Events about no qube (the connection to the hypervisor lost or
//! back) are not ordered against those waiting: their handlers read what the hypervisor says
//! now rather than trust the order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, mpsc::Receiver};

use crate::hypervisor::LifecycleEvent;

/// The qube an event is about, if it is about one.
pub fn subject(ev: &LifecycleEvent) -> Option<&str> {
    match ev {
        LifecycleEvent::Started(vm)
        | LifecycleEvent::Suspended(vm)
        | LifecycleEvent::PmSuspended(vm)
        | LifecycleEvent::Resumed(vm)
        | LifecycleEvent::Stopped(vm) => Some(vm),
        LifecycleEvent::ConnectionLost | LifecycleEvent::Reconnected => None,
    }
}

/// The qubes whose events wait for their lock, each with its waiting events in order.
type Waiting = Arc<Mutex<HashMap<String, VecDeque<LifecycleEvent>>>>;

/// Applies `events` until the channel closes (see the module docs): `locks` gives a qube's
/// lock, `apply(event, true)` runs with the event's qube lock held, `apply(event, false)`
/// for an event about no qube.
pub fn dispatch<L, A>(events: Receiver<LifecycleEvent>, locks: L, apply: A)
where
    L: Fn(&str) -> Arc<parking_lot::Mutex<()>>,
    A: Fn(&LifecycleEvent, bool) + Clone + Send + 'static,
{
    let waiting: Waiting = Arc::default();
    for ev in events {
        let Some(vm) = subject(&ev).map(str::to_string) else {
            apply(&ev, false);
            continue;
        };
        let mut queues = waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(queue) = queues.get_mut(&vm) {
            // Behind the events of this qube that already wait.
            queue.push_back(ev);
            continue;
        }
        let lock = locks(&vm);
        if let Some(_held) = lock.try_lock() {
            drop(queues);
            apply(&ev, true);
            continue;
        }
        queues.insert(vm.clone(), VecDeque::from([ev]));
        drop(queues);
        let spawned = {
            let (vm, lock, waiting, apply) =
                (vm.clone(), lock.clone(), waiting.clone(), apply.clone());
            std::thread::Builder::new()
                .name("qubesd-qube-events".into())
                .spawn(move || drain(&vm, &lock, &waiting, &apply))
        };
        if let Err(e) = spawned {
            // No thread to wait on: wait here (every qube's events wait meanwhile, as they
            // all did before this module).
            tracing::error!("cannot start a thread for a qube's events: {e}");
            drain(&vm, &lock, &waiting, &apply);
        }
    }
}

/// Applies the waiting events of `vm`, each once its lock is free, until none is left.
fn drain<A: Fn(&LifecycleEvent, bool)>(
    vm: &str,
    lock: &parking_lot::Mutex<()>,
    waiting: &Waiting,
    apply: &A,
) {
    loop {
        let _held = lock.lock();
        let next = {
            let mut queues = waiting.lock().unwrap_or_else(|e| e.into_inner());
            match queues.get_mut(vm).and_then(VecDeque::pop_front) {
                Some(ev) => ev,
                None => {
                    // Under the same lock as the pump looks: its next event for this qube
                    // is applied by the pump itself, after these.
                    queues.remove(vm);
                    return;
                }
            }
        };
        apply(&next, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_busy_qube_holds_up_only_its_own_events() {
        let locks: Arc<Mutex<HashMap<String, Arc<parking_lot::Mutex<()>>>>> = Arc::default();
        let lock_of = {
            let locks = locks.clone();
            move |vm: &str| {
                locks
                    .lock()
                    .unwrap()
                    .entry(vm.to_string())
                    .or_default()
                    .clone()
            }
        };
        let busy = lock_of("a");
        let held = busy.lock();
        let (applied_tx, applied) = mpsc::channel::<String>();
        let apply = move |ev: &LifecycleEvent, _locked: bool| {
            applied_tx.send(format!("{ev:?}")).unwrap();
        };
        let (tx, rx) = mpsc::channel();
        let pump = {
            let lock_of = lock_of.clone();
            std::thread::spawn(move || dispatch(rx, lock_of, apply))
        };
        tx.send(LifecycleEvent::Started("a".into())).unwrap();
        tx.send(LifecycleEvent::Started("b".into())).unwrap();
        tx.send(LifecycleEvent::Stopped("a".into())).unwrap();
        tx.send(LifecycleEvent::Stopped("b".into())).unwrap();
        // b's events go through while a's lock is held.
        assert_eq!(applied.recv().unwrap(), "Started(\"b\")");
        assert_eq!(applied.recv().unwrap(), "Stopped(\"b\")");
        assert!(applied.try_recv().is_err());
        drop(held);
        // a's, in their order, once its lock is free; then a's next one directly.
        assert_eq!(applied.recv().unwrap(), "Started(\"a\")");
        assert_eq!(applied.recv().unwrap(), "Stopped(\"a\")");
        tx.send(LifecycleEvent::Resumed("a".into())).unwrap();
        assert_eq!(applied.recv().unwrap(), "Resumed(\"a\")");
        drop(tx);
        pump.join().unwrap();
    }
}
