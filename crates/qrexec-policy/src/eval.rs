//! Evaluation: first matching rule wins (qrexec-policy.md §3).

use std::collections::BTreeMap;

use crate::parser::{Action, Params, Rule};
use crate::token::{Context, DOM0_UUID, Token, is_dom0_literal};

/// One qube as `internal.GetSystemInfo` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QubeInfo {
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Class name.
    pub class: String,
    /// Can be a disposable template.
    pub template_for_dispvms: bool,
    /// Default disposable template.
    pub default_dispvm: Option<String>,
    /// Power state name.
    pub power_state: String,
    /// UUID (without `uuid:`).
    pub uuid: String,
    /// Hidden from ask lists.
    pub internal: bool,
    /// GUI qube.
    pub guivm: Option<String>,
    /// Relay of a RemoteVM.
    pub relayvm: Option<String>,
    /// Transport service of a RemoteVM.
    pub transport_rpc: Option<String>,
}

/// What the evaluator knows about the system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemInfo {
    /// Qubes by name.
    pub domains: BTreeMap<String, QubeInfo>,
    /// Icon names by qube (`appvm-red`), for the ask dialog's label colours.
    pub icon_names: BTreeMap<String, String>,
}

impl SystemInfo {
    /// Parses `internal.GetSystemInfo` JSON.
    pub fn from_json(untrusted: &str) -> Result<SystemInfo, String> {
        let v: serde_json::Value = serde_json::from_str(untrusted).map_err(|e| e.to_string())?;
        let domains = v
            .get("domains")
            .and_then(|d| d.as_object())
            .ok_or("no \"domains\" object")?;
        let s =
            |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let mut out = SystemInfo::default();
        for (name, d) in domains {
            if let Some(icon) = s(d, "icon") {
                out.icon_names.insert(name.clone(), icon);
            }
            out.domains.insert(
                name.clone(),
                QubeInfo {
                    name: name.clone(),
                    tags: d
                        .get("tags")
                        .and_then(|t| t.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    class: s(d, "type").unwrap_or_default(),
                    template_for_dispvms: d
                        .get("template_for_dispvms")
                        .and_then(|x| x.as_bool())
                        .unwrap_or(false),
                    default_dispvm: s(d, "default_dispvm"),
                    power_state: s(d, "power_state").unwrap_or_default(),
                    uuid: s(d, "uuid").unwrap_or_default(),
                    // Truthy as Python sees it: true, or a non-empty string.
                    internal: match d.get("internal") {
                        Some(serde_json::Value::Bool(b)) => *b,
                        Some(serde_json::Value::String(s)) => !s.is_empty(),
                        Some(serde_json::Value::Null) | None => false,
                        Some(_) => true,
                    },
                    guivm: s(d, "guivm"),
                    relayvm: s(d, "relayvm"),
                    transport_rpc: s(d, "transport_rpc"),
                },
            );
        }
        Ok(out)
    }

    /// The icons the reference sends with `policy.Ask`: every qube's, and `@dispvm:X` for each
    /// disposable template X (its icon with `app` replaced by `disp`).
    pub fn icons(&self) -> BTreeMap<String, String> {
        let mut icons = self.icon_names.clone();
        for d in self.domains.values().filter(|d| d.template_for_dispvms) {
            if let Some(icon) = self.icon_names.get(&d.name) {
                icons.insert(format!("@dispvm:{}", d.name), icon.replace("app", "disp"));
            }
        }
        icons
    }

    /// A qube by name or `uuid:<uuid>`.
    pub fn get(&self, key: &str) -> Option<&QubeInfo> {
        if let Some(u) = key.strip_prefix("uuid:") {
            return self.domains.values().find(|d| d.uuid == u);
        }
        self.domains.get(key)
    }
}

/// The normalised target of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `@default` (also unknown names).
    Default,
    /// dom0 in any spelling (`@adminvm`, `dom0`, its uuid), as given.
    AdminVm(String),
    /// `@dispvm`.
    DispVm,
    /// `@dispvm:X` (X a name or `uuid:…` of a disposable template).
    DispVmFor(String),
    /// An existing qube, as given (name or `uuid:…`).
    Qube(String),
}

