//! A client of a qube's QubesDB: the dom0 side of `qubesdb-daemon`, which holds what the qube
//! wrote about itself (`/features-request/...`, `/qubes-tools/...`) and what dom0 tells it.
//!
//! The protocol (QubesOS/qubes-core-qubesdb, `include/qubesdb.h`): over a stream socket
//! `<dir>/qubesdb.<qube>.sock` (or the read-only `qubesdb.<qube>.ro.sock`), every message is a
//! 72-byte header — a type byte, a NUL-terminated path in 64 bytes, 3 bytes of padding, the
//! data length as a native-endian `u32` — followed by that many data bytes. A command gets
//! one response (`READ`, `OK` or an error); `LIST` gets one `LIST` response per entry and an
//! empty-path one at the end. Watch notifications may come in between and are skipped.
//!
//! Everything in a QubesDB came from the qube: lengths and paths of responses are checked,
//! data is bounded, and every read and write has a deadline.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest path, terminating NUL included.
pub const MAX_PATH: usize = 64;
/// Longest value.
pub const MAX_DATA: usize = 3072;
/// Most entries a `LIST` may return before the client gives up.
pub const MAX_LIST: usize = 4096;
/// How long one read or write may take.
const DEADLINE: Duration = Duration::from_secs(10);
const HDR_LEN: usize = 72;

/// Message types (`enum qdb_msg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Msg {
    CmdRead = 0,
    CmdWrite = 1,
    CmdList = 3,
    CmdRm = 4,
    RespOk = 7,
    RespErrorNoent = 8,
    RespError = 9,
    RespRead = 10,
    RespList = 12,
    RespWatch = 13,
}

/// Why a QubesDB call failed.
#[derive(Debug, thiserror::Error)]
pub enum QdbError {
    /// The socket could not be reached or broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The daemon answered something the protocol does not allow.
    #[error("QubesDB protocol error: {0}")]
    Protocol(String),
    /// The daemon refused the command.
    #[error("QubesDB refused {0}")]
    Refused(String),
    /// The path is not a QubesDB path.
    #[error("invalid QubesDB path {0:?}")]
    Path(String),
}

/// A connection to one qube's QubesDB.
#[derive(Debug)]
pub struct QubesDb {
    stream: UnixStream,
}

/// The read-write socket of `vm`'s QubesDB below `dir`.
pub fn socket_path(dir: &Path, vm: &str) -> PathBuf {
    dir.join(format!("qubesdb.{vm}.sock"))
}

impl QubesDb {
    /// Connects to `vm`'s QubesDB below `dir`: its read-write socket, else its read-only one.
    pub fn connect(dir: &Path, vm: &str) -> Result<QubesDb, QdbError> {
        let stream = UnixStream::connect(socket_path(dir, vm))
            .or_else(|_| UnixStream::connect(dir.join(format!("qubesdb.{vm}.ro.sock"))))?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_write_timeout(Some(DEADLINE))?;
        Ok(QubesDb { stream })
    }

    /// The value at `path`, `None` if there is none.
    pub fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, QdbError> {
        self.send(Msg::CmdRead, path, &[])?;
        let (ty, _, len) = self.response()?;
        match ty {
            Msg::RespErrorNoent => {
                self.skip(len)?;
                Ok(None)
            }
            Msg::RespRead => Ok(Some(self.data(len)?)),
            Msg::RespError => Err(QdbError::Refused(format!("read of {path}"))),
            other => Err(QdbError::Protocol(format!("{other:?} answering a read"))),
        }
    }

    /// The paths of the entries below `prefix` (a prefix of the path, `/` or not), sorted as
    /// QubesDB keeps them.
    pub fn list(&mut self, prefix: &str) -> Result<Vec<String>, QdbError> {
        self.send(Msg::CmdList, prefix, &[])?;
        let mut out = Vec::new();
        loop {
            let (ty, path, len) = self.response()?;
            match ty {
                Msg::RespList if len == 0 => {
                    if path.is_empty() {
                        return Ok(out);
                    }
                    if out.len() >= MAX_LIST {
                        return Err(QdbError::Protocol(format!(
                            "more than {MAX_LIST} entries below {prefix}"
                        )));
                    }
                    out.push(path);
                }
                Msg::RespError => return Err(QdbError::Refused(format!("list of {prefix}"))),
                other => {
                    return Err(QdbError::Protocol(format!(
                        "{other:?} with {len} bytes answering a list"
                    )));
                }
            }
        }
    }

