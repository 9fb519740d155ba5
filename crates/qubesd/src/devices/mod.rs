//! Devices (admin-api.md §8.2-§8.4): dom0's PCI devices as libvirt describes them, persistent
//! assignments kept in `qubes.xml`, what is attached to a running qube, and the device
//! listing format. The methods are in [`crate::api::devices`], the changes they make in
//! [`crate::ops::devices`].
//!
//! Block devices are exposed by qubes through QubesDB in the reference; qubesd has no QubesDB,
//! so no qube exposes block devices here: their lists are empty and attaching one fails as for
//! an unknown device, while block assignments are still stored, listed and removed.

pub mod pci;
pub mod protocol;

use qubes_api::QubesError;
use qubes_api::exc::py_repr;

use crate::model::{Class, DeviceClassXml, DeviceXml, Domain, ListedFrontend, State};
use crate::reply::lines;
use pci::PciDevice;
use protocol::{Mode, VirtualDevice};
use qubes_api::device_format::pair;

/// Device classes qubesd serves (also `admin.deviceclass.List`).
pub const CLASSES: &[&str] = &["block", "pci"];

/// A persistent assignment as stored in `qubes.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The assigned device (identity `*` = whatever is on the port).
    pub device: VirtualDevice,
    /// `required`, `auto-attach` or `ask-to-attach`.
    pub mode: Mode,
    /// Options (`no-strict-reset`, `permissive`, `read-only`, ...).
    pub options: Vec<(String, String)>,
    /// See [`DeviceXml::listed_frontend`].
    pub listed_frontend: ListedFrontend,
}

pub fn attr<'a>(d: &'a DeviceXml, k: &str) -> Option<&'a str> {
    d.attrs
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
}

/// Reads one `<device>` entry the way the reference loads it: a legacy `required` attribute
/// decides between required and auto-attach, no mode at all means required, an `identity`
/// option wins over the attribute, and an unknown mode drops the entry.
pub fn stored(d: &DeviceXml) -> Option<Stored> {
    let mode = match attr(d, "required") {
        Some(r) => {
            if matches!(r.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1") {
                Mode::Required
            } else {
                Mode::Auto
            }
        }
        None => Mode::parse(attr(d, "mode").unwrap_or("required"))?,
    };
    let identity = d
        .options
        .iter()
        .find(|(k, _)| k == "identity")
        .map(|(_, v)| v.as_str())
        .or_else(|| attr(d, "identity"))
        .unwrap_or("*");
    Some(Stored {
        device: VirtualDevice {
            backend: attr(d, "backend-domain")?.to_string(),
            port_id: attr(d, "id").unwrap_or("*").to_string(),
            device_id: identity.to_string(),
        },
        mode,
        options: d
            .options
            .iter()
            .filter(|(k, _)| k != "identity")
            .cloned()
            .collect(),
        listed_frontend: d.listed_frontend.clone(),
    })
}

/// The `<device>` entry the reference writes for an assignment.
pub fn to_xml(s: &Stored) -> DeviceXml {
    DeviceXml {
        attrs: vec![
            ("backend-domain".into(), s.device.backend.clone()),
            ("id".into(), s.device.port_id.clone()),
            ("mode".into(), s.mode.name().into()),
            ("identity".into(), s.device.device_id.clone()),
        ],
        options: s.options.clone(),
        listed_frontend: s.listed_frontend.clone(),
    }
}

/// A qube's assignments of one class whose backend exists.
pub fn assignments(st: &State, d: &Domain, class: &str) -> Vec<Stored> {
    d.devices
        .iter()
        .filter(|g| g.class == class)
        .flat_map(|g| g.devices.iter().filter_map(stored))
        .filter(|s| st.domain(&s.device.backend).is_some())
        .collect()
}

/// Whether a qube has PCI devices assigned (changes virt_mode, maxmem and kernelopts).
pub fn has_pci(d: &Domain) -> bool {
    d.devices
        .iter()
        .any(|g| g.class == "pci" && g.devices.iter().any(|x| stored(x).is_some()))
}

