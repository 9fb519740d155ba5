//! dom0's PCI devices, read from libvirt's node devices as the reference does
//! (`qubes/ext/pci.py`): port ids in the "PCI path" form, identities, the hostdev XML that
//! gives a device to a domain, and the devices a running domain holds.

use std::collections::HashMap;

use crate::xml::{Node, parse_tree};

/// One PCI device of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Port id: the PCI path (`00_1f.3`, behind bridges `00_1c.0-00_00.0`, other segments
    /// prefixed `0001_`).
    pub port_id: String,
    /// `0000:00:1f.3`.
    pub sbdf: String,
    /// libvirt's name, `pci_0000_00_1f_3`.
    pub libvirt_name: String,
    /// Vendor name, or `unknown`.
    pub vendor: String,
    /// Product name, or `unknown`.
    pub product: String,
    /// Vendor id as libvirt gives it (`0x8086`), only `[A-Za-z0-9._-]` kept.
    pub vendor_id: String,
    /// Product id (`0x51c8`).
    pub product_id: String,
    /// Class, subclass and programming interface, six hex digits (`040300`).
    pub class: String,
}

impl PciDevice {
    /// The identity: `<vendor id>:<product id>::p<class>`.
    pub fn device_id(&self) -> String {
        format!(
            "{}:{}::{}",
            self.vendor_id,
            self.product_id,
            self.interface()
        )
    }

    /// The interface code, `p` and the class.
    pub fn interface(&self) -> String {
        format!("p{}", self.class)
    }

    /// Whether this is a bridge (class 06xx), which the Qube Manager does not offer.
    pub fn is_bridge(&self) -> bool {
        self.class.starts_with("06")
    }

    /// `(segment, bus, slot, function)` as hex strings.
    fn address(&self) -> Option<(&str, &str, &str, &str)> {
        let (seg, rest) = self.sbdf.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (slot, func) = rest.split_once('.')?;
        Some((seg, bus, slot, func))
    }

    /// The `<hostdev>` that gives this device to a domain of type `kind`; the Xen-only
    /// attributes carry the `no-strict-reset` and `permissive` options.
    pub fn hostdev_xml(&self, kind: &str, options: &[(String, String)]) -> String {
        let (seg, bus, slot, func) = self.address().unwrap_or(("0000", "00", "00", "0"));
        let opt = |k: &str| options.iter().any(|(n, v)| n == k && !v.is_empty());
        let xen = kind == "xen";
        format!(
            "<hostdev mode='subsystem' type='pci' managed='yes'{}><source{}><address domain='0x{seg}' bus='0x{bus}' slot='0x{slot}' function='0x{func}'/></source></hostdev>",
            if xen && opt("no-strict-reset") {
                " nostrictreset='yes'"
            } else {
                ""
            },
            if xen && opt("permissive") {
                " writeFiltering='no'"
            } else {
                ""
            },
        )
    }
}

/// Only the characters the reference keeps in vendor and product ids.
fn id_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `pci_SSSS_BB_DD_F` -> `(segment, bus, device, function)`, all lowercase hex.
fn parse_libvirt_name(name: &str) -> Option<(String, String, String, String)> {
    let rest = name.strip_prefix("pci_")?;
    let parts: Vec<&str> = rest.split('_').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [s, b, d, f] if hex(s, 4) && hex(b, 2) && hex(d, 2) && hex(f, 1) => Some((
            s.to_ascii_lowercase(),
            b.to_ascii_lowercase(),
            d.to_ascii_lowercase(),
            f.to_ascii_lowercase(),
        )),
        _ => None,
    }
}

/// `bb_dd.f` of a libvirt name, the port of a device whose bridges are unknown.
pub fn bus_address(name: &str) -> Option<String> {
    let (_, bus, dev, func) = parse_libvirt_name(name)?;
    Some(format!("{bus}_{dev}.{func}"))
}

/// What one node device description says.
struct Raw {
    name: String,
    parent: String,
    vendor: String,
    product: String,
    vendor_id: String,
    product_id: String,
    class: String,
}

fn raw(node: &Node) -> Option<Raw> {
    let name = node.child("name")?.text.trim().to_string();
    let cap = node
        .children("capability")
        .find(|c| c.attr("type") == Some("pci"))?;
    let text = |n: Option<&Node>| {
        n.map(|n| n.text.trim().to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "unknown".into())
    };
    let id = |n: Option<&Node>| {
        n.and_then(|n| n.attr("id"))
            .map(id_chars)
            .unwrap_or_else(|| "0000".into())
    };
    let class = cap
        .child("class")
        .map(|c| c.text.trim().trim_start_matches("0x").to_ascii_lowercase())
        .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "******".into());
    Some(Raw {
        name,
        parent: node
            .child("parent")
            .map(|p| p.text.trim().to_string())
            .unwrap_or_default(),
        vendor: text(cap.child("vendor")),
        product: text(cap.child("product")),
        vendor_id: id(cap.child("vendor")),
        product_id: id(cap.child("product")),
        class,
    })
}

