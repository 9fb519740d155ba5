//! `qrexec-policy-agent`: prompts for qrexec calls that the policy says to ask about, and
//! notifications of allowed and denied calls (see [`qubes_qube_manager::policy_agent`]).
//!
//! `qrexec-policy-agent [--socket PATH] [--timeout SECONDS] [--focus-delay MILLISECONDS]`
//! listens on PATH (default `/var/run/qubes/policy-agent.sock`, which
//! `/etc/qubes-rpc/policy.Ask` and `policy.Notify` point at).
//! `qrexec-policy-agent --service [NAME]` serves one call as a qrexec service program:
//! the request on stdin, the answer on stdout; NAME defaults to `QREXEC_SERVICE_FULL_NAME`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use qubes_qube_manager::policy_agent::{self, Options, prompt};
use qubes_qube_manager::{cli, i18n, renderer};
use relm4::gtk::gio::prelude::ApplicationExt;

fn usage() -> ! {
    eprintln!(
        "usage: qrexec-policy-agent [--socket PATH] [--timeout SECONDS] [--focus-delay MILLISECONDS] [--service [NAME]]"
    );
    std::process::exit(2)
}

fn main() {
    renderer::prefer_software_rendering();
    cli::init_logging();
    i18n::init();
    let mut socket = PathBuf::from("/var/run/qubes/policy-agent.sock");
    let mut timing = prompt::Timing::default();
    let mut service: Option<String> = None;
    let mut args = std::env::args().skip(1).peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => socket = args.next().unwrap_or_else(|| usage()).into(),
            "--timeout" => {
                let s: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                timing.timeout = Duration::from_secs(s);
            }
            "--focus-delay" => {
                let ms: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                timing.focus_delay = Duration::from_millis(ms);
            }
            "--service" => {
                let name = match args.peek() {
                    Some(n) if !n.starts_with("--") => args.next(),
                    _ => std::env::var("QREXEC_SERVICE_FULL_NAME").ok(),
                };
                service = Some(name.unwrap_or_else(|| usage()));
            }
            _ => usage(),
        }
    }
    if let Err(e) = relm4::gtk::init() {
        eprintln!(
            "{}: {e} ({})",
            i18n::tr("Cannot start the graphical interface"),
            i18n::tr("is DISPLAY or WAYLAND_DISPLAY set?")
        );
        std::process::exit(1);
    }
    let options = Options { prompt: timing };
    let (to_gui, requests) = async_channel::unbounded();
    match service {
        Some(name) => {
            // A qrexec service program: one request on stdin, the answer on stdout.
            let received = Instant::now();
            let mut body = Vec::new();
            let _ = std::io::stdin()
                .take(qrexec_policy::agent::MAX_REQUEST)
                .read_to_end(&mut body);
            let body = String::from_utf8(body).unwrap_or_default();
            let name = name.split('+').next().unwrap_or_default().to_string();
            let (request, answer) = match policy_agent::decode(&name, &body, received) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("qrexec-policy-agent: {e}");
                    std::process::exit(1);
                }
            };
            let _ = to_gui.send_blocking(request);
            policy_agent::run(options, requests, true);
            if let Some(rx) = answer {
                let a = rx.try_recv().unwrap_or(qrexec_policy::agent::Answer::Deny);
                print!("{}", a.to_wire());
                let _ = std::io::stdout().flush();
            }
        }
        None => {
            if let Err(e) = policy_agent::listen(socket.clone(), to_gui) {
                eprintln!("qrexec-policy-agent: {}: {e}", socket.display());
                std::process::exit(1);
            }
            cli::on_termination(|| {
                relm4::gtk::glib::MainContext::default().invoke(|| {
                    if let Some(app) = relm4::gtk::gio::Application::default() {
                        app.quit();
                    }
                });
            });
            policy_agent::run(options, requests, false);
        }
    }
}
