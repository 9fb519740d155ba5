//! Per-qube firewall rules and the qube's `firewall.xml` (admin-api.md §8.1, §6.4); the
//! methods are in [`crate::api::firewall`].
//!
//! A rule is parsed from the API line syntax into typed options; every malformed rule is the
//! reference's plain `ValueError`, a generic failure. Rules are stored in `firewall.xml`
//! (version 2) in the qube's directory, written atomically and read back on each Get.

use std::path::{Path, PathBuf};

use qubes_api::QubesError;

use crate::model::Domain;

/// Where a qube's rules live.
pub fn firewall_path(state_dir: &Path, d: &Domain) -> PathBuf {
    state_dir
        .join(d.class.dir_prefix())
        .join(&d.name)
        .join("firewall.xml")
}

/// One rule: option name (as stored) and canonical value, in storage order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    action: String,
    comment: Option<String>,
    expire: Option<u64>,
    /// (`dst4` | `dst6` | `dsthost`, value with prefix for addresses)
    dst: Option<(&'static str, String)>,
    proto: Option<String>,
    specialtarget: Option<String>,
    /// (first, last)
    dstports: Option<(u16, u16)>,
    icmptype: Option<u8>,
}

fn bad(why: impl Into<String>) -> QubesError {
    QubesError::silent(format!("invalid firewall rule: {}", why.into()))
}

const SAFE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:;,./-_[]";

fn option_chars(v: &str) -> Result<(), QubesError> {
    if v.chars().all(|c| SAFE.contains(c)) {
        Ok(())
    } else {
        Err(bad("strange characters in rule"))
    }
}

/// `DstHost`: an IPv6 or IPv4 address (optionally with a prefix) or a host name.
fn dst_host(v: &str) -> Result<(&'static str, String), QubesError> {
    option_chars(v)?;
    if v.matches('/').count() > 1 {
        return Err(bad(format!("Too many /: {v}")));
    }
    let (host, prefix) = match v.split_once('/') {
        Some((h, p)) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("bad prefix length"));
            }
            (
                h,
                Some(p.parse::<u32>().map_err(|_| bad("bad prefix length"))?),
            )
        }
        None => (v, None),
    };
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        let p = prefix.unwrap_or(128);
        if p > 128 {
            return Err(bad("netmask for IPv6 must be <= 128"));
        }
        return Ok(("dst6", format!("{host}/{p}")));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        let p = prefix.unwrap_or(32);
        if p > 32 {
            return Err(bad("netmask for IPv4 must be <= 32"));
        }
        return Ok(("dst4", format!("{host}/{p}")));
    }
    if prefix.is_some() {
        return Err(bad(format!("Invalid IP address: {host}")));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
    {
        return Err(bad("Invalid hostname"));
    }
    Ok(("dsthost", host.to_string()))
}

fn int_of(v: &str) -> Result<u64, QubesError> {
    let t = v.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("not a number: {v}")));
    }
    t.parse().map_err(|_| bad(format!("number too large: {v}")))
}