/// Replaces a qube's assignments of one class, keeping the position of its `<devices>`.
pub fn store_assignments(d: &mut Domain, class: &str, list: &[Stored]) {
    let devices: Vec<DeviceXml> = list.iter().map(to_xml).collect();
    match d.devices.iter_mut().find(|g| g.class == class) {
        Some(g) => g.devices = devices,
        None => d.devices.push(DeviceClassXml {
            class: class.to_string(),
            devices,
        }),
    }
}

/// `key line` of an assignment: `<backend>+<port>:<device_id>` and its serialization.
pub fn assignment_line(
    class: &str,
    dev: &VirtualDevice,
    mode: Mode,
    frontend: Option<&str>,
    options: &[(String, String)],
) -> (String, String) {
    let key = format!("{}+{}:{}", dev.backend, dev.port_id, dev.device_id);
    let mut line = format!(
        "{key} {} {} {} {} {}",
        pair("device_id", &dev.device_id),
        pair("port_id", &dev.port_id),
        pair("devclass", class),
        pair("backend_domain", &dev.backend),
        pair("mode", mode.name())
    );
    if let Some(f) = frontend {
        line.push(' ');
        line.push_str(&pair("frontend_domain", f));
    }
    for (k, v) in options {
        line.push(' ');
        line.push_str(&pair(&format!("_{k}"), v));
    }
    (key, line)
}

/// The `Available` listing entry of a host PCI device exposed by `backend`: key and line.
pub fn available_line(p: &PciDevice, backend: &str) -> (String, String) {
    let key = format!("{}:{}", p.port_id, p.device_id());
    let mut line = format!(
        "{key} {} {} {} {}",
        pair("device_id", &p.device_id()),
        pair("port_id", &p.port_id),
        pair("devclass", "pci"),
        pair("backend_domain", backend)
    );
    for (k, v) in [("vendor", &p.vendor), ("product", &p.product)] {
        if v != "unknown" {
            line.push(' ');
            line.push_str(&pair(k, v));
        }
    }
    line.push(' ');
    line.push_str(&pair("interfaces", &p.interface()));
    line.push(' ');
    line.push_str(&pair("_sbdf", &p.sbdf));
    (key, line)
}

/// Sorted, one per key (the reference builds a dict), each ending in a newline.
pub fn sorted_lines(mut v: Vec<(String, String)>) -> String {
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    lines(v.into_iter().map(|(_, l)| l))
}

pub fn pci_as_device(p: &PciDevice) -> VirtualDevice {
    VirtualDevice {
        backend: "dom0".into(),
        port_id: p.port_id.clone(),
        device_id: p.device_id(),
    }
}

/// Whether an interface pattern of `devices_denied` (with `*` wildcards) matches one.
pub fn interface_matches(pattern: &str, interface: &str) -> bool {
    pattern.len() == interface.len()
        && pattern
            .chars()
            .zip(interface.chars())
            .all(|(p, i)| p == '*' || p == i)
}

/// The 7-character interface codes of an ASCII concatenation (`devices_denied`, which its
/// setter keeps to whole codes, or a payload whose length was checked).
pub fn interface_codes(s: &str) -> impl Iterator<Item = &str> {
    s.as_bytes()
        .chunks(7)
        .map(|ch| std::str::from_utf8(ch).unwrap_or(""))
}

/// Splits a payload of concatenated 7-character codes (the reference's messages).
pub fn codes(untrusted: &[u8]) -> Result<Vec<String>, QubesError> {
    let text = std::str::from_utf8(untrusted)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| QubesError::protocol("Device interface contains non-ASCII characters"))?;
    if text.len() % 7 != 0 {
        return Err(QubesError::value(format!(
            "Invalid length of interfaces={} (is {}, expected multiple of 7)",
            py_repr(text),
            text.len()
        )));
    }
    Ok(interface_codes(text).map(str::to_string).collect())
}

pub fn no_duplicates(codes: &[String]) -> Result<(), QubesError> {
    let mut seen = std::collections::BTreeSet::new();
    if codes.iter().all(|a| seen.insert(a.as_str())) {
        Ok(())
    } else {
        Err(QubesError::protocol(
            "Duplicated device interfaces in payload.",
        ))
    }
}

