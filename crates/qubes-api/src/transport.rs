//! How a client reaches a daemon. Three transports give the same bytes:
//! the local socket (dom0), `qrexec-client-vm` (a GUI or management qube, one process per call),
//! and the embedded core (a socketpair served in-process, implemented in the daemon crate).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::framing::Request;

/// A way to make calls and open event streams.
pub trait Transport: Send + Sync {
    /// Sends one call and returns every byte of the answer.
    fn call_raw(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> io::Result<Vec<u8>>;
    /// Opens a streaming call (`admin.Events`, `admin.vm.Stats`); the reader yields the raw
    /// messages until the daemon closes.
    fn open_stream(&self, method: &str, dest: &str) -> io::Result<Box<dyn Read + Send>>;
    /// A short description for logs and the window subtitle.
    fn describe(&self) -> String;
    /// Whether the daemon runs on this system's real qubes, so that local tools such as
    /// `qvm-run` reach the same qubes (false for an in-process demo core).
    fn real_system(&self) -> bool {
        true
    }
}

/// Writes a request on a connected stream and half-closes it. A daemon that dropped the
/// connection early (oversized request) is an empty answer, not an error.
pub fn send_on(mut stream: UnixStream, request: &[u8]) -> io::Result<Option<UnixStream>> {
    match stream
        .write_all(request)
        .and_then(|_| stream.shutdown(std::net::Shutdown::Write))
    {
        Ok(()) => Ok(Some(stream)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Reads a whole answer; a reset connection is how the daemon says "no answer".
pub fn read_answer(mut stream: UnixStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// The dom0 transport: the daemon's Unix socket, calls made as `dom0`.
#[derive(Debug, Clone)]
pub struct LocalSocket {
    /// Socket path (`/var/run/qubesd.sock`).
    pub path: PathBuf,
}

impl Transport for LocalSocket {
    fn call_raw(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> io::Result<Vec<u8>> {
        let stream = UnixStream::connect(&self.path)?;
        match send_on(stream, &Request::encode(method, arg, "dom0", dest, payload))? {
            Some(s) => read_answer(s),
            None => Ok(Vec::new()),
        }
    }

    fn open_stream(&self, method: &str, dest: &str) -> io::Result<Box<dyn Read + Send>> {
        let stream = UnixStream::connect(&self.path)?;
        match send_on(stream, &Request::encode(method, "", "dom0", dest, b""))? {
            Some(s) => Ok(Box::new(s)),
            None => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "stream refused",
            )),
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The transport inside a qube: `qrexec-client-vm <dest> <method>+<arg>`, payload on standard
/// input, answer on standard output. qrexec adds the true source; policy decides.
#[derive(Debug, Clone)]
pub struct Qrexec {
    /// Program to run (normally `qrexec-client-vm`).
    pub program: PathBuf,
    /// Arguments before the destination (e.g. `--source QUBE` for `qubes-admin-bridge`).
    pub args: Vec<String>,
}

impl Default for Qrexec {
    fn default() -> Self {
        Qrexec {
            program: "qrexec-client-vm".into(),
            args: Vec::new(),
        }
    }
}

impl Qrexec {
    fn spawn(&self, method: &str, dest: &str, arg: &str) -> io::Result<std::process::Child> {
        Command::new(&self.program)
            .args(&self.args)
            .arg(dest)
            .arg(format!("{method}+{arg}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }
}

impl Transport for Qrexec {
    fn call_raw(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> io::Result<Vec<u8>> {
        let mut child = self.spawn(method, dest, arg)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A refused call closes stdin early; the (empty) answer says so.
            let _ = stdin.write_all(payload);
        }
        let out = child.wait_with_output()?;
        Ok(out.stdout)
    }

    fn open_stream(&self, method: &str, dest: &str) -> io::Result<Box<dyn Read + Send>> {
        let mut child = self.spawn(method, dest, "")?;
        drop(child.stdin.take());
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        Ok(Box::new(ChildReader { child, stdout }))
    }

    fn describe(&self) -> String {
        format!("qrexec ({})", self.program.display())
    }
}

/// Reads a child's output and reaps the child when dropped.
struct ChildReader {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
