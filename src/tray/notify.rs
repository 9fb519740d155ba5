//! Desktop notifications (`org.freedesktop.Notifications`) on the session bus. A notification
//! about a qube replaces the previous one about it (QubesOS/qubes-issues#6146: no pile of
//! "starting" / "started"), and buttons come back as [`Command`]s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::blocking::Connection;
use zbus::zvariant::Value;

use super::menu::Command;

const NAME: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// Who notifications come from: the application name servers show (a msgid, translated when
/// shown), the desktop entry and the icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Application name (untranslated msgid).
    pub app_name: &'static str,
    /// Desktop entry (`desktop-entry` hint).
    pub desktop_entry: &'static str,
    /// Icon name.
    pub icon: &'static str,
}

/// The tray's notifications.
pub const TRAY: Origin = Origin {
    app_name: crate::i18n::noop_tr("Qubes Domains"),
    desktop_entry: "org.qubes_os.QubeManager",
    icon: "org.qubes_os.QubeManager",
};

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What it is about: a later notification with the same key replaces it.
    pub key: String,
    /// Title.
    pub summary: String,
    /// Text.
    pub body: String,
    /// Critical urgency (stays until dismissed).
    pub urgent: bool,
    /// Buttons: what they do and their labels.
    pub actions: Vec<(Command, String)>,
}

/// Talks to the notification server from a thread of its own, so a slow or hung server never
/// holds up the tray; without a session bus, notifications are only logged.
pub struct Notifier {
    conn: Option<Connection>,
    jobs: std::sync::mpsc::Sender<Job>,
    /// Server id of the shown notification, by key.
    shown: Arc<Mutex<HashMap<String, u32>>>,
}

enum Job {
    Show(Notification),
    Withdraw(String),
}

impl Notifier {
    /// Connects to the session bus and starts the notification thread (as the tray).
    pub fn connect() -> Notifier {
        Notifier::connect_as(TRAY)
    }

    /// The same for notifications from another program.
    pub fn connect_as(origin: Origin) -> Notifier {
        let conn = Connection::session()
            .map_err(|e| tracing::warn!("no session bus, no notifications: {e}"))
            .ok();
        let shown: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let (jobs, queue) = std::sync::mpsc::channel();
        let worker = Worker {
            origin,
            conn: conn.clone(),
            markup: None,
            shown: shown.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("qui-notifications".into())
            .spawn(move || worker.run(queue));
        if let Err(e) = spawned {
            tracing::warn!("no notifications: {e}");
        }
        Notifier { conn, jobs, shown }
    }

    /// Shows `n`, replacing the last notification with the same key.
    pub fn show(&self, n: &Notification) {
        let _ = self.jobs.send(Job::Show(n.clone()));
    }

    /// Takes back the notification with `key`, if one is shown.
    pub fn withdraw(&self, key: &str) {
        let _ = self.jobs.send(Job::Withdraw(key.to_string()));
    }

    /// Calls `on_action` with the command of every button pressed on our notifications, from a
    /// thread of its own.
    pub fn listen(&self, on_action: impl Fn(Command) + Send + 'static) {
        let Some(conn) = self.conn.clone() else {
            return;
        };
        let shown = self.shown.clone();
        let spawned = std::thread::Builder::new()
            .name("qui-notification-actions".into())
            .spawn(move || {
                let proxy = match zbus::blocking::Proxy::new(&conn, NAME, PATH, NAME) {
                    Ok(p) => p,
                    Err(e) => return tracing::warn!("notification actions: {e}"),
                };
                let signals = match proxy.receive_signal("ActionInvoked") {
                    Ok(s) => s,
                    Err(e) => return tracing::warn!("notification actions: {e}"),
                };
                for msg in signals {
                    // The match rule takes the signal only from the notification server; and
                    // only for a notification of ours, with a key we make.
                    let Ok((id, key)) = msg.body().deserialize::<(u32, String)>() else {
                        continue;
                    };
                    let ours = shown.lock().is_ok_and(|m| m.values().any(|&v| v == id));
                    if ours && let Some(command) = Command::from_key(&key) {
                        on_action(command);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("notification actions: {e}");
        }
    }
}

/// The notification thread.
struct Worker {
    origin: Origin,
    conn: Option<Connection>,
    /// Whether the server reads markup in bodies (asked once, when first needed).
    markup: Option<bool>,
    shown: Arc<Mutex<HashMap<String, u32>>>,
}

impl Worker {
    fn run(mut self, queue: std::sync::mpsc::Receiver<Job>) {
        for job in queue {
            match job {
                Job::Show(n) => self.show(&n),
                Job::Withdraw(key) => self.withdraw(&key),
            }
        }
    }

    fn markup(&mut self, conn: &Connection) -> bool {
        *self.markup.get_or_insert_with(|| {
            conn.call_method(Some(NAME), PATH, Some(NAME), "GetCapabilities", &())
                .and_then(|r| r.body().deserialize::<Vec<String>>())
                .is_ok_and(|caps| caps.iter().any(|c| c == "body-markup"))
        })
    }

    fn show(&mut self, n: &Notification) {
        let Some(conn) = self.conn.clone() else {
            tracing::info!("{}: {}", n.summary, n.body);
            return;
        };
        let replaces = self
            .shown
            .lock()
            .map_or(0, |m| *m.get(&n.key).unwrap_or(&0));
        let mut actions = Vec::new();
        for (command, label) in &n.actions {
            actions.push(command.key());
            actions.push(label.clone());
        }
        // Daemon messages and event reasons are text: a "<" in them must not become markup.
        let body = if self.markup(&conn) {
            relm4::gtk::glib::markup_escape_text(&n.body).to_string()
        } else {
            n.body.clone()
        };
        let mut hints: HashMap<&str, Value> = HashMap::new();
        hints.insert("urgency", Value::U8(if n.urgent { 2 } else { 1 }));
        hints.insert("desktop-entry", Value::from(self.origin.desktop_entry));
        // Servers show the application's name: translated like the rest.
        let app_name = crate::i18n::tr(self.origin.app_name);
        let reply = conn.call_method(
            Some(NAME),
            PATH,
            Some(NAME),
            "Notify",
            &(
                app_name.as_str(),
                replaces,
                self.origin.icon,
                n.summary.as_str(),
                body.as_str(),
                actions,
                hints,
                -1i32,
            ),
        );
        match reply.and_then(|r| r.body().deserialize::<u32>()) {
            Ok(id) => {
                if let Ok(mut m) = self.shown.lock() {
                    m.insert(n.key.clone(), id);
                }
            }
            Err(e) => tracing::warn!("notification not shown ({e}): {}", n.body),
        }
    }

    fn withdraw(&mut self, key: &str) {
        let id = self.shown.lock().ok().and_then(|mut m| m.remove(key));
        if let (Some(conn), Some(id)) = (&self.conn, id) {
            let _ = conn.call_method(Some(NAME), PATH, Some(NAME), "CloseNotification", &id);
        }
    }
}
