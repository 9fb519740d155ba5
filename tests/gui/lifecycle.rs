//! Shutting down (timeouts, network qubes with users) and the qube tools (run a command,
//! console).

use crate::support::*;

pub(crate) fn shutdown_timeout_offers_kill_or_wait() {
    let f = Fixture::start();
    let state = || f.controller.model().cell("work", Column::State);
    assert_eq!(state().as_deref(), Some("Running"));
    // What the window does when a qube outlives its shutdown_timeout.
    f.controller.emit(Msg::ShutdownTimedOut("work".into()));
    assert!(spin_until(5, || f.controller.model().timed_out.is_some()));
    let dialog = f.controller.model().timed_out.clone().unwrap();
    assert_eq!(dialog.heading().as_deref(), Some("work is still running"));
    assert_eq!(dialog.default_response().as_deref(), Some("wait"));
    dialog.response("kill");
    assert!(spin_until(10, || state().as_deref() == Some("Halted")));
}

/// The embedded core presented as a real system, so that local qube tools are offered.
pub(crate) struct AsRealSystem(std::sync::Arc<qubesd::Embedded>);

impl Transport for AsRealSystem {
    fn call_raw(
        &self,
        method: &str,
        dest: &str,
        arg: &str,
        payload: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        self.0.call_raw(method, dest, arg, payload)
    }
    fn open_stream(
        &self,
        method: &str,
        dest: &str,
    ) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        self.0.open_stream(method, dest)
    }
    fn describe(&self) -> String {
        "test".into()
    }
}