    /// Writes `value` at `path`.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), QdbError> {
        if value.len() > MAX_DATA || value.contains(&0) {
            return Err(QdbError::Protocol(
                "value too long or with a NUL byte".into(),
            ));
        }
        self.send(Msg::CmdWrite, path, value)?;
        self.expect_ok(&format!("write of {path}"))
    }

    /// Removes the entry at `path` (every entry below it if it ends with `/`).
    pub fn rm(&mut self, path: &str) -> Result<(), QdbError> {
        self.send(Msg::CmdRm, path, &[])?;
        match self.expect_ok(&format!("removal of {path}")) {
            Err(QdbError::Refused(_)) => Ok(()),
            other => other,
        }
    }

    fn expect_ok(&mut self, what: &str) -> Result<(), QdbError> {
        let (ty, _, len) = self.response()?;
        self.skip(len)?;
        match ty {
            Msg::RespOk => Ok(()),
            Msg::RespError | Msg::RespErrorNoent => Err(QdbError::Refused(what.to_string())),
            other => Err(QdbError::Protocol(format!("{other:?} answering {what}"))),
        }
    }

    fn send(&mut self, ty: Msg, path: &str, data: &[u8]) -> Result<(), QdbError> {
        if !path.starts_with('/') || path.len() >= MAX_PATH || path.contains('\0') {
            return Err(QdbError::Path(path.to_string()));
        }
        let mut msg = Vec::with_capacity(HDR_LEN + data.len());
        msg.push(ty as u8);
        msg.extend_from_slice(path.as_bytes());
        msg.resize(1 + MAX_PATH, 0);
        msg.resize(HDR_LEN - 4, 0);
        let len = u32::try_from(data.len()).map_err(|_| QdbError::Path(path.to_string()))?;
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(data);
        self.stream.write_all(&msg)?;
        Ok(())
    }

    /// The next response header that is not a watch notification: type, path, data length.
    fn response(&mut self) -> Result<(Msg, String, usize), QdbError> {
        loop {
            let mut hdr = [0u8; HDR_LEN];
            self.stream.read_exact(&mut hdr)?;
            let ty = match hdr[0] {
                7 => Msg::RespOk,
                8 => Msg::RespErrorNoent,
                9 => Msg::RespError,
                10 => Msg::RespRead,
                12 => Msg::RespList,
                13 => Msg::RespWatch,
                other => return Err(QdbError::Protocol(format!("message type {other}"))),
            };
            let raw_path = &hdr[1..=MAX_PATH];
            let end = raw_path
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| QdbError::Protocol("path without its NUL".into()))?;
            let path = std::str::from_utf8(&raw_path[..end])
                .map_err(|_| QdbError::Protocol("path is not text".into()))?
                .to_string();
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(&hdr[HDR_LEN - 4..]);
            let len = u32::from_ne_bytes(len_bytes) as usize;
            if len > MAX_DATA {
                return Err(QdbError::Protocol(format!("{len} bytes of data")));
            }
            if ty == Msg::RespWatch {
                self.skip(len)?;
                continue;
            }
            return Ok((ty, path, len));
        }
    }

    fn data(&mut self, len: usize) -> Result<Vec<u8>, QdbError> {
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    fn skip(&mut self, len: usize) -> Result<(), QdbError> {
        self.data(len).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_the_c_struct() {
        // type, path[64], 3 bytes padding, uint32 data_len: sizeof(struct qdb_hdr) == 72.
        let dir = tempfile::tempdir().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut db = QubesDb { stream: a };
        db.send(Msg::CmdWrite, "/x", b"abc").unwrap();
        let mut got = [0u8; HDR_LEN + 3];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got[0], 1);
        assert_eq!(&got[1..4], b"/x\0");
        assert_eq!(&got[68..72], &3u32.to_ne_bytes());
        assert_eq!(&got[72..], b"abc");
        assert!(matches!(
            db.send(Msg::CmdRead, "relative", &[]),
            Err(QdbError::Path(_))
        ));
        assert!(matches!(
            QubesDb::connect(dir.path(), "nosuch"),
            Err(QdbError::Io(_))
        ));
    }
}
