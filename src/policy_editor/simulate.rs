//! "What would happen?": a source, a target and a service (with argument); the decision, the
//! rule, file and line that decided it and the rules above it that do not match, for the
//! saved policy and for the policy with the unsaved edit. Evaluated in dom0's policy
//! directories with the engine `qrexec-policy-exec` uses; the system from qubesd (or
//! `QUBES_POLICY_SYSTEM_INFO`, a JSON file of the same shape).

use qrexec_policy::Resolution;
use qrexec_policy::explain::{
    Explanation, Mismatch, PendingEdit, PolicySource, explain_request, origin,
};
use qrexec_policy::sysinfo::InfoSource;
use relm4::gtk;
use relm4::gtk::prelude::*;

use super::backend::Kind;
use super::{Open, Ui, current_text};
use crate::a11y;
use crate::i18n::tr;
use crate::widgets::background;

/// The panel under the editor.
pub(super) fn panel(ui: &Ui) -> gtk::Expander {
    let expander = gtk::Expander::new(Some(&tr("What would happen?")));
    a11y::set_name(&expander, &tr("What would happen?"));
    expander.set_margin_start(12);
    expander.set_margin_end(12);
    expander.set_margin_bottom(12);
    let body = gtk::Box::new(gtk::Orientation::Vertical, 6);
    let inputs = gtk::Box::new(gtk::Orientation::Horizontal, 6);
    let entry = |name: String, hint: &str| {
        let e = gtk::Entry::new();
        e.set_placeholder_text(Some(hint));
        a11y::set_name(&e, &name);
        let c = gtk::EntryCompletion::new();
        c.set_model(Some(&ui.completion));
        c.set_text_column(0);
        c.set_minimum_key_length(1);
        e.set_completion(Some(&c));
        inputs.append(&e);
        e
    };
    let source = entry(tr("Calling qube"), "work");
    let target = entry(tr("Target qube"), "@default");
    let service = entry(tr("Service and argument"), "qubes.FileCopy");
    let saved = gtk::Button::with_label(&tr("Saved policy"));
    let pending = gtk::Button::with_label(&tr("With my changes"));
    inputs.append(&saved);
    inputs.append(&pending);
    body.append(&inputs);
    let answer = gtk::Label::new(None);
    answer.set_xalign(0.0);
    answer.set_wrap(true);
    answer.set_selectable(true);
    a11y::set_name(&answer, &tr("What would happen"));
    body.append(&answer);
    expander.set_child(Some(&body));
    for (button, with_edit) in [(saved, false), (pending, true)] {
        let (ui, source, target, service, answer) = (
            ui.clone(),
            source.clone(),
            target.clone(),
            service.clone(),
            answer.clone(),
        );
        button.connect_clicked(move |_| {
            let st = ui.state.borrow();
            let dir = st.init.policy_dir.clone();
            let edit = match (&st.open, with_edit) {
                (Open::File { kind, name, .. }, true) => Some(PendingEdit {
                    path: match kind {
                        Kind::Policy => dir.join(format!("{name}.policy")),
                        Kind::Include => dir.join("include").join(name),
                    },
                    content: Some(current_text(&ui)),
                }),
                _ => None,
            };
            let policy = PolicySource {
                dirs: vec!["/run/qubes/policy.d".into(), dir],
                legacy_dir: st.init.backend.legacy_dir.clone(),
            };
            let (s, t, v) = (
                source.text().to_string(),
                target.text().to_string(),
                service.text().to_string(),
            );
            let answer = answer.clone();
            drop(st);
            answer.set_text(&tr("Evaluating…"));
            background(
                move || {
                    let info = match std::env::var_os("QUBES_POLICY_SYSTEM_INFO") {
                        Some(f) => InfoSource::File(f.into()),
                        None => InfoSource::default(),
                    }
                    .read()?;
                    // Only the directories that exist: /run/qubes/policy.d is dom0's.
                    let policy = PolicySource {
                        dirs: policy.dirs.into_iter().filter(|d| d.is_dir()).collect(),
                        ..policy
                    };
                    explain_request(&policy, edit.as_ref(), &info, &s, &t, &v).map_err(|e| {
                        tr("The policy would not load: {}").replacen("{}", &e.to_string(), 1)
                    })
                },
                move |result: Result<Explanation, String>| match result {
                    Ok(e) => answer.set_text(&render(&e)),
                    Err(msg) => answer.set_text(&msg),
                },
            );
        });
    }
    expander
}

/// The explanation for people (translated).
fn render(e: &Explanation) -> String {
    let decision = match &e.resolution {
        Resolution::Allow { target, .. } => tr("Allowed, to {}").replacen("{}", target, 1),
        Resolution::Ask {
            targets,
            default_target,
            ..
        } => {
            let mut t = targets.clone();
            t.sort();
            let mut s =
                tr("The user is asked to choose among: {}").replacen("{}", &t.join(", "), 1);
            if let Some(d) = default_target {
                s.push_str(&tr(" (preselected: {})").replacen("{}", d, 1));
            }
            s
        }
        Resolution::Deny(d) => tr("Denied: {}").replacen("{}", &d.reason, 1),
    };
    let mut out = decision;
    out.push('\n');
    match &e.decided_by {
        Some(r) => out.push_str(
            &tr("Decided by {origin}: {rule}")
                .replacen("{origin}", &origin(r), 1)
                .replacen("{rule}", &r.text.replace('\t', " "), 1),
        ),
        None => out.push_str(&tr("No rule decided it.")),
    }
    for (r, why) in &e.not_matching {
        let why = match why {
            Mismatch::Service => tr("another service"),
            Mismatch::Argument => tr("another argument"),
            Mismatch::Source => tr("the source does not match"),
            Mismatch::Target => tr("the target does not match"),
        };
        out.push('\n');
        out.push_str(
            &tr("Not this rule, {origin}: {rule} — {why}")
                .replacen("{origin}", &origin(r), 1)
                .replacen("{rule}", &r.text.replace('\t', " "), 1)
                .replacen("{why}", &why, 1),
        );
    }
    out
}
