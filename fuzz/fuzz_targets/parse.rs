//! Policy text -> parse: must never panic; errors must carry `file:line: `.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = qrexec_policy::parse_str(text, "fuzz") {
            assert!(e.to_string().starts_with("fuzz:"));
        }
    }
});
