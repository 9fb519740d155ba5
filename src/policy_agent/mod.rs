//! `qrexec-policy-agent`: the GUI domain's side of qrexec policy. `policy.Ask` shows a prompt
//! ([`prompt`]) and answers `allow:<target>` or `deny`; `policy.Notify` becomes a desktop
//! notification through the tray's notifier. Requests and answers are the reference's
//! (`qrexec_policy::agent`).
//!
//! In dom0 the agent listens on a Unix socket (`/etc/qubes-rpc/policy.Ask` and
//! `policy.Notify` point at it; the header names the service). In a GUI qube it also runs as a
//! qrexec service program: the request on stdin, the answer on stdout.
//!
//! GTK lives on the main thread; connections are read on their own threads and handed to it
//! through a channel, so a slow client never holds up a prompt.

pub mod prompt;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use qrexec_policy::agent::{Answer, AskParams, MAX_REQUEST, NotifyParams, parse_socket_request};
use relm4::adw;
use relm4::adw::prelude::*;
use relm4::gtk::glib;

use crate::i18n::tr;
use crate::tray::notify::{Notification, Notifier, Origin};

/// How notifications from the agent present themselves.
pub const ORIGIN: Origin = Origin {
    app_name: crate::i18n::noop_tr("Qubes policy"),
    desktop_entry: "org.qubes_os.PolicyAgent",
    icon: "dialog-password",
};

/// What the agent was started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The prompt's timing.
    pub prompt: prompt::Timing,
}

/// One request, handed to the GTK thread.
pub enum Request {
    /// Ask the user; the answer goes back on the sender.
    Ask(AskParams, mpsc::Sender<Answer>, Instant),
    /// Show a notification.
    Notify(NotifyParams),
}

/// Reads one request from a connection: `(service, body)`; `None` for a malformed one.
fn read_request(conn: &mut UnixStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    conn.take(MAX_REQUEST).read_to_end(&mut buf).ok()?;
    let (service, _source, body) = parse_socket_request(&buf)
        .map_err(|e| tracing::warn!("malformed policy agent request: {e}"))
        .ok()?;
    Some((service, body))
}

/// Turns a request into a [`Request`]; the receiver gets the Ask's answer.
pub fn decode(
    service: &str,
    body: &str,
    received: Instant,
) -> Result<(Request, Option<mpsc::Receiver<Answer>>), String> {
    match service {
        "policy.Ask" => {
            let params = AskParams::from_json(body)?;
            let (tx, rx) = mpsc::channel();
            Ok((Request::Ask(params, tx, received), Some(rx)))
        }
        "policy.Notify" => Ok((Request::Notify(NotifyParams::from_json(body)?), None)),
        other => Err(format!("unknown service name: {other}")),
    }
}

/// Accepts connections on `socket` forever, handing requests to `to_gui`.
pub fn listen(socket: PathBuf, to_gui: async_channel::Sender<Request>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    std::thread::Builder::new()
        .name("policy-agent-listener".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let to_gui = to_gui.clone();
                let _ = std::thread::Builder::new()
                    .name("policy-agent-request".into())
                    .spawn(move || serve(conn, &to_gui));
            }
        })?;
    Ok(())
}

fn serve(mut conn: UnixStream, to_gui: &async_channel::Sender<Request>) {
    let received = Instant::now();
    let Some((service, body)) = read_request(&mut conn) else {
        return;
    };
    let (request, answer) = match decode(&service, &body, received) {
        Ok(r) => r,
        Err(e) => return tracing::warn!("policy agent: {e}"),
    };
    if to_gui.send_blocking(request).is_err() {
        return;
    }
    let reply = match answer {
        // A prompt that goes away unanswered is a denial.
        Some(rx) => rx.recv().unwrap_or(Answer::Deny).to_wire(),
        None => String::new(),
    };
    let _ = conn.write_all(reply.as_bytes());
}

/// The notification for a `policy.Notify`: the reference's wording, as plain text (the
/// notifier escapes it for servers that read markup).
pub fn notification(p: &NotifyParams) -> Notification {
    let rpc = if p.argument == "+" {
        p.service.clone()
    } else {
        format!("{}{}", p.service, p.argument)
    };
    let fill = |s: String| {
        s.replacen("{service}", &p.service, 1)
            .replacen("{rpc}", &rpc, 1)
            .replacen("{source}", &p.source, 1)
            .replacen("{target}", &p.target, 1)
    };
    let (summary, body) = match p.resolution.as_str() {
        // Translators: a notification's title; {service} is a qrexec service name.
        "allow" => (
            tr("Allowed: {service}"),
            // Translators: {rpc} is a service call, {source} and {target} qube names.
            tr("Allowed {rpc} from {source} to {target}"),
        ),
        "deny" => (
            tr("Denied: {service}"),
            tr("Denied {rpc} from {source} to {target}"),
        ),
        _ => (
            tr("Failed: {service}"),
            tr("Failed to execute {rpc} (from {source} to {target})"),
        ),
    };
    Notification {
        // Each call its own notification.
        key: format!("policy-{}", glib::monotonic_time()),
        summary: fill(summary),
        body: fill(body),
        urgent: false,
        actions: Vec::new(),
    }
}

/// Runs the GTK side: every request from `requests` becomes a prompt or a notification. With
/// `once`, the program ends after the first request is answered (qrexec service mode).
pub fn run(options: Options, requests: async_channel::Receiver<Request>, once: bool) {
    let app = adw::Application::builder()
        .application_id("org.qubes_os.PolicyAgent")
        .flags(relm4::gtk::gio::ApplicationFlags::NON_UNIQUE)
        .build();
    let hold = std::cell::RefCell::new(None);
    app.connect_activate(move |app| {
        // Stay alive with no window: prompts come and go.
        hold.replace(Some(app.hold()));
        prompt::warm_up(app);
        let notifier = std::rc::Rc::new(Notifier::connect_as(ORIGIN));
        let requests = requests.clone();
        let app = app.clone();
        let options = options.clone();
        glib::MainContext::default().spawn_local(async move {
            while let Ok(req) = requests.recv().await {
                match req {
                    Request::Ask(params, reply, received) => {
                        let app2 = app.clone();
                        prompt::show(&app, &params, &options.prompt, received, move |answer| {
                            let _ = reply.send(answer);
                            if once {
                                app2.quit();
                            }
                        });
                    }
                    Request::Notify(params) => {
                        notifier.show(&notification(&params));
                        if once {
                            // Give the notifier's thread a moment to deliver.
                            let app = app.clone();
                            glib::timeout_add_local_once(Duration::from_millis(500), move || {
                                app.quit()
                            });
                        }
                    }
                }
            }
        });
    });
    app.run_with_args::<&str>(&[]);
}
