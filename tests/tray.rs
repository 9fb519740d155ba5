//! The tray as a desktop sees it: `qui-domains` on its own D-Bus session bus, with a
//! StatusNotifierWatcher and a notification server played by this test, over the embedded
//! demo core. The menu is read and clicked through `com.canonical.dbusmenu` as a tray host
//! does; what the clicks did is checked in the core through a second client.
//!
//! One test function: it owns the process's session bus address.

// Tests may unwrap: a panic here is a failed test, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qubes_api::Client;
use qubes_qube_manager::tray::{self, Options, Program};
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedValue, Value};

#[path = "../benches/support/bus.rs"]
mod bus;
use bus::Bus;

/// The tray host's side: records items that register.
struct Watcher {
    items: Arc<Mutex<Vec<(String, String)>>>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(
        &self,
        service: String,
        #[zbus(header)] header: zbus::message::Header<'_>,
    ) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        self.items.lock().unwrap().push((sender, service));
    }

    fn register_status_notifier_host(&self, _service: String) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items
            .lock()
            .unwrap()
            .iter()
            .map(|i| i.1.clone())
            .collect()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

/// One call of `Notify` or `CloseNotification`.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    id: u32,
    replaces: u32,
    summary: String,
    body: String,
    actions: Vec<String>,
    urgency: u8,
}

/// The notification server's side.
struct Notifications {
    shown: Arc<Mutex<Vec<Shown>>>,
    closed: Arc<Mutex<Vec<u32>>>,
    next: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app_name: String,
        replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let id = if replaces_id != 0 {
            replaces_id
        } else {
            self.next += 1;
            self.next
        };
        let urgency = hints
            .get("urgency")
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(9);
        self.shown.lock().unwrap().push(Shown {
            id,
            replaces: replaces_id,
            summary,
            body,
            actions,
            urgency,
        });
        id
    }

    fn close_notification(&mut self, id: u32) {
        self.closed.lock().unwrap().push(id);
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "body-markup".into(), "actions".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("test".into(), "qubes".into(), "1".into(), "1.2".into())
    }
}

/// A menu row as a host reads it.
#[derive(Debug, Clone)]
struct Node {
    id: i32,
    label: String,
    enabled: bool,
    has_icon: bool,
    children: Vec<Node>,
}

impl Node {
    fn labels(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.label.as_str()).collect()
    }

    fn find(&self, label: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.label == label)
    }

    /// The first row whose label starts with `prefix`.
    fn starting(&self, prefix: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.label.starts_with(prefix))
    }
}

fn node(id: i32, props: HashMap<String, OwnedValue>, kids: Vec<OwnedValue>) -> Node {
    let label = props
        .get("label")
        .and_then(|v| String::try_from(v.clone()).ok())
        .unwrap_or_default();
    let enabled = props
        .get("enabled")
        .and_then(|v| bool::try_from(v).ok())
        .unwrap_or(true);
    let separator = props
        .get("type")
        .and_then(|v| String::try_from(v.clone()).ok())
        .is_some_and(|t| t == "separator");
    let children = kids
        .into_iter()
        .map(|k| {
            let (id, props, kids): (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>) =
                k.try_into().expect("a layout item");
            node(id, props, kids)
        })
        .collect();
    Node {
        id,
        label: if separator { "---".into() } else { label },
        enabled,
        has_icon: props.contains_key("icon-data"),
        children,
    }
}

/// The tray as a host sees it.
struct Host {
    conn: Connection,
    service: String,
}

impl Host {
    /// Calls a dbusmenu method of the item.
    fn menu_call<B>(&self, method: &str, body: &B) -> zbus::message::Message
    where
        B: zbus::export::serde::Serialize + zbus::zvariant::DynamicType,
    {
        let service = self.service.as_str();
        let menu = Some("com.canonical.dbusmenu");
        (self
            .conn
            .call_method(Some(service), "/MenuBar", menu, method, body))
        .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn layout(&self) -> Node {
        let reply = self.menu_call("GetLayout", &(0i32, -1i32, Vec::<String>::new()));
        type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);
        let (_rev, (id, props, kids)): (u32, Layout) = reply.body().deserialize().unwrap();
        node(id, props, kids)
    }

    fn click(&self, item: &Node) {
        self.menu_call("Event", &(item.id, "clicked", Value::I32(0), 0u32));
    }

    fn property(&self, name: &str) -> OwnedValue {
        let reply = self
            .conn
            .call_method(
                Some(self.service.as_str()),
                "/StatusNotifierItem",
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.kde.StatusNotifierItem", name),
            )
            .expect("Properties.Get");
        let v: OwnedValue = reply.body().deserialize().unwrap();
        v
    }

