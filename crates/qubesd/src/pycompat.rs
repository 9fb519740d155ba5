//! Python behaviour the reference's answers depend on: how it parses integers and booleans,
//! strips and splits text, and spells values. The bottom layer: imports nothing of the crate.

/// Python's `string.printable`.
pub fn printable(c: char) -> bool {
    c.is_ascii_graphic() || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Most digits Python's `int()` accepts from a string (`sys.get_int_max_str_digits()`).
pub const INT_MAX_STR_DIGITS: usize = 4300;

/// Python `int()` of a string without its 64-bit limit: the value as canonical decimal text
/// (no leading zeros, `-` for negatives, `0` for zero).
pub fn py_int_text(s: &str) -> Option<String> {
    let t = py_strip(s);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.len() > INT_MAX_STR_DIGITS {
        return None;
    }
    let trimmed = clean.trim_start_matches('0');
    Some(match (trimmed.is_empty(), neg) {
        (true, _) => "0".to_string(),
        (false, true) => format!("-{trimmed}"),
        (false, false) => trimmed.to_string(),
    })
}

/// Python `int()` of a string: surrounding whitespace, sign, `_` between digits.
pub fn py_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    // Python forbids leading zeros in non-zero decimal literals only for literals, not int().
    let v: i64 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Whether Python's `float()` accepts a string: surrounding whitespace, a sign, digits with
/// single `_` between them, one `.`, an exponent, or `inf`/`infinity`/`nan`.
pub fn py_float_ok(s: &str) -> bool {
    let t = py_strip(s);
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    if matches!(t.to_ascii_lowercase().as_str(), "inf" | "infinity" | "nan") {
        return true;
    }
    let digits = |p: &str| {
        !p.is_empty()
            && !p.starts_with('_')
            && !p.ends_with('_')
            && !p.contains("__")
            && p.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() || digits(a))
                && (b.is_empty() || digits(b))
                && !(a.is_empty() && b.is_empty())
        }
        None => digits(mantissa),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exp_ok
}

/// Python's text of the `UnicodeDecodeError` that `bytes.decode("utf8")` raises on `e`.
pub fn utf8_error_text(bytes: &[u8], e: &std::str::Utf8Error) -> String {
    let start = e.valid_up_to();
    let (end, reason) = match e.error_len() {
        None => (bytes.len(), "unexpected end of data"),
        Some(n) => {
            let first = bytes.get(start).copied().unwrap_or(0);
            let starts_a_sequence = matches!(first, 0xc2..=0xf4);
            let reason = if n == 1 && !starts_a_sequence {
                "invalid start byte"
            } else {
                "invalid continuation byte"
            };
            (start + n, reason)
        }
    };
    if end - start == 1 {
        format!(
            "'utf-8' codec can't decode byte 0x{:02x} in position {start}: {reason}",
            bytes.get(start).copied().unwrap_or(0)
        )
    } else {
        format!(
            "'utf-8' codec can't decode bytes in position {start}-{}: {reason}",
            end - 1
        )
    }
}

/// `datetime.today().strftime("%Y-%m-%d %H:%M:%S")`: the local date and time now.
pub fn local_now_text() -> String {
    // SAFETY: `time` and `localtime_r` only write the `tm` we own; a zeroed `tm` is valid.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Python's `str()` of a bool, as the wire and qubes.xml spell it.
pub fn bool_word(v: bool) -> &'static str {
    if v { "True" } else { "False" }
}

/// Boolean words of `qubes.property.bool`.
pub fn py_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "0" | "no" | "false" | "off" => Some(false),
        "1" | "yes" | "true" | "on" => Some(true),
        _ => None,
    }
}

/// Python `str.strip()` for ASCII text.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
}

/// Python `bytes.strip()`.
pub fn py_strip_bytes(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Python `str.splitlines()` for ASCII text (`\n`, `\r`, `\r\n`, `\x0b`, `\x0c`, `\x1c`-`\x1e`).
pub fn py_splitlines(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if matches!(b, b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e) {
            out.push(&s[start..i]);
            if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int() {
        assert_eq!(py_int(" +1_000 "), Some(1000));
        assert_eq!(py_int("-5"), Some(-5));
        assert_eq!(py_int("007"), Some(7));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("0x10"), None);
        assert_eq!(py_int("99999999999999999999999"), None);
    }

    #[test]
    fn python_int_without_limit() {
        assert_eq!(
            py_int_text(" 99_999_999_999_999_999_999 ").as_deref(),
            Some("99999999999999999999")
        );
        assert_eq!(py_int_text("-007").as_deref(), Some("-7"));
        assert_eq!(py_int_text("-0").as_deref(), Some("0"));
        assert_eq!(py_int_text("1__0"), None);
        assert!(py_int_text(&"9".repeat(INT_MAX_STR_DIGITS)).is_some());
        assert_eq!(py_int_text(&"9".repeat(INT_MAX_STR_DIGITS + 1)), None);
    }

    #[test]
    fn python_float() {
        for ok in [
            "1", " -1.5 ", "1e3", ".5", "5.", "1_0.0_1", "inf", "-NaN", "1E+2",
        ] {
            assert!(py_float_ok(ok), "{ok}");
        }
        for bad in ["", ".", "e3", "1e", "1__0", "_1", "0x1", "1.2.3", "one"] {
            assert!(!py_float_ok(bad), "{bad}");
        }
    }

    #[test]
    fn python_utf8_errors() {
        let text = |b: &[u8]| utf8_error_text(b, &std::str::from_utf8(b).unwrap_err());
        assert_eq!(
            text(b"some text\xff"),
            "'utf-8' codec can't decode byte 0xff in position 9: invalid start byte"
        );
        assert_eq!(
            text(b"a\xe2\x28"),
            "'utf-8' codec can't decode byte 0xe2 in position 1: invalid continuation byte"
        );
        assert_eq!(
            text(b"ab\xf0\x9f\x99"),
            "'utf-8' codec can't decode bytes in position 2-4: unexpected end of data"
        );
        assert_eq!(
            text(b"\xf0\x9f\x99x"),
            "'utf-8' codec can't decode bytes in position 0-2: invalid continuation byte"
        );
    }

    #[test]
    fn python_bool() {
        assert_eq!(py_bool("TRUE"), Some(true));
        assert_eq!(py_bool("off"), Some(false));
        assert_eq!(py_bool("2"), None);
    }
}
