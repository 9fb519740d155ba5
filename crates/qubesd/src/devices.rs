//! Persistent device assignments as stored in `qubes.xml`, listed by
//! `admin.vm.device.<class>.Assigned` (admin-api.md §8.3, §8.4). Attaching devices needs
//! device backends and is not here yet; this read side is what `qvm-clone` and
//! `qvm-device ... list` need to see a qube's assignments.

use qubes_api::QubesError;

use crate::core::{Ctx, Reply};
use crate::model::DeviceXml;

/// Device classes qubesd serves (also `admin.deviceclass.List`).
pub const CLASSES: &[&str] = &["block", "pci"];

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "\\'"))
}

fn attr<'a>(d: &'a DeviceXml, k: &str) -> Option<&'a str> {
    d.attrs
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
}

/// `(key, line)` of one assignment: `<backend>+<port>:<device_id> <serialization>`.
fn assignment_line(class: &str, d: &DeviceXml) -> (String, String) {
    let backend = attr(d, "backend-domain").unwrap_or("");
    let port = attr(d, "id").unwrap_or("");
    let identity = attr(d, "identity")
        .or_else(|| {
            d.options
                .iter()
                .find(|(k, _)| k == "identity")
                .map(|(_, v)| v.as_str())
        })
        .unwrap_or("*");
    // Legacy `required="yes|no"` means required / auto-attach.
    let mode = attr(d, "mode").unwrap_or(match attr(d, "required") {
        Some("yes") => "required",
        _ => "auto-attach",
    });
    let key = format!("{backend}+{port}:{identity}");
    let mut line = format!(
        "{key} device_id={} port_id={} devclass={} backend_domain={} mode={}",
        quote(identity),
        quote(port),
        quote(class),
        quote(backend),
        quote(mode)
    );
    for (k, v) in d.options.iter().filter(|(k, _)| k != "identity") {
        line.push_str(&format!(" _{k}={}", quote(v)));
    }
    (key, line)
}

/// `admin.vm.device.<class>.Assigned`.
pub(crate) fn assigned(c: &mut Ctx) -> Result<Reply, QubesError> {
    let class = c
        .method
        .strip_prefix("admin.vm.device.")
        .and_then(|m| m.strip_suffix(".Assigned"))
        .unwrap_or("");
    let d = c.dest_domain();
    let mut lines: Vec<(String, String)> = d
        .devices
        .iter()
        .filter(|g| g.class == class)
        .flat_map(|g| g.devices.iter().map(|dev| assignment_line(class, dev)))
        .filter(|(key, _)| c.arg.is_empty() || key.split(':').next() == Some(c.arg.as_str()))
        .collect();
    lines.sort();
    crate::handlers::ok(crate::handlers::lines(lines.into_iter().map(|(_, l)| l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_serialization() {
        let d = DeviceXml {
            attrs: vec![
                ("backend-domain".into(), "dom0".into()),
                ("id".into(), "00_1f.3".into()),
                ("mode".into(), "required".into()),
                ("identity".into(), "*".into()),
            ],
            options: vec![("no-strict-reset".into(), "True".into())],
        };
        assert_eq!(
            assignment_line("pci", &d).1,
            "dom0+00_1f.3:* device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'"
        );
        let legacy = DeviceXml {
            attrs: vec![
                ("backend-domain".into(), "sys-usb".into()),
                ("id".into(), "sda".into()),
                ("required".into(), "no".into()),
            ],
            options: vec![("read-only".into(), "it's".into())],
        };
        assert_eq!(
            assignment_line("block", &legacy).1,
            "sys-usb+sda:* device_id='*' port_id='sda' devclass='block' backend_domain='sys-usb' mode='auto-attach' _read-only='it\\'s'"
        );
    }
}
