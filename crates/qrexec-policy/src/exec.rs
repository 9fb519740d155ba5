//! `qrexec-policy-exec` (policy-tools-contract.md §1.1): one request evaluated against policy
//! directories and the system information; result text on stdout, notifications as
//! `policy.Notify …` lines. With an [`Agent`], an ask is put to the user in the source's GUI
//! domain and notifications are sent there, as the reference does; without one (test mode)
//! the ask is printed as an ask block.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::agent::{Agent, Answer, AskParams, NotifyParams};

use crate::eval::{Denied, Request, Resolution, SystemInfo, allow_output, evaluate};
use crate::parser::{ErrorKind, FileSystem, load_policy_dirs};

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Policy directories, highest priority first.
    pub policy_dirs: Vec<PathBuf>,
    /// Directory `!compat-4.0` reads.
    pub legacy_dir: PathBuf,
    /// The system.
    pub info: SystemInfo,
    /// Print only allow/deny; ask counts as deny; no notifications.
    pub just_evaluate: bool,
    /// Answer asks with "yes, to the intended target".
    pub assume_yes: bool,
    /// A RemoteVM relayed by the source.
    pub requested_source: Option<String>,
    /// Calling qube, as given.
    pub source: String,
    /// Intended target, as given.
    pub target: String,
    /// `SERVICE[+ARGUMENT]`.
    pub service_and_arg: String,
    /// The GUI domains' agents; `None` in test mode.
    pub agent: Option<AgentHandle>,
}

/// A shared [`Agent`] in [`Options`].
#[derive(Clone)]
pub struct AgentHandle(pub Arc<dyn Agent>);

impl fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentHandle")
    }
}

/// What a run prints and returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// stdout (the result text and a newline).
    pub stdout: String,
    /// `policy.Notify …` lines for stderr.
    pub notifications: Vec<String>,
    /// 0 for allow, 1 otherwise.
    pub exit: i32,
}

/// Runs one evaluation; with an agent, notifications are delivered to it.
pub fn run(o: &Options) -> Outcome {
    let sent = RefCell::new(Vec::new());
    let out = run_inner(o, &sent);
    if let Some(agent) = &o.agent {
        for (guivm, params) in sent.into_inner() {
            agent.0.notify(&guivm, &params);
        }
    }
    out
}

