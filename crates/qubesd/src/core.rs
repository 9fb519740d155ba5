//! The state owner and transaction manager.
//!
//! Readers take an immutable snapshot of the state ([`Core::snapshot`]) and never wait for a
//! writer. Writers ([`Core::write`]) are serialised by a fair lock, so they commit in arrival
//! order: each works on a copy of the current snapshot, and a successful one is committed —
//! side files and `qubes.xml` written durably, the new snapshot swapped in, its events
//! published — before the next begins. A failed or panicking write leaves memory and disk as
//! they were. Nothing slow runs under the lock but the durable save (one journal record; see
//! [`crate::store`]; the whole `qubes.xml` is written when the core goes idle): calls
//! that wait for the hypervisor or copy data do so between transactions (see
//! [`crate::ops::lifecycle`]).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::FairMutex;
use qubes_api::{Event, QubesError};

use crate::events::EventHub;
use crate::model::State;
use crate::policy::{PolicyCache, PolicyView};
use crate::store::Store;
use crate::txn::{Effects, Env, Parts, Txn, is_pre_event};

/// The daemon's state and how it changes.
pub struct Core {
    state: ArcSwap<State>,
    writer: FairMutex<Store>,
    env: Env,
    hub: EventHub,
    stats: EventHub,
    policy: Mutex<PolicyState>,
    qube_locks: Mutex<HashMap<String, Arc<parking_lot::Mutex<()>>>>,
    memo: Memo,
    idle: Arc<IdleSignal>,
    /// Event subscribers whose events the policy filters (management qubes').
    filtered_subscribers: AtomicUsize,
}

/// Counts a subscriber whose events the policy filters while it lives (see
/// [`Core::filtered_subscriber`]).
pub struct FilteredSubscriber<'a>(&'a AtomicUsize);

impl Drop for FilteredSubscriber<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long the core waits after a journaled save, without another, before it checkpoints
/// `qubes.xml` (see [`Core::checkpoint`]).
pub const CHECKPOINT_IDLE: Duration = Duration::from_millis(250);

/// Tells a checkpointing thread when the core has gone quiet after a save.
#[derive(Default)]
pub struct IdleSignal {
    state: Mutex<IdleState>,
    wake: Condvar,
}

#[derive(Default)]
struct IdleState {
    /// When the last save that left the journal non-empty committed.
    last_save: Option<Instant>,
    closed: bool,
}

impl IdleSignal {
    fn saved(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A waiter with a deadline wakes at it and sees the newer save itself: waking it
        // for every save would cost a context switch per write.
        if s.last_save.replace(Instant::now()).is_none() {
            self.wake.notify_all();
        }
    }

    fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.closed = true;
        self.wake.notify_all();
    }

    /// Waits until a save happened and then `idle` passed without another: `true`; `false`
    /// once the core is gone.
    pub fn wait_idle(&self, idle: Duration) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.closed {
                return false;
            }
            s = match s.last_save {
                None => self.wake.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at + idle {
                        s.last_save = None;
                        return true;
                    }
                    self.wake
                        .wait_timeout(s, at + idle - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// Answers computed from one snapshot, kept until the state changes (the full
/// `admin.vm.List` that every client asks for at start and after every reconnect).
#[derive(Default)]
pub struct Memo {
    entries: Mutex<Option<MemoEntries>>,
}

/// The snapshot the answers belong to, and the answers by name.
type MemoEntries = (Arc<State>, HashMap<&'static str, Arc<Vec<u8>>>);

impl Memo {
    /// The answer `key` for the snapshot `st`, made by `make` the first time.
    pub fn get(
        &self,
        st: &Arc<State>,
        key: &'static str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Arc<Vec<u8>> {
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((of, map)) = entries.as_ref()
                && Arc::ptr_eq(of, st)
                && let Some(v) = map.get(key)
            {
                return v.clone();
            }
        }
        let made = Arc::new(make());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.as_mut() {
            Some((of, map)) if Arc::ptr_eq(of, st) => {
                map.insert(key, made.clone());
            }
            _ => *entries = Some((st.clone(), HashMap::from([(key, made.clone())]))),
        }
        made
    }
}

/// The policy and the view last built from it.
struct PolicyState {
    cache: PolicyCache,
    view: Option<(Arc<State>, Arc<PolicyView>)>,
}

impl Core {
    /// A core over a loaded store and its state.
    pub fn new(state: State, store: Store, env: Env, policy: PolicyCache) -> Core {
        Core {
            state: ArcSwap::from_pointee(state),
            writer: FairMutex::new(store),
            env,
            hub: EventHub::new(),
            stats: EventHub::new(),
            policy: Mutex::new(PolicyState {
                cache: policy,
                view: None,
            }),
            qube_locks: Mutex::new(HashMap::new()),
            memo: Memo::default(),
            idle: Arc::default(),
            filtered_subscribers: AtomicUsize::new(0),
        }
    }

    /// Registers an event subscriber whose events the policy filters: while one lives, each
    /// commit makes the policy view of its state for them.
    pub fn filtered_subscriber(&self) -> FilteredSubscriber<'_> {
        self.filtered_subscribers.fetch_add(1, Ordering::Relaxed);
        FilteredSubscriber(&self.filtered_subscribers)
    }

    /// What a checkpointing thread waits on (see [`IdleSignal::wait_idle`]).
    pub fn idle_signal(&self) -> Arc<IdleSignal> {
        self.idle.clone()
    }

    /// Writes `qubes.xml` whole if the journal holds changes it lacks, and empties the
    /// journal; run when the core has gone idle.
    pub fn checkpoint(&self) -> std::io::Result<()> {
        let mut store = self.writer.lock();
        if !store.dirty() {
            return Ok(());
        }
        store.checkpoint(&self.absorb_touches())
    }

    /// The current state; it never changes under the caller.
    pub fn snapshot(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Shared handles (hypervisor, state directory, clone tokens).
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Answers remembered for the current snapshot.
    pub fn memo(&self) -> &Memo {
        &self.memo
    }

    /// Where events go.
    pub fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// Where `vm-stats` events go (apart from the others: frequent, and only
    /// `admin.vm.Stats` wants them).
    pub fn stats_hub(&self) -> &EventHub {
        &self.stats
    }

    /// Runs `f` as one transaction, after the writes that came before it: commits on success,
    /// drops everything otherwise. `what`
    /// names the call in logs.
    pub fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Txn) -> Result<T, QubesError>,
    ) -> Result<T, QubesError> {
        let mut store = self.writer.lock();
        let base = self.absorb_touches();
        let mut txn = Txn::new((*base).clone(), self.env.clone());
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut txn)));
        let parts = txn.into_parts();
        let result = match outcome {
            Ok(r) => r,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!("{what} panicked: {why}; nothing of it was kept");
                drop_parts(parts);
                return Err(QubesError::qubes(format!(
                    "Internal error in qubesd while handling {what}; nothing was changed"
                )));
            }
        };
        match result {
            Ok(v) => match self.commit(&mut store, &base, parts) {
                Ok(after) => {
                    drop(store);
                    // The call is committed whatever an action after it does.
                    for f in after {
                        if catch_unwind(AssertUnwindSafe(f)).is_err() {
                            tracing::error!("{what}: an action after the commit panicked");
                        }
                    }
                    Ok(v)
                }
                Err(e) => Err(e),
            },
            Err(e) => {
                // The reference delivers pre-events before the handler that vetoes them.
                let kept: Vec<Event> = parts
                    .effects
                    .events
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| is_pre_event(&e.name) || parts.effects.sticky.contains(i))
                    .map(|(_, e)| e.clone())
                    .collect();
                drop_parts(parts);
                self.hub.publish_at(kept, Some(base));
                Err(e)
            }
        }
    }

    /// Makes a transaction's changes the state: side files, `qubes.xml`, the snapshot, the
    /// events. Returns the actions to run once the writer lock is released.
    fn commit(
        &self,
        store: &mut Store,
        base: &Arc<State>,
        mut parts: Parts,
    ) -> Result<Vec<crate::txn::Deferred>, QubesError> {
        for (path, data) in &parts.effects.side_files {
            let written = path
                .parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|_| crate::durable::write_atomic(path, data, 0o664));
            if let Err(e) = written {
                drop_parts(parts);
                return Err(QubesError::qubes(format!(
                    "Failed to write notes file: {e}"
                )));
            }
        }
        // What the call itself looked at is saved with it, as in the reference.
        parts.st.apply_device_touches();
        if parts.save
            && let Err(e) = store.save(&parts.st)
        {
            tracing::error!("saving {}: {e}", store.path().display());
            store.recover(base);
            drop_parts(parts);
            let msg = e.to_string();
            return Err(QubesError::qubes(
                if msg == crate::store::MODIFIED_ELSEWHERE {
                    msg
                } else {
                    format!("Failed to save qubes.xml: {msg}")
                },
            ));
        }
        let Parts {
            st,
            effects: Effects {
                events, on_commit, ..
            },
            ..
        } = parts;
        if store.dirty() {
            self.idle.saved();
        }
        // An unchanged state keeps its snapshot (and the policy view built on it).
        let committed = if **base != st {
            let new = Arc::new(st);
            self.state.store(new.clone());
            new
        } else {
            base.clone()
        };
        // Management qubes' subscribers filter by the policy view of this state: made here,
        // on the writer's thread, rather than by the first of them on the event loop.
        let view = (self.filtered_subscribers.load(Ordering::Relaxed) > 0)
            .then(|| self.policy_view_at(&committed));
        self.hub.publish_with_view(events, Some(committed), view);
        Ok(on_commit)
    }

    /// The policy applied to the current state, built again only when the policy files
    /// changed or the state changed in what the policy looks at (tags, classes, power
    /// states, ...; see [`crate::policy::info_changed`]) — not for every feature set — so the
    /// decisions it remembers serve subscribers across commits.
    pub fn policy_view(&self) -> Arc<PolicyView> {
        self.policy_view_at(&self.snapshot())
    }

    /// The policy applied to `st` (the state an event belongs to, which a subscriber that
    /// lags may see after newer ones): the remembered view when `st` says the same, else
    /// one built for it.
    pub fn policy_view_at(&self, st: &Arc<State>) -> Arc<PolicyView> {
        let mut p = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        let (rules, changed) = p.cache.rules();
        let current = Arc::ptr_eq(st, &self.snapshot());
        if !changed
            && let Some((built_on, view)) = &mut p.view
            && (Arc::ptr_eq(built_on, st) || !crate::policy::info_changed(built_on, st))
        {
            if current {
                // Compare with the newest state next time: it says the same.
                *built_on = st.clone();
            }
            return view.clone();
        }
        let view = Arc::new(PolicyView::new(rules, st));
        // A view of older rules must never be kept; of an older state it may (the
        // comparison with the next state it serves decides).
        if current || changed || p.view.is_none() {
            p.view = Some((st.clone(), view.clone()));
        }
        view
    }

    /// The lock that serialises one qube's lifecycle operations (start, shutdown, kill, the
    /// handling of its stop), held across their hypervisor calls; other qubes and every other
    /// call go on meanwhile.
    pub fn qube_lock(&self, vm: &str) -> Arc<parking_lot::Mutex<()>> {
        let mut locks = self.qube_locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 256 {
            // Forget locks nobody holds or waits for (qubes removed long ago, say).
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(vm.to_string()).or_default().clone()
    }

    /// The current state, with the device classes calls looked at since the last write
    /// made part of it (and of the snapshot readers see): what the next save writes. Call
    /// with the writer lock held.
    fn absorb_touches(&self) -> Arc<State> {
        let base = self.state.load_full();
        if base.has_device_touches() {
            let mut st = (*base).clone();
            if st.apply_device_touches() {
                let st = Arc::new(st);
                self.state.store(st.clone());
                return st;
            }
        }
        base
    }

    /// Writes the current state one last time and gives the store up (clean shutdown):
    /// every later write fails to save.
    pub fn save_and_close(&self) -> std::io::Result<()> {
        let mut store = self.writer.lock();
        let saved = store.checkpoint(&self.absorb_touches());
        if saved.is_ok() {
            store.close();
        }
        self.idle.close();
        saved
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        self.idle.close();
    }
}

/// Drops a transaction that is not committed: its undo actions run, newest first.
fn drop_parts(parts: Parts) {
    for undo in parts.effects.on_rollback.into_iter().rev() {
        if catch_unwind(AssertUnwindSafe(undo)).is_err() {
            tracing::error!("an undo action panicked");
        }
    }
}
