//! A device Assign/Attach payload: never panics.
#![no_main]

use qubesd::devices::protocol::{VirtualDevice, deserialize_assignment};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let expected = VirtualDevice {
        backend: "dom0".into(),
        port_id: "00_1f.2".into(),
        device_id: "*".into(),
    };
    let _ = deserialize_assignment(data, &expected, "pci", |n| n == "dom0" || n == "work");
});
