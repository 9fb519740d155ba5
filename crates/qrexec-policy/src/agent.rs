//! The GUI domain's policy agent: `policy.Ask` (the user chooses a target or denies) and
//! `policy.Notify` (a desktop notification), in the reference's formats
//! (qubes-core-qrexec `qrexec/server.py`, `qrexec/tools/qrexec_policy_agent.py`).
//!
//! A request is JSON as Python's `json.dumps` writes it. In dom0 it goes to a Unix socket
//! (`<rpc dir>/policy.Ask`) after the header `policy.Ask dom0 name dom0\0`; to a GUI qube it is
//! a qrexec call (`qrexec-client -d GUIVM "DEFAULT:QUBESRPC policy.Ask dom0"`, JSON on stdin).
//! The answer is ASCII: `allow:<target>` or `deny` for Ask, empty for Notify.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest answer read from an agent (`allow:` and a qube name).
const MAX_ANSWER: u64 = 4096;
/// Largest request an agent accepts (the icons of thousands of qubes fit).
pub const MAX_REQUEST: u64 = 4 * 1024 * 1024;

/// What `policy.Ask` carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AskParams {
    /// The calling qube.
    pub source: String,
    /// The service.
    pub service: String,
    /// Its argument (`+` when none).
    pub argument: String,
    /// What the user may choose.
    pub targets: Vec<String>,
    /// Pre-selected target (empty: none).
    pub default_target: String,
    /// Icon names by qube (`appvm-red`; `@dispvm:X` gets `dispvm-…`), for label colours.
    pub icons: BTreeMap<String, String>,
}

/// What `policy.Notify` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyParams {
    /// `allow`, `deny` or `fail`.
    pub resolution: String,
    /// The service.
    pub service: String,
    /// Its argument.
    pub argument: String,
    /// The calling qube.
    pub source: String,
    /// The target.
    pub target: String,
}

/// A JSON string as Python's `json.dumps` writes it (ASCII only).
fn py_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl AskParams {
    /// The request body, keys in the reference's order.
    pub fn to_json(&self) -> String {
        let targets: Vec<String> = self.targets.iter().map(|t| py_json_str(t)).collect();
        let icons: Vec<String> = self
            .icons
            .iter()
            .map(|(k, v)| format!("{}: {}", py_json_str(k), py_json_str(v)))
            .collect();
        format!(
            "{{\"source\": {}, \"service\": {}, \"argument\": {}, \"targets\": [{}], \"default_target\": {}, \"icons\": {{{}}}}}",
            py_json_str(&self.source),
            py_json_str(&self.service),
            py_json_str(&self.argument),
            targets.join(", "),
            py_json_str(&self.default_target),
            icons.join(", ")
        )
    }

    /// Parses a request body (untrusted: it comes from dom0 over qrexec, but is checked).
    pub fn from_json(untrusted: &str) -> Result<AskParams, String> {
        let v: serde_json::Value = serde_json::from_str(untrusted).map_err(|e| e.to_string())?;
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("missing {k}"))
        };
        let targets = v
            .get("targets")
            .and_then(|t| t.as_array())
            .ok_or("missing targets")?
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or("a target is not a string")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let icons = v
            .get("icons")
            .and_then(|i| i.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(AskParams {
            source: s("source")?,
            service: s("service")?,
            argument: s("argument")?,
            targets,
            default_target: s("default_target").unwrap_or_default(),
            icons,
        })
    }
}

impl NotifyParams {
    /// The request body, keys in the reference's order.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"resolution\": {}, \"service\": {}, \"argument\": {}, \"source\": {}, \"target\": {}}}",
            py_json_str(&self.resolution),
            py_json_str(&self.service),
            py_json_str(&self.argument),
            py_json_str(&self.source),
            py_json_str(&self.target)
        )
    }

    /// Parses a request body.
    pub fn from_json(untrusted: &str) -> Result<NotifyParams, String> {
        let v: serde_json::Value = serde_json::from_str(untrusted).map_err(|e| e.to_string())?;
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("missing {k}"))
        };
        let resolution = s("resolution")?;
        if !["allow", "deny", "fail"].contains(&resolution.as_str()) {
            return Err(format!("unknown resolution {resolution:?}"));
        }
        Ok(NotifyParams {
            resolution,
            service: s("service")?,
            argument: s("argument")?,
            source: s("source")?,
            target: s("target")?,
        })
    }
}

/// Splits a socket request (`<service> <source domain> …\0<json>`) into service, source
/// domain and body.
pub fn parse_socket_request(untrusted: &[u8]) -> Result<(String, String, String), String> {
    let text = std::str::from_utf8(untrusted).map_err(|_| "not ASCII")?;
    if !text.is_ascii() {
        return Err("not ASCII".into());
    }
    let (header, body) = text.split_once('\0').ok_or("no header")?;
    let mut parts = header.split(' ');
    let service = parts.next().unwrap_or_default();
    let source = parts.next().ok_or("no source domain in the header")?;
    Ok((service.to_string(), source.to_string(), body.to_string()))
}

/// The user's answer to an Ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Allowed, to this target.
    Allow(String),
    /// Denied.
    Deny,
    /// Anything else (the reference's "invalid response").
    Invalid(String),
}

