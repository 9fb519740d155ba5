//! Starts the real `qubesd` binary in a temporary directory and talks raw bytes to it.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Says that a test skipped its work and why, on the terminal even though cargo captures
/// test output (`std::io::stderr()` directly, not `eprintln!`).
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// A daemon under test.
pub struct TestDaemon {
    /// Temporary directory holding state and sockets.
    pub dir: tempfile::TempDir,
    /// The process.
    pub child: Option<Child>,
}

impl TestDaemon {
    /// A fresh state directory with one installed kernel, daemon started.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|_| Vec::new())
    }

    /// As [`TestDaemon::start`], with more arguments made from the test's directory.
    pub fn start_with(extra: impl Fn(&Path) -> Vec<std::ffi::OsString>) -> TestDaemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let k = dir.path().join("vm-kernels/6.6.1");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("vmlinuz"), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("policy.d")).unwrap();
        let extra = extra(dir.path());
        let mut d = TestDaemon { dir, child: None };
        d.spawn_with_args("test:///default", &extra)
            .expect("daemon starts");
        d
    }

    /// Starts the daemon process on the existing directory.
    pub fn spawn(&mut self) -> Result<(), String> {
        self.spawn_with_uri("test:///default")
    }

    /// Starts the daemon with another libvirt URI (a `test:///<file>` node, say).
    pub fn spawn_with_uri(&mut self, uri: &str) -> Result<(), String> {
        self.spawn_with_args(uri, &[])
    }

    /// Starts the daemon with another libvirt URI and more arguments.
    pub fn spawn_with_args(
        &mut self,
        uri: &str,
        extra: &[std::ffi::OsString],
    ) -> Result<(), String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qubesd"))
            .args(extra)
            .arg("--state-dir")
            .arg(self.dir.path())
            .arg("--socket-dir")
            .arg(self.dir.path())
            .arg("--libvirt-uri")
            .arg(uri)
            .arg("--policy-dir")
            .arg(self.dir.path().join("policy.d"))
            .arg("--backup-profile-dir")
            .arg(self.dir.path().join("backup-profiles"))
            // Nothing outside the test's directory: QubesDB sockets, runtime files and the
            // qrexec client below (tests put a program of their own there).
            .arg("--qubesdb-dir")
            .arg(self.dir.path().join("qubesdb"))
            .arg("--runtime-dir")
            .arg(self.dir.path().join("run"))
            .arg("--qrexec-client")
            .arg(self.dir.path().join("qrexec-client"))
            .arg("--log-level")
            .arg("error")
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if UnixStream::connect(self.socket()).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("exited with {status}: {err}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        Err("daemon did not start".into())
    }

    /// The admin socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("qubesd.sock")
    }

    /// Writes a policy file into the daemon's policy directory.
    pub fn write_policy(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("policy.d").join(name), text).unwrap();
    }

    /// Path of qubes.xml.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("qubes.xml")
    }

    /// What the disk holds of the store: `qubes.xml` with the journal's records applied
    /// (the daemon writes `qubes.xml` itself when it goes idle).
    pub fn saved(&self) -> String {
        let host = qubesd::model::HostInfo::detect(&self.dir.path().to_string_lossy(), false);
        qubesd::store::durable_text(&self.store(), host).unwrap()
    }

    /// Sends raw bytes to a socket and returns the raw answer.
    pub fn raw_on(&self, socket: &Path, req: &[u8]) -> Vec<u8> {
        qubes_api::client::call_raw(socket, req).expect("call")
    }

    /// Sends raw bytes to the admin socket.
    pub fn raw(&self, req: &[u8]) -> Vec<u8> {
        self.raw_on(&self.socket(), req)
    }

    /// A call from dom0 as the client library makes it.
    pub fn call(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> Vec<u8> {
        self.call_from("dom0", method, dest, arg, payload)
    }

    /// A call from another source.
    pub fn call_from(
        &self,
        src: &str,
        method: &str,
        dest: &str,
        arg: &str,
        payload: &[u8],
    ) -> Vec<u8> {
        self.raw(&qubes_api::Request::encode(method, arg, src, dest, payload))
    }

    /// A stream call (`admin.Events`, `admin.vm.Stats`) from `src` to `dest`, sent and
    /// half-closed; its answer is read from the returned socket.
    pub fn stream(&self, method: &str, src: &str, dest: &str) -> UnixStream {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        s.write_all(&qubes_api::Request::encode(method, "", src, dest, b""))
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s
    }

    /// Asserts an OK answer and returns its text.
    pub fn ok(&self, method: &str, dest: &str, arg: &str, payload: &[u8]) -> String {
        let r = self.call(method, dest, arg, payload);
        assert!(
            r.starts_with(b"0\0"),
            "{method}+{arg} on {dest}: {:?}",
            String::from_utf8_lossy(&r)
        );
        String::from_utf8(r[2..].to_vec()).unwrap()
    }

    /// Kills the daemon with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(c.id().cast_signed(), libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// A template `fedora` and an AppVM `work` based on it.
    pub fn with_basic_qubes(&self) {
        self.ok(
            "admin.vm.Create.TemplateVM",
            "dom0",
            "",
            b"name=fedora label=black",
        );
        self.ok(
            "admin.vm.Create.AppVM",
            "dom0",
            "fedora",
            b"name=work label=red",
        );
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An `admin.Events` subscription reading raw messages.
pub struct Events {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Events {
    /// Subscribes (from dom0 to `dest`) and reads `connection-established`.
    pub fn open(d: &TestDaemon, dest: &str) -> Events {
        let stream = d.stream("admin.Events", "dom0", dest);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut e = Events {
            stream,
            buf: Vec::new(),
        };
        assert_eq!(e.next(), b"1\0\0connection-established\0\0".to_vec());
        e
    }

    /// The next whole EVENT message, as bytes.
    pub fn next(&mut self) -> Vec<u8> {
        loop {
            if self.buf.len() > 2
                && let Ok((_, used)) = qubes_api::framing::parse_event_body(&self.buf[2..])
            {
                return self.buf.drain(..used + 2).collect();
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("event within 5 s");
            assert!(n > 0, "stream closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Every event the daemon sends before a marker event it is asked for now (a firewall
    /// reload of `marker_vm`, which changes nothing): all events of the calls before, and
    /// none of later ones.
    pub fn drain(&mut self, d: &TestDaemon, marker_vm: &str) -> Vec<String> {
        d.ok("admin.vm.firewall.Reload", marker_vm, "", b"");
        let marker = format!("1\0{marker_vm}\0firewall-changed\0\0").into_bytes();
        let mut out = Vec::new();
        loop {
            let e = self.next();
            if e == marker {
                return out;
            }
            out.push(String::from_utf8_lossy(&e).replace('\0', "|"));
        }
    }

    /// Next event as `subject event k=v ...` text.
    pub fn next_text(&mut self) -> String {
        let raw = self.next();
        let (e, _) = qubes_api::framing::parse_event_body(&raw[2..]).unwrap();
        let mut s = format!("{} {}", e.subject, e.name);
        for (k, v) in e.kwargs {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}
