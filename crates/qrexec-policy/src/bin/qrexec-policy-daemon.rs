//! `qrexec-policy-daemon`: answers policy requests on a Unix socket (one request per
//! connection). System info comes from qubesd's internal socket, or from a file.
//!
//! `qrexec-policy-daemon [--socket PATH] [--policy-dir DIR ...] [--legacy-policy-dir DIR]
//!  [--qubesd-socket-dir DIR | --system-info FILE] [--agent-rpc-dir DIR] [--qrexec-client PATH]`
//!
//! An ask is put to the user through the agent of the source's GUI domain (dom0's on
//! `<agent rpc dir>/policy.Ask`, default `/etc/qubes-rpc`; a GUI qube's through
//! `qrexec-client`), and denials and `notify=yes` allows are sent there as `policy.Notify`.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use qrexec_policy::daemon::{MAX_REQUEST, answer, parse_request};
use std::sync::Arc;

use qrexec_policy::agent::QrexecAgent;
use qrexec_policy::exec::{AgentHandle, Options};
use qrexec_policy::sysinfo::InfoSource;

fn serve(mut conn: UnixStream, base: &Options, info: &InfoSource) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // Read until an empty line or EOF, at most MAX_REQUEST bytes.
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_REQUEST || buf.windows(2).any(|w| w == b"\n\n") {
                    break;
                }
            }
            Err(_) => return,
        }
    }
    let Some(mut o) = parse_request(&buf, base) else {
        return;
    };
    o.info = match info.read() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("qrexec-policy-daemon: system info: {e}");
            let _ = conn.write_all(b"result=deny\n");
            return;
        }
    };
    let _ = conn.write_all(answer(&o).as_bytes());
}

fn main() {
    let mut socket = PathBuf::from("/var/run/qubes/policy.sock");
    let mut base = Options {
        legacy_dir: "/etc/qubes-rpc/policy".into(),
        ..Options::default()
    };
    let mut info = InfoSource::Qubesd("/var/run".into());
    let mut agent = QrexecAgent::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || {
            args.next().unwrap_or_else(|| {
                eprintln!("qrexec-policy-daemon: {a} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--socket" => socket = v().into(),
            "--policy-dir" => base.policy_dirs.push(v().into()),
            "--legacy-policy-dir" => base.legacy_dir = v().into(),
            "--qubesd-socket-dir" => info = InfoSource::Qubesd(v().into()),
            "--system-info" => info = InfoSource::File(v().into()),
            "--agent-rpc-dir" => agent.rpc_dir = v().into(),
            "--qrexec-client" => agent.qrexec_client = v().into(),
            _ => {
                eprintln!("qrexec-policy-daemon: unknown option {a}");
                std::process::exit(2)
            }
        }
    }
    base.agent = Some(AgentHandle(Arc::new(agent)));
    if base.policy_dirs.is_empty() {
        base.policy_dirs = vec!["/run/qubes/policy.d".into(), "/etc/qubes/policy.d".into()];
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap_or_else(|e| {
        eprintln!("qrexec-policy-daemon: {}: {e}", socket.display());
        std::process::exit(1)
    });
    for conn in listener.incoming().flatten() {
        let (base, info) = (base.clone(), info.clone());
        std::thread::spawn(move || serve(conn, &base, &info));
    }
}
