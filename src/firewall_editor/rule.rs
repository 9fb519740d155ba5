//! One firewall rule as the structured editor sees it: allow or block, an address (a host
//! name, an IP address or a network; or the DNS servers), a protocol with ports or an ICMP
//! type, an expiry and a comment — read from and written as the Admin API's line
//! (`action=accept dsthost=qubes-os.org proto=tcp dstports=443-443`). A line with anything else
//! is kept as it is. Each field is checked as the daemon checks it, so a wrong value is said at
//! its field instead of the whole list being refused.

use crate::i18n::tr;

/// The protocols a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP (with ports).
    Tcp,
    /// UDP (with ports).
    Udp,
    /// ICMP (with a type).
    Icmp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// A rule, field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Allow (else block).
    pub accept: bool,
    /// Where to: a host name, an IP address or a network (`None`: anywhere).
    pub host: Option<String>,
    /// To the DNS servers (`specialtarget=dns`).
    pub dns: bool,
    /// The protocol (`None`: any).
    pub proto: Option<Proto>,
    /// First and last port (TCP and UDP).
    pub ports: Option<(u16, u16)>,
    /// ICMP type.
    pub icmp_type: Option<u8>,
    /// When it stops applying (Unix time).
    pub expire: Option<u64>,
    /// A comment.
    pub comment: Option<String>,
}

/// Characters the daemon accepts in an option (comments may have spaces too).
const SAFE: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:;,./-_[]";

impl Rule {
    /// The rule of an API line, or `None` when it has something this editor does not show
    /// (it is then kept as text).
    pub fn parse(line: &str) -> Option<Rule> {
        let (options, comment) = match line.find("comment=") {
            Some(i) => (&line[..i], Some(&line[i + "comment=".len()..])),
            None => (line, None),
        };
        let mut r = Rule {
            comment: comment.filter(|c| !c.is_empty()).map(str::to_string),
            ..Rule::default()
        };
        let mut action = false;
        for opt in options.split_whitespace() {
            let (k, v) = opt.split_once('=')?;
            match k {
                "action" => {
                    r.accept = match v {
                        "accept" => true,
                        "drop" => false,
                        _ => return None,
                    };
                    action = true;
                }
                "dsthost" | "dst4" | "dst6" => r.host = Some(v.to_string()),
                "specialtarget" if v == "dns" => r.dns = true,
                "proto" => {
                    r.proto = Some(match v {
                        "tcp" => Proto::Tcp,
                        "udp" => Proto::Udp,
                        "icmp" => Proto::Icmp,
                        _ => return None,
                    })
                }
                "dstports" => r.ports = Some(ports(v).ok()?),
                "icmptype" => r.icmp_type = Some(v.parse().ok()?),
                "expire" => r.expire = Some(v.parse().ok()?),
                _ => return None,
            }
        }
        action.then_some(r)
    }

    /// The API line, in the daemon's order of options.
    pub fn line(&self) -> String {
        let mut parts = vec![format!(
            "action={}",
            if self.accept { "accept" } else { "drop" }
        )];
        if let Some(e) = self.expire {
            parts.push(format!("expire={e}"));
        }
        if let Some(h) = &self.host {
            parts.push(format!("dsthost={h}"));
        }
        if let Some(p) = self.proto {
            parts.push(format!("proto={}", p.name()));
        }
        if self.dns {
            parts.push("specialtarget=dns".into());
        }
        if let (Some((a, b)), Some(Proto::Tcp | Proto::Udp)) = (self.ports, self.proto) {
            parts.push(format!("dstports={a}-{b}"));
        }
        if let (Some(t), Some(Proto::Icmp)) = (self.icmp_type, self.proto) {
            parts.push(format!("icmptype={t}"));
        }
        if let Some(c) = &self.comment {
            parts.push(format!("comment={c}"));
        }
        parts.join(" ")
    }

    /// Whether it is the temporary full access: allow everything until a time.
    pub fn is_full_access(&self) -> bool {
        self.accept
            && self.expire.is_some()
            && self.host.is_none()
            && !self.dns
            && self.proto.is_none()
            && self.comment.is_none()
    }

    /// The rule in a few words: "Allow TCP to qubes-os.org, ports 443".
    pub fn summary(&self) -> String {
        let what = match self.proto {
            None => tr("everything"),
            Some(Proto::Tcp) => "TCP".into(),
            Some(Proto::Udp) => "UDP".into(),
            Some(Proto::Icmp) => "ICMP".into(),
        };
        let to = if self.dns {
            tr("the DNS servers")
        } else {
            self.host.clone().unwrap_or_else(|| tr("anywhere"))
        };
        let mut text = if self.accept {
            tr("Allow %1 to %2")
        } else {
            tr("Block %1 to %2")
        }
        .replacen("%1", &what, 1)
        .replacen("%2", &to, 1);
        match (self.proto, self.ports, self.icmp_type) {
            (Some(Proto::Tcp | Proto::Udp), Some((a, b)), _) if a == b => {
                text.push_str(&tr(", port %d").replacen("%d", &a.to_string(), 1));
            }
            (Some(Proto::Tcp | Proto::Udp), Some((a, b)), _) => {
                text.push_str(
                    &tr(", ports %1 to %2")
                        .replacen("%1", &a.to_string(), 1)
                        .replacen("%2", &b.to_string(), 1),
                );
            }
            (Some(Proto::Icmp), _, Some(t)) => {
                text.push_str(&tr(", type %d").replacen("%d", &t.to_string(), 1));
            }
            _ => {}
        }
        text
    }
}

