//! Property tests over everything that arrives untrusted: request framing, `qubes.xml`,
//! firewall rules, device assignment payloads, and feature, tag, label and property values
//! sent through the dispatcher. Nothing may panic (a panic in a write would surface as the
//! core's "Internal error" exception, which is checked for too), what is accepted must read
//! back the same, and the state must still save and load. A few seconds in all; the fuzz
//! targets in `fuzz/` run the same entry points for as long as one likes.

// Tests and benchmarks may unwrap: a panic there is a failed run, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use qubes_api::{QubesError, Request};
use qubesd::api::Socket;
use qubesd::devices::protocol::{VirtualDevice, deserialize_assignment};
use qubesd::firewall::{Rule, from_xml, to_xml};
use qubesd::model::HostInfo;
use qubesd::reply::Reply;
use qubesd::server::Shared;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that look like the input's alphabet: separators, special characters, some UTF-8.
fn noisy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"abz09_-.+=: \t\n\r\0/<>&\"'*@$~,;[]{}#\\".to_vec()),
            1 => any::<u8>(),
        ],
        0..max,
    )
}

fn text(max: usize) -> impl Strategy<Value = String> {
    noisy(max).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn framing_never_panics(bytes in noisy(300)) {
        let _ = Request::parse(&bytes);
    }

    #[test]
    fn framing_reads_back_what_clients_send(
        method in "[a-zA-Z.]{1,30}",
        arg in "[a-zA-Z0-9._:+-]{0,30}",
        src in "[a-z0-9-]{1,20}",
        dest in "[a-z0-9-]{1,20}",
        payload in any::<Vec<u8>>(),
    ) {
        let r = Request::parse(&Request::encode(&method, &arg, &src, &dest, &payload)).unwrap();
        prop_assert_eq!(r.method, method.as_bytes());
        prop_assert_eq!(r.arg, arg.as_bytes());
        prop_assert_eq!(r.src, src.as_bytes());
        prop_assert_eq!(r.dest, dest.as_bytes());
        prop_assert_eq!(r.payload, payload);
    }

    #[test]
    fn firewall_rules_are_canonical_or_refused(line in text(120)) {
        if let Ok(rule) = Rule::from_api(&line) {
            let again = Rule::from_api(&rule.api_line()).unwrap();
            prop_assert_eq!(&again, &rule);
            let stored = to_xml(std::slice::from_ref(&rule));
            prop_assert_eq!(from_xml(stored.as_bytes()).unwrap(), vec![rule]);
        }
    }

    #[test]
    fn firewall_xml_never_panics(bytes in noisy(400)) {
        let _ = from_xml(&bytes);
    }

    #[test]
    fn device_payloads_never_panic(payload in noisy(200), port in "[0-9a-f_.:*-]{1,12}") {
        let expected = VirtualDevice {
            backend: "dom0".into(),
            port_id: port,
            device_id: "*".into(),
        };
        let _ = deserialize_assignment(&payload, &expected, "pci", |n| n == "dom0" || n == "work");
    }
}

fn host() -> HostInfo {
    HostInfo::detect("/nonexistent", false)
}

/// A valid `qubes.xml` with some of everything.
fn sample_store() -> Vec<u8> {
    let e = qubesd::Embedded::demo().expect("demo core");
    let st = e.shared.core.snapshot();
    qubesd::store::serialize(&st).into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn qubes_xml_loader_survives_damage(
        cuts in prop::collection::vec((any::<prop::sample::Index>(), noisy(8)), 1..4),
        truncate in any::<Option<prop::sample::Index>>(),
    ) {
        let mut xml = SAMPLE.with(|s| s.clone());
        for (at, bytes) in cuts {
            let i = at.index(xml.len());
            let end = (i + bytes.len()).min(xml.len());
            xml.splice(i..end, bytes);
        }
        if let Some(t) = truncate {
            xml.truncate(t.index(xml.len()));
        }
        if let Ok(st) = qubesd::store::parse(&xml, host()) {
            // What loads, saves and loads again to the same state.
            let again = qubesd::store::serialize(&st);
            let back = qubesd::store::parse(again.as_bytes(), host()).unwrap();
            prop_assert_eq!(qubesd::store::serialize(&back), again);
        }
    }
}

