//! A small blocking client over the local Unix socket (dom0 transport).
//!
//! Used by `qubesd-query`, the tests and the benchmarks. It sends one request, half-closes and
//! reads until the daemon closes.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::framing::{Event, Request, Response, parse_event_body};

/// Sends raw request bytes and returns every byte of the answer.
pub fn call_raw(socket: &Path, request: &[u8]) -> io::Result<Vec<u8>> {
    let stream = UnixStream::connect(socket)?;
    match crate::transport::send_on(stream, request)? {
        Some(s) => crate::transport::read_answer(s),
        None => Ok(Vec::new()),
    }
}

/// Sends one call as the Qubes client library would and parses the answer.
pub fn call(
    socket: &Path,
    src: &str,
    method: &str,
    dest: &str,
    arg: &str,
    payload: &[u8],
) -> io::Result<Response> {
    let raw = call_raw(socket, &Request::encode(method, arg, src, dest, payload))?;
    Response::parse(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads an event stream (`admin.Events`, `admin.vm.Stats`) one event at a time.
pub struct EventStream {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl EventStream {
    /// Subscribes: sends the request and half-closes.
    pub fn open(socket: &Path, src: &str, method: &str, dest: &str) -> io::Result<EventStream> {
        let mut stream = UnixStream::connect(socket)?;
        stream.write_all(&Request::encode(method, "", src, dest, b""))?;
        stream.shutdown(std::net::Shutdown::Write)?;
        Ok(EventStream {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sets a read timeout for [`EventStream::next_event`].
    pub fn set_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(t)
    }

    /// The next event; `Ok(None)` when the daemon closed the stream.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        loop {
            if self.buf.len() >= 2 {
                if &self.buf[..2] != b"1\0" {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not an event message",
                    ));
                }
                if let Ok((ev, used)) = parse_event_body(&self.buf[2..]) {
                    self.buf.drain(..used + 2);
                    return Ok(Some(ev));
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
