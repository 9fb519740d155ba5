//! The event hub: every committed change is published once, pre-serialised, to all
//! subscribers. Each subscriber has its own queue, bounded in bytes: one that falls that far
//! behind is dropped (its connection closes; clients reconnect and reload, as the Qubes
//! client does), so a subscriber that stops reading costs at most its bound.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use qubes_api::Event;
use tokio::sync::Notify;

/// How many bytes of events a subscriber may have waiting before it is dropped.
pub const SUBSCRIBER_BACKLOG_BYTES: usize = 8 * 1024 * 1024;

/// Bytes of waiting events a stream writes at once: a subscriber that fell behind catches
/// up with few system calls (and wakes its reader less often). Small enough that a reader
/// taking 13 KB/s still takes a batch within the streams' write timeout (5 s). A queue that
/// reaches it wakes a stream that waits for its pace ([`Subscription::batch_ready`]).
pub const BATCH_BYTES: usize = 64 * 1024;

/// An event as published: the parsed form (for filtering) and its wire bytes.
#[derive(Debug)]
pub struct Published {
    /// The event.
    pub event: Event,
    /// `1\0subject\0name\0...` bytes.
    pub bytes: Vec<u8>,
    /// Whether it belongs to the whole system (empty subject).
    pub global: bool,
    /// The state the event belongs to (the one its change committed), when known: events
    /// are filtered for management qubes by what the policy said of that state.
    pub state: Option<Arc<crate::model::State>>,
    /// The policy view of that state, shared by the events of one commit: made by the
    /// writer that committed it when management qubes subscribe, else by the first of them
    /// that needs it. Fifty management-qube subscribers cost one lookup.
    pub view: Arc<OnceLock<Arc<crate::policy::PolicyView>>>,
}

/// Fan-out of events to subscribers.
#[derive(Debug, Clone, Default)]
pub struct EventHub {
    subscribers: Arc<Mutex<Vec<Weak<Queue>>>>,
    /// Live subscriptions, kept by the subscriptions themselves (read without the lock).
    live: Arc<AtomicUsize>,
}

/// One subscriber's queue.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    /// An event arrived (or the subscriber was dropped).
    ready: Notify,
    /// A batch's worth of bytes is waiting (or the subscriber was dropped).
    full: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<Arc<Published>>,
    bytes: usize,
    /// Fell too far behind: gets nothing more.
    dropped: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A subscriber was dropped for falling behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped;

