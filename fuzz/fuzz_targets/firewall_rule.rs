//! A firewall rule line and firewall.xml bytes: never panic; accepted rules are canonical.
#![no_main]

use qubesd::firewall::{Rule, from_xml, to_xml};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = from_xml(data);
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Ok(rule) = Rule::from_api(line) {
        assert_eq!(Rule::from_api(&rule.api_line()).unwrap(), rule);
        let xml = to_xml(std::slice::from_ref(&rule));
        assert_eq!(from_xml(xml.as_bytes()).unwrap(), vec![rule]);
    }
});
