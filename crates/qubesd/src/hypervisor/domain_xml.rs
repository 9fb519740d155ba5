//! libvirt domain XML generated from a qube's properties: name, uuid, memory, maxmem, vcpus,
//! virt_mode, kernel and kernelopts, disks from its volume configuration, a network
//! interface with its MAC when the qube has a netvm, and its required PCI devices.

use std::fmt::Write as _;

use crate::model::{Domain, State};
use crate::props;

/// Escaped for text and for the single-quoted attributes this file writes (`crate::xml`'s
/// escapers follow lxml, which quotes attributes with `"` and leaves `'` alone).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn num(st: &State, d: &Domain, prop: &str, fallback: u64) -> u64 {
    props::vm_get(st, d, prop)
        .and_then(|v| v.parse().ok())
        .unwrap_or(fallback)
}

/// The domain XML for `d`, for a libvirt domain of type `kind` (`test`, `kvm`, `xen`), with
/// `hostdevs` (the `<hostdev>` elements of its required PCI devices).
pub fn domain_xml(st: &State, d: &Domain, kind: &str, hostdevs: &[String]) -> String {
    let memory = num(st, d, "memory", 400).max(1);
    let maxmem = num(st, d, "maxmem", 0).max(memory);
    let vcpus = num(st, d, "vcpus", 2).max(1);
    let virt_mode = props::vm_get(st, d, "virt_mode").unwrap_or_else(|| "pvh".into());
    let kernel = props::vm_get(st, d, "kernel").unwrap_or_default();
    let kernelopts = props::vm_get(st, d, "kernelopts").unwrap_or_default();
    let mut x = String::with_capacity(2048);
    let _ = writeln!(x, "<domain type='{kind}'>");
    let _ = writeln!(x, "  <name>{}</name>", esc(&d.name));
    let _ = writeln!(x, "  <uuid>{}</uuid>", esc(d.uuid()));
    let _ = writeln!(x, "  <memory unit='MiB'>{maxmem}</memory>");
    let _ = writeln!(x, "  <currentMemory unit='MiB'>{memory}</currentMemory>");
    let _ = writeln!(x, "  <vcpu placement='static'>{vcpus}</vcpu>");
    x.push_str("  <os>\n");
    // The test driver only knows the hvm OS type; Xen distinguishes pv, pvh and hvm.
    let os_type = match (kind, virt_mode.as_str()) {
        ("xen", "pv") => "xen",
        ("xen", "pvh") => "xenpvh",
        _ => "hvm",
    };
    let _ = writeln!(x, "    <type arch='x86_64'>{os_type}</type>");
    if !kernel.is_empty() {
        let dir = st.host.kernels_dir.join(&kernel);
        let _ = writeln!(
            x,
            "    <kernel>{}</kernel>",
            esc(&dir.join("vmlinuz").to_string_lossy())
        );
        let initrd = dir.join("initramfs");
        if initrd.exists() {
            let _ = writeln!(x, "    <initrd>{}</initrd>", esc(&initrd.to_string_lossy()));
        }
        let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(&kernelopts));
    }
    x.push_str("  </os>\n");
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <devices>\n");
    let bus = if kind == "xen" { "xen" } else { "virtio" };
    let prefix = if kind == "xen" { "xvd" } else { "vd" };
    for (i, (_name, path, rw)) in crate::storage::block_devices(st, d).iter().enumerate() {
        let letter = (b'a' + (i as u8).min(25)) as char;
        let _ = writeln!(x, "    <disk type='file' device='disk'>");
        let _ = writeln!(x, "      <source file='{}'/>", esc(path));
        let _ = writeln!(x, "      <target dev='{prefix}{letter}' bus='{bus}'/>");
        if !rw {
            x.push_str("      <readonly/>\n");
        }
        x.push_str("    </disk>\n");
    }
    if props::vm_ref(st, d, "netvm").is_some() {
        let mac = props::vm_get(st, d, "mac").unwrap_or_default();
        x.push_str("    <interface type='ethernet'>\n");
        let _ = writeln!(x, "      <mac address='{}'/>", esc(&mac));
        x.push_str("    </interface>\n");
    }
    for h in hostdevs {
        let _ = writeln!(x, "    {h}");
    }
    x.push_str("  </devices>\n</domain>\n");
    x
}