impl Target {
    fn text(&self) -> String {
        match self {
            Target::Default => "@default".into(),
            Target::AdminVm(s) | Target::Qube(s) => s.clone(),
            Target::DispVm => "@dispvm".into(),
            Target::DispVmFor(x) => format!("@dispvm:{x}"),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Message (for logs).
    pub reason: String,
    /// Whether the user is notified.
    pub notify: bool,
}

fn deny(reason: impl Into<String>, notify: bool) -> Denied {
    Denied {
        reason: reason.into(),
        notify,
    }
}

/// A request to evaluate.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Service name (no `+`).
    pub service: String,
    /// Argument, starting with `+`.
    pub argument: String,
    /// Calling qube.
    pub source: String,
    /// Normalised target.
    pub target: Target,
    /// The system.
    pub info: &'a SystemInfo,
}

impl<'a> Request<'a> {
    /// Builds a request from `service+arg`, source and intended target (§3.2).
    pub fn new(
        service_and_arg: &str,
        source: &str,
        intended: &str,
        info: &'a SystemInfo,
    ) -> Result<Request<'a>, Denied> {
        let (service, argument) = match service_and_arg.split_once('+') {
            Some((s, a)) => (s.to_string(), format!("+{a}")),
            None => (service_and_arg.to_string(), "+".to_string()),
        };
        let target = normalise(intended, Context::Intended, info)?;
        Ok(Request {
            service,
            argument,
            source: source.to_string(),
            target,
            info,
        })
    }
}

/// Parses and checks a target as the reference does for requests and redirects.
fn normalise(s: &str, ctx: Context, info: &SystemInfo) -> Result<Target, Denied> {
    let s = if s.is_empty() { "@default" } else { s };
    // An intended target that is not a valid token at all is denied without notification.
    let token = Token::parse(s, ctx).map_err(|m| deny(m, false))?;
    Ok(match token {
        Token::AdminVm => Target::AdminVm("@adminvm".into()),
        Token::Literal(l) if is_dom0_literal(&l) => Target::AdminVm(l),
        Token::Literal(l) => {
            if info.get(&l).is_some() {
                Target::Qube(l)
            } else {
                Target::Default
            }
        }
        Token::Default => Target::Default,
        Token::DispVm => Target::DispVm,
        Token::DispVmFor(x) => {
            if !info.get(&x).is_some_and(|d| d.template_for_dispvms) {
                return Err(deny(format!("not a template for dispvm: {x}"), true));
            }
            Target::DispVmFor(x)
        }
        _ => return Err(deny(format!("invalid target: {s}"), true)),
    })
}

fn same_qube(info: &SystemInfo, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (info.get(a), info.get(b)) {
        (Some(x), Some(y)) => {
            x.name == y.name && (a.starts_with("uuid:") || b.starts_with("uuid:"))
        }
        _ => false,
    }
}

/// Whether a source or target string spells dom0.
fn is_dom0(s: &str) -> bool {
    is_dom0_literal(s) || s == "@adminvm"
}

/// The disposable template `@dispvm` means for this source.
fn default_dispvm_of<'i>(info: &'i SystemInfo, source: &str) -> Option<&'i str> {
    info.get(source).and_then(|d| d.default_dispvm.as_deref())
}

pub(crate) fn source_matches(tok: &Token, req: &Request) -> bool {
    let info = req.info;
    let src = req.source.as_str();
    match tok {
        Token::Any => true,
        Token::AnyVm => !is_dom0(src),
        Token::AdminVm => is_dom0(src),
        Token::Literal(l) if is_dom0_literal(l) => is_dom0(src),
        Token::Literal(l) => same_qube(info, l, src),
        Token::Tag(t) => info.get(src).is_some_and(|d| d.tags.contains(t)),
        Token::Type(t) => info.get(src).is_some_and(|d| &d.class == t),
        // Never match in the source column (reference behaviour).
        Token::DispVmFor(_) | Token::DispVmTag(_) | Token::Default | Token::DispVm => false,
    }
}