fn ports(v: &str) -> Result<(u16, u16), QubesError> {
    option_chars(v)?;
    let (a, b) = match v.matches('-').count() {
        0 => (v, v),
        1 => v.split_once('-').unwrap_or((v, v)),
        _ => return Err(bad(v)),
    };
    let (a, b) = (int_of(a)?, int_of(b)?);
    if a > 65535 || b > 65535 {
        return Err(bad("Ports out of range"));
    }
    if a > b {
        return Err(bad("Invalid port range"));
    }
    Ok((a as u16, b as u16))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Rule {
    /// Sets one option from its stored or API name; duplicates are refused by the caller.
    fn set(&mut self, key: &str, v: &str) -> Result<(), QubesError> {
        match key {
            "action" => {
                option_chars(v)?;
                if v != "accept" && v != "drop" {
                    return Err(bad(v));
                }
                self.action = v.into();
            }
            "proto" => {
                option_chars(v)?;
                if !matches!(v, "tcp" | "udp" | "icmp") {
                    return Err(bad(v));
                }
                self.proto = Some(v.into());
            }
            "dsthost" | "dst4" | "dst6" | "dstname" => self.dst = Some(dst_host(v)?),
            "dstports" => self.dstports = Some(ports(v)?),
            "icmptype" => {
                option_chars(v)?;
                if v.len() > 3 || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("bad ICMP type"));
                }
                let n: u32 = v.parse().map_err(|_| bad("bad ICMP type"))?;
                self.icmptype = Some(u8::try_from(n).map_err(|_| bad("ICMP type out of range"))?);
            }
            "specialtarget" => {
                option_chars(v)?;
                if v != "dns" {
                    return Err(bad(v));
                }
                self.specialtarget = Some(v.into());
            }
            "expire" => {
                option_chars(v)?;
                let n = int_of(v)?;
                // Python's datetime stops at year 9999.
                if n > 253_402_300_799 {
                    return Err(bad("year is out of range"));
                }
                self.expire = Some(n);
            }
            "comment" => {
                if !v.chars().all(|c| SAFE.contains(c) || c == ' ') {
                    return Err(bad("strange characters comment"));
                }
                self.comment = Some(v.into());
            }
            _ => return Err(bad("Unknown firewall option")),
        }
        Ok(())
    }

    /// The dependencies checked when a rule is built.
    fn check(&self) -> Result<(), QubesError> {
        if self.action.is_empty() {
            return Err(bad("Required property 'action' not set"));
        }
        let proto = self.proto.as_deref();
        if self.dstports.is_some() && !matches!(proto, Some("tcp" | "udp")) {
            return Err(bad("dstports valid only for 'tcp' and 'udp' protocols"));
        }
        if self.icmptype.is_some() && proto != Some("icmp") {
            return Err(bad("icmptype valid only for 'icmp' protocol"));
        }
        Ok(())
    }

    /// Parses one API line (`Rule.from_api_string`).
    pub fn from_api(untrusted: &str) -> Result<Rule, QubesError> {
        let (options, comment) = match untrusted.find("comment=") {
            Some(i) => (&untrusted[..i], Some(&untrusted[i + "comment=".len()..])),
            None => (untrusted, None),
        };
        let mut r = Rule::default();
        let mut seen: Vec<&str> = Vec::new();
        if let Some(c) = comment.filter(|c| !c.is_empty()) {
            r.set("comment", c)?;
            seen.push("comment");
        }
        let trimmed = crate::pycompat::py_strip(options);
        for opt in trimmed.split(' ') {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| bad("option without '='"))?;
            let key = if matches!(k, "dst4" | "dst6" | "dstname") {
                "dsthost"
            } else {
                k
            };
            if seen.contains(&key) {
                return Err(bad(format!("Option '{key}' already set")));
            }
            r.set(k, v)?;
            seen.push(key);
        }
        r.check()?;
        Ok(r)
    }

    /// Whether the rule has expired.
    pub fn expired(&self) -> bool {
        self.expire.is_some_and(|e| e < now())
    }

    /// The API line (`Rule.api_rule`): comment last, ports as a range.
    pub fn api_line(&self) -> String {
        let mut parts = vec![format!("action={}", self.action)];
        if let Some(e) = self.expire {
            parts.push(format!("expire={e}"));
        }
        if let Some((k, v)) = &self.dst {
            parts.push(format!("{k}={v}"));
        }
        if let Some(p) = &self.proto {
            parts.push(format!("proto={p}"));
        }
        if let Some(s) = &self.specialtarget {
            parts.push(format!("specialtarget={s}"));
        }
        if let Some((a, b)) = self.dstports {
            parts.push(format!("dstports={a}-{b}"));
        }
        if let Some(t) = self.icmptype {
            parts.push(format!("icmptype={t}"));
        }
        if let Some(c) = &self.comment {
            parts.push(format!("comment={c}"));
        }
        parts.join(" ")
    }

    /// Stored properties in the reference's property order.
    fn stored(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("action", self.action.clone())];
        if let Some(c) = &self.comment {
            out.push(("comment", c.clone()));
        }
        if let Some(e) = self.expire {
            out.push(("expire", e.to_string()));
        }
        if let Some((_, v)) = &self.dst {
            out.push(("dsthost", v.clone()));
        }
        if let Some(p) = &self.proto {
            out.push(("proto", p.clone()));
        }
        if let Some(s) = &self.specialtarget {
            out.push(("specialtarget", s.clone()));
        }
        if let Some((a, b)) = self.dstports {
            out.push((
                "dstports",
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                },
            ));
        }
        if let Some(t) = self.icmptype {
            out.push(("icmptype", t.to_string()));
        }
        out
    }
}

fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    crate::xml::escape_text(s, &mut out);
    out
}

/// `firewall.xml` (version 2) for `rules`, as lxml pretty-prints it; expired rules dropped.
pub fn to_xml(rules: &[Rule]) -> String {
    // No XML declaration: the reference's lxml leaves it out for UTF-8.
    let mut x = String::from("<firewall version=\"2\">\n");
    let live: Vec<&Rule> = rules.iter().filter(|r| !r.expired()).collect();
    if live.is_empty() {
        x.push_str("  <rules/>\n");
    } else {
        x.push_str("  <rules>\n");
        for r in live {
            x.push_str("    <rule>\n      <properties>\n");
            for (k, v) in r.stored() {
                x.push_str(&format!(
                    "        <property name=\"{k}\">{}</property>\n",
                    xml_text(&v)
                ));
            }
            x.push_str("      </properties>\n    </rule>\n");
        }
        x.push_str("  </rules>\n");
    }
    x.push_str("</firewall>\n");
    x
}

