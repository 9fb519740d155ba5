//! The event hub: every committed change is published once, pre-serialised, to all
//! `admin.Events` subscribers. A subscriber that falls behind by more than the channel's
//! capacity is disconnected instead of buffering without bound.

use std::sync::Arc;

use qubes_api::Event;
use tokio::sync::broadcast;

/// How many events a slow subscriber may lag before it is dropped.
pub const SUBSCRIBER_BACKLOG: usize = 16384;

/// An event as published: the parsed form (for filtering) and its wire bytes.
#[derive(Debug)]
pub struct Published {
    /// The event.
    pub event: Event,
    /// `1\0subject\0name\0...` bytes.
    pub bytes: Vec<u8>,
    /// Whether it belongs to the whole system (empty subject).
    pub global: bool,
}

/// Fan-out of events to subscribers.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Published>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    /// A hub with no subscribers.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        EventHub { tx }
    }

    /// A new subscription; events published from now on are received.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Publishes events in order.
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            let bytes = event.encode();
            let global = event.subject.is_empty();
            // No subscriber is not an error.
            let _ = self.tx.send(Arc::new(Published {
                event,
                bytes,
                global,
            }));
        }
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