    /// Waits until the menu satisfies `ok`; panics with the last menu after 20 s.
    fn wait_menu(&self, what: &str, ok: impl Fn(&Node) -> bool) -> Node {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let menu = self.layout();
            if ok(&menu) {
                return menu;
            }
            assert!(Instant::now() < deadline, "{what}: menu is {menu:#?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn wait(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a notification that satisfies `ok` and returns it.
fn wait_shown(shown: &Mutex<Vec<Shown>>, what: &str, ok: impl Fn(&Shown) -> bool) -> Shown {
    wait(what, || shown.lock().unwrap().iter().any(&ok));
    shown
        .lock()
        .unwrap()
        .iter()
        .find(|s| ok(s))
        .cloned()
        .unwrap()
}

/// The notification server says a button was pressed.
fn press(server: &Connection, id: u32, key: &str) {
    server
        .emit_signal(
            None::<&str>,
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications",
            "ActionInvoked",
            &(id, key),
        )
        .unwrap();
}

fn state(client: &Client, vm: &str) -> String {
    let s = client
        .call("admin.vm.CurrentState", vm, "", b"")
        .unwrap_or_default();
    s.split(' ')
        .find_map(|kv| kv.strip_prefix("power_state="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn tray_shows_qubes_acts_and_notifies() {
    let (_bus, address) = Bus::start();
    // SAFETY: the only test of this binary sets the address before any thread reads it.
    unsafe {
        std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &address);
        std::env::set_var("LANGUAGE", "C");
    }
    let items = Arc::new(Mutex::new(Vec::new()));
    let shown = Arc::new(Mutex::new(Vec::<Shown>::new()));
    let closed = Arc::new(Mutex::new(Vec::new()));
    let desktop = zbus::blocking::connection::Builder::session()
        .unwrap()
        .name("org.kde.StatusNotifierWatcher")
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at(
            "/StatusNotifierWatcher",
            Watcher {
                items: items.clone(),
            },
        )
        .unwrap()
        .serve_at(
            "/org/freedesktop/Notifications",
            Notifications {
                shown: shown.clone(),
                closed: closed.clone(),
                next: 0,
            },
        )
        .unwrap()
        .build()
        .expect("the fake desktop is on the bus");

    let core = Arc::new(qubesd::Embedded::demo().expect("demo core"));
    let client = Client::new(core.clone());
    let second = Client::new(core.clone());
    // "Settings" and "Open Qube Manager" run this instead of the Qube Manager: it writes the
    // arguments it got.
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("manager-args");
    let manager = Program {
        path: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            format!("echo \"$*\" >> '{}'", record.display()).into(),
            "qubes-qube-manager".into(),
        ],
    };
    // The updater, likewise.
    let updater_record = dir.path().join("updater-args");
    let updater = Program {
        path: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            format!("echo \"$*\" >> '{}'", updater_record.display()).into(),
            "qubes-update-gui".into(),
        ],
    };
    let running = tray::spawn(
        client,
        Options {
            manager: Some(manager),
            updater: Some(updater),
            // Disk space checked every second here (every two minutes by default).
            disk_interval: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .expect("the tray starts");

    // It registers with the watcher, under its own bus name.
    wait("registration", || !items.lock().unwrap().is_empty());
    let (sender, service) = items.lock().unwrap()[0].clone();
    assert!(
        service.starts_with("org.kde.StatusNotifierItem-"),
        "{service}"
    );
    assert!(sender.starts_with(':'), "{sender}");
    let host = Host {
        conn: Connection::session().unwrap(),
        service,
    };
    assert_eq!(
        String::try_from(host.property("Title")).unwrap(),
        "Qubes Domains"
    );
    assert_eq!(String::try_from(host.property("Status")).unwrap(), "Active");

    // The running qubes of the demo, dom0 first, each with memory and CPU once stats came.
    let running_qubes: Vec<String> = second
        .vm_list()
        .unwrap()
        .into_iter()
        .filter(|e| e.state == "Running" && e.name != "dom0")
        .map(|e| e.name)
        .collect();
    assert!(running_qubes.contains(&"work".to_string()));
    let menu = host.wait_menu("rows with statistics", |m| {
        m.starting("work \u{2014} ")
            .is_some_and(|w| w.label.ends_with(" %") && w.label.contains(" MiB"))
    });
    let labels = menu.labels();
    assert!(
        labels[0].starts_with(&format!(
            "{} qubes running \u{b7} ",
            running_qubes.len() + 1
        )),
        "{labels:?}"
    );
    assert!(labels[0].contains(" \u{b7} CPU "), "{labels:?}");
    assert!(!menu.children[0].enabled, "the summary is not a command");
    assert_eq!(labels[1], "---");
    assert!(labels[2].starts_with("dom0"), "{labels:?}");
    assert_eq!(labels[3], "---");
    let rows: Vec<String> = labels[4..4 + running_qubes.len()]
        .iter()
        .map(|l| l.split(" \u{2014} ").next().unwrap().to_string())
        .collect();
    assert_eq!(rows, running_qubes, "alphabetical, after dom0");
    assert_eq!(
        &labels[4 + running_qubes.len()..],
        ["---", "Start a qube", "---", "Open Qube Manager"]
    );
    let work = menu.starting("work \u{2014} ").unwrap();
    assert!(work.has_icon, "the label colour is drawn");
    // What the reference showed in a tooltip, then what can be done.
    let prop = |p: &str| {
        let raw = second
            .call("admin.vm.property.Get", "work", p, b"")
            .unwrap();
        qubes_api::PropValue::parse(&raw).unwrap().value
    };
    let about = [
        format!("Template: {}", prop("template")),
        format!("Net qube: {}", prop("netvm")),
        "---".into(),
        "Settings".into(),
        "---".into(),
    ];
    let power = ["Emergency pause", "Shut down", "Restart", "Kill"];
    assert_eq!(work.labels()[..5], about);
    assert_eq!(work.labels()[5..], power);
    let start = menu.find("Start a qube").unwrap();
    assert!(start.labels().contains(&"personal"), "{:?}", start.labels());
    assert!(!start.labels().contains(&"work"));
    // Templates wait in a submenu of their own, after the others.
    assert_eq!(
        start.labels()[start.labels().len() - 2..],
        ["---", "Templates"]
    );
    let templates = start.find("Templates").unwrap().labels();
    assert!(templates.contains(&"fedora-41"), "{templates:?}");
    assert!(!start.labels().contains(&"fedora-41"));

    // Settings opens the Qube Manager on that qube.
    host.click(work.find("Settings").unwrap());
    wait("the manager to run", || record.exists());
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        "--settings work\n"
    );

    // Start from the menu: the qube runs, notifications replace each other.
    host.click(start.find("personal").unwrap());
    wait("personal to run", || {
        state(&second, "personal") == "Running"
    });
    let menu = host.wait_menu("personal listed", |m| m.starting("personal").is_some());
    wait_shown(&shown, "the started notification", |s| {
        s.body == "personal has started."
    });
    {
        let shown = shown.lock().unwrap();
        let about: Vec<&Shown> = shown
            .iter()
            .filter(|s| s.summary == "Qube status: personal")
            .collect();
        assert_eq!(
            about.iter().map(|s| s.body.as_str()).collect::<Vec<_>>(),
            ["personal is starting.", "personal has started."]
        );
        assert_eq!(about[1].replaces, about[0].id, "one notification per qube");
        assert_eq!(about[0].urgency, 1);
    }

    // Shut down from the menu.
    let personal = menu.starting("personal").unwrap();
    host.click(personal.find("Shut down").unwrap());
    wait("personal to halt", || {
        state(&second, "personal") == "Halted"
    });
    wait_shown(&shown, "the shut down notification", |s| {
        s.body == "personal has shut down."
    });
    host.wait_menu("personal gone from the running rows", |m| {
        m.starting("personal").is_none()
    });

    // A refusal becomes an urgent notification offering what helps: sys-net serves others.
    let menu = host.layout();
    let sys_net = menu.starting("sys-net").unwrap();
    host.click(sys_net.find("Shut down").unwrap());
    let failure = wait_shown(&shown, "the failure notification", |s| {
        s.summary == "Shutting down sys-net failed"
    });
    assert_eq!(failure.urgency, 2);
    assert!(
        failure.body.contains("sys-firewall"),
        "names who still uses it: {}",
        failure.body
    );
    assert_eq!(
        failure.actions,
        ["force-shutdown:sys-net", "Force shutdown"]
    );
    assert_eq!(state(&second, "sys-net"), "Running");

    // Every qube paused (through another client): an urgent warning with "Unpause all", and
    // the item asks for attention.
    for vm in &running_qubes {
        second.call("admin.vm.Pause", vm, "", b"").unwrap();
    }
    let warning = wait_shown(&shown, "the all-paused warning", |s| {
        s.summary == "Your qubes have been paused!"
    });
    assert_eq!(warning.actions, ["unpause-all", "Unpause all"]);
    assert_eq!(warning.urgency, 2);
    wait("NeedsAttention", || {
        String::try_from(host.property("Status")).unwrap() == "NeedsAttention"
    });
    let menu = host.layout();
    let paused = menu.starting("work").unwrap().labels();
    assert_eq!(paused[..5], about);
    assert_eq!(paused[5..], ["Unpause", "Kill"]);
    // The button, pressed on the notification server: everything runs again, the warning goes.
    press(&desktop, warning.id, "unpause-all");
    wait("every qube unpaused", || {
        running_qubes
            .iter()
            .all(|vm| state(&second, vm) == "Running")
    });
    wait("the warning withdrawn", || {
        closed.lock().unwrap().contains(&warning.id)
    });
    wait("Active again", || {
        String::try_from(host.property("Status")).unwrap() == "Active"
    });

    // Updates waiting for a template: a row listing it; a click starts the updater for it.
    second
        .call(
            "admin.vm.feature.Set",
            "fedora-41",
            "updates-available",
            b"1",
        )
        .unwrap();
    let menu = host.wait_menu("the updates row", |m| {
        m.find("Updates available for 1 qube").is_some()
    });
    let updates = menu.find("Updates available for 1 qube").unwrap();
    assert_eq!(updates.labels(), ["fedora-41", "---", "Update all of them"]);
    host.click(updates.find("fedora-41").unwrap());
    wait("the updater to run", || updater_record.exists());
    assert_eq!(
        std::fs::read_to_string(&updater_record).unwrap(),
        "--targets fedora-41\n"
    );
    second
        .call(
            "admin.vm.feature.Remove",
            "fedora-41",
            "updates-available",
            b"",
        )
        .unwrap();
    host.wait_menu("no updates row", |m| {
        !m.labels()
            .iter()
            .any(|l| l.starts_with("Updates available"))
    });

    // A running qube's private storage nearly full: an urgent notification offering its
    // settings, and a row saying so.
    let info = second
        .call("admin.vm.volume.Info", "work", "private", b"")
        .unwrap();
    let usage: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("usage="))
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("{info}"));
    assert!(usage > 0, "{info}");
    // (The test driver cannot resize a running qube's disk and says so; the size is set.)
    let _ = second.call(
        "admin.vm.volume.Resize",
        "work",
        "private",
        (usage + usage / 50).to_string().as_bytes(),
    );
    let disk = wait_shown(&shown, "the disk-space warning", |s| {
        s.summary == "Disk space is running out!"
    });
    assert_eq!(disk.body, "The private storage of work is 98 % full");
    assert_eq!(disk.urgency, 2);
    assert_eq!(disk.actions, ["settings:work", "Open qube settings"]);
    let menu = host.wait_menu("the disk-space row", |m| {
        m.find("Disk space is running out!").is_some()
    });
    assert_eq!(
        menu.find("Disk space is running out!").unwrap().labels(),
        ["The private storage of work is 98 % full"]
    );

    // A button of a notification that is not ours does nothing.
    press(&desktop, 999, "kill:work");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&second, "work"), "Running");