pub(crate) fn target_matches(tok: &Token, req: &Request) -> bool {
    let info = req.info;
    let t = &req.target;
    let target_is_dom0 = matches!(t, Target::AdminVm(_));
    match tok {
        Token::Any => true,
        Token::AnyVm => !target_is_dom0,
        Token::AdminVm => target_is_dom0,
        Token::Literal(l) if is_dom0_literal(l) => target_is_dom0,
        Token::Literal(l) => matches!(t, Target::Qube(q) if same_qube(info, l, q)),
        Token::Default => *t == Target::Default,
        Token::DispVm => *t == Target::DispVm,
        Token::DispVmFor(x) => match t {
            Target::DispVmFor(y) => same_qube(info, x, y),
            Target::DispVm => {
                default_dispvm_of(info, &req.source).is_some_and(|d| same_qube(info, x, d))
            }
            _ => false,
        },
        Token::DispVmTag(tag) => {
            let y = match t {
                Target::DispVmFor(y) => Some(y.as_str()),
                Target::DispVm => default_dispvm_of(info, &req.source),
                _ => None,
            };
            y.and_then(|y| info.get(y))
                .is_some_and(|d| d.template_for_dispvms && d.tags.contains(tag))
        }
        // By name only: the keyword @adminvm is not tagged (reference quirk).
        Token::Tag(tag) => {
            matches!(t, Target::Qube(q) | Target::AdminVm(q) if q != "@adminvm" && info.get(q).is_some_and(|d| d.tags.contains(tag)))
        }
        Token::Type(ty) => {
            matches!(t, Target::Qube(q) | Target::AdminVm(q) if q != "@adminvm" && info.get(q).is_some_and(|d| &d.class == ty))
        }
    }
}

fn service_matches(rule: &Rule, req: &Request) -> bool {
    rule.service.as_deref().is_none_or(|s| s == req.service)
        && rule.argument.as_deref().is_none_or(|a| a == req.argument)
}

/// The outcome of evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Allowed.
    Allow {
        /// Target: a qube name or `uuid:…`, `dom0`, or `@dispvm:X`.
        target: String,
        /// User to run as (`None`: the target's default).
        user: Option<String>,
        /// Whether the target may be started.
        autostart: bool,
        /// Whether to notify.
        notify: bool,
        /// The rule, `file:line`.
        origin: String,
    },
    /// The user must choose.
    Ask {
        /// Candidates.
        targets: Vec<String>,
        /// Pre-selected candidate.
        default_target: Option<String>,
        /// User to run as.
        user: Option<String>,
        /// Whether the target may be started.
        autostart: bool,
        /// Whether to notify.
        notify: bool,
        /// The rule, `file:line`.
        origin: String,
    },
    /// Refused.
    Deny(Denied),
}

fn not_running_denied(info: &SystemInfo, target: &str) -> bool {
    if is_dom0_literal(target) {
        return false;
    }
    if target.starts_with("@dispvm") {
        return true;
    }
    info.get(target).is_none_or(|d| d.power_state != "Running")
}

/// Index of the rule that decides `req`: the first whose service, argument, source and target
/// all match.
pub fn first_match(rules: &[Rule], req: &Request) -> Option<usize> {
    rules.iter().position(|r| {
        service_matches(r, req) && source_matches(&r.source, req) && target_matches(&r.target, req)
    })
}

/// Evaluates `req` against `rules` (first match wins).
pub fn evaluate(rules: &[Rule], req: &Request) -> Resolution {
    let Some(rule) = first_match(rules, req).map(|i| &rules[i]) else {
        return Resolution::Deny(deny("no matching rule found", true));
    };
    match &rule.action {
        Action::Deny { notify } => Resolution::Deny(deny(
            format!("denied by policy {}", rule.origin()),
            notify.unwrap_or(true),
        )),
        Action::Allow(p) => allow(rule, p, req),
        Action::Ask(p) => ask(rules, rule, p, req),
    }
}

