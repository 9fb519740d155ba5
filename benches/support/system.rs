//! The system both GUI benchmarks (and a GUI test) run on (included with
//! `#[path = ...] mod system;`): 1000 qubes in qubes.xml, 100 of them running in the libvirt
//! test node, statistics every second.
#![allow(dead_code)]

use std::sync::Arc;

use qubesd::model::{Class, Domain, HostInfo, State};

/// Qubes besides dom0, plus dom0.
pub const QUBES: usize = 1000;
/// Running qubes besides dom0.
pub const RUNNING: usize = 100;

/// A state dir with 1000 qubes in qubes.xml and a libvirt node where 100 of them run.
pub fn prepare(dir: &std::path::Path) -> qubesd::Config {
    prepare_n(dir, QUBES, RUNNING)
}

/// A state dir with `qubes` qubes (dom0 included) in qubes.xml and a libvirt node where
/// `running` of them run.
pub fn prepare_n(dir: &std::path::Path, qubes: usize, running: usize) -> qubesd::Config {
    qubesd::demo::prepare_dir(dir).unwrap();
    let host = HostInfo::detect(&dir.to_string_lossy(), false);
    let mut st = State::new_system(host, "file");
    let mut node = String::from("<node>");
    for i in 0..qubes - 1 {
        let name = format!("qube{i:04}");
        let qid = i as u32 + 1;
        let mut d = Domain::new(Class::StandaloneVM, &name, qid);
        for (k, v) in [
            ("name", name.as_str()),
            ("qid", &qid.to_string()),
            ("label", ["red", "blue", "green"][i % 3]),
        ] {
            d.props.insert(k.into(), v.into());
        }
        d.props
            .insert("uuid".into(), format!("00000000-0000-4000-8000-{qid:012}"));
        // Volume configurations (root, private, volatile), as a created qube has: the disk
        // usage column reads them.
        if std::env::var_os("BENCH_NO_VOLUMES").is_none() {
            d.volumes = qubesd::volumes::default_volume_config(&st, &d, None, &[]).unwrap();
        }
        st.domains.insert(name.as_str().into(), Arc::new(d));
        if i < running {
            node.push_str(&format!(
                "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>{name}</name>\
                 <memory>409600</memory><os><type>hvm</type></os><test:runstate>1</test:runstate></domain>"
            ));
        }
    }
    node.push_str("</node>");
    st.global.insert("stats_interval".into(), "1".into());
    std::fs::write(dir.join("qubes.xml"), qubesd::store::serialize(&st)).unwrap();
    std::fs::write(dir.join("node.xml"), node).unwrap();
    qubesd::Config {
        state_dir: dir.to_path_buf(),
        socket_dir: dir.to_path_buf(),
        libvirt_uri: format!("test://{}", dir.join("node.xml").display()),
        debug: false,
        policy_dirs: vec![dir.join("policy.d")],
        ..Default::default()
    }
}
