//! Request and response framing (admin-api.md §1.2, §1.3).
//!
//! Request: `<method>[+<arg>] SP <src> SP <dest_type> SP <dest> NUL <payload>` then EOF.
//! Responses start with one ASCII digit and a NUL: `0` OK, `1` EVENT, `2` EXCEPTION.

/// Largest request (header and payload) the daemon accepts.
pub const MAX_REQUEST_SIZE: usize = 65536;

/// Why a request could not even be split into its fields. The daemon answers these with no
/// bytes at all, like the reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// More than [`MAX_REQUEST_SIZE`] bytes.
    #[error("request too long")]
    TooLong,
    /// No NUL after the header.
    #[error("malformed request: no NUL after the header")]
    NoNul,
    /// Fewer than four header fields.
    #[error("malformed request: fewer than four header fields")]
    TooFewFields,
    /// A destination type other than `name` and `keyword adminvm` (often an argument with a
    /// space, which shifts the fields).
    #[error(
        "malformed request: the destination type is neither `name` nor `keyword adminvm` (an argument or name with a space?)"
    )]
    BadDestinationType,
}

/// One parsed request. Fields stay raw bytes: they are untrusted until the daemon decodes and
/// validates them, in the reference's order (src, dest, method, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method name, e.g. `admin.vm.List`.
    pub method: Vec<u8>,
    /// Argument after the first `+`; empty when there was none.
    pub arg: Vec<u8>,
    /// Calling qube (`dom0` for dom0 tools), name or `uuid:<uuid>`.
    pub src: Vec<u8>,
    /// Destination qube, name or `uuid:<uuid>` (`keyword adminvm` is already `dom0`).
    pub dest: Vec<u8>,
    /// Everything after the first NUL.
    pub payload: Vec<u8>,
}

impl Request {
    /// Splits a complete request (everything up to the client's EOF).
    pub fn parse(untrusted: &[u8]) -> Result<Request, FramingError> {
        if untrusted.len() > MAX_REQUEST_SIZE {
            return Err(FramingError::TooLong);
        }
        let nul = untrusted
            .iter()
            .position(|&b| b == 0)
            .ok_or(FramingError::NoNul)?;
        let (header, payload) = (&untrusted[..nul], &untrusted[nul + 1..]);
        let mut fields = header.splitn(4, |&b| b == b' ');
        let (Some(method_arg), Some(src), Some(dest_type), Some(dest)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(FramingError::TooFewFields);
        };
        let dest = match dest_type {
            b"name" => dest.to_vec(),
            b"keyword" if dest == b"adminvm" => b"dom0".to_vec(),
            _ => return Err(FramingError::BadDestinationType),
        };
        let (method, arg) = match method_arg.iter().position(|&b| b == b'+') {
            Some(i) => (&method_arg[..i], &method_arg[i + 1..]),
            None => (method_arg, &b""[..]),
        };
        Ok(Request {
            method: method.to_vec(),
            arg: arg.to_vec(),
            src: src.to_vec(),
            dest,
            payload: payload.to_vec(),
        })
    }

    /// Builds request bytes as the Qubes client library sends them (`+` always present).
    pub fn encode(method: &str, arg: &str, src: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(method.len() + arg.len() + src.len() + dest.len() + 16);
        out.extend_from_slice(method.as_bytes());
        out.push(b'+');
        out.extend_from_slice(arg.as_bytes());
        out.push(b' ');
        out.extend_from_slice(src.as_bytes());
        out.extend_from_slice(b" name ");
        out.extend_from_slice(dest.as_bytes());
        out.push(0);
        out.extend_from_slice(payload);
        out
    }
}

/// One event: subject (empty for global events), name, keyword arguments in firing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Qube name, or empty for events of the whole system.
    pub subject: String,
    /// Event name, e.g. `property-set:netvm`.
    pub name: String,
    /// Keyword arguments, already `str()`-ed as the reference does.
    pub kwargs: Vec<(String, String)>,
}

