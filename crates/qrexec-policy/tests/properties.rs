//! Property tests of parser and evaluator invariants.

// Tests and benchmarks may unwrap: a panic there is a failed run.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use qrexec_policy::{QubeInfo, Request, Resolution, SystemInfo, evaluate, first_match, parse_str};

fn info() -> SystemInfo {
    let mut i = SystemInfo::default();
    for (n, class, tags, dvm) in [
        ("dom0", "AdminVM", vec!["a"], false),
        ("q1", "AppVM", vec!["a", "b"], false),
        ("q2", "AppVM", vec!["b"], true),
        ("q3", "TemplateVM", vec![], false),
    ] {
        i.domains.insert(
            n.into(),
            QubeInfo {
                name: n.into(),
                class: class.into(),
                tags: tags.into_iter().map(String::from).collect(),
                template_for_dispvms: dvm,
                default_dispvm: Some("q2".into()),
                power_state: "Running".into(),
                uuid: format!("uuid-of-{n}"),
                ..QubeInfo::default()
            },
        );
    }
    i
}

fn token() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "*",
        "@anyvm",
        "@adminvm",
        "dom0",
        "q1",
        "q2",
        "q3",
        "nope",
        "@tag:a",
        "@tag:b",
        "@type:AppVM",
        "@type:AdminVM",
        "@dispvm",
        "@dispvm:q2",
        "@dispvm:@tag:b",
        "@default",
    ])
    .prop_map(String::from)
}

fn rule() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["svc", "*", "other"]),
        prop::sample::select(vec!["*", "+", "+x"]),
        token(),
        token(),
        prop::sample::select(vec![
            "allow",
            "deny",
            "ask",
            "allow target=q1",
            "allow target=@adminvm",
            "ask default_target=q1",
            "deny notify=no",
            "allow autostart=no",
        ]),
    )
        .prop_map(|(s, a, src, dst, act)| {
            let a = if s == "*" { "*" } else { a };
            format!("{s} {a} {src} {dst} {act}")
        })
}

proptest! {
    /// Arbitrary text never panics the parser, and errors carry file and line.
    #[test]
    fn parser_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = parse_str(&text, "f") {
            prop_assert!(e.to_string().starts_with("f:"));
        }
    }

    /// Evaluation is deterministic, and a rule appended after a matching one does not change
    /// which rule fires (first match wins).
    #[test]
    fn first_match_wins(rules in prop::collection::vec(rule(), 1..12), extra in rule(),
                        src in prop::sample::select(vec!["q1", "q2", "q3", "dom0", "unknown"]),
                        dst in prop::sample::select(vec!["q1", "q2", "q3", "dom0", "@adminvm", "@dispvm", "@dispvm:q2", "", "nope"])) {
        let info = info();
        let text = rules.join("\n");
        let Ok(parsed) = parse_str(&text, "p") else { return Ok(()) };
        let Ok(req) = Request::new("svc+x", src, dst, &info) else { return Ok(()) };
        let a = evaluate(&parsed, &req);
        prop_assert_eq!(&a, &evaluate(&parsed, &req));
        // Appending a rule never changes which rule decides, once one matched. (The result
        // itself may change for ask: its candidates come from every matching rule.)
        let first = first_match(&parsed, &req);
        if let (Some(f), Ok(more)) = (first, parse_str(&format!("{text}\n{extra}"), "p")) {
            prop_assert_eq!(first_match(&more, &req), Some(f));
            if !matches!(a, Resolution::Ask { .. }) && !matches!(&parsed[f].action, qrexec_policy::Action::Ask(_)) {
                prop_assert_eq!(a, evaluate(&more, &req));
            }
        }
    }

    /// `@anyvm` never reaches dom0, in any spelling.
    #[test]
    fn anyvm_never_matches_dom0(dst in prop::sample::select(vec!["dom0", "@adminvm", "uuid:00000000-0000-0000-0000-000000000000"]),
                                src in prop::sample::select(vec!["q1", "q2", "unknown"])) {
        let info = info();
        let rules = parse_str("* * @anyvm @anyvm allow", "p").unwrap();
        let req = Request::new("svc", src, dst, &info).unwrap();
        prop_assert!(matches!(evaluate(&rules, &req), Resolution::Deny(_)));
    }

    /// An allowed target is always one the system knows, dom0, or a disposable of a template.
    #[test]
    fn allowed_targets_are_real(rules in prop::collection::vec(rule(), 1..10),
                                dst in prop::sample::select(vec!["q1", "q2", "q3", "dom0", "@dispvm", "@dispvm:q2", "", "nope"])) {
        let info = info();
        let Ok(parsed) = parse_str(&rules.join("\n"), "p") else { return Ok(()) };
        let Ok(req) = Request::new("svc+x", "q1", dst, &info) else { return Ok(()) };
        if let Resolution::Allow { target, .. } = evaluate(&parsed, &req) {
            let ok = target == "dom0"
                || info.get(&target).is_some()
                || target.strip_prefix("@dispvm:").and_then(|t| info.get(t)).is_some_and(|d| d.template_for_dispvms);
            prop_assert!(ok, "allowed to {}", target);
        }
    }
}
