//! What a call answers, and the small helpers handlers build answers with.

use qubes_api::QubesError;

/// What a successful call produced.
pub enum Reply {
    /// An OK message with this content.
    Ok(Vec<u8>),
    /// An OK message whose content other answers share (one remembered for the state):
    /// written without a copy.
    Shared(std::sync::Arc<Vec<u8>>),
    /// Start an event stream (`admin.Events`) for this destination.
    Events {
        /// Destination qube (`dom0` = everything).
        dest: String,
        /// Caller: events are filtered by policy unless it is dom0.
        src: String,
    },
    /// Start a statistics stream (`admin.vm.Stats`) for this destination.
    Stats {
        /// Destination qube (`dom0` = every running qube).
        dest: String,
    },
    /// Answer OK once the qube has stopped, or fail after `timeout` seconds.
    WaitHalted {
        /// The qube.
        vm: String,
        /// Seconds to wait.
        timeout: u64,
    },
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Ok(b) => f
                .debug_tuple("Ok")
                .field(&String::from_utf8_lossy(b))
                .finish(),
            Reply::Shared(b) => f
                .debug_tuple("Shared")
                .field(&String::from_utf8_lossy(b))
                .finish(),
            Reply::Events { dest, src } => f
                .debug_struct("Events")
                .field("dest", dest)
                .field("src", src)
                .finish(),
            Reply::Stats { dest } => f.debug_struct("Stats").field("dest", dest).finish(),
            Reply::WaitHalted { vm, timeout } => f
                .debug_struct("WaitHalted")
                .field("vm", vm)
                .field("timeout", timeout)
                .finish(),
        }
    }
}

impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        match (self, other) {
            (Reply::Ok(a), Reply::Ok(b)) => a == b,
            (Reply::Shared(a), Reply::Shared(b)) => a == b,
            (Reply::Ok(a), Reply::Shared(b)) | (Reply::Shared(b), Reply::Ok(a)) => a == &**b,
            (Reply::Events { dest: a, src: b }, Reply::Events { dest: c, src: d }) => {
                a == c && b == d
            }
            (Reply::Stats { dest: a }, Reply::Stats { dest: b }) => a == b,
            (Reply::WaitHalted { vm: a, timeout: b }, Reply::WaitHalted { vm: c, timeout: d }) => {
                a == c && b == d
            }
            _ => false,
        }
    }
}

/// An OK reply with this text.
pub fn ok(s: impl Into<String>) -> Result<Reply, QubesError> {
    Ok(Reply::Ok(s.into().into_bytes()))
}

/// An empty OK reply.
pub fn empty() -> Result<Reply, QubesError> {
    Ok(Reply::Ok(Vec::new()))
}

/// One line per item, each ending in `\n`.
pub fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let mut out = String::new();
    for i in items {
        out.push_str(i.as_ref());
        out.push('\n');
    }
    out
}
