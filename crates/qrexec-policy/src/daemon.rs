//! The policy daemon socket protocol (qrexec-policy.md §3.7): a request is ASCII `key=value`
//! lines ending with an empty line or EOF; the answer is the result text.

use crate::exec::{Options, run};

/// Largest request accepted (the keys are short; anything longer is not a real request).
pub const MAX_REQUEST: usize = 8192;

/// Parses a request; `None` means close the connection without an answer (duplicate,
/// unknown or missing keys, a bad boolean, non-ASCII).
pub fn parse_request(untrusted: &[u8], base: &Options) -> Option<Options> {
    if untrusted.len() > MAX_REQUEST || !untrusted.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(untrusted).ok()?;
    let mut o = base.clone();
    let mut seen: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once('=')?;
        if seen.contains(&k) {
            return None;
        }
        seen.push(k);
        let yes_no = |v: &str| match v {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        match k {
            "source" => o.source = v.to_string(),
            "intended_target" => o.target = v.to_string(),
            "service_and_arg" => o.service_and_arg = v.to_string(),
            "assume_yes_for_ask" => o.assume_yes = yes_no(v)?,
            "just_evaluate" => o.just_evaluate = yes_no(v)?,
            "requested_source" => o.requested_source = Some(v.to_string()),
            _ => return None,
        }
    }
    ["source", "intended_target", "service_and_arg"]
        .iter()
        .all(|k| seen.contains(k))
        .then_some(o)
}

/// The answer for a parsed request: the result text without its final newline. An ask goes
/// to the GUI agent when the options carry one; an ask that reaches no one is a denial.
pub fn answer(o: &Options) -> String {
    let out = run(o);
    let text = out.stdout.trim_end_matches('\n');
    if text.is_empty() || text.starts_with("result=ask") {
        "result=deny".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let base = Options::default();
        let ok = parse_request(
            b"source=a\nintended_target=b\nservice_and_arg=s+x\njust_evaluate=yes\n\n",
            &base,
        )
        .unwrap();
        assert!(ok.just_evaluate && ok.source == "a" && ok.target == "b");
        assert!(
            parse_request(b"source=a\nintended_target=b\n", &base).is_none(),
            "missing key"
        );
        assert!(
            parse_request(
                b"source=a\nsource=a\nintended_target=b\nservice_and_arg=s\n",
                &base
            )
            .is_none()
        );
        assert!(
            parse_request(
                b"source=a\nintended_target=b\nservice_and_arg=s\ndomain_id=1\n",
                &base
            )
            .is_none()
        );
        assert!(
            parse_request(
                b"source=a\nintended_target=b\nservice_and_arg=s\njust_evaluate=true\n",
                &base
            )
            .is_none()
        );
        assert!(
            parse_request(
                "source=\u{e9}\nintended_target=b\nservice_and_arg=s\n".as_bytes(),
                &base
            )
            .is_none()
        );
    }
}