fn allow(rule: &Rule, p: &Params, req: &Request) -> Resolution {
    let info = req.info;
    let notify = p.notify.unwrap_or(false);
    let target = match &p.target {
        Some(t) => match normalise(&t.to_string(), Context::Redirect, info) {
            Ok(t) => t,
            Err(d) => return Resolution::Deny(d),
        },
        None => req.target.clone(),
    };
    let target = match target {
        Target::Default => {
            return Resolution::Deny(deny(
                format!(
                    "policy define 'allow' action at {} but no target is specified by caller or policy",
                    rule.origin()
                ),
                true,
            ));
        }
        Target::DispVm => match default_dispvm_of(info, &req.source) {
            Some(d) => format!("@dispvm:{d}"),
            None => {
                return Resolution::Deny(deny(
                    format!(
                        "policy define 'allow' action to @dispvm at {} but no DispVM base is set for this VM",
                        rule.origin()
                    ),
                    true,
                ));
            }
        },
        Target::AdminVm(s) if s == DOM0_UUID => s,
        Target::AdminVm(_) => "dom0".into(),
        Target::DispVmFor(x) => format!("@dispvm:{x}"),
        Target::Qube(q) => q,
    };
    let autostart = p.autostart.unwrap_or(true);
    if !autostart && not_running_denied(info, &target) {
        return Resolution::Deny(deny(
            format!("target {target} is denied because it would require autostart"),
            notify,
        ));
    }
    Resolution::Allow {
        target,
        user: p.user.clone().filter(|u| !u.is_empty()),
        autostart,
        notify,
        origin: rule.origin(),
    }
}

/// Concrete names a rule's target (or `target=`) stands for, in ask lists.
fn expand(tok: &Token, info: &SystemInfo) -> Vec<String> {
    let templates = || {
        info.domains
            .values()
            .filter(|d| d.template_for_dispvms)
            .map(|d| format!("@dispvm:{}", d.name))
            .collect::<Vec<_>>()
    };
    match tok {
        Token::Any | Token::AnyVm => {
            let mut v: Vec<String> = info
                .domains
                .values()
                .filter(|d| *tok == Token::Any || d.class != "AdminVM")
                .map(|d| d.name.clone())
                .collect();
            v.extend(templates());
            v.push("@dispvm".into());
            v
        }
        Token::Tag(t) => info
            .domains
            .values()
            .filter(|d| d.tags.contains(t))
            .map(|d| d.name.clone())
            .collect(),
        Token::Type(t) => info
            .domains
            .values()
            .filter(|d| &d.class == t)
            .map(|d| d.name.clone())
            .collect(),
        Token::DispVmTag(t) => info
            .domains
            .values()
            .filter(|d| d.template_for_dispvms && d.tags.contains(t))
            .map(|d| format!("@dispvm:{}", d.name))
            .collect(),
        Token::DispVmFor(x) => info
            .get(x)
            .map(|d| vec![format!("@dispvm:{}", d.name)])
            .unwrap_or_default(),
        Token::DispVm => vec!["@dispvm".into()],
        Token::AdminVm => vec!["@adminvm".into()],
        Token::Literal(l) if is_dom0_literal(l) => vec!["@adminvm".into()],
        Token::Literal(l) => info
            .get(l)
            .map(|d| vec![d.name.clone()])
            .unwrap_or_default(),
        Token::Default => Vec::new(),
    }
}

