//! The `key='value'` serialization of devices and device assignments in the Admin API
//! (admin-api.md §8.3), shared by qubesd (which parses untrusted payloads with it) and the
//! clients (which read device lists).

use crate::QubesError;
use crate::exc::py_repr;

/// Characters allowed in a serialized key.
fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&()*+,-./:;<>?@[\\]^_{|}~".contains(c)
}

/// Characters allowed in a serialized value: key characters, punctuation and space.
fn value_char(c: char) -> bool {
    key_char(c) || c == ' ' || c.is_ascii_punctuation()
}

/// Python's `repr` of the set of offending characters (sorted, so the message is stable).
fn bad_chars(s: &str, ok: fn(char) -> bool) -> Option<String> {
    let mut bad: Vec<char> = s.chars().filter(|c| !ok(*c)).collect();
    if bad.is_empty() {
        return None;
    }
    bad.sort_unstable();
    bad.dedup();
    let items: Vec<String> = bad.iter().map(|c| py_repr(&c.to_string())).collect();
    Some(format!("{{{}}}", items.join(", ")))
}

fn sanitize(s: &str, ok: fn(char) -> bool, what: &str) -> Result<String, QubesError> {
    match bad_chars(s, ok) {
        Some(set) => Err(QubesError::protocol(format!(
            "Invalid chars in {what}: {set}"
        ))),
        None => Ok(s.to_string()),
    }
}

/// `'value'` with `'` escaped, as the reference writes values.
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "\\'"))
}

/// One `key='value'` pair; characters the format cannot carry become `_` (the reference
/// fails the whole listing on them).
pub fn pair(key: &str, value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if value_char(c) { c } else { '_' })
        .collect();
    format!("{key}={}", quote(&clean))
}

/// `key`, `value` pairs in order.
pub type Pairs = Vec<(String, String)>;

/// Properties and `_options` of a serialization, in payload order (a repeated key keeps its
/// last value, as a Python dict does). Errors are the reference's `ProtocolError`s.
pub fn unpack(untrusted: &[u8]) -> Result<(Pairs, Pairs), QubesError> {
    let Ok(text) = std::str::from_utf8(untrusted) else {
        return Err(non_ascii(untrusted));
    };
    if !text.is_ascii() {
        return Err(non_ascii(untrusted));
    }
    let text = text.trim_matches(py_space);
    let mut props: Pairs = Vec::new();
    let mut opts: Pairs = Vec::new();
    if text.is_empty() {
        return Ok((props, opts));
    }
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let (first, mut rest) = partition(text, "='");
    keys.push(sanitize(
        first.trim_matches(py_space),
        key_char,
        "property name",
    )?);
    while rest.contains("='") {
        let (value_key, r) = partition(rest, "='");
        rest = r;
        let (value, key) = match value_key.rfind("' ") {
            Some(i) => (&value_key[..i], &value_key[i + 2..]),
            None => ("", value_key),
        };
        values.push(sanitize(
            &value.replace("\\'", "'"),
            value_char,
            "property value",
        )?);
        keys.push(sanitize(
            key.trim_matches(py_space),
            key_char,
            "property name",
        )?);
    }
    // The last value runs to the end, minus its closing quote.
    let last = rest.get(..rest.len().saturating_sub(1)).unwrap_or("");
    values.push(sanitize(
        &last.replace("\\'", "'"),
        value_char,
        "property value",
    )?);
    for (k, v) in keys.into_iter().zip(values) {
        let (list, k) = match k.strip_prefix('_') {
            Some(o) => (&mut opts, o.to_string()),
            None => (&mut props, k),
        };
        match list.iter_mut().find(|(have, _)| *have == k) {
            Some(entry) => entry.1 = v,
            None => list.push((k, v)),
        }
    }
    Ok((props, opts))
}

/// ASCII characters Python's `str.strip()` removes.
fn py_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1f'
    )
}

/// Python's `str.partition`.
fn partition<'a>(s: &'a str, sep: &str) -> (&'a str, &'a str) {
    match s.find(sep) {
        Some(i) => (&s[..i], &s[i + sep.len()..]),
        None => (s, ""),
    }
}

/// The message of Python's `UnicodeDecodeError` for ASCII, re-raised as a `ProtocolError`.
fn non_ascii(b: &[u8]) -> QubesError {
    let pos = b.iter().position(|c| !c.is_ascii()).unwrap_or(0);
    QubesError::protocol(format!(
        "'ascii' codec can't decode byte {:#04x} in position {pos}: ordinal not in range(128)",
        b.get(pos).copied().unwrap_or(0)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_reference_examples() {
        let (p, o) = unpack(
            b"device_id='*' port_id='00_1f.3' devclass='pci' backend_domain='dom0' mode='required' _no-strict-reset='True'",
        )
        .unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p[4], ("mode".into(), "required".into()));
        assert_eq!(o, vec![("no-strict-reset".into(), "True".into())]);
        let (p, _) = unpack(b"product='Qubes O\\'S' name='a b'").unwrap();
        assert_eq!(p[0].1, "Qubes O'S");
        assert_eq!(p[1].1, "a b");
        assert_eq!(unpack(b"  ").unwrap(), (vec![], vec![]));
    }

    #[test]
    fn unpack_refusals() {
        let e = unpack(b"mo de='x'").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ProtocolError: Invalid chars in property name: {' '}"
        );
        let e = unpack(b"mode='\x07'").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ProtocolError: Invalid chars in property value: {'\\x07'}"
        );
        let e = unpack("mode='é'".as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ProtocolError: 'ascii' codec can't decode byte 0xc3 in position 6: ordinal not in range(128)"
        );
    }
}