/// Why a qube that provides devices to others cannot be removed (`None`: it can).
pub fn provided_to_others(st: &State, d: &Domain) -> Option<String> {
    if !matches!(
        d.class,
        Class::AppVM | Class::TemplateVM | Class::StandaloneVM | Class::DispVM
    ) {
        return None;
    }
    let ports: Vec<String> = st
        .domains_sorted()
        .filter(|o| o.name != d.name && o.class != Class::RemoteVM)
        .flat_map(|o| {
            CLASSES
                .iter()
                .flat_map(move |cls| assignments(st, o, cls))
                .filter(|s| s.device.backend == d.name)
                .map(|s| s.device.port_id)
        })
        .collect();
    (!ports.is_empty())
        .then(|| format!("VM has devices assigned to other VMs: {}", ports.join(", ")))
}

/// The PCI devices a qube must have at start: `(hostdev XML)` for each required assignment,
/// or the reference's refusal when one is missing.
pub fn required_at_start(
    st: &State,
    d: &Domain,
    host: &[PciDevice],
    kind: &str,
) -> Result<Vec<String>, QubesError> {
    let mut out = Vec::new();
    for cls in CLASSES {
        for s in assignments(st, d, cls)
            .into_iter()
            .filter(|s| s.mode == Mode::Required)
        {
            let found: Vec<&PciDevice> = if *cls == "pci" && s.device.backend == "dom0" {
                host.iter()
                    .filter(|p| s.device.matches(&p.port_id, &p.device_id()))
                    .collect()
            } else {
                Vec::new()
            };
            if found.is_empty() {
                let mut name = cls.to_string();
                name[..1].make_ascii_uppercase();
                return Err(QubesError::qubes(format!(
                    "{name} device {} not available",
                    s.device.display()
                )));
            }
            out.extend(found.iter().map(|p| p.hostdev_xml(kind, &s.options)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(attrs: &[(&str, &str)], options: &[(&str, &str)]) -> DeviceXml {
        DeviceXml {
            attrs: attrs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            options: options
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            listed_frontend: ListedFrontend::Hidden,
        }
    }

    #[test]
    fn assignment_serialization() {
        let s = stored(&xml(
            &[
                ("backend-domain", "dom0"),
                ("id", "00_1f.3"),
                ("mode", "required"),
                ("identity", "*"),
            ],
            &[("no-strict-reset", "True")],
        ))
        .unwrap();
        assert_eq!(
            assignment_line("pci", &s.device, s.mode, None, &s.options).1,
            "dom0+00_1f.3:* device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'"
        );
        assert_eq!(to_xml(&s).attrs, s_attrs());
        let legacy = stored(&xml(
            &[
                ("backend-domain", "sys-usb"),
                ("id", "sda"),
                ("required", "no"),
            ],
            &[("read-only", "it's")],
        ))
        .unwrap();
        assert_eq!(
            assignment_line(
                "block",
                &legacy.device,
                legacy.mode,
                Some("work"),
                &legacy.options
            )
            .1,
            "sys-usb+sda:* device_id='*' port_id='sda' devclass='block' backend_domain='sys-usb' mode='auto-attach' frontend_domain='work' _read-only='it\\'s'"
        );
        // No mode at all means required; an unknown one drops the entry.
        let bare = stored(&xml(&[("backend-domain", "dom0"), ("id", "00_02.0")], &[])).unwrap();
        assert_eq!(bare.mode, Mode::Required);
        assert!(
            stored(&xml(
                &[("backend-domain", "dom0"), ("mode", "sometimes")],
                &[]
            ))
            .is_none()
        );
    }

    fn s_attrs() -> Vec<(String, String)> {
        [
            ("backend-domain", "dom0"),
            ("id", "00_1f.3"),
            ("mode", "required"),
            ("identity", "*"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn denied_patterns() {
        assert!(interface_matches("p02****", "p028000"));
        assert!(!interface_matches("p03****", "p028000"));
        assert!(!interface_matches("p0280", "p028000"));
    }
}
