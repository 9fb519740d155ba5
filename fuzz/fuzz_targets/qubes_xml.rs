//! qubes.xml bytes -> the loader: must never panic; what loads saves and loads the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let host = || qubesd::model::HostInfo::detect("/nonexistent", false);
    if let Ok(st) = qubesd::store::parse(data, host()) {
        let xml = qubesd::store::serialize(&st);
        let back = qubesd::store::parse(xml.as_bytes(), host()).expect("saved state loads");
        assert_eq!(qubesd::store::serialize(&back), xml);
    }
});
