//! Our `qubesd`: a Qubes OS Admin API daemon that answers byte for byte like the reference.
//!
//! # Layers
//!
//! Each layer imports only the layers below it (a test fails on an import cycle between the
//! crate's top-level modules):
//!
//! | layer | modules | what it does |
//! |---|---|---|
//! | assembly | [`daemon`], [`embedded`], [`demo`] | load the store, connect the hypervisor, serve |
//! | transport | [`server`] | sockets, one task per connection, event and statistics streams |
//! | dispatch | [`dispatch`] | the method table, the generic checks in the reference's order, running a handler by its kind |
//! | API families | [`api`] | one module per family: decode the request, call operations, build the reply |
//! | domain operations | [`ops`] | what a call changes, saves and fires, on a [`txn::Txn`] ([`ops::hooks`]: the reference's event handlers, in its order); multi-step operations (start, clone, host suspend) |
//! | state owner | [`core`] | snapshots for readers, serialised transactions for writers, commit and rollback |
//! | bottom | [`model`], [`props`], [`volumes`], [`store`], [`journal`], [`storelock`], [`storage`], [`hypervisor`], [`devices`], [`firewall`], [`policy`], [`qubesdb`], [`dirwatch`], [`events`], [`txn`], [`reply`], [`names`], [`xml`], [`pycompat`], [`durable`] | the qube model, `qubes.xml`, storage drivers, libvirt, QubesDB, events, Python-compatible helpers |
//!
//! Readers work on an immutable snapshot of the state and never wait for writers; writers are
//! serialised and commit in arrival order; no lock is held across a hypervisor call or a data
//! copy (see [`core`] and [`ops::lifecycle`]).

pub mod api;
pub mod core;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod dirwatch;
pub mod dispatch;
pub mod durable;
pub mod embedded;
pub mod events;
pub mod firewall;
pub mod hypervisor;
pub mod journal;
pub mod model;
pub mod names;
pub mod ops;
pub mod policy;
pub mod props;
pub mod pycompat;
pub mod qubesdb;
pub mod reply;
pub mod server;
pub mod storage;
pub mod store;
pub mod storelock;
pub mod txn;
pub mod volumes;
pub mod xml;

pub use daemon::{Config, Daemon};
pub use embedded::Embedded;
