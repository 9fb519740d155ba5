//! Where the editor's files come from and go: the Policy Admin API (`policy.List`, `Get`,
//! `Replace`, `Remove` and their `policy.include.*` twins), served by `qubes-policy-admin`.
//! In dom0 the service program is run directly, as qrexec would run it (it validates every
//! change and checks the token); in a GUI qube the call goes through `qrexec-client-vm dom0`.
//! `QUBES_POLICY_ADMIN_PROGRAM` names the program to run directly (and is passed
//! `QREXEC_POLICY_DIR` from the environment). The legacy directory is read directly: it exists
//! only in dom0 and the API does not serve it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Which family of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/etc/qubes/policy.d/NAME.policy`.
    Policy,
    /// `/etc/qubes/policy.d/include/NAME`.
    Include,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Policy => "policy.",
            Kind::Include => "policy.include.",
        }
    }
}

/// A failed call: the exception class and message, as the service reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminFailure {
    /// `PolicyAdminSyntaxException` and the like; empty when the call did not run.
    pub class: String,
    /// The message.
    pub message: String,
}

/// How to reach the Policy Admin API.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The service program run directly, or `None` for `qrexec-client-vm dom0`.
    pub program: Option<PathBuf>,
    /// The legacy directory (`/etc/qubes-rpc/policy`).
    pub legacy_dir: PathBuf,
}

impl Backend {
    /// From the environment: `QUBES_POLICY_ADMIN_PROGRAM`, else the program in dom0 (where
    /// `/etc/qubes-release` exists), else qrexec; `QUBES_POLICY_LEGACY_DIR` for the legacy
    /// directory.
    pub fn from_env() -> Backend {
        let program = std::env::var_os("QUBES_POLICY_ADMIN_PROGRAM")
            .map(PathBuf::from)
            .or_else(|| {
                std::path::Path::new("/etc/qubes-release")
                    .exists()
                    .then(|| "qubes-policy-admin".into())
            });
        Backend {
            program,
            legacy_dir: std::env::var_os("QUBES_POLICY_LEGACY_DIR")
                .map_or_else(|| "/etc/qubes-rpc/policy".into(), PathBuf::from),
        }
    }

    fn call(&self, method: &str, arg: &str, payload: &[u8]) -> Result<Vec<u8>, AdminFailure> {
        let full = if arg.is_empty() {
            method.to_string()
        } else {
            format!("{method}+{arg}")
        };
        let mut cmd = match &self.program {
            Some(p) => {
                let mut c = Command::new(p);
                c.env("QREXEC_SERVICE_FULL_NAME", &full)
                    .env("QREXEC_REMOTE_DOMAIN", "dom0");
                c
            }
            None => {
                let mut c = Command::new("qrexec-client-vm");
                c.arg("dom0").arg(&full);
                c
            }
        };
        let failed = |message: String| AdminFailure {
            class: String::new(),
            message,
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(payload);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        Err(match err.split_once(' ') {
            Some((class, msg)) if class.starts_with("PolicyAdmin") => AdminFailure {
                class: class.to_string(),
                message: msg.to_string(),
            },
            _ => failed(err.trim_end().to_string()),
        })
    }

    /// The names of the files of a kind.
    pub fn list(&self, kind: Kind) -> Result<Vec<String>, AdminFailure> {
        let out = self.call(&format!("{}List", kind.prefix()), "", b"")?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// A file's token and text.
    pub fn get(&self, kind: Kind, name: &str) -> Result<(String, String), AdminFailure> {
        let out = self.call(&format!("{}Get", kind.prefix()), name, b"")?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (token, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        Ok((token.to_string(), body.to_string()))
    }

    /// Replaces a file if it still has `token` (`new` for a file that must not exist yet).
    pub fn replace(
        &self,
        kind: Kind,
        name: &str,
        token: &str,
        text: &str,
    ) -> Result<(), AdminFailure> {
        let mut payload = format!("{token}\n").into_bytes();
        payload.extend_from_slice(text.as_bytes());
        self.call(&format!("{}Replace", kind.prefix()), name, &payload)
            .map(|_| ())
    }

    /// Removes a file if it still has `token`.
    pub fn remove(&self, kind: Kind, name: &str, token: &str) -> Result<(), AdminFailure> {
        self.call(&format!("{}Remove", kind.prefix()), name, token.as_bytes())
            .map(|_| ())
    }

    /// The legacy files (name, text), sorted; none when the directory is missing.
    pub fn legacy_files(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(&self.legacy_dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_file())
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        if !qrexec_policy::loader::is_compat_file_name(&name) {
                            return None;
                        }
                        let text = std::fs::read_to_string(e.path()).ok()?;
                        Some((name, text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}