/// Parses `firewall.xml` (version 2). The file is dom0's own, but still checked: a broken
/// file is an error, never a crash.
pub fn from_xml(untrusted: &[u8]) -> Result<Vec<Rule>, String> {
    use quick_xml::events::Event as X;
    let mut reader = quick_xml::Reader::from_reader(untrusted);
    let mut buf = Vec::new();
    let mut rules = Vec::new();
    let mut cur: Option<Rule> = None;
    let mut prop: Option<String> = None;
    let mut text = String::new();
    let mut saw_root = false;
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(e.to_string()),
            Ok(X::Eof) => break,
            Ok(X::Start(e) | X::Empty(e)) => match e.name().as_ref() {
                b"firewall" => {
                    saw_root = true;
                    let version = e
                        .try_get_attribute("version")
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned());
                    if version.as_deref() != Some(b"2".as_ref()) {
                        return Err("unsupported firewall.xml version".into());
                    }
                }
                b"rule" => cur = Some(Rule::default()),
                b"property" => {
                    prop = e
                        .try_get_attribute("name")
                        .ok()
                        .flatten()
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                    text.clear();
                }
                _ => {}
            },
            Ok(X::Text(t)) => {
                if prop.is_some() {
                    text.push_str(&t.unescape().map_err(|e| e.to_string())?);
                }
            }
            Ok(X::End(e)) => match e.name().as_ref() {
                b"property" => {
                    if let (Some(r), Some(k)) = (cur.as_mut(), prop.take()) {
                        r.set(&k, &text).map_err(|e| e.to_string())?;
                    }
                }
                b"rule" => {
                    let r = cur.take().ok_or("stray </rule>")?;
                    r.check().map_err(|e| e.to_string())?;
                    rules.push(r);
                }
                _ => {}
            },
            Ok(_) => {}
        }
        buf.clear();
        if rules.len() > 100_000 {
            return Err("too many rules".into());
        }
    }
    if !saw_root {
        return Err("no <firewall> element".into());
    }
    Ok(rules)
}

/// The qube's rules: the file's, or the single default `action=accept`.
pub fn load(path: &Path) -> Result<Vec<Rule>, QubesError> {
    match std::fs::read(path) {
        Ok(bytes) => from_xml(&bytes)
            .map_err(|e| QubesError::qubes(format!("Failed to load firewall rules: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![Rule {
            action: "accept".into(),
            ..Rule::default()
        }]),
        Err(e) => Err(QubesError::qubes(format!(
            "Failed to load firewall rules: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> String {
        Rule::from_api(s)
            .map(|r| r.api_line())
            .unwrap_or_else(|_| "ERR".into())
    }

    #[test]
    fn api_lines_are_canonical() {
        assert_eq!(
            line("action=accept proto=tcp dsthost=example.com dstports=80 comment=hi there"),
            "action=accept dsthost=example.com proto=tcp dstports=80-80 comment=hi there"
        );
        assert_eq!(
            line("specialtarget=dns action=drop"),
            "action=drop specialtarget=dns"
        );
        assert_eq!(
            line("action=accept dst4=10.0.0.1"),
            "action=accept dst4=10.0.0.1/32"
        );
        assert_eq!(
            line("action=drop dst6=::1 proto=icmp icmptype=8"),
            "action=drop dst6=::1/128 proto=icmp icmptype=8"
        );
        assert_eq!(
            line("action=accept dsthost=10.1.0.0/16"),
            "action=accept dst4=10.1.0.0/16"
        );
        for bad in [
            "proto=tcp",
            "action=allow",
            "action=accept dstports=80",
            "action=accept proto=udp icmptype=3",
            "action=accept dst4=1.2.3.4 dsthost=a",
            "action=accept dsthost=Example.com",
            "action=accept dsthost=1.2.3.4/33",
            "action=accept proto=tcp dstports=90-80",
            "action=accept proto=tcp dstports=70000",
            "action=accept colour=red",
            "action=accept comment=naïve",
            "",
            "action=accept  proto=tcp",
        ] {
            assert_eq!(line(bad), "ERR", "{bad}");
        }
    }

    #[test]
    fn xml_round_trip() {
        let rules: Vec<Rule> = [
            "action=accept proto=tcp dsthost=example.com dstports=80-90 comment=web",
            "action=drop dst4=10.0.0.0/8",
            "action=drop specialtarget=dns",
        ]
        .iter()
        .map(|l| Rule::from_api(l).unwrap())
        .collect();
        let x = to_xml(&rules);
        // As the reference writes it: no XML declaration.
        assert!(x.starts_with(
            "<firewall version=\"2\">\n  <rules>\n    <rule>\n      <properties>\n        <property name=\"action\">accept</property>\n        <property name=\"comment\">web</property>\n        <property name=\"dsthost\">example.com</property>\n        <property name=\"proto\">tcp</property>\n        <property name=\"dstports\">80-90</property>\n"
        ), "{x}");
        assert_eq!(from_xml(x.as_bytes()).unwrap(), rules);
        // Files written with a declaration (by earlier versions) still load.
        let declared = format!("<?xml version='1.0' encoding='UTF-8'?>\n{x}");
        assert_eq!(from_xml(declared.as_bytes()).unwrap(), rules);
        assert_eq!(
            to_xml(&[]),
            "<firewall version=\"2\">\n  <rules/>\n</firewall>\n"
        );
        assert!(from_xml(b"<firewall version=\"1\"/>").is_err());
        assert!(from_xml(b"<firewall version=\"2\"><rules><rule><properties><property name=\"action\">maybe</property></properties></rule></rules></firewall>").is_err());
    }
}