impl Event {
    /// An event with no keyword arguments.
    pub fn new(subject: impl Into<String>, name: impl Into<String>) -> Self {
        Event {
            subject: subject.into(),
            name: name.into(),
            kwargs: Vec::new(),
        }
    }
    /// Adds a keyword argument (builder style).
    pub fn kw(mut self, key: &str, value: impl Into<String>) -> Self {
        self.kwargs.push((key.to_string(), value.into()));
        self
    }
    /// The EVENT message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            8 + self.subject.len()
                + self.name.len()
                + self
                    .kwargs
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 2)
                    .sum::<usize>(),
        );
        out.extend_from_slice(b"1\0");
        out.extend_from_slice(self.subject.as_bytes());
        out.push(0);
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
        for (k, v) in &self.kwargs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out.push(0);
        out
    }
    /// Looks up a keyword argument.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kwargs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// OK message bytes.
pub fn encode_ok(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 2);
    out.extend_from_slice(b"0\0");
    out.extend_from_slice(content);
    out
}

/// EXCEPTION message bytes.
pub fn encode_exception(kind: &str, traceback: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(kind.len() + traceback.len() + message.len() + 5);
    out.extend_from_slice(b"2\0");
    out.extend_from_slice(kind.as_bytes());
    out.push(0);
    out.extend_from_slice(traceback.as_bytes());
    out.push(0);
    out.extend_from_slice(message.as_bytes());
    out.push(0);
    out
}

/// A whole response as a client sees it after the daemon closed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `0\0` + content.
    Ok(Vec<u8>),
    /// `2\0` type `\0` traceback `\0` message `\0`, possibly after events.
    Exception {
        /// Events that came before the exception (streams).
        events: Vec<Event>,
        /// Exception class name as sent (may be unknown to [`ExcKind`](crate::ExcKind)).
        kind: String,
        /// Traceback (empty unless the daemon runs with `--debug`).
        traceback: String,
        /// Formatted message.
        message: String,
    },
    /// A stream of events that ended without OK or EXCEPTION.
    Events(Vec<Event>),
    /// No bytes at all: access denied by policy, or a generic failure in the daemon.
    Empty,
}

