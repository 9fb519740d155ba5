//! A typed client over any [`Transport`]: calls, qube lists, properties, event streams.
//! Blocking by design: callers run it off their UI thread.

use std::io::{self, Read};
use std::sync::Arc;

use crate::framing::{Event, Response, parse_event_body};
use crate::transport::Transport;

/// Why a call failed, as a client sees it.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The daemon raised an exception.
    #[error("{kind}: {message}")]
    Exception {
        /// Exception class name.
        kind: String,
        /// Formatted message.
        message: String,
    },
    /// No answer at all: denied by policy, or a failure inside the daemon.
    #[error("empty response (access denied or failure in qubesd)")]
    Empty,
    /// The transport failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The answer could not be understood.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// One line of `admin.vm.List`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEntry {
    /// Qube name.
    pub name: String,
    /// Class name.
    pub class: String,
    /// Power state name.
    pub state: String,
    /// UUID (empty if an older daemon did not send it).
    pub uuid: String,
}

/// A property value as `property.Get` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropValue {
    /// Whether the value is the default (not explicitly set).
    pub is_default: bool,
    /// Type tag (`vm`, `int`, `bool`, `label`, `str`).
    pub ty: String,
    /// The value (empty for None).
    pub value: String,
}

impl PropValue {
    /// Parses `default=<bool> type=<t> <value>`.
    pub fn parse(untrusted: &str) -> Result<PropValue, CallError> {
        let bad = || CallError::Malformed(format!("property value {untrusted:?}"));
        let rest = untrusted.strip_prefix("default=").ok_or_else(bad)?;
        let (flag, rest) = rest.split_once(' ').ok_or_else(bad)?;
        let rest = rest.strip_prefix("type=").ok_or_else(bad)?;
        let (ty, value) = rest.split_once(' ').unwrap_or((rest, ""));
        Ok(PropValue {
            is_default: flag == "True",
            ty: ty.to_string(),
            value: value.to_string(),
        })
    }
}

/// Reverses GetAll's escaping (`\\` and `\n`).
fn unescape_get_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A client bound to one transport.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
}

