//! Request bytes -> framing and the generic checks: must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = qubes_api::Request::parse(data) {
        let st = qubesd::model::State::new_system(
            qubesd::model::HostInfo::detect("/nonexistent", false),
            "file",
        );
        for socket in [
            qubesd::api::Socket::Admin,
            qubesd::api::Socket::Internal,
            qubesd::api::Socket::Misc,
        ] {
            let _ = qubesd::dispatch::resolve(&st, socket, &req);
        }
    }
});
