//! `qubes-policy {[-l]|-g|-r|-d} [include/][NAME]`: the Policy Admin API from the command line.
//!
//! `qubes-policy --explain [--policy-dir DIR ...] [--legacy-policy-dir DIR] [--system-info FILE
//! | --qubesd-socket-dir DIR] [--pending PATH] SOURCE TARGET SERVICE[+ARG]`: what the policy
//! decides for one call and why (the deciding rule, the rules above it that do not match);
//! with `--pending PATH`, as if PATH held the text read on stdin (an unsaved edit).
//!
//! In dom0 (or with `QUBES_POLICY_ADMIN_PROGRAM` set) it runs `qubes-policy-admin` directly;
//! in a qube it calls `qrexec-client-vm dom0 policy.<method>+<name>`. Replace reads the new
//! content on stdin. Errors print the service's message and exit 1.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn usage(msg: &str) -> ! {
    eprintln!("usage: qubes-policy {{[-l]|-g|-r|-d}} [include/][RPCNAME[+ARGUMENT]]");
    eprintln!("qubes-policy: error: {msg}");
    std::process::exit(2)
}

/// Runs one `policy.*` call; Ok(stdout) or Err((stderr, exit code)).
fn call(method: &str, arg: &str, payload: &[u8]) -> Result<Vec<u8>, (String, i32)> {
    let full = if arg.is_empty() {
        method.to_string()
    } else {
        format!("{method}+{arg}")
    };
    let direct = std::env::var("QUBES_POLICY_ADMIN_PROGRAM")
        .ok()
        .or_else(|| {
            std::path::Path::new("/etc/qubes-release")
                .exists()
                .then(|| "qubes-policy-admin".to_string())
        });
    let mut cmd = match &direct {
        Some(program) => {
            let mut c = Command::new(program);
            c.env("QREXEC_SERVICE_FULL_NAME", &full)
                .env("QREXEC_REMOTE_DOMAIN", "dom0");
            c
        }
        None => {
            let mut c = Command::new("qrexec-client-vm");
            c.arg("dom0").arg(&full);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| (format!("Command failed\n{e}"), 1))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(payload);
    }
    let out = child.wait_with_output().map_err(|e| (e.to_string(), 1))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // "<ExceptionClass> <message>": show the message, as the reference client does.
    match stderr.split_once(' ') {
        Some((class, msg)) if class.starts_with("PolicyAdmin") => Err((msg.to_string(), 1)),
        _ => Err((
            format!("Command failed\n{}", stderr.trim_end())
                .trim_end()
                .to_string(),
            1,
        )),
    }
}

/// `--explain`: evaluates in dom0's policy directories (or those given).
fn explain(args: Vec<String>) -> ! {
    use qrexec_policy::explain::{PendingEdit, PolicySource, explain_request, render};
    use qrexec_policy::sysinfo::InfoSource;
    let explain_usage = || -> ! {
        eprintln!(
            "usage: qubes-policy --explain [--policy-dir DIR ...] [--legacy-policy-dir DIR] \
             [--system-info FILE | --qubesd-socket-dir DIR] [--pending PATH] SOURCE TARGET SERVICE[+ARG]"
        );
        std::process::exit(2)
    };
    let mut policy = PolicySource {
        dirs: Vec::new(),
        legacy_dir: "/etc/qubes-rpc/policy".into(),
    };
    let mut info = InfoSource::default();
    let mut pending = None;
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| explain_usage());
        match a.as_str() {
            "--policy-dir" => policy.dirs.push(value().into()),
            "--legacy-policy-dir" => policy.legacy_dir = value().into(),
            "--system-info" => info = InfoSource::File(value().into()),
            "--qubesd-socket-dir" => info = InfoSource::Qubesd(value().into()),
            "--pending" => pending = Some(value()),
            _ if a.starts_with("--") => explain_usage(),
            _ => positional.push(a),
        }
    }
    let [source, target, service] =
        <[String; 3]>::try_from(positional).unwrap_or_else(|_| explain_usage());
    if policy.dirs.is_empty() {
        policy.dirs = vec!["/run/qubes/policy.d".into(), "/etc/qubes/policy.d".into()];
    }
    let pending = pending.map(|path| {
        let mut content = String::new();
        if std::io::stdin().read_to_string(&mut content).is_err() {
            eprintln!("qubes-policy: the pending text is not UTF-8");
            std::process::exit(1);
        }
        PendingEdit {
            path: path.into(),
            content: Some(content),
        }
    });
    let info = info.read().unwrap_or_else(|e| {
        eprintln!("qubes-policy: system info: {e}");
        std::process::exit(1)
    });
    match explain_request(&policy, pending.as_ref(), &info, &source, &target, &service) {
        Ok(e) => {
            print!("{}", render(&e));
            std::process::exit(0)
        }
        Err(e) => {
            println!("Decision: deny (the policy does not load: {e})");
            std::process::exit(0)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--explain") {
        explain(args.into_iter().skip(1).collect());
    }
    let mut method = "list";
    let mut name = String::new();
    for a in args {
        match a.as_str() {
            "-l" | "--list" => method = "list",
            "-g" | "--get" => method = "get",
            "-r" | "--replace" => method = "replace",
            "-d" | "--remove" => method = "remove",
            _ if a.starts_with('-') => usage(&format!("unrecognized arguments: {a}")),
            _ if name.is_empty() => name = a,
            _ => usage(&format!("unrecognized arguments: {a}")),
        }
    }
    let mut include = false;
    if name == "include" || name.starts_with("include/") {
        name = name
            .trim_start_matches("include")
            .trim_start_matches('/')
            .to_string();
        include = true;
    }
    let mut bad: Vec<char> = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_')))
        .collect();
    bad.sort_unstable();
    bad.dedup();
    if !bad.is_empty() {
        usage(&format!(
            "invalid character(s) in RPCNAME: '{}'",
            bad.iter().collect::<String>()
        ));
    }
    if method == "list" && !name.is_empty() {
        usage("--list doesn't work with a file name");
    }
    if method != "list" && name.is_empty() {
        usage("you need to provide a file name");
    }
    let prefix = if include {
        "policy.include."
    } else {
        "policy."
    };
    let result = match method {
        "list" => call(&format!("{prefix}List"), "", b"").map(|out| {
            let text = String::from_utf8_lossy(&out).into_owned();
            format!("{}\n", text.trim_end_matches('\n'))
        }),
        "get" => call(&format!("{prefix}Get"), &name, b"").map(|out| {
            let text = String::from_utf8_lossy(&out).into_owned();
            let content = text.split_once('\n').map(|(_, c)| c).unwrap_or("");
            format!("{}\n", content.trim_end())
        }),
        "replace" => {
            let mut content = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut content);
            let mut payload = b"any\n".to_vec();
            payload.extend_from_slice(&content);
            call(&format!("{prefix}Replace"), &name, &payload).map(|_| String::new())
        }
        _ => call(&format!("{prefix}Remove"), &name, b"any").map(|_| String::new()),
    };
    match result {
        Ok(text) => print!("{text}"),
        Err((msg, code)) => {
            eprintln!("{msg}");
            std::process::exit(code);
        }
    }
}