/// A subscription: events published from its creation on, in order. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    queue: Arc<Queue>,
    live: Arc<AtomicUsize>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscription {
    /// The next event; `None` once the subscriber was dropped for falling behind.
    pub async fn recv(&mut self) -> Option<Arc<Published>> {
        loop {
            // Register interest before looking, so a publish in between is not missed.
            let notified = self.queue.ready.notified();
            {
                let mut q = lock(&self.queue.state);
                if q.dropped {
                    return None;
                }
                if let Some(ev) = q.events.pop_front() {
                    q.bytes -= ev.bytes.len();
                    return Some(ev);
                }
            }
            notified.await;
        }
    }

    /// The events waiting, at least one (waits for it), oldest first, as many as fit in
    /// `max_bytes` (always one); `false` once the subscriber was dropped for falling
    /// behind. A stream writes them with one system call.
    pub async fn recv_many(&mut self, out: &mut Vec<Arc<Published>>, max_bytes: usize) -> bool {
        loop {
            let notified = self.queue.ready.notified();
            {
                let mut q = lock(&self.queue.state);
                if q.dropped {
                    return false;
                }
                let mut taken = 0;
                while let Some(ev) = q.events.front() {
                    if !out.is_empty() && taken + ev.bytes.len() > max_bytes {
                        break;
                    }
                    taken += ev.bytes.len();
                    if let Some(ev) = q.events.pop_front() {
                        out.push(ev);
                    }
                }
                q.bytes -= taken;
                if !out.is_empty() {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Returns once a batch's worth of events ([`BATCH_BYTES`]) waits, or the subscriber
    /// was dropped; not woken by each event.
    pub async fn batch_ready(&self) {
        loop {
            let full = self.queue.full.notified();
            {
                let q = lock(&self.queue.state);
                if q.dropped || q.bytes >= BATCH_BYTES {
                    return;
                }
            }
            full.await;
        }
    }

    /// How many subscriptions its hub has (this one included).
    pub fn subscribers(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The next event if one is waiting (`Err(Dropped)` once dropped).
    pub fn try_recv(&mut self) -> Result<Option<Arc<Published>>, Dropped> {
        let mut q = lock(&self.queue.state);
        if q.dropped {
            return Err(Dropped);
        }
        Ok(q.events.pop_front().inspect(|ev| q.bytes -= ev.bytes.len()))
    }
}

impl EventHub {
    /// A hub with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new subscription; events published from now on are received.
    pub fn subscribe(&self) -> Subscription {
        let queue = Arc::new(Queue::default());
        let mut subs = lock(&self.subscribers);
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(&queue));
        self.live.fetch_add(1, Ordering::Relaxed);
        Subscription {
            queue,
            live: self.live.clone(),
        }
    }

    /// Publishes events in order.
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) {
        self.publish_at(events, None);
    }

    /// Publishes events in order, as belonging to `state`.
    pub fn publish_at(
        &self,
        events: impl IntoIterator<Item = Event>,
        state: Option<Arc<crate::model::State>>,
    ) {
        self.publish_with_view(events, state, None);
    }

    /// [`EventHub::publish_at`] with the policy view of `state` made already (by a writer,
    /// off the event loop), for the subscribers that filter.
    pub fn publish_with_view(
        &self,
        events: impl IntoIterator<Item = Event>,
        state: Option<Arc<crate::model::State>>,
        view: Option<Arc<crate::policy::PolicyView>>,
    ) {
        let view = Arc::new(view.map(OnceLock::from).unwrap_or_default());
        let published: Vec<Arc<Published>> = events
            .into_iter()
            .map(|event| {
                let bytes = event.encode();
                let global = event.subject.is_empty();
                Arc::new(Published {
                    event,
                    bytes,
                    global,
                    state: state.clone(),
                    view: view.clone(),
                })
            })
            .collect();
        if published.is_empty() {
            return;
        }
        let mut subs = lock(&self.subscribers);
        subs.retain(|w| w.strong_count() > 0);
        for queue in subs.iter().filter_map(Weak::upgrade) {
            let mut q = lock(&queue.state);
            if q.dropped {
                continue;
            }
            let before = q.bytes;
            for ev in &published {
                if q.bytes + ev.bytes.len() > SUBSCRIBER_BACKLOG_BYTES {
                    tracing::warn!(
                        "an events subscriber has {} bytes waiting; disconnecting it",
                        q.bytes
                    );
                    q.dropped = true;
                    q.events.clear();
                    q.bytes = 0;
                    break;
                }
                q.bytes += ev.bytes.len();
                q.events.push_back(ev.clone());
            }
            let full = q.dropped || (before < BATCH_BYTES && q.bytes >= BATCH_BYTES);
            drop(q);
            queue.ready.notify_one();
            if full {
                queue.full.notify_one();
            }
        }
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_drops_a_subscriber_that_falls_behind() {
        let hub = EventHub::new();
        let mut reader = hub.subscribe();
        let mut stuck = hub.subscribe();
        hub.publish([Event::new("a", "one"), Event::new("b", "two")]);
        assert_eq!(reader.recv().await.unwrap().event.name, "one");
        assert_eq!(reader.recv().await.unwrap().event.name, "two");
        // 64 KiB values: the one that never reads is dropped at its bound, the other is not.
        let big = "x".repeat(64 * 1024);
        for _ in 0..(SUBSCRIBER_BACKLOG_BYTES / big.len() + 2) {
            hub.publish([Event::new("a", "big").kw("value", &big)]);
            assert_eq!(reader.recv().await.unwrap().event.name, "big");
        }
        assert_eq!(stuck.recv().await.map(|e| e.event.name.clone()), None);
        assert!(stuck.try_recv().is_err());
        assert_eq!((hub.subscribers(), reader.subscribers()), (2, 2));
        drop(stuck);
        assert_eq!((hub.subscribers(), reader.subscribers()), (1, 1));
        hub.publish([Event::new("a", "after")]);
        assert_eq!(reader.try_recv().unwrap().unwrap().event.name, "after");
    }

    #[tokio::test]
    async fn recv_many_takes_what_waits_within_the_bound() {
        let hub = EventHub::new();
        let mut sub = hub.subscribe();
        hub.publish([Event::new("a", "one"), Event::new("a", "two")]);
        hub.publish([Event::new("a", "three")]);
        let mut got = Vec::new();
        assert!(sub.recv_many(&mut got, 1 << 20).await);
        let names: Vec<&str> = got.iter().map(|e| e.event.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "three"]);
        // A bound smaller than one event still takes one.
        hub.publish([Event::new("a", "four"), Event::new("a", "five")]);
        got.clear();
        assert!(sub.recv_many(&mut got, 1).await);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event.name, "four");
        got.clear();
        assert!(sub.recv_many(&mut got, 1).await);
        assert_eq!(got[0].event.name, "five");
        assert!(matches!(sub.try_recv(), Ok(None)));
    }
}
