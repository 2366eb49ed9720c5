//! Making untrusted text safe to print: server strings and file names.
//!
//! Everything daemonctl prints that it did not write itself — a monitor's name, state,
//! reason, message or resolution from the socket; a file name from a directory; a line of
//! an event file — goes through [`text`] or [`os`] first, whether stdout is a terminal or
//! not (output piped into `less -R`, a log viewer or a later `cat` reaches a terminal all
//! the same). What they escape, in the C style `systemctl` and `ls -b` use:
//!
//! - C0 controls (U+0000–U+001F, including ESC, CR, LF and TAB), DEL (U+007F) and the
//!   backslash itself (so an escape in the output always means one was made): `\n`, `\r`,
//!   `\t`, `\\`, others `\xNN`;
//! - C1 controls (U+0080–U+009F; U+009B is a one-character CSI on many terminals) and the
//!   bidirectional overrides, embeddings, isolates and marks (U+202A–U+202E,
//!   U+2066–U+2069, U+200E, U+200F, U+061C), which reorder what a reader sees: `\u{NNNN}`;
//! - bytes that are not UTF-8 (file names only): `\xNN`.
//!
//! JSON output is different: it must carry the exact value, so [`json_name`] gives a
//! name as a JSON string when it is UTF-8 and as `{"bytes": [..]}` (the raw bytes) when it
//! is not, and [`json_body`] re-escapes a server's JSON so that it holds no raw C1 or bidi
//! character while meaning exactly the same.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether `c` must not reach a terminal as it is.
fn dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\\' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Whether `c` is dangerous in a JSON string printed raw (JSON already escapes C0, `"`
/// and `\`; these are the ones it lets through).
fn dangerous_in_json(c: char) -> bool {
    c != '\\' && c > '\u{1f}' && dangerous(c)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\\' => out.push_str("\\\\"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
}

/// `s` with every dangerous character escaped (see the module docs).
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if dangerous(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Bytes that should be UTF-8 but may not be (a file name, a line of a file), escaped:
/// invalid bytes as `\xNN`, dangerous characters as in [`text`].
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&text(chunk.valid()));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// A file name or other OS string, escaped for a terminal.
pub fn os(s: &OsStr) -> String {
    bytes(s.as_bytes())
}

/// A path, escaped for a terminal.
pub fn path(p: &Path) -> String {
    os(p.as_os_str())
}

/// A name exactly, for JSON output: a string when it is UTF-8 (JSON's own escaping keeps
/// control characters exact and harmless), else `{"bytes": [b0, b1, …]}` with the raw
/// bytes, so that every name round-trips.
pub fn json_name(name: &OsStr) -> serde_json::Value {
    match name.to_str() {
        Some(s) => serde_json::Value::String(s.to_owned()),
        None => serde_json::json!({ "bytes": name.as_bytes() }),
    }
}

/// A server's JSON body (already checked to be valid JSON) made safe to print: raw C1
/// and bidi characters, which JSON allows inside strings unescaped, become `\uNNNN`
/// escapes. Everything else is kept byte for byte, so the value is exactly the server's.
pub fn json_body(body: &[u8]) -> Cow<'_, [u8]> {
    // Valid JSON is UTF-8; the fallback keeps non-UTF-8 input exact rather than panic.
    let Ok(s) = std::str::from_utf8(body) else {
        return Cow::Borrowed(body);
    };
    if !s.chars().any(dangerous_in_json) {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if dangerous_in_json(c) {
            // Every character escaped here is in the Basic Multilingual Plane.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out.into_bytes())
}

/// A JSON value serialised for printing, with [`json_body`]'s escaping.
pub fn json_value(value: &serde_json::Value, pretty: bool) -> String {
    let raw = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    // Serialising a `Value` cannot fail: its keys are strings.
    .unwrap_or_default();
    String::from_utf8_lossy(&json_body(raw.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(text("db-01 running ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_escapes_and_bidi_are_escaped() {
        assert_eq!(text("a\x1b]0;pwned\x07b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(text("x\r\ny\tz\\"), "x\\r\\ny\\tz\\\\");
        assert_eq!(text("\u{7f}\u{9b}2J"), "\\x7f\\u{009b}2J");
        assert_eq!(text("ok\u{202e}gnp.exe"), "ok\\u{202e}gnp.exe");
        assert_eq!(
            text("\u{2066}\u{2069}\u{200f}"),
            "\\u{2066}\\u{2069}\\u{200f}"
        );
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(bytes(b"a\xffb\xc3"), "a\\xffb\\xc3");
        assert_eq!(bytes("é\n".as_bytes()), "é\\n");
    }

    #[test]
    fn json_names_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let bad = OsStr::from_bytes(b"x\xff\n");
        assert_eq!(json_name(bad), serde_json::json!({"bytes": [120, 255, 10]}));
        assert_eq!(json_name(OsStr::new("a\nb")), serde_json::json!("a\nb"));
    }

    #[test]
    fn json_bodies_lose_raw_c1_and_bidi_but_keep_their_value() {
        let body = "{\"a\":\"x\u{9b}y\u{202e}\",\"b\":\"\\u001b\"}".as_bytes();
        let safe = json_body(body);
        let safe_str = std::str::from_utf8(&safe).unwrap();
        assert!(!safe_str.contains('\u{9b}') && !safe_str.contains('\u{202e}'));
        let before: serde_json::Value = serde_json::from_slice(body).unwrap();
        let after: serde_json::Value = serde_json::from_slice(&safe).unwrap();
        assert_eq!(before, after);
    }
}
