//! Feature, tag, label and property values through the dispatcher of a real core: never an
//! internal error (a caught panic). Input: `<method index byte><arg>\0<payload>`.
#![no_main]

use std::sync::OnceLock;

use qubes_api::{QubesError, Request};

const METHODS: [(&str, &str); 6] = [
    ("admin.vm.feature.Set", "work"),
    ("admin.vm.tag.Set", "work"),
    ("admin.label.Create", "dom0"),
    ("admin.vm.property.Set", "work"),
    ("admin.property.Set", "dom0"),
    ("admin.vm.firewall.Set", "work"),
];

fn core() -> &'static qubesd::Embedded {
    static CORE: OnceLock<qubesd::Embedded> = OnceLock::new();
    CORE.get_or_init(|| qubesd::Embedded::demo().expect("demo core"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let (method, dest) = METHODS[usize::from(which) % METHODS.len()];
    let (arg, payload) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let req = Request {
        method: method.as_bytes().to_vec(),
        arg: arg.to_vec(),
        src: b"dom0".to_vec(),
        dest: dest.as_bytes().to_vec(),
        payload: payload.to_vec(),
    };
    let r = qubesd::dispatch::call(&core().shared.core, qubesd::api::Socket::Admin, &req);
    if let Err(QubesError::Exception { message, .. }) = r {
        assert!(!message.starts_with("Internal error"), "{message}");
    }
});
