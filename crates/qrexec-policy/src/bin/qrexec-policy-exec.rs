//! `qrexec-policy-exec`: evaluates one qrexec request. See `qrexec_policy::exec` for the modes;
//! exit 0 for allow, 1 otherwise.
//!
//! With `--system-info FILE` it runs in test mode: no qubesd, no GUI agent (asks print an ask
//! block, notifications go to stderr) unless `--agent-rpc-dir` or `--qrexec-client` is given.
//! Without it, the system comes from qubesd and an ask prompts the user through the agent of the
//! source's GUI domain (`/etc/qubes-rpc/policy.Ask` in dom0, `qrexec-client` to a GUI qube).

use std::io::Write;
use std::path::PathBuf;

use std::sync::Arc;

use qrexec_policy::agent::QrexecAgent;
use qrexec_policy::exec::{AgentHandle, Options, run};
use qrexec_policy::sysinfo::InfoSource;

fn usage() -> ! {
    eprintln!(
        "usage: qrexec-policy-exec --policy-dir DIR [--policy-dir DIR ...] --legacy-policy-dir DIR \
         [--system-info FILE | --qubesd-socket-dir DIR] [--agent-rpc-dir DIR] [--qrexec-client PATH] \
         [--just-evaluate] [--assume-yes-for-ask] [--requested-source NAME] \
         SOURCE TARGET SERVICE[+ARGUMENT]"
    );
    std::process::exit(2)
}

fn main() {
    let mut o = Options {
        legacy_dir: "/etc/qubes-rpc/policy".into(),
        ..Options::default()
    };
    let mut info_file: Option<PathBuf> = None;
    let mut qubesd_dir: Option<PathBuf> = None;
    let mut agent: Option<QrexecAgent> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--policy-dir" => o.policy_dirs.push(value().into()),
            "--legacy-policy-dir" => o.legacy_dir = value().into(),
            "--system-info" => info_file = Some(value().into()),
            "--qubesd-socket-dir" => qubesd_dir = Some(value().into()),
            "--agent-rpc-dir" => {
                agent.get_or_insert_with(QrexecAgent::default).rpc_dir = value().into()
            }
            "--qrexec-client" => {
                agent.get_or_insert_with(QrexecAgent::default).qrexec_client = value().into()
            }
            "--just-evaluate" => o.just_evaluate = true,
            "--assume-yes-for-ask" => o.assume_yes = true,
            "--requested-source" => o.requested_source = Some(value()),
            _ if a.starts_with("--") => usage(),
            _ => positional.push(a),
        }
    }
    let [source, target, service] = <[String; 3]>::try_from(positional).unwrap_or_else(|_| usage());
    if o.policy_dirs.is_empty() {
        o.policy_dirs = vec!["/run/qubes/policy.d".into(), "/etc/qubes/policy.d".into()];
    }
    let info = match (info_file, qubesd_dir) {
        (Some(file), _) => InfoSource::File(file),
        (None, dir) => {
            // Real mode: the GUI agents are asked unless told otherwise.
            agent.get_or_insert_with(QrexecAgent::default);
            InfoSource::Qubesd(dir.unwrap_or_else(|| "/var/run".into()))
        }
    };
    o.agent = agent.map(|a| AgentHandle(Arc::new(a)));
    o.info = match info.read() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("qrexec-policy-exec: system info: {e}");
            println!("result=deny");
            std::process::exit(1);
        }
    };
    o.source = source;
    o.target = target;
    o.service_and_arg = service;
    let out = run(&o);
    let mut err = std::io::stderr();
    for n in &out.notifications {
        let _ = writeln!(err, "{n}");
    }
    print!("{}", out.stdout);
    let _ = std::io::stdout().flush();
    std::process::exit(out.exit);
}
