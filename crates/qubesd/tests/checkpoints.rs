//! The core's checkpoints of `qubes.xml` (the journal between them is tested with the store):
//! what they write is what the state holds, and stays so.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

fn daemon() -> (tempfile::TempDir, std::sync::Arc<qubesd::server::Shared>) {
    let dir = tempfile::tempdir().unwrap();
    let config = qubesd::Config::in_dir(dir.path());
    let shared = qubesd::Daemon::load(&config).unwrap();
    (dir, shared)
}

fn set_feature(core: &qubesd::core::Core, vm: &str, name: &str) {
    core.write("test", |t| {
        t.st.domain_mut(vm).unwrap().set_feature(name, "1");
        t.save = true;
        Ok(())
    })
    .unwrap();
}

/// A device class a read looked at between a save and the idle checkpoint is written by the
/// checkpoint and kept by the saves after it (it once went to the file only, and the next
/// checkpoint dropped it).
#[test]
fn an_idle_checkpoint_keeps_the_device_classes_reads_looked_at() {
    let (dir, shared) = daemon();
    let core = &shared.core;
    let xml = || std::fs::read_to_string(dir.path().join("qubes.xml")).unwrap();
    set_feature(core, "dom0", "a");
    let st = core.snapshot();
    st.touch_devices(st.domain("dom0").unwrap(), "pci");
    core.checkpoint().unwrap();
    assert!(xml().contains("<devices class=\"pci\"/>"), "{}", xml());
    assert!(
        core.snapshot()
            .domain("dom0")
            .unwrap()
            .devices
            .iter()
            .any(|c| c.class == "pci"),
        "the state has it too"
    );
    set_feature(core, "dom0", "b");
    core.checkpoint().unwrap();
    let after = xml();
    assert!(
        after.contains("<devices class=\"pci\"/>") && after.contains("name=\"b\""),
        "{after}"
    );
}
