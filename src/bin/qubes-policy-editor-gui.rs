//! `qubes-policy-editor-gui [FILE]`: the policy editor (see
//! [`qubes_qube_manager::policy_editor`]) on its own, opening FILE (`NAME` or `include/NAME`)
//! if given. Qube names and tags for completion come from the Admin API (same transport
//! options as the Qube Manager: `--socket PATH`, `--qrexec`; without one, dom0's socket or
//! qrexec); without a daemon, completion offers the keywords only.

use qubes_qube_manager::cli;
use qubes_qube_manager::policy_editor::{self, EditorInit};
use qubes_qube_manager::{i18n, renderer};
use relm4::adw;
use relm4::adw::prelude::*;

fn usage() -> ! {
    eprintln!("usage: qubes-policy-editor-gui [--socket PATH | --qrexec] [FILE]");
    std::process::exit(2)
}

/// Qube names and tags, when a daemon answers.
fn qubes_and_tags(daemon: &cli::Daemon) -> (Vec<String>, Vec<String>) {
    let Ok(client) = cli::connect(daemon).map(|(c, _)| c) else {
        return (Vec::new(), Vec::new());
    };
    let Ok(list) = client.vm_list() else {
        return (Vec::new(), Vec::new());
    };
    let names: Vec<String> = list.iter().map(|q| q.name.clone()).collect();
    let mut tags: Vec<String> = names
        .iter()
        .filter_map(|n| client.call("admin.vm.tag.List", n, "", b"").ok())
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    tags.sort();
    tags.dedup();
    (names, tags)
}

fn main() {
    renderer::prefer_software_rendering();
    cli::init_logging();
    i18n::init();
    let (daemon, rest) = cli::from_env().unwrap_or_else(|_| usage());
    if rest.len() > 1 || rest.first().is_some_and(|a| a.starts_with('-')) {
        usage();
    }
    let file = rest.into_iter().next();
    if let Err(e) = relm4::gtk::init() {
        eprintln!(
            "{}: {e} ({})",
            i18n::tr("Cannot start the graphical interface"),
            i18n::tr("is DISPLAY or WAYLAND_DISPLAY set?")
        );
        std::process::exit(1);
    }
    let (qubes, tags) = qubes_and_tags(&daemon);
    let app = adw::Application::builder()
        .application_id("org.qubes_os.PolicyEditor")
        .flags(relm4::gtk::gio::ApplicationFlags::NON_UNIQUE)
        .build();
    app.connect_activate(move |app| {
        let window = policy_editor::open(
            None,
            EditorInit::from_env(qubes.clone(), tags.clone(), file.clone()),
        );
        window.set_application(Some(app));
    });
    cli::on_termination(|| {
        relm4::gtk::glib::MainContext::default().invoke(|| {
            if let Some(app) = relm4::gtk::gio::Application::default() {
                app.quit();
            }
        });
    });
    app.run_with_args::<&str>(&[]);
}
