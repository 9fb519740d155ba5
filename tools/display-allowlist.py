#!/usr/bin/python3
"""Generates crates/qubesd/src/names/display_allowlist.rs: the code points qube notes may keep.

Qubes' libqubes-pure (qrexec-lib) decides from the Unicode character database which code
points are safe to show to a user; qubesd must decide exactly the same. This program applies
the same rules to ICU's data (through libicuuc, Debian's libicu-dev) and writes the allowed
code points as sorted ranges:

* a Unicode scalar value that is not a noncharacter; no C0 control; printable ASCII always;
* general category a letter, a number, punctuation, a math or currency symbol (no marks,
  separators, controls, format or private-use characters, modifier or other symbols, and no
  unassigned code point);
* bidirectional class left-to-right, European number (and its separator and terminator),
  common number separator, white space or other neutral (nothing right-to-left);
* script usage recommended or unknown, and a script that renders without complex shaping:
  Common, Inherited, Latin, Greek, Cyrillic, Braille, and the Han, Hangul, Kana and Bopomofo
  family.

Run: /usr/bin/python3 tools/display-allowlist.py > crates/qubesd/src/names/display_allowlist.rs
"""

import ctypes
import ctypes.util
import re
import sys

HEADER_DIR = "/usr/include/unicode"


def icu():
    path = ctypes.util.find_library("icuuc")
    if not path:
        sys.exit("libicuuc not found (install libicu-dev)")
    lib = ctypes.CDLL(path)
    version = re.search(r"(\d+)", path.rsplit("so.", 1)[-1]).group(1)

    def fn(name, restype, *argtypes):
        f = getattr(lib, f"{name}_{version}")
        f.restype = restype
        f.argtypes = argtypes
        return f

    return version, {
        "category": fn("u_charType", ctypes.c_int8, ctypes.c_int32),
        "direction": fn("u_charDirection", ctypes.c_int, ctypes.c_int32),
        "script": fn(
            "uscript_getScript", ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_int)
        ),
        "usage": fn("uscript_getUsage", ctypes.c_int, ctypes.c_int),
    }


def enum_values(header, prefix):
    """Name -> value of the enumerators starting with `prefix` in an ICU header."""
    text = open(f"{HEADER_DIR}/{header}", encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    values = {}
    for block in re.findall(r"\benum\b[^{;]*\{(.*?)\}", text, flags=re.S):
        nxt = 0
        for m in re.finditer(r"\b(\w+)\s*(?:=\s*([^,]+))?\s*(?:,|$)", block.strip()):
            name, expr = m.group(1), m.group(2)
            if expr is not None:
                expr = expr.strip()
                try:
                    nxt = int(expr, 0)
                except ValueError:
                    nxt = values.get(expr, nxt)
            if name.startswith(prefix):
                values.setdefault(name, nxt)
            nxt += 1
    return values


CATEGORIES = [
    "UPPERCASE_LETTER", "LOWERCASE_LETTER", "TITLECASE_LETTER", "MODIFIER_LETTER",
    "OTHER_LETTER", "DECIMAL_DIGIT_NUMBER", "LETTER_NUMBER", "OTHER_NUMBER",
    "DASH_PUNCTUATION", "START_PUNCTUATION", "END_PUNCTUATION", "CONNECTOR_PUNCTUATION",
    "OTHER_PUNCTUATION", "MATH_SYMBOL", "CURRENCY_SYMBOL", "INITIAL_PUNCTUATION",
    "FINAL_PUNCTUATION",
]
DIRECTIONS = [
    "WHITE_SPACE_NEUTRAL", "OTHER_NEUTRAL", "EUROPEAN_NUMBER_TERMINATOR",
    "EUROPEAN_NUMBER_SEPARATOR", "COMMON_NUMBER_SEPARATOR", "EUROPEAN_NUMBER", "LEFT_TO_RIGHT",
]
USAGES = ["UNKNOWN", "RECOMMENDED"]
SCRIPTS = [
    "INHERITED", "CYRILLIC", "GREEK", "LATIN", "BRAILLE", "SIMPLIFIED_HAN", "TRADITIONAL_HAN",
    "HAN", "HAN_WITH_BOPOMOFO", "JAMO", "HANGUL", "BOPOMOFO", "KATAKANA_OR_HIRAGANA",
    "HIRAGANA", "KATAKANA", "JAPANESE", "KOREAN", "COMMON",
]


def main():
    version, f = icu()
    cats = enum_values("uchar.h", "U_")
    dirs = enum_values("uchar.h", "U_")
    scripts = enum_values("uscript.h", "USCRIPT_")
    ok_cat = {cats["U_" + c] for c in CATEGORIES}
    ok_dir = {dirs["U_" + d] for d in DIRECTIONS}
    ok_usage = {scripts["USCRIPT_USAGE_" + u] for u in USAGES}
    ok_script = {scripts["USCRIPT_" + s] for s in SCRIPTS}

    def allowed(cp):
        if 0xD800 <= cp <= 0xDFFF or 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE:
            return False
        if cp < 0x20:
            return False
        if cp < 0x7F:
            return True
        if f["category"](cp) not in ok_cat or f["direction"](cp) not in ok_dir:
            return False
        err = ctypes.c_int(0)
        script = f["script"](cp, ctypes.byref(err))
        if err.value > 0:
            sys.exit(f"uscript_getScript failed on {cp:#x}")
        return f["usage"](script) in ok_usage and script in ok_script

    ranges, start = [], None
    for cp in range(0x20, 0x110000):
        if allowed(cp):
            if start is None:
                start = cp
        elif start is not None:
            ranges.append((start, cp - 1))
            start = None
    out = sys.stdout
    out.write(
        "//! Code points safe to show to a user, as libqubes-pure decides (generated by\n"
        f"//! `tools/display-allowlist.py` from ICU {version}; do not edit).\n\n"
        "/// Inclusive ranges, sorted.\n"
        "pub(super) static RANGES: &[(u32, u32)] = &[\n"
    )
    for a, b in ranges:
        out.write(f"    (0x{a:06x}, 0x{b:06x}),\n")
    out.write("];\n")


if __name__ == "__main__":
    main()
