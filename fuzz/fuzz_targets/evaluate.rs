//! (policy, request) -> evaluation: must never panic; the first line is the policy, the rest
//! is `source target service`.
#![no_main]

use qrexec_policy::{evaluate, parse_str, QubeInfo, Request, SystemInfo};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (policy, request) = text.split_once("\n---\n").unwrap_or((text, "q1 q2 svc"));
    let Ok(rules) = parse_str(policy, "fuzz") else { return };
    let mut info = SystemInfo::default();
    for n in ["dom0", "q1", "q2"] {
        info.domains.insert(n.into(), QubeInfo { name: n.into(), class: if n == "dom0" { "AdminVM".into() } else { "AppVM".into() }, ..QubeInfo::default() });
    }
    let mut parts = request.split(' ');
    let (src, dst, svc) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("svc"));
    if let Ok(req) = Request::new(svc, src, dst, &info) {
        let _ = evaluate(&rules, &req);
    }
});
