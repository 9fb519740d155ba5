//! The Qubes OS Admin API wire protocol, shared by the daemon and its clients.
//!
//! A call is one connection: the client writes a request header, a NUL, an optional payload and
//! half-closes; the daemon answers with one OK or EXCEPTION message, or with a stream of EVENT
//! messages, and closes. Only [`client`], [`transport`] and [`api`] do I/O.

pub mod api;
pub mod client;
pub mod device_format;
pub mod exc;
pub mod framing;
pub mod transport;

pub use api::{CallError, Client, EventReader, PropValue, VmEntry};
pub use exc::{ExcKind, QubesError};
pub use framing::{Event, MAX_REQUEST_SIZE, Request, Response};
pub use transport::{LocalSocket, Qrexec, Transport};