pub(crate) fn run_command_and_console_use_the_qube_tools() {
    // In the demo the tools would act on other qubes than the window shows: not offered.
    {
        let f = Fixture::start();
        select_and_wait(&f, "work");
        assert!(f.controller.model().tool("sh").is_none());
    }
    // On a real system they are, and get the qube and the command as arguments. The
    // programs here record their arguments (qvm-run itself needs a Qubes system).
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("args");
    for tool in ["qvm-run", "qvm-console-dispvm"] {
        let path = bin.path().join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho {tool} \"$@\" >> {}\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let old_path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.path().to_path_buf()];
    paths.extend(std::env::split_paths(&old_path));
    // SAFETY: the GUI tests run one at a time on the main thread; no other thread reads PATH
    // while it changes.
    unsafe { std::env::set_var("PATH", std::env::join_paths(paths).unwrap()) };
    let (_, core) = app::demo_client().expect("demo core");
    let client = qubes_api::Client::new(std::sync::Arc::new(AsRealSystem(core.clone())));
    let config = tempfile::tempdir().unwrap();
    let controller = app::builder(
        client,
        qubes_qube_manager::view_state::ViewState::open(&config.path().join("view.ini")),
    );
    controller.widget().present();
    assert!(spin_until(20, || controller.model().is_loaded()));
    controller.model().select("work");
    assert!(spin_until(5, || controller.model().selected() == ["work"]));
    let window: gtk::Widget = controller.widget().clone().upcast();
    WidgetExt::activate_action(&window, "qube.console", None).expect("qube.console");
    assert!(spin_until(10, || std::fs::read_to_string(&log)
        .is_ok_and(|l| l.contains("qvm-console-dispvm work\n"))));
    controller.emit(Msg::RunCommand);
    let asking = || {
        gtk::Window::list_toplevels()
            .into_iter()
            .filter_map(|w| w.downcast::<relm4::adw::MessageDialog>().ok())
            .find(|d| d.is_visible())
    };
    assert!(spin_until(5, || asking().is_some()));
    let dialog = asking().unwrap();
    let entry = dialog
        .extra_child()
        .unwrap()
        .downcast::<gtk::Entry>()
        .unwrap();
    entry.set_text("xterm -e top");
    dialog.response("run");
    assert!(spin_until(10, || std::fs::read_to_string(&log).is_ok_and(
        |l| l.contains("qvm-run --autostart --quiet work xterm -e top\n")
    )));
    // SAFETY: as above: the GUI tests run one at a time on the main thread; no other thread
    // reads PATH while it is put back.
    unsafe { std::env::set_var("PATH", old_path) };
    controller.widget().close();
}

pub(crate) fn shutting_down_a_network_qube_offers_its_users() {
    let f = Fixture::start();
    let state = |vm: &str| f.controller.model().cell(vm, Column::State);
    let window: gtk::Widget = f.controller.widget().clone().upcast();
    // In the demo work runs behind sys-firewall, which runs behind sys-net: shutting down
    // sys-net offers both, in the order the daemon accepts.
    assert_eq!(state("sys-firewall").as_deref(), Some("Running"));
    select_and_wait(&f, "sys-net");
    WidgetExt::activate_action(&window, "qube.shutdown", None).expect("qube.shutdown");
    assert!(spin_until(5, || f
        .controller
        .model()
        .shutdown_users
        .is_some()));
    let dialog = f.controller.model().shutdown_users.clone().unwrap();
    assert!(
        dialog.body().ends_with("\nwork, sys-firewall"),
        "{}",
        dialog.body()
    );
    click(dialog.upcast_ref(), "Shut down all");
    assert!(
        spin_until(15, || ["work", "sys-firewall", "sys-net"]
            .iter()
            .all(|vm| state(vm).as_deref() == Some("Halted"))),
        "{:?} {:?} {:?} {:?}",
        state("work"),
        state("sys-firewall"),
        state("sys-net"),
        f.controller.model().last_error
    );
    assert_eq!(state("sys-usb").as_deref(), Some("Running"));
    assert!(f.controller.model().last_error.is_none());

    // Someone starts a qube behind sys-firewall between the question and the answer: the
    // daemon refuses, the message says why, and the row shows what the daemon holds.
    f.call("admin.vm.Start", "work", "", b"");
    assert!(spin_until(10, || state("work").as_deref()
        == Some("Running")
        && state("sys-firewall").as_deref() == Some("Running")));
    select_and_wait(&f, "sys-firewall");
    WidgetExt::activate_action(&window, "qube.shutdown", None).expect("qube.shutdown");
    assert!(spin_until(5, || f
        .controller
        .model()
        .shutdown_users
        .as_ref()
        .is_some_and(|d| d != &dialog)));
    let dialog = f.controller.model().shutdown_users.clone().unwrap();
    assert!(dialog.body().ends_with("\nwork"), "{}", dialog.body());
    f.call("admin.vm.Start", "personal", "", b"");
    click(dialog.upcast_ref(), "Shut down all");
    let refused = "These running qubes use its network; shut them down first: personal";
    assert!(
        spin_until(15, || f.controller.model().last_error.as_ref().is_some_and(
            |(h, m)| h == "Shutting down sys-firewall failed" && m == refused
        ) && state("work").as_deref() == Some("Halted")
            && state("sys-firewall").as_deref() == Some("Running")),
        "{:?} {:?}",
        f.controller.model().last_error,
        state("sys-firewall")
    );
    assert!(
        visible_dialogs(&f)
            .iter()
            .any(|w| label_texts(w.upcast_ref()).iter().any(|t| t == refused))
    );

    // A row left "Halting" by a shutdown that failed without a word (the daemon's
    // domain-pre-shutdown, then nothing) shows the daemon's state after the shutdown timeout.
    f.call(
        "admin.vm.property.Set",
        "sys-firewall",
        "shutdown_timeout",
        b"1",
    );
    assert!(spin_until(10, || f
        .controller
        .model()
        .shutdown_timeout("sys-firewall")
        == Some(1)));
    f.controller
        .emit(Msg::Change(qubes_qube_manager::model::Change::State {
            vm: "sys-firewall".into(),
            state: "Halting".into(),
        }));
    assert!(spin_until(5, || state("sys-firewall").as_deref() == Some("Halting")));
    assert!(
        spin_until(10, || state("sys-firewall").as_deref() == Some("Running")),
        "{:?}",
        state("sys-firewall")
    );
}