/// The host's PCI devices from libvirt's node device descriptions, sorted by port id.
/// Unparsable descriptions and names libvirt does not give in the `pci_…` form are skipped
/// (the reference logs them as unsupported).
pub fn from_node_xml(descriptions: &[String]) -> Vec<PciDevice> {
    let raws: Vec<Raw> = descriptions
        .iter()
        .filter_map(|x| parse_tree(x.as_bytes()).ok())
        .filter_map(|n| raw(&n))
        .collect();
    let parent_of: HashMap<&str, &str> = raws
        .iter()
        .map(|r| (r.name.as_str(), r.parent.as_str()))
        .collect();
    let mut out: Vec<PciDevice> = raws
        .iter()
        .filter_map(|r| {
            let (seg, bus, dev, func) = parse_libvirt_name(&r.name)?;
            Some(PciDevice {
                port_id: port_path(&r.name, &parent_of)?,
                sbdf: format!("{seg}:{bus}:{dev}.{func}"),
                libvirt_name: r.name.clone(),
                vendor: r.vendor.clone(),
                product: r.product.clone(),
                vendor_id: r.vendor_id.clone(),
                product_id: r.product_id.clone(),
                class: r.class.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.port_id.cmp(&b.port_id));
    out
}

/// The PCI path of a device: its chain of bridges from the root bus, each step `bb_dd.f`
/// with the bus counted from the bridge above (so 00 behind a bridge), joined by `-`; the
/// segment is prefixed unless it is 0000. libvirt's parent links mirror sysfs, which is
/// what the reference walks.
fn port_path(name: &str, parent_of: &HashMap<&str, &str>) -> Option<String> {
    let mut chain = vec![name];
    let mut cur = name;
    while let Some(p) = parent_of.get(cur).copied() {
        if parse_libvirt_name(p).is_none() || chain.len() > 32 || chain.contains(&p) {
            break;
        }
        chain.push(p);
        cur = p;
    }
    chain.reverse();
    let (segment, ..) = parse_libvirt_name(chain[0])?;
    let mut steps = Vec::with_capacity(chain.len());
    for (i, n) in chain.iter().enumerate() {
        let (_, bus, dev, func) = parse_libvirt_name(n)?;
        let bus = if i == 0 { bus } else { "00".to_string() };
        steps.push(format!("{bus}_{dev}.{func}"));
    }
    let path = steps.join("-");
    Some(if segment == "0000" {
        path
    } else {
        format!("{segment}_{path}")
    })
}

/// libvirt names (`pci_…`) of the PCI devices in a domain's live XML.
pub fn hostdevs_in(domain_xml: &str) -> Vec<String> {
    let Ok(root) = parse_tree(domain_xml.as_bytes()) else {
        return Vec::new();
    };
    let Some(devices) = root.child("devices") else {
        return Vec::new();
    };
    devices
        .children("hostdev")
        .filter(|h| h.attr("type") == Some("pci"))
        .filter_map(|h| {
            let a = h.child("source")?.child("address")?;
            let part = |k: &str, w: usize| {
                let v = a.attr(k)?.trim_start_matches("0x").to_ascii_lowercase();
                Some(format!("{v:0>w$}"))
            };
            Some(format!(
                "pci_{}_{}_{}_{}",
                part("domain", 4)?,
                part("bus", 2)?,
                part("slot", 2)?,
                part("function", 1)?
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, parent: &str, class: &str, vendor: &str, product: &str) -> String {
        format!(
            "<device><name>{name}</name><parent>{parent}</parent><capability type='pci'>\
             <class>{class}</class><domain>0</domain><bus>0</bus><slot>0</slot><function>0</function>\
             <product id='0x1234'>{product}</product><vendor id='0x8086'>{vendor}</vendor>\
             </capability></device>"
        )
    }

    #[test]
    fn ports_ids_and_bridges() {
        let devs = from_node_xml(&[
            node(
                "pci_0000_00_1f_3",
                "computer",
                "0x040300",
                "Intel Corporation",
                "Audio",
            ),
            node(
                "pci_0000_00_1c_0",
                "computer",
                "0x060400",
                "Intel Corporation",
                "Root Port",
            ),
            node(
                "pci_0000_02_00_0",
                "pci_0000_00_1c_0",
                "0x028000",
                "Intel Corporation",
                "Wi-Fi 6",
            ),
            node("pci_0001_00_02_0", "computer", "0x030000", "", ""),
            "<device><name>usb_1</name><capability type='usb_device'/></device>".into(),
            "<not xml".into(),
        ]);
        let ports: Vec<&str> = devs.iter().map(|d| d.port_id.as_str()).collect();
        assert_eq!(
            ports,
            ["0001_00_02.0", "00_1c.0", "00_1c.0-00_00.0", "00_1f.3"]
        );
        let wifi = &devs[2];
        assert_eq!(wifi.sbdf, "0000:02:00.0");
        assert_eq!(wifi.device_id(), "0x8086:0x1234::p028000");
        assert!(devs[1].is_bridge());
        assert_eq!(devs[0].vendor, "unknown");
        assert_eq!(
            wifi.hostdev_xml("test", &[]),
            "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></source></hostdev>"
        );
        assert!(
            wifi.hostdev_xml("xen", &[("no-strict-reset".into(), "True".into())])
                .contains("nostrictreset='yes'")
        );
    }

    #[test]
    fn hostdevs_of_a_domain() {
        let xml = "<domain><devices><disk/><hostdev mode='subsystem' type='pci' managed='yes'>\
                   <source><address domain='0x0000' bus='0x02' slot='0x00' function='0x0'/></source>\
                   </hostdev><hostdev type='usb'/></devices></domain>";
        assert_eq!(hostdevs_in(xml), ["pci_0000_02_00_0"]);
        assert!(hostdevs_in("garbage").is_empty());
    }
}