/// A port or a range ("443", "8000-8080"), as the daemon reads it.
pub fn ports(text: &str) -> Result<(u16, u16), String> {
    let text = text.trim();
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let number = |s: &str| -> Result<u32, String> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 5 {
            return Err(tr(
                "Enter a port (1 to 65535) or a range such as 8000-8080.",
            ));
        }
        s.parse()
            .map_err(|_| tr("Enter a port (1 to 65535) or a range such as 8000-8080."))
    };
    let (a, b) = (number(a)?, number(b)?);
    if !(1..=65535).contains(&a) || !(1..=65535).contains(&b) {
        return Err(tr("Ports go from 1 to 65535."));
    }
    if a > b {
        return Err(tr("The first port of a range comes before the last."));
    }
    Ok((a as u16, b as u16))
}

/// A destination as the daemon reads it: a host name, an IPv4 or IPv6 address, or a network
/// (address/prefix).
pub fn address(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || !text.chars().all(|c| SAFE.contains(c)) {
        return Err(tr(
            "Enter a host name, an IP address or a network such as 192.168.1.0/24.",
        ));
    }
    let (host, prefix) = match text.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    let max = if host.parse::<std::net::Ipv4Addr>().is_ok() {
        32
    } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
        128
    } else if prefix.is_none()
        && host
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c))
    {
        return Ok(text.to_string());
    } else {
        return Err(tr(
            "Enter a host name (lower case), an IP address or a network such as 192.168.1.0/24.",
        ));
    };
    if let Some(p) = prefix
        && !p.parse::<u32>().is_ok_and(|p| p <= max)
    {
        return Err(tr("The network's prefix length is at most %d.").replacen(
            "%d",
            &max.to_string(),
            1,
        ));
    }
    Ok(text.to_string())
}

/// An ICMP type, 0 to 255.
pub fn icmp_type(text: &str) -> Result<u8, String> {
    text.trim()
        .parse::<u8>()
        .map_err(|_| tr("Enter an ICMP type from 0 to 255."))
}

/// A comment the daemon keeps (letters, digits, spaces and `:;,./-_[]`).
pub fn comment(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().all(|c| SAFE.contains(c) || c == ' ') {
        Ok(Some(text.to_string()))
    } else {
        Err(tr(
            "A comment has only letters, digits, spaces and the characters : ; , . / - _ [ ]",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_in_the_daemons_order() {
        for line in [
            "action=accept dsthost=qubes-os.org proto=tcp dstports=443-443",
            "action=drop specialtarget=dns",
            "action=accept expire=1700000000",
            "action=accept dst4=10.0.0.0/8 proto=icmp icmptype=8 comment=ping the lab",
            "action=drop",
        ] {
            let r = Rule::parse(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(r.line(), line.replace("dst4=", "dsthost="), "{line}");
        }
        assert!(
            Rule::parse("action=accept dstname=x").is_none(),
            "kept as text"
        );
        assert!(Rule::parse("proto=tcp").is_none(), "no action");
        let full = Rule::parse("action=accept expire=1700000000").unwrap();
        assert!(full.is_full_access());
        assert_eq!(
            Rule::parse("action=accept dsthost=qubes-os.org proto=tcp dstports=443-443")
                .unwrap()
                .summary(),
            "Allow TCP to qubes-os.org, port 443"
        );
        assert_eq!(
            Rule::parse("action=drop proto=udp dstports=1000-2000")
                .unwrap()
                .summary(),
            "Block UDP to anywhere, ports 1000 to 2000"
        );
    }

    #[test]
    fn fields_are_checked_as_the_daemon_does() {
        assert_eq!(ports("443"), Ok((443, 443)));
        assert_eq!(ports(" 8000-8080 "), Ok((8000, 8080)));
        assert!(ports("70000").is_err());
        assert!(ports("0").is_err());
        assert!(ports("80-20").is_err());
        assert!(ports("http").is_err());
        assert_eq!(address("qubes-os.org"), Ok("qubes-os.org".into()));
        assert_eq!(address("10.0.0.0/8"), Ok("10.0.0.0/8".into()));
        assert_eq!(address("fd00::/64"), Ok("fd00::/64".into()));
        assert!(address("10.0.0.0/33").is_err());
        assert!(address("Example.ORG").is_err());
        assert!(address("a b").is_err());
        assert!(address("host/8").is_err());
        assert_eq!(icmp_type("8"), Ok(8));
        assert!(icmp_type("256").is_err());
        assert_eq!(comment("  "), Ok(None));
        assert!(comment("naïve").is_err());
    }
}
