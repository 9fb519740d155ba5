//! Panic safety: a write or a handler that panics answers an exception, leaves memory and
//! disk exactly as they were, and the daemon goes on serving.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use qubes_api::QubesError;
use qubesd::api::{Kind, Method, Req, Socket, Want};
use qubesd::txn::Txn;

fn daemon() -> (tempfile::TempDir, Arc<qubesd::server::Shared>) {
    let dir = tempfile::tempdir().unwrap();
    let config = qubesd::Config::in_dir(dir.path());
    let shared = qubesd::Daemon::load(&config).unwrap();
    (dir, shared)
}

/// A write that changes memory and disk and then panics: the caller hears an exception,
/// the state, `qubes.xml` and the disk are as before, subscribers hear nothing, and the
/// core goes on serving.
#[test]
fn a_panicking_write_leaves_nothing_behind() {
    let (dir, shared) = daemon();
    let core = &shared.core;
    core.write("setup", |t| {
        qubesd::ops::labels::create(t, "teal", "0x008080".into())
    })
    .unwrap();
    // What the disk holds: qubes.xml and the journal of saves since its last checkpoint.
    let saved = || {
        let host = qubesd::model::HostInfo::detect(&dir.path().to_string_lossy(), false);
        qubesd::store::durable_text(&dir.path().join("qubes.xml"), host).unwrap()
    };
    let xml = saved();
    let before = core.snapshot();
    let mut events = core.hub().subscribe();
    let scratch = dir.path().join("half-made.img");
    let undo_path = scratch.clone();
    let r: Result<(), _> = core.write("admin.test.Panic", |t| {
        t.st.labels.clear();
        t.st.global.insert("default_kernel".into(), "evil".into());
        t.save = true;
        t.fire("", "label-removed", &[]);
        std::fs::write(&scratch, b"data").unwrap();
        t.undo_on_failure(Box::new(move || {
            let _ = std::fs::remove_file(&undo_path);
        }));
        t.write_file(dir.path().join("side.txt"), b"side".to_vec());
        panic!("injected");
    });
    assert_eq!(
        r,
        Err(QubesError::qubes(
            "Internal error in qubesd while handling admin.test.Panic; nothing was changed"
        ))
    );
    assert!(Arc::ptr_eq(&before, &core.snapshot()), "memory changed");
    assert_eq!(saved(), xml);
    assert!(!scratch.exists(), "the disk change was not undone");
    assert!(!dir.path().join("side.txt").exists());
    assert!(events.try_recv().unwrap().is_none(), "an event escaped");
    // And the next write works and is saved.
    core.write("after", |t| {
        qubesd::ops::labels::create(t, "navy", "0x000080".into())
    })
    .unwrap();
    let after = saved();
    assert!(after.contains("navy") && after.contains("teal"), "{after}");
}

fn panics(_: &Req, t: &mut Txn) -> Result<qubesd::reply::Reply, QubesError> {
    t.st.domains.clear();
    t.save = true;
    panic!("injected into a handler")
}

fn panics_reading(_: &Req, _: &qubesd::api::View) -> Result<qubesd::reply::Reply, QubesError> {
    panic!("injected into a read")
}

/// The same through the dispatcher the server runs every call through.
#[test]
fn a_panicking_handler_answers_an_exception() {
    let (_dir, shared) = daemon();
    let core = &shared.core;
    let before = core.snapshot();
    let req = Req {
        src: "dom0".into(),
        dest: "dom0".into(),
        method: "admin.test.Panic",
        arg: String::new(),
        untrusted_payload: Vec::new(),
    };
    for kind in [Kind::Write(panics), Kind::Read(panics_reading)] {
        let m: &'static Method = Box::leak(Box::new(Method {
            name: "admin.test.Panic",
            socket: Socket::Admin,
            arg: Want::No,
            payload: Want::No,
            dest_adminvm: None,
            kind,
        }));
        let r = qubesd::dispatch::run(core, m, &req);
        assert_eq!(
            r,
            Err(QubesError::qubes(
                "Internal error in qubesd while handling admin.test.Panic; nothing was changed"
            ))
        );
    }
    assert!(Arc::ptr_eq(&before, &core.snapshot()));
    let list = qubesd::dispatch::call(
        core,
        Socket::Admin,
        &qubes_api::Request::parse(&qubes_api::Request::encode(
            "admin.vm.List",
            "",
            "dom0",
            "dom0",
            b"",
        ))
        .unwrap(),
    );
    assert!(
        matches!(list, Ok(qubesd::reply::Reply::Shared(b)) if b.starts_with(b"dom0 class=AdminVM"))
    );
}