impl Answer {
    /// Reads an agent's answer.
    pub fn parse(text: &str) -> Answer {
        if text == "deny" {
            Answer::Deny
        } else if let Some(t) = text.strip_prefix("allow:") {
            Answer::Allow(t.to_string())
        } else {
            Answer::Invalid(text.to_string())
        }
    }

    /// The answer as the agent writes it.
    pub fn to_wire(&self) -> String {
        match self {
            Answer::Allow(t) => format!("allow:{t}"),
            Answer::Deny | Answer::Invalid(_) => "deny".into(),
        }
    }
}

/// Reaches the agents of GUI domains.
pub trait Agent: Send + Sync {
    /// Asks the user in `guivm`; the agent's raw answer, or why it could not be asked.
    fn ask(&self, guivm: &str, params: &AskParams) -> Result<String, String>;
    /// Sends a notification (failures are only logged, as the reference does).
    fn notify(&self, guivm: &str, params: &NotifyParams);
}

/// The reference's transport: dom0's agent on a local socket in `rpc_dir`, a GUI qube's
/// through `qrexec-client`.
#[derive(Debug, Clone)]
pub struct QrexecAgent {
    /// Where dom0's agent sockets are (`/etc/qubes-rpc`: `policy.Ask`, `policy.Notify`).
    pub rpc_dir: PathBuf,
    /// The qrexec client for other GUI domains (`/usr/bin/qrexec-client`).
    pub qrexec_client: PathBuf,
    /// How long to wait for an answer (the prompt has its own timeout).
    pub timeout: Duration,
}

impl Default for QrexecAgent {
    fn default() -> Self {
        QrexecAgent {
            rpc_dir: "/etc/qubes-rpc".into(),
            qrexec_client: "/usr/bin/qrexec-client".into(),
            timeout: Duration::from_secs(600),
        }
    }
}

impl QrexecAgent {
    fn call(&self, guivm: &str, service: &str, body: &str) -> Result<String, String> {
        if guivm == "dom0" {
            let path = self.rpc_dir.join(service);
            let err = |e: std::io::Error| format!("{}: {e}", path.display());
            let mut s = UnixStream::connect(&path).map_err(err)?;
            s.set_read_timeout(Some(self.timeout)).map_err(err)?;
            s.write_all(format!("{service} dom0 name dom0\0").as_bytes())
                .map_err(err)?;
            s.write_all(body.as_bytes()).map_err(err)?;
            s.shutdown(std::net::Shutdown::Write).map_err(err)?;
            let mut out = Vec::new();
            s.take(MAX_ANSWER).read_to_end(&mut out).map_err(err)?;
            return String::from_utf8(out).map_err(|_| "answer is not ASCII".into());
        }
        let mut child = Command::new(&self.qrexec_client)
            .arg("-d")
            .arg(guivm)
            .arg(format!("DEFAULT:QUBESRPC {service} dom0"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.qrexec_client.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(body.as_bytes());
        }
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = stdout.take(MAX_ANSWER).read_to_end(&mut out);
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("{service} in {guivm} failed: {status}"));
        }
        String::from_utf8(out).map_err(|_| "answer is not ASCII".into())
    }
}

impl Agent for QrexecAgent {
    fn ask(&self, guivm: &str, params: &AskParams) -> Result<String, String> {
        self.call(guivm, "policy.Ask", &params.to_json())
    }

    fn notify(&self, guivm: &str, params: &NotifyParams) {
        if let Err(e) = self.call(guivm, "policy.Notify", &params.to_json()) {
            eprintln!("error calling qrexec-policy-agent in {guivm}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_as_python_writes_it() {
        let p = AskParams {
            source: "work".into(),
            service: "qubes.FileCopy".into(),
            argument: "+".into(),
            targets: vec!["a\"b".into(), "é".into()],
            default_target: String::new(),
            icons: [("work".to_string(), "appvm-blue".to_string())].into(),
        };
        assert_eq!(
            p.to_json(),
            r#"{"source": "work", "service": "qubes.FileCopy", "argument": "+", "targets": ["a\"b", "\u00e9"], "default_target": "", "icons": {"work": "appvm-blue"}}"#
        );
        assert_eq!(AskParams::from_json(&p.to_json()).unwrap(), p);
        assert_eq!(py_json_str("\u{1f600}\u{1}"), "\"\\ud83d\\ude00\\u0001\"");
        let n = NotifyParams {
            resolution: "deny".into(),
            service: "s".into(),
            argument: "+".into(),
            source: "a".into(),
            target: "".into(),
        };
        assert_eq!(
            n.to_json(),
            r#"{"resolution": "deny", "service": "s", "argument": "+", "source": "a", "target": ""}"#
        );
        assert_eq!(NotifyParams::from_json(&n.to_json()).unwrap(), n);
        assert!(NotifyParams::from_json(&n.to_json().replace("deny", "boom")).is_err());
        assert_eq!(
            parse_socket_request(b"policy.Ask dom0 name dom0\0{}").unwrap(),
            ("policy.Ask".into(), "dom0".into(), "{}".into())
        );
        assert_eq!(Answer::parse("allow:work"), Answer::Allow("work".into()));
        assert_eq!(Answer::parse("deny"), Answer::Deny);
        assert!(matches!(Answer::parse("yes"), Answer::Invalid(_)));
    }
}
