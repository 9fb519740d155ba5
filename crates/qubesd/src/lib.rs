//! Our `qubesd`: a Qubes OS Admin API daemon that answers byte for byte like the reference.
//!
//! Layers, from the socket inwards: [`server`] (sockets, framing, streams) → [`core`] (checks
//! in the reference's order, commit or roll back) → [`handlers`] (one function per method) →
//! [`model`], [`props`], [`setters`] (the qube model) → [`store`] (`qubes.xml`).

pub mod core;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod embedded;
pub mod events;
pub mod firewall;
pub mod handlers;
pub mod hypervisor;
pub mod lifecycle;
pub mod model;
pub mod names;
pub mod policy;
pub mod props;
pub mod server;
pub mod setters;
pub mod storage;
pub mod store;
pub mod volumes;
pub mod xml;

pub use daemon::{Config, Daemon};
pub use embedded::Embedded;
