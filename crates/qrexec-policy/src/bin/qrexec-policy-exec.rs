//! `qrexec-policy-exec` (test mode): evaluates one qrexec request from policy directories and a
//! system-info file. See `qrexec_policy::exec` for the modes; exit 0 for allow, 1 otherwise.

use std::io::Write;
use std::path::PathBuf;

use qrexec_policy::SystemInfo;
use qrexec_policy::exec::{Options, run};

fn usage() -> ! {
    eprintln!(
        "usage: qrexec-policy-exec --policy-dir DIR [--policy-dir DIR ...] --legacy-policy-dir DIR \
         --system-info FILE [--just-evaluate] [--assume-yes-for-ask] [--requested-source NAME] \
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
    let mut positional: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--policy-dir" => o.policy_dirs.push(value().into()),
            "--legacy-policy-dir" => o.legacy_dir = value().into(),
            "--system-info" => info_file = Some(value().into()),
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
    let Some(info_path) = info_file else { usage() };
    o.info = match std::fs::read_to_string(&info_path)
        .map_err(|e| e.to_string())
        .and_then(|t| SystemInfo::from_json(&t))
    {
        Ok(i) => i,
        Err(e) => {
            eprintln!("qrexec-policy-exec: {}: {e}", info_path.display());
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
