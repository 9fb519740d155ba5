//! The Qubes OS Admin API wire protocol, shared by the daemon and its clients.
//!
//! A call is one connection: the client writes a request header, a NUL, an optional payload and
//! half-closes; the daemon answers with one OK or EXCEPTION message, or with a stream of EVENT
//! messages, and closes. Nothing here does I/O except [`client`].

pub mod client;
pub mod exc;
pub mod framing;

pub use exc::{ExcKind, QubesError};
pub use framing::{Event, MAX_REQUEST_SIZE, Request, Response};
