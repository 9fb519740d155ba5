//! Writing `qubes.xml` the way the reference does (2-space indent, no declaration).

use std::fmt::Write as _;

use crate::model::{Domain, State};
use crate::props;

fn open_tag(out: &mut String, indent: usize, name: &str, attrs: &[(&str, &str)], empty: bool) {
    for _ in 0..indent {
        out.push_str("  ");
    }
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        let _ = write!(out, " {k}=\"");
        crate::xml::escape_attr(v, out);
        out.push('"');
    }
    out.push_str(if empty { "/>\n" } else { ">" });
}

fn text_elem(out: &mut String, indent: usize, name: &str, attrs: &[(&str, &str)], text: &str) {
    open_tag(out, indent, name, attrs, false);
    crate::xml::escape_text(text, out);
    let _ = writeln!(out, "</{name}>");
}

fn close_tag(out: &mut String, indent: usize, name: &str) {
    for _ in 0..indent {
        out.push_str("  ");
    }
    let _ = writeln!(out, "</{name}>");
}

/// Serialises `state` the way the reference writes `qubes.xml` (2-space indent, no declaration).
pub fn serialize(st: &State) -> String {
    let mut out = head(st);
    out.reserve(st.domains.len() * 2048 + TAIL.len());
    for d in st.domains_sorted() {
        write_domain(&mut out, d);
    }
    out.push_str(TAIL);
    out
}

/// What follows the `<domain>` elements: the end of the file.
pub const TAIL: &str = "  </domains>\n</qubes>\n";

/// The file up to its first `<domain>` element: labels, pools, global properties, and the
/// opening `<domains>` tag.
pub fn head(st: &State) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("<qubes>\n  <labels>\n");
    for l in st.labels.values() {
        let id = format!("label-{}", l.index);
        text_elem(
            &mut out,
            2,
            "label",
            &[("id", &id), ("color", &l.color)],
            &l.name,
        );
    }
    out.push_str("  </labels>\n");
    if st.pools.is_empty() {
        out.push_str("  <pools/>\n");
    } else {
        out.push_str("  <pools>\n");
        for p in &st.pools {
            let attrs: Vec<(&str, &str)> = p
                .attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            open_tag(&mut out, 2, "pool", &attrs, true);
        }
        out.push_str("  </pools>\n");
    }
    let globals: Vec<(&str, &str)> = props::global_props()
        .iter()
        .filter_map(|d| st.global.get(d.name).map(|v| (d.name, v.as_str())))
        .collect();
    write_props(&mut out, 1, &globals);
    out.push_str("  <domains>\n");
    out
}

/// A qube's `<domain>` element, as [`serialize`] writes it.
pub fn domain(d: &Domain) -> String {
    let mut text = String::with_capacity(2048);
    write_domain(&mut text, d);
    text
}

fn write_props(out: &mut String, indent: usize, list: &[(&str, &str)]) {
    if list.is_empty() {
        open_tag(out, indent, "properties", &[], true);
        return;
    }
    open_tag(out, indent, "properties", &[], false);
    out.push('\n');
    for (k, v) in list {
        text_elem(out, indent + 1, "property", &[("name", k)], v);
    }
    close_tag(out, indent, "properties");
}

fn write_domain(out: &mut String, d: &Domain) {
    let id = format!("domain-{}", d.qid);
    open_tag(
        out,
        2,
        "domain",
        &[("id", &id), ("class", d.class.name())],
        false,
    );
    out.push('\n');
    let list: Vec<(&str, &str)> = props::vm_props(d.class)
        .iter()
        .filter_map(|p| d.props.get(p.name).map(|v| (p.name, v.as_str())))
        .collect();
    write_props(out, 3, &list);
    if d.features.is_empty() {
        open_tag(out, 3, "features", &[], true);
    } else {
        open_tag(out, 3, "features", &[], false);
        out.push('\n');
        for (k, v) in &d.features {
            text_elem(out, 4, "feature", &[("name", k)], v);
        }
        close_tag(out, 3, "features");
    }
    if d.tags.is_empty() {
        open_tag(out, 3, "tags", &[], true);
    } else {
        open_tag(out, 3, "tags", &[], false);
        out.push('\n');
        for t in &d.tags {
            open_tag(out, 4, "tag", &[("name", t)], true);
        }
        close_tag(out, 3, "tags");
    }
    for dc in &d.devices {
        if dc.devices.is_empty() {
            open_tag(out, 3, "devices", &[("class", &dc.class)], true);
            continue;
        }
        open_tag(out, 3, "devices", &[("class", &dc.class)], false);
        out.push('\n');
        for dev in &dc.devices {
            let attrs: Vec<(&str, &str)> = dev
                .attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if dev.options.is_empty() {
                open_tag(out, 4, "device", &attrs, true);
            } else {
                open_tag(out, 4, "device", &attrs, false);
                out.push('\n');
                for (k, v) in &dev.options {
                    text_elem(out, 5, "option", &[("name", k)], v);
                }
                close_tag(out, 4, "device");
            }
        }
        close_tag(out, 3, "devices");
    }
    if d.class.is_local_qube() {
        if d.volumes.is_empty() {
            open_tag(out, 3, "volume-config", &[], true);
        } else {
            open_tag(out, 3, "volume-config", &[], false);
            out.push('\n');
            for v in &d.volumes {
                let attrs: Vec<(&str, &str)> = v
                    .attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                open_tag(out, 4, "volume", &attrs, true);
            }
            close_tag(out, 3, "volume-config");
        }
    }
    close_tag(out, 2, "domain");
}