thread_local! {
    static SAMPLE: Vec<u8> = sample_store();
}

/// One core shared by the API cases (each case adds to the same system).
fn core() -> Arc<Shared> {
    static CORE: std::sync::OnceLock<(Arc<Shared>, tempfile::TempDir)> = std::sync::OnceLock::new();
    CORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = qubesd::Config::in_dir(dir.path());
        let shared = qubesd::Daemon::load(&config).unwrap();
        let r = call(
            &shared,
            "admin.vm.Create.StandaloneVM",
            "dom0",
            "",
            b"name=work label=red",
        );
        assert!(r.is_ok(), "{r:?}");
        (shared, dir)
    })
    .0
    .clone()
}

fn call(
    shared: &Shared,
    method: &str,
    dest: &str,
    arg: &str,
    payload: &[u8],
) -> Result<Reply, QubesError> {
    // Built directly: an argument may hold bytes the wire form cannot carry.
    let req = Request {
        method: method.as_bytes().to_vec(),
        arg: arg.as_bytes().to_vec(),
        src: b"dom0".to_vec(),
        dest: dest.as_bytes().to_vec(),
        payload: payload.to_vec(),
    };
    qubesd::dispatch::call(&shared.core, Socket::Admin, &req)
}

/// Not a panic turned into an exception by the core.
fn no_internal_error(r: &Result<Reply, QubesError>) -> Result<(), TestCaseError> {
    if let Err(QubesError::Exception { message, .. }) = r {
        prop_assert!(!message.starts_with("Internal error"), "{}", message);
    }
    Ok(())
}

/// The state on disk still loads.
fn store_loads(shared: &Shared) -> Result<(), TestCaseError> {
    let xml = qubesd::store::serialize(&shared.core.snapshot());
    prop_assert!(qubesd::store::parse(xml.as_bytes(), host()).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn feature_values_read_back_or_are_refused(name in text(20), value in noisy(60)) {
        let shared = core();
        let r = call(&shared, "admin.vm.feature.Set", "work", &name, &value);
        no_internal_error(&r)?;
        if r.is_ok() {
            let got = call(&shared, "admin.vm.feature.Get", "work", &name, b"").unwrap();
            prop_assert_eq!(got, Reply::Ok(value));
            store_loads(&shared)?;
        }
    }

    #[test]
    fn tags_read_back_or_are_refused(tag in text(24)) {
        let shared = core();
        let r = call(&shared, "admin.vm.tag.Set", "work", &tag, b"");
        no_internal_error(&r)?;
        if r.is_ok() {
            let got = call(&shared, "admin.vm.tag.Get", "work", &tag, b"").unwrap();
            prop_assert_eq!(got, Reply::Ok(b"1".to_vec()));
            store_loads(&shared)?;
        }
    }

    #[test]
    fn labels_read_back_or_are_refused(name in text(16), color in noisy(12)) {
        let shared = core();
        let r = call(&shared, "admin.label.Create", "dom0", &name, &color);
        no_internal_error(&r)?;
        if r.is_ok() {
            let got = call(&shared, "admin.label.Get", "dom0", &name, b"").unwrap();
            let Reply::Ok(c) = got else { unreachable!() };
            prop_assert_eq!(c.len(), 8);
            store_loads(&shared)?;
        }
    }

    #[test]
    fn property_values_are_validated(
        prop in prop::sample::select(vec![
            "label", "memory", "maxmem", "vcpus", "netvm", "kernelopts", "default_user",
            "qrexec_timeout", "shutdown_timeout", "virt_mode", "ip", "mac", "devices_denied",
        ]),
        value in noisy(40),
    ) {
        let shared = core();
        let r = call(&shared, "admin.vm.property.Set", "work", prop, &value);
        no_internal_error(&r)?;
        if r.is_ok() {
            store_loads(&shared)?;
        }
    }
}