fn run_inner(o: &Options, sent: &RefCell<Vec<(String, NotifyParams)>>) -> Outcome {
    let mut notes = Vec::new();
    let (service, argument) = match o.service_and_arg.split_once('+') {
        Some((s, a)) => (s.to_string(), format!("+{a}")),
        None => (o.service_and_arg.clone(), "+".to_string()),
    };
    let guivm_of = |q: &str| o.info.get(q).and_then(|d| d.guivm.clone());
    let notify = |notes: &mut Vec<String>, g: &str, resolution: &str, src: &str, target: &str| {
        notes.push(format!(
            "policy.Notify guivm={g} resolution={resolution} service={service} argument={argument} source={src} target={target}"
        ));
        sent.borrow_mut().push((
            g.to_string(),
            NotifyParams {
                resolution: resolution.into(),
                service: service.clone(),
                argument: argument.clone(),
                source: src.into(),
                target: target.into(),
            },
        ));
    };
    let deny_out = |notes: &mut Vec<String>, d: &Denied| {
        if d.notify
            && !o.just_evaluate
            && let Some(g) = guivm_of(&o.source)
        {
            notify(notes, &g, "deny", &o.source, &o.target);
        }
    };
    let finish_deny = |notes: Vec<String>| Outcome {
        stdout: "result=deny\n".into(),
        notifications: notes,
        exit: 1,
    };

    // In the reference's order: the policy is loaded, then the request is built (the intended
    // target checked), then a relayed source is checked.
    let fs = FileSystem {
        compat_dir: o.legacy_dir.clone(),
    };
    let rules = match load_policy_dirs(&fs, &o.policy_dirs) {
        Ok(r) => r,
        Err(e) => {
            // A syntax error denies silently; a policy that cannot be read at all notifies.
            deny_out(
                &mut notes,
                &Denied {
                    reason: e.to_string(),
                    notify: e.kind == ErrorKind::Unreadable,
                },
            );
            return finish_deny(notes);
        }
    };
    let req = match Request::new(&o.service_and_arg, &o.source, &o.target, &o.info) {
        Ok(r) => r,
        Err(d) => {
            deny_out(&mut notes, &d);
            return finish_deny(notes);
        }
    };
    // The effective source: a RemoteVM relayed by the caller, if one is named.
    let (source, req) = match &o.requested_source {
        None => (o.source.clone(), req),
        Some(rs) => {
            let why = match o.info.get(rs) {
                None => Some(format!("unknown requested source qube {rs:?}")),
                Some(d) if d.class != "RemoteVM" => Some(format!(
                    "{rs}: requested source is only authorized for RemoteVM"
                )),
                Some(d) if d.relayvm.as_deref() != Some(o.source.as_str()) => {
                    Some(format!("{} is not a relay for {rs}", o.source))
                }
                _ => None,
            };
            if let Some(reason) = why {
                deny_out(
                    &mut notes,
                    &Denied {
                        reason,
                        notify: true,
                    },
                );
                return finish_deny(notes);
            }
            (
                rs.clone(),
                Request {
                    source: rs.clone(),
                    ..req
                },
            )
        }
    };
    let requested_target = match &req.target {
        crate::eval::Target::Default => "@default".to_string(),
        crate::eval::Target::AdminVm(s) | crate::eval::Target::Qube(s) => s.clone(),
        crate::eval::Target::DispVm => "@dispvm".into(),
        crate::eval::Target::DispVmFor(x) => format!("@dispvm:{x}"),
    };
    let allowed = |notes: &mut Vec<String>,
                   target: &str,
                   user: Option<&str>,
                   autostart: bool,
                   rule_notify: bool|
     -> Outcome {
        if o.just_evaluate {
            return Outcome {
                stdout: "result=allow\n".into(),
                notifications: Vec::new(),
                exit: 0,
            };
        }
        if rule_notify && let Some(g) = guivm_of(&source) {
            notify(notes, &g, "allow", &source, target);
        }
        match allow_output(&req, target, user, autostart, o.requested_source.as_deref()) {
            Ok(block) => Outcome {
                stdout: format!("{block}\n"),
                notifications: std::mem::take(notes),
                exit: 0,
            },
            Err(d) => {
                deny_out(notes, &d);
                finish_deny(std::mem::take(notes))
            }
        }
    };
    match evaluate(&rules, &req) {
        Resolution::Allow {
            target,
            user,
            autostart,
            notify: n,
            ..
        } => allowed(&mut notes, &target, user.as_deref(), autostart, n),
        Resolution::Deny(d) => {
            deny_out(&mut notes, &d);
            finish_deny(notes)
        }
        Resolution::Ask {
            targets,
            default_target,
            user,
            autostart,
            notify: n,
            ..
        } => {
            if o.assume_yes {
                if targets.contains(&requested_target) {
                    return allowed(&mut notes, &requested_target, user.as_deref(), autostart, n);
                }
                let d = Denied {
                    reason: format!("target {requested_target} is not a valid choice"),
                    notify: true,
                };
                deny_out(&mut notes, &d);
                return finish_deny(notes);
            }
            if o.just_evaluate {
                return finish_deny(notes);
            }
            // The reference looks the (effective) source up here and crashes on an unknown one.
            let Some(guivm) = guivm_of(&source) else {
                return finish_deny(notes);
            };
            let mut sorted = targets;
            sorted.sort();
            if let Some(agent) = &o.agent {
                let params = AskParams {
                    source: source.clone(),
                    service: service.clone(),
                    argument: argument.clone(),
                    targets: sorted.clone(),
                    default_target: default_target.clone().unwrap_or_default(),
                    icons: o.info.icons(),
                };
                let denied = |notes: &mut Vec<String>, reason: &str, notify: bool| {
                    deny_out(
                        notes,
                        &Denied {
                            reason: reason.into(),
                            notify,
                        },
                    );
                };
                return match agent.0.ask(&guivm, &params).map(|a| Answer::parse(&a)) {
                    Ok(Answer::Allow(t)) if sorted.contains(&t) => {
                        allowed(&mut notes, &t, user.as_deref(), autostart, n)
                    }
                    Ok(Answer::Allow(t)) => {
                        denied(
                            &mut notes,
                            &format!("target {t} is not a valid choice"),
                            true,
                        );
                        finish_deny(notes)
                    }
                    Ok(Answer::Deny) => {
                        denied(&mut notes, "denied by the user", n);
                        finish_deny(notes)
                    }
                    Ok(Answer::Invalid(_)) => {
                        denied(&mut notes, "invalid response", true);
                        finish_deny(notes)
                    }
                    // The agent cannot be reached: the reference fails the call unnotified.
                    Err(_) => finish_deny(notes),
                };
            }
            Outcome {
                stdout: format!(
                    "result=ask\ntargets={}\ndefault_target={}\n",
                    sorted.join(","),
                    default_target.unwrap_or_default()
                ),
                notifications: notes,
                exit: 1,
            }
        }
    }
}
