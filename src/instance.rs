//! One Qube Manager per daemon and desktop session: which application id a start has, and
//! handing a second start's request to the running one.

use relm4::gtk;
use relm4::gtk::gio;
use relm4::gtk::prelude::*;

use crate::i18n::tr;

/// The application id (D-Bus name of the running Qube Manager) for the system's daemon.
pub const APP_ID: &str = "org.qubes_os.qube_manager";

/// The application id for a daemon: one Qube Manager per daemon and session. The system's
/// daemon (dom0's socket, qrexec) has [`APP_ID`]; another socket one derived from its path;
/// `None` for the demo, whose every start is a system of its own.
pub fn app_id(daemon: &crate::cli::Daemon) -> Option<String> {
    use crate::cli::{DOM0_SOCKET, Daemon};
    match daemon {
        Daemon::Demo => None,
        Daemon::Socket(p) if p.as_os_str() != DOM0_SOCKET => {
            // FNV-1a: stable across runs and builds, unlike the standard hasher.
            let hash = p
                .as_os_str()
                .as_encoded_bytes()
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
                });
            Some(format!("{APP_ID}.socket_{hash:016x}"))
        }
        Daemon::Socket(_) | Daemon::Qrexec => Some(APP_ID.to_string()),
    }
}

/// The application action that opens a qube's settings (parameter: the qube's name); a second
/// `qubes-qube-manager --settings QUBE` activates it in the running one.
pub(crate) const OPEN_SETTINGS_ACTION: &str = "open-settings";

/// When a Qube Manager with application id `id` already runs in this session, asks it to come
/// forward (and to open the settings of `open_settings`) and returns `true`: this process has
/// nothing more to do. Call after creating the `RelmApp`, before connecting to a daemon.
pub fn hand_over_to_running(id: &str, open_settings: Option<&str>) -> bool {
    // Registering would start this application (GApplication's startup, where relm4 builds
    // the window): ask the bus first whether another one owns the name. Without a session
    // bus the application cannot be unique: run on our own.
    let Ok(bus) = gio::bus_get_sync(gio::BusType::Session, gio::Cancellable::NONE) else {
        return false;
    };
    // A constant type string, valid GVariant syntax: it cannot be refused.
    #[allow(clippy::expect_used)]
    let reply = gtk::glib::VariantTy::new("(b)").expect("\"(b)\" is a valid GVariant type");
    let owned = bus
        .call_sync(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            Some(&(id,).to_variant()),
            Some(reply),
            gio::DBusCallFlags::NONE,
            1000,
            gio::Cancellable::NONE,
        )
        .ok()
        .and_then(|r| r.get::<(bool,)>())
        .is_some_and(|(owned,)| owned);
    if !owned {
        return false;
    }
    let app = relm4::main_application();
    if app.register(gio::Cancellable::NONE).is_err() || !app.is_remote() {
        // It went away meanwhile, and this process took its place before relm4 could build
        // the window: it cannot show one now.
        eprintln!(
            "{}",
            tr("The running Qube Manager just closed: start it again.")
        );
        std::process::exit(1);
    }
    if let Some(vm) = open_settings {
        app.activate_action(OPEN_SETTINGS_ACTION, Some(&vm.to_variant()));
    }
    app.activate();
    // The requests are D-Bus messages: send them before this process exits.
    let _ = bus.flush_sync(gio::Cancellable::NONE);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{DOM0_SOCKET, Daemon};

    #[test]
    fn one_manager_per_daemon() {
        let id = |d: Daemon| app_id(&d);
        assert_eq!(id(Daemon::Demo), None, "every demo is its own system");
        assert_eq!(id(Daemon::Qrexec).as_deref(), Some(APP_ID));
        assert_eq!(
            id(Daemon::Socket(DOM0_SOCKET.into())).as_deref(),
            Some(APP_ID)
        );
        let other = id(Daemon::Socket("/tmp/q/qubesd.sock".into())).unwrap();
        assert_eq!(
            other,
            id(Daemon::Socket("/tmp/q/qubesd.sock".into())).unwrap()
        );
        assert_ne!(
            other,
            id(Daemon::Socket("/tmp/r/qubesd.sock".into())).unwrap()
        );
        assert!(other.starts_with("org.qubes_os.qube_manager.socket_"));
        assert!(gtk::gio::Application::id_is_valid(&other), "{other}");
    }
}
