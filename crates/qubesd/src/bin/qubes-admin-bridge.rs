//! `qubes-admin-bridge`: what `qrexec-client-vm` plus qrexec-daemon do for an Admin API call
//! from a qube, for development and tests without Qubes.
//!
//! `qubes-admin-bridge --source QUBE [--socket-dir DIR] [--policy-dir DIR ...] DEST SERVICE[+ARG]`
//! reads the payload on stdin, evaluates the qrexec policy for (SERVICE+ARG, QUBE, DEST) with
//! the system info from qubesd's internal socket, and if the call is allowed to dom0 forwards
//! it to the admin socket with QUBE as the true source and DEST as the requested target; the
//! answer goes to stdout. A refused call prints nothing and exits 126, as qrexec-client-vm does.

use std::io::{Read, Write};
use std::path::PathBuf;

use qrexec_policy::{Request, Resolution, SystemInfo, evaluate, load_policy_dirs};

fn usage() -> ! {
    eprintln!(
        "usage: qubes-admin-bridge --source QUBE [--socket-dir DIR] [--policy-dir DIR ...] DEST SERVICE[+ARG]"
    );
    std::process::exit(2)
}

fn refused(why: &str) -> ! {
    eprintln!("Request refused: {why}");
    std::process::exit(126)
}

fn main() {
    let mut source = None;
    let mut socket_dir =
        PathBuf::from(std::env::var("QUBESD_SOCKET_DIR").unwrap_or_else(|_| "/var/run".into()));
    let mut policy_dirs: Vec<PathBuf> = Vec::new();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--source" => source = Some(value()),
            "--socket-dir" => socket_dir = value().into(),
            "--policy-dir" => policy_dirs.push(value().into()),
            _ if a.starts_with("--") => usage(),
            _ => positional.push(a),
        }
    }
    let Some(source) = source else { usage() };
    let [dest, service_and_arg] = <[String; 2]>::try_from(positional).unwrap_or_else(|_| usage());
    if policy_dirs.is_empty() {
        policy_dirs = qubesd::policy::default_dirs();
    }
    let mut payload = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut payload);

    // System info from qubesd itself, as the real policy daemon gets it.
    let internal = socket_dir.join("qubesd.internal.sock");
    let raw = qubes_api::client::call_raw(
        &internal,
        &qubes_api::Request::encode("internal.GetSystemInfo", "", "dom0", "dom0", b""),
    )
    .unwrap_or_else(|e| refused(&format!("qubesd: {e}")));
    let json = raw
        .strip_prefix(b"0\0")
        .unwrap_or_else(|| refused("no system info from qubesd"));
    let info =
        SystemInfo::from_json(&String::from_utf8_lossy(json)).unwrap_or_else(|e| refused(&e));
    let rules = load_policy_dirs(&qrexec_policy::parser::FileSystem::default(), &policy_dirs)
        .unwrap_or_else(|e| refused(&format!("policy: {e}")));

    // qrexec always passes an argument; the requested target is what the caller named.
    let service_and_arg = if service_and_arg.contains('+') {
        service_and_arg
    } else {
        format!("{service_and_arg}+")
    };
    let req = Request::new(&service_and_arg, &source, &dest, &info)
        .unwrap_or_else(|d| refused(&d.reason));
    match evaluate(&rules, &req) {
        Resolution::Allow { target, .. }
            if target == "dom0" || target == qrexec_policy::token::DOM0_UUID => {}
        Resolution::Allow { target, .. } => refused(&format!(
            "target {target} is not dom0: only Admin API calls are bridged"
        )),
        Resolution::Ask { .. } => refused("ask is not supported without a GUI agent"),
        Resolution::Deny(d) => refused(&d.reason),
    }
    // What qrexec-daemon writes to the service socket: the descriptor, then the caller's input.
    let (service, arg) = service_and_arg
        .split_once('+')
        .unwrap_or((&service_and_arg, ""));
    let (dest_type, dest_name) = match dest.as_str() {
        "@adminvm" => ("keyword", "adminvm"),
        "" | "@default" => ("keyword", "adminvm"),
        d => ("name", d),
    };
    let mut request = format!("{service}+{arg} {source} {dest_type} {dest_name}").into_bytes();
    request.push(0);
    request.extend_from_slice(&payload);
    let answer = qubes_api::client::call_raw(&socket_dir.join("qubesd.sock"), &request)
        .unwrap_or_else(|e| refused(&format!("qubesd: {e}")));
    let mut out = std::io::stdout();
    let _ = out.write_all(&answer);
    let _ = out.flush();
}