    running.sender.send(tray::TrayMsg::Quit).unwrap();
    running.join();
    let registered = items.lock().unwrap().len();

    // The program itself, in German, on the same core through a socket.
    let socket = dir.path().join("qubesd.sock");
    core.serve_admin_socket(&socket).unwrap();
    let mut german = std::process::Command::new(env!("CARGO_BIN_EXE_qui-domains"))
        .arg("--socket")
        .arg(&socket)
        .env("LANG", "C.UTF-8")
        .env("LANGUAGE", "de")
        .spawn()
        .expect("qui-domains runs");
    wait("the program's registration", || {
        items.lock().unwrap().len() > registered
    });
    let host = Host {
        conn: Connection::session().unwrap(),
        service: items.lock().unwrap()[registered].1.clone(),
    };
    assert_eq!(
        host.service,
        format!("org.kde.StatusNotifierItem-{}-1", german.id())
    );
    let menu = host.wait_menu("a German menu", |m| m.find("Qube starten").is_some());
    let labels = menu.labels();
    assert!(labels[0].contains(" aktiv \u{b7} "), "{labels:?}");
    assert_eq!(labels.last(), Some(&"Qube-Verwaltung öffnen"));
    let work = menu.starting("work").unwrap();
    assert!(
        work.labels().contains(&"Notfall-Pause"),
        "{:?}",
        work.labels()
    );
    assert_eq!(
        String::try_from(host.property("Title")).unwrap(),
        "Qubes-Domänen"
    );
    second.call("admin.vm.Start", "personal", "", b"").unwrap();
    let started = wait_shown(&shown, "a German notification", |s| {
        s.body == "personal wurde gestartet."
    });
    assert_eq!(started.summary, "Qube-Status: personal");
    let pid = libc::pid_t::try_from(german.id()).expect("a process id fits in pid_t");
    // SIGTERM: it leaves the bus and exits cleanly.
    // SAFETY: kill with a child's pid and a signal number.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(german.wait().unwrap().success());
}