fn ask(rules: &[Rule], rule: &Rule, p: &Params, req: &Request) -> Resolution {
    let info = req.info;
    let notify = p.notify.unwrap_or(false);
    let autostart = p.autostart.unwrap_or(true);
    let mut targets: Vec<String> = match &p.target {
        Some(t) => {
            let s = t.to_string();
            vec![if is_dom0_literal(&s) || s == "@adminvm" {
                "dom0".into()
            } else {
                s
            }]
        }
        None => {
            // The reference looks the source up first and crashes on an unknown one.
            if info.get(&req.source).is_none() {
                return Resolution::Deny(deny(
                    format!("unknown source {} for an ask", req.source),
                    false,
                ));
            }
            let mut set: std::collections::BTreeSet<String> = Default::default();
            for r in rules.iter().rev() {
                if !(service_matches(r, req) && source_matches(&r.source, req)) {
                    continue;
                }
                let (tok, add) = match &r.action {
                    Action::Deny { .. } => (&r.target, false),
                    Action::Allow(rp) | Action::Ask(rp) => {
                        (rp.target.as_ref().unwrap_or(&r.target), true)
                    }
                };
                for name in expand(tok, info) {
                    if add {
                        set.insert(name);
                    } else {
                        set.remove(&name);
                    }
                }
            }
            let src = info.get(&req.source).map(|d| d.name.clone());
            set.into_iter()
                .filter_map(|t| match t.as_str() {
                    "@dispvm" => {
                        default_dispvm_of(info, &req.source).map(|d| format!("@dispvm:{d}"))
                    }
                    "@adminvm" => Some("dom0".into()),
                    _ => Some(t),
                })
                .filter(|t| Some(t) != src.as_ref() && *t != req.source)
                .filter(|t| {
                    let name = t.strip_prefix("@dispvm:").unwrap_or(t);
                    !info.get(name).is_some_and(|d| d.internal)
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        }
    };
    if !autostart {
        targets.retain(|t| !not_running_denied(info, t));
    }
    if targets.is_empty() {
        return Resolution::Deny(deny(
            format!(
                "policy define 'ask' action at {} but no target is available to choose from",
                rule.origin()
            ),
            true,
        ));
    }
    let default_target = p.default_target.as_ref().and_then(|t| {
        let s = match t {
            Token::DispVm => format!("@dispvm:{}", default_dispvm_of(info, &req.source)?),
            Token::AdminVm => "dom0".into(),
            Token::Literal(l) if is_dom0_literal(l) => "dom0".into(),
            other => other.to_string(),
        };
        targets.contains(&s).then_some(s)
    });
    Resolution::Ask {
        targets,
        default_target,
        user: p.user.clone().filter(|u| !u.is_empty()),
        autostart,
        notify,
        origin: rule.origin(),
    }
}

/// The daemon's answer for an allowed call (§3.6): `key=value` lines, no trailing newline.
pub fn allow_output(
    req: &Request,
    target: &str,
    user: Option<&str>,
    autostart: bool,
    policy_source: Option<&str>,
) -> Result<String, Denied> {
    let out = allow_block(req, target, user, autostart)?;
    // dom0 never carries policy_source.
    Ok(match policy_source {
        Some(src) if !out.contains("\ntarget=dom0\n") => format!("{out}\npolicy_source={src}"),
        _ => out,
    })
}

fn allow_block(
    req: &Request,
    target: &str,
    user: Option<&str>,
    autostart: bool,
) -> Result<String, Denied> {
    let info = req.info;
    // Exact spelling only, as the reference (a uuid: spelling of the source is not caught).
    if target == req.source {
        return Err(deny("loopback qrexec connection not supported", true));
    }
    let user = user.unwrap_or("DEFAULT");
    let auto = if autostart { "True" } else { "False" };
    let requested = req.target.text();
    if is_dom0_literal(target) {
        return Ok(format!(
            "user={user}\nresult=allow\ntarget=dom0\nautostart={auto}\nrequested_target={requested}"
        ));
    }
    if let Some(x) = target.strip_prefix("@dispvm:") {
        let uuid = info.get(x).map(|d| d.uuid.clone()).unwrap_or_default();
        return Ok(format!(
            "user={user}\nresult=allow\ntarget=@dispvm:{x}\ntarget_uuid=@dispvm:uuid:{uuid}\nautostart={auto}\nrequested_target={requested}"
        ));
    }
    let Some(d) = info.get(target) else {
        return Err(deny(format!("unknown target {target}"), true));
    };
    if d.class == "RemoteVM" {
        let relay = d
            .relayvm
            .as_deref()
            .ok_or_else(|| deny(format!("{target}: relayvm is not set"), true))?;
        let rpc = d
            .transport_rpc
            .as_deref()
            .ok_or_else(|| deny(format!("{target}: transport RPC is not set"), true))?;
        let relay_uuid = info.get(relay).map(|r| r.uuid.clone()).unwrap_or_default();
        return Ok(format!(
            "user=DEFAULT\nresult=allow\ntarget={relay}\ntarget_uuid=uuid:{relay_uuid}\nautostart={auto}\nrequested_target={requested}\nservice={rpc}+{target}+{}{}",
            req.service, req.argument
        ));
    }
    Ok(format!(
        "user={user}\nresult=allow\ntarget={target}\ntarget_uuid=uuid:{}\nautostart={auto}\nrequested_target={requested}",
        d.uuid
    ))
}