impl Client {
    /// A client over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Client {
        Client { transport }
    }

    /// The transport's description.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Whether local qube tools (`qvm-run`, ...) act on the same qubes as this client.
    pub fn real_system(&self) -> bool {
        self.transport.real_system()
    }

    /// One call; the OK content as text.
    pub fn call(
        &self,
        method: &str,
        dest: &str,
        arg: &str,
        payload: &[u8],
    ) -> Result<String, CallError> {
        let raw = self.transport.call_raw(method, dest, arg, payload)?;
        match Response::parse(&raw).map_err(|e| CallError::Malformed(e.to_string()))? {
            Response::Ok(content) => Ok(String::from_utf8_lossy(&content).into_owned()),
            Response::Exception { kind, message, .. } => {
                Err(CallError::Exception { kind, message })
            }
            Response::Empty => Err(CallError::Empty),
            Response::Events(_) => Err(CallError::Malformed("unexpected events".into())),
        }
    }

    /// `admin.vm.List` of everything this caller may see.
    pub fn vm_list(&self) -> Result<Vec<VmEntry>, CallError> {
        let text = self.call("admin.vm.List", "dom0", "", b"")?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let name = parts.next()?.to_string();
                let mut e = VmEntry {
                    name,
                    class: String::new(),
                    state: String::new(),
                    uuid: String::new(),
                };
                for kv in parts {
                    match kv.split_once('=') {
                        Some(("class", v)) => e.class = v.into(),
                        Some(("state", v)) => e.state = v.into(),
                        Some(("uuid", v)) => e.uuid = v.into(),
                        _ => {}
                    }
                }
                Some(e)
            })
            .collect())
    }

    /// All properties of a qube. Falls back to List + Get per property where policy denies
    /// GetAll (the default policy does, for calls from qubes).
    pub fn property_get_all(&self, vm: &str) -> Result<Vec<(String, PropValue)>, CallError> {
        self.get_all("admin.vm.property", vm)
    }

    /// Every global property (`admin.property.GetAll`, or List + Get on an older daemon).
    pub fn global_property_get_all(&self) -> Result<Vec<(String, PropValue)>, CallError> {
        self.get_all("admin.property", "dom0")
    }

    fn get_all(&self, prefix: &str, dest: &str) -> Result<Vec<(String, PropValue)>, CallError> {
        match self.call(&format!("{prefix}.GetAll"), dest, "", b"") {
            Ok(text) => text
                .lines()
                .filter(|l| !l.is_empty())
                .map(|line| {
                    let (name, rest) = line
                        .split_once(' ')
                        .ok_or_else(|| CallError::Malformed(line.to_string()))?;
                    Ok((name.to_string(), PropValue::parse(&unescape_get_all(rest))?))
                })
                .collect(),
            Err(CallError::Empty) | Err(CallError::Exception { .. }) => {
                let names = self.call(&format!("{prefix}.List"), dest, "", b"")?;
                names
                    .lines()
                    .filter(|n| !n.is_empty())
                    .map(|n| {
                        let v = self.call(&format!("{prefix}.Get"), dest, n, b"")?;
                        Ok((n.to_string(), PropValue::parse(&v)?))
                    })
                    .collect()
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an event stream (`admin.Events`) for `dest` (`dom0` = everything).
    pub fn events(&self, dest: &str) -> Result<EventReader, CallError> {
        Ok(EventReader::new(
            self.transport.open_stream("admin.Events", dest)?,
        ))
    }

    /// Opens a statistics stream (`admin.vm.Stats`).
    pub fn stats(&self, dest: &str) -> Result<EventReader, CallError> {
        Ok(EventReader::new(
            self.transport.open_stream("admin.vm.Stats", dest)?,
        ))
    }
}

/// Largest event message accepted from a daemon (a sane bound on untrusted input).
const MAX_EVENT: usize = 1 << 20;

/// Reads EVENT messages one by one from a stream.
pub struct EventReader {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
}

impl EventReader {
    /// Wraps a raw stream.
    pub fn new(reader: Box<dyn Read + Send>) -> EventReader {
        EventReader {
            reader,
            buf: Vec::new(),
        }
    }

    /// The next event; `Ok(None)` at the end of the stream. An EXCEPTION message ends the
    /// stream with an error.
    pub fn next_event(&mut self) -> Result<Option<Event>, CallError> {
        loop {
            if self.buf.len() >= 2 {
                match &self.buf[..2] {
                    b"1\0" => {
                        if let Ok((ev, used)) = parse_event_body(&self.buf[2..]) {
                            self.buf.drain(..used + 2);
                            return Ok(Some(ev));
                        }
                    }
                    b"2\0" => {
                        if let Ok(Response::Exception { kind, message, .. }) =
                            Response::parse(&self.buf)
                        {
                            return Err(CallError::Exception { kind, message });
                        }
                    }
                    _ => return Err(CallError::Malformed("not an event".into())),
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(CallError::Malformed("event too large".into()));
            }
            let mut chunk = [0u8; 16384];
            let n = self.reader.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prop_values() {
        let v = PropValue::parse("default=True type=vm ").unwrap();
        assert!(v.is_default);
        assert_eq!((v.ty.as_str(), v.value.as_str()), ("vm", ""));
        let v = PropValue::parse("default=False type=str a b").unwrap();
        assert_eq!(v.value, "a b");
        assert!(PropValue::parse("nonsense").is_err());
        assert_eq!(unescape_get_all("a\\\\b\\nc"), "a\\b\nc");
    }

    #[test]
    fn events_then_exception() {
        let mut bytes = Event::new("", "connection-established").encode();
        bytes.extend(Event::new("work", "x").kw("k", "v").encode());
        bytes.extend(crate::framing::encode_exception(
            "QubesVMNotRunningError",
            "",
            "m",
        ));
        let mut r = EventReader::new(Box::new(std::io::Cursor::new(bytes)));
        assert_eq!(
            r.next_event().unwrap().unwrap().name,
            "connection-established"
        );
        assert_eq!(r.next_event().unwrap().unwrap().get("k"), Some("v"));
        assert!(matches!(r.next_event(), Err(CallError::Exception { .. })));
    }
}
