//! The Admin API, one module per family of methods. Each family lists its methods
//! ([`Method`]: name, argument and payload rules, destination rule, handler) and holds thin
//! handlers: decode the argument and payload, call domain operations ([`crate::ops`]) or read
//! the state snapshot, build the reply. [`crate::dispatch`] assembles the families' lists into
//! the method table and runs the generic checks before a handler sees a call.

use std::sync::Arc;

use qubes_api::QubesError;

use crate::core::Core;
use crate::model::{Domain, State};
use crate::reply::Reply;
use crate::txn::{Env, Txn};

pub mod backup;
pub mod devices;
pub mod features;
pub mod firewall;
pub mod internal;
pub mod labels;
pub mod lifecycle;
pub mod misc;
pub mod notes;
pub mod pools;
pub mod properties;
pub mod qubes;
pub mod tags;
pub mod volumes;

/// Which socket a request came in on; each has its own methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Socket {
    /// `qubesd.sock`: `admin.*`.
    Admin,
    /// `qubesd.internal.sock`: `internal.*`.
    Internal,
    /// `qubesd.misc.sock`: `qubes.*`.
    Misc,
}

/// Whether an argument or payload must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Must be non-empty.
    Yes,
    /// Must be empty.
    No,
    /// Either.
    Any,
}

/// A call that passed the generic checks: who asks what of which qube.
#[derive(Debug, Clone)]
pub struct Req {
    /// Caller's qube name.
    pub src: String,
    /// Destination qube name (it existed when the call was checked).
    pub dest: String,
    /// Method name.
    pub method: &'static str,
    /// Argument (ASCII).
    pub arg: String,
    /// Payload, untrusted bytes.
    pub untrusted_payload: Vec<u8>,
}

impl Req {
    /// The destination qube in `st`. A write sees the state as it is when its turn comes, and
    /// another write may have removed the qube since the call was checked.
    pub fn dest_in<'a>(&self, st: &'a State) -> Result<&'a Domain, QubesError> {
        st.domain(&self.dest)
            .ok_or_else(|| QubesError::no_such_vm(&self.dest))
    }
}

/// What a read handler sees: a snapshot of the state, never changed under it.
pub struct View<'a> {
    /// The state.
    pub st: &'a Arc<State>,
    /// Answers remembered for this state.
    pub memo: &'a crate::core::Memo,
    /// Shared handles.
    pub env: &'a Env,
    /// For calls whose answer policy filters (`admin.vm.List` from a qube other than dom0):
    /// what the caller may see.
    pub filter: Option<Arc<crate::policy::PolicyView>>,
}

/// A handler that only reads.
pub type ReadFn = fn(&Req, &View) -> Result<Reply, QubesError>;
/// A handler that changes the state, inside a transaction.
pub type WriteFn = fn(&Req, &mut Txn) -> Result<Reply, QubesError>;
/// A handler that waits for the hypervisor or copies data between transactions of its own.
pub type BlockingFn = fn(&Req, &Core) -> Result<Reply, QubesError>;

/// How a method runs.
#[derive(Clone, Copy)]
pub enum Kind {
    /// On the state snapshot, at once (no I/O).
    Read(ReadFn),
    /// On the state snapshot, on a blocking thread: it waits for the hypervisor or the disk.
    ReadBlocking(ReadFn),
    /// In a transaction: writes are serialised and commit in arrival order.
    Write(WriteFn),
    /// On a blocking thread, with the core: reads snapshots and runs transactions, and
    /// waits for the hypervisor or copies data between them with no lock held.
    Blocking(BlockingFn),
}

/// One method of a socket.
#[derive(Clone, Copy)]
pub struct Method {
    /// Full method name.
    pub name: &'static str,
    /// Socket serving it.
    pub socket: Socket,
    /// Argument rule.
    pub arg: Want,
    /// Payload rule.
    pub payload: Want,
    /// `Some(true)`: destination must be dom0; `Some(false)`: must not be; `None`: any.
    pub dest_adminvm: Option<bool>,
    /// How it runs.
    pub kind: Kind,
}

impl Method {
    /// Whether the method runs at once on the caller's thread (a read of the snapshot).
    pub fn is_inline(&self) -> bool {
        matches!(self.kind, Kind::Read(_))
    }
}

/// Destination must be dom0.
pub(crate) const DOM0: Option<bool> = Some(true);
/// Any destination.
pub(crate) const ANY: Option<bool> = None;
/// Destination must not be dom0.
pub(crate) const NOT_DOM0: Option<bool> = Some(false);

/// A method of the admin socket that only reads.
pub(crate) const fn read(
    name: &'static str,
    arg: Want,
    payload: Want,
    dest_adminvm: Option<bool>,
    f: ReadFn,
) -> Method {
    Method {
        name,
        socket: Socket::Admin,
        arg,
        payload,
        dest_adminvm,
        kind: Kind::Read(f),
    }
}

/// A method of the admin socket that reads but waits for the hypervisor or the disk.
pub(crate) const fn read_blocking(
    name: &'static str,
    arg: Want,
    payload: Want,
    dest_adminvm: Option<bool>,
    f: ReadFn,
) -> Method {
    Method {
        name,
        socket: Socket::Admin,
        arg,
        payload,
        dest_adminvm,
        kind: Kind::ReadBlocking(f),
    }
}

/// A method of the admin socket that writes.
pub(crate) const fn write(
    name: &'static str,
    arg: Want,
    payload: Want,
    dest_adminvm: Option<bool>,
    f: WriteFn,
) -> Method {
    Method {
        name,
        socket: Socket::Admin,
        arg,
        payload,
        dest_adminvm,
        kind: Kind::Write(f),
    }
}

/// A method of the admin socket that runs transactions of its own on a blocking thread.
pub(crate) const fn blocking(
    name: &'static str,
    arg: Want,
    payload: Want,
    dest_adminvm: Option<bool>,
    f: BlockingFn,
) -> Method {
    Method {
        name,
        socket: Socket::Admin,
        arg,
        payload,
        dest_adminvm,
        kind: Kind::Blocking(f),
    }
}

/// The same method served on another socket.
pub(crate) const fn on(mut method: Method, socket: Socket) -> Method {
    method.socket = socket;
    method
}

/// Every family's methods, in the order the reference registers them.
pub fn families() -> [&'static [Method]; 14] {
    [
        qubes::METHODS,
        labels::METHODS,
        properties::METHODS,
        features::METHODS,
        tags::METHODS,
        notes::METHODS,
        lifecycle::METHODS,
        firewall::METHODS,
        devices::METHODS,
        pools::METHODS,
        volumes::METHODS,
        internal::METHODS,
        misc::METHODS,
        backup::METHODS,
    ]
}