/// Why response bytes could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed response: {0}")]
pub struct ResponseError(pub &'static str);

impl Response {
    /// Parses everything the daemon sent on one connection.
    pub fn parse(untrusted: &[u8]) -> Result<Response, ResponseError> {
        if untrusted.is_empty() {
            return Ok(Response::Empty);
        }
        let mut events = Vec::new();
        let mut rest = untrusted;
        loop {
            if rest.len() < 2 || rest[1] != 0 {
                return Err(ResponseError("bad message header"));
            }
            let (head, body) = (rest[0], &rest[2..]);
            match head {
                b'0' if events.is_empty() => return Ok(Response::Ok(body.to_vec())),
                b'1' => {
                    let (event, used) = parse_event_body(body)?;
                    events.push(event);
                    rest = &body[used..];
                    if rest.is_empty() {
                        return Ok(Response::Events(events));
                    }
                }
                b'2' => {
                    let mut parts = body.splitn(4, |&b| b == 0);
                    let kind = parts.next().ok_or(ResponseError("no type"))?;
                    let tb = parts.next().ok_or(ResponseError("no traceback"))?;
                    let msg = parts.next().ok_or(ResponseError("no message"))?;
                    return Ok(Response::Exception {
                        events,
                        kind: String::from_utf8_lossy(kind).into_owned(),
                        traceback: String::from_utf8_lossy(tb).into_owned(),
                        message: String::from_utf8_lossy(msg).into_owned(),
                    });
                }
                _ => return Err(ResponseError("unknown message type")),
            }
        }
    }
}

/// Parses one EVENT body (after `1\0`); returns the event and the bytes it used.
pub fn parse_event_body(untrusted: &[u8]) -> Result<(Event, usize), ResponseError> {
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    loop {
        let end = untrusted[pos..]
            .iter()
            .position(|&b| b == 0)
            .ok_or(ResponseError("unterminated event"))?;
        let field = &untrusted[pos..pos + end];
        pos += end + 1;
        // Subject and name always come first; after them an empty key ends the list.
        if fields.len() >= 2 && fields.len().is_multiple_of(2) && field.is_empty() {
            break;
        }
        fields.push(field);
    }
    if fields.len() < 2 {
        return Err(ResponseError("short event"));
    }
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let kwargs = fields[2..]
        .chunks(2)
        .map(|kv| (s(kv[0]), kv.get(1).map(|v| s(v)).unwrap_or_default()))
        .collect();
    Ok((
        Event {
            subject: s(fields[0]),
            name: s(fields[1]),
            kwargs,
        },
        pos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_basic() {
        let r = Request::parse(b"admin.vm.List+ dom0 name dom0\0").unwrap();
        assert_eq!(r.method, b"admin.vm.List");
        assert_eq!(r.arg, b"");
        assert_eq!(r.src, b"dom0");
        assert_eq!(r.dest, b"dom0");
        assert!(r.payload.is_empty());
    }

    #[test]
    fn parse_plus_and_keyword() {
        let r = Request::parse(b"admin.vm.Shutdown+force+wait mgmt keyword adminvm\0x\0y").unwrap();
        assert_eq!(r.method, b"admin.vm.Shutdown");
        assert_eq!(r.arg, b"force+wait");
        assert_eq!(r.dest, b"dom0");
        assert_eq!(r.payload, b"x\0y");
        let r = Request::parse(b"admin.vm.List dom0 name a b\0").unwrap();
        assert_eq!(r.dest, b"a b");
        assert_eq!(r.arg, b"");
    }

    #[test]
    fn framing_errors() {
        assert_eq!(
            Request::parse(b"admin.vm.List+ dom0 name dom0"),
            Err(FramingError::NoNul)
        );
        assert_eq!(
            Request::parse(b"admin.vm.List+ dom0 name\0"),
            Err(FramingError::TooFewFields)
        );
        assert_eq!(
            Request::parse(b"admin.vm.List+ dom0 keyword dom0\0"),
            Err(FramingError::BadDestinationType)
        );
        assert_eq!(
            Request::parse(b"admin.vm.feature.Set+bad key! dom0 name work\0"),
            Err(FramingError::BadDestinationType)
        );
        let big = vec![b'a'; MAX_REQUEST_SIZE + 1];
        assert_eq!(Request::parse(&big), Err(FramingError::TooLong));
    }

    #[test]
    fn event_bytes() {
        let e = Event::new("work", "domain-tag-add:t1").kw("tag", "t1");
        assert_eq!(e.encode(), b"1\0work\0domain-tag-add:t1\0tag\0t1\0\0");
        assert_eq!(
            Event::new("", "connection-established").encode(),
            b"1\0\0connection-established\0\0"
        );
        let (back, used) = parse_event_body(&e.encode()[2..]).unwrap();
        assert_eq!(back, e);
        assert_eq!(used, e.encode().len() - 2);
    }

    #[test]
    fn response_parse() {
        assert_eq!(
            Response::parse(b"0\0a b").unwrap(),
            Response::Ok(b"a b".to_vec())
        );
        assert_eq!(Response::parse(b"").unwrap(), Response::Empty);
        let mut stream = Event::new("", "connection-established").encode();
        stream.extend(encode_exception("QubesVMNotRunningError", "", "x"));
        match Response::parse(&stream).unwrap() {
            Response::Exception { events, kind, .. } => {
                assert_eq!(events.len(), 1);
                assert_eq!(kind, "QubesVMNotRunningError");
            }
            other => panic!("{other:?}"),
        }
        assert!(Response::parse(b"9\0").is_err());
        assert!(Response::parse(b"1\0abc").is_err());
    }
}
