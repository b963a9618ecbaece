//! API keys. The type has no `Display`, no `Serialize`, and a `Debug` that hides the value, so
//! a key cannot reach an error message, a log line, output or the journal by accident; the one
//! way out is [`ApiKey::expose`], used where a header is set (here, and in `taskflow-proxy`,
//! which forwards requests with the upstream's key).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key, unless the text is empty or only whitespace.
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.is_empty() { None } else { Some(Self(trimmed.to_owned())) }
    }

    /// The key from the environment variable `name`, if set and not empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name).ok().and_then(Self::new)
    }

    /// The key from the environment variable `name`, which the user named for it: one that is
    /// not set (or is empty) is an error, not a request sent without a key.
    pub fn from_named_env(name: &str) -> Result<Self, String> {
        Self::from_env(name).ok_or_else(|| {
            format!("the variable `{name}` named for the API key (api_key_env) is not set or empty")
        })
    }

    /// The key itself, for the request header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Removes every occurrence of the key from `text` (server error bodies may echo it), also
    /// percent-encoded as a URL holds it, and where a JSON string holds it with some of its characters escaped (`sk\u002d…`, or
    /// `ab\/cd` for a key with a slash, as PHP's and some proxies' encoders write it): then the
    /// text comes back with the `\uXXXX` and `\/` escapes decoded that a key may hold (it stays
    /// the JSON it was).
    pub fn redact(&self, text: &str) -> String {
        let mut plain = text.to_owned();
        for form in self.forms() {
            if plain.contains(&form) {
                plain = plain.replace(&form, "[redacted]");
            }
        }
        if !plain.contains("\\u") && !plain.contains("\\/") {
            return plain;
        }
        let decoded = unescape_json_units(&plain);
        if decoded.contains(&self.0) { decoded.replace(&self.0, "[redacted]") } else { plain }
    }

    /// [`Self::redact`] for `bytes`, which need not be UTF-8 (a body an upstream sent, passed
    /// on as it came): the key is replaced where it is, the rest kept byte for byte, unless the
    /// key is found only once escapes are decoded (then bytes that are not UTF-8 become U+FFFD).
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for form in self.forms() {
            out = replace_bytes(&out, form.as_bytes(), b"[redacted]");
        }
        if !out.windows(2).any(|pair| pair == b"\\u" || pair == b"\\/") {
            return out;
        }
        let decoded = unescape_json_units(&String::from_utf8_lossy(&out));
        if decoded.contains(&self.0) {
            decoded.replace(&self.0, "[redacted]").into_bytes()
        } else {
            out
        }
    }
}

impl ApiKey {
    /// The key as it is, and percent-encoded as a URL writes it (a server that puts it in a
    /// redirect's `Location`), in upper and lower case hex, where that differs.
    fn forms(&self) -> Vec<String> {
        let mut forms = vec![self.0.clone()];
        for hex in [UPPER_HEX, LOWER_HEX] {
            let encoded = percent_encoded(&self.0, hex);
            if !forms.contains(&encoded) {
                forms.push(encoded);
            }
        }
        forms
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// `text` with every byte but the unreserved ones of a URL (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encoded(text: &str, hex: &[u8; 16]) -> String {
    let mut encoded = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.extend([
                '%',
                char::from(hex[usize::from(byte >> 4)]),
                char::from(hex[usize::from(byte & 15)]),
            ]);
        }
    }
    encoded
}

/// `bytes` with every `needle` in them replaced by `with`.
fn replace_bytes(bytes: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = rest.windows(needle.len()).position(|window| window == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// `text` with the JSON escapes decoded that a key may hold: `\uXXXX` (a surrogate pair as one
/// character), but not `"`, `\` or a control character, which the text's JSON needs escaped;
/// and `\/`, a `/` that JSON may escape but need not. An escaped backslash (`\\u0041`) is no
/// escape of `u0041`; other text, and escapes that make no character, are kept as they were.
fn unescape_json_units(text: &str) -> String {
    let unit = |hex: Option<&str>| {
        hex.filter(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(slashed) = after.strip_prefix('/') {
            out.push('/');
            rest = slashed;
            continue;
        }
        if !after.starts_with('u') {
            // Another escape (`\\`, `\"`, `\n`…), kept with what it escapes.
            let escaped = after.chars().next().map_or(0, char::len_utf8);
            out.push('\\');
            out.push_str(&after[..escaped]);
            rest = &after[escaped..];
            continue;
        }
        let high = unit(after.get(1..5));
        let low = unit(after.get(5..7).filter(|next| *next == "\\u").and(after.get(7..11)));
        let (decoded, used) = match (high, low) {
            (Some(high @ 0xD800..=0xDBFF), Some(low @ 0xDC00..=0xDFFF)) => {
                (char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), 11)
            }
            (Some(unit), _) => (char::from_u32(unit), 5),
            (None, _) => (None, 0),
        };
        match decoded.filter(|c| !matches!(c, '"' | '\\') && !c.is_control()) {
            Some(c) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_redaction_hide_the_key() {
        let key = ApiKey::new(" sk-secret-123 ").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        assert_eq!(key.expose(), "sk-secret-123");
        assert_eq!(key.redact("bad key sk-secret-123!"), "bad key [redacted]!");
        assert_eq!(
            key.redact_bytes(b"\xffsk-secret-123\xfe sk-secret-12 sk-secret-123"),
            b"\xff[redacted]\xfe sk-secret-12 [redacted]"
        );
        assert_eq!(key.redact_bytes(b"\xff no key \\u00zz"), b"\xff no key \\u00zz");
        // Escaped in a JSON string, in part or whole.
        let escaped = r#"{"message": "bad key sk\u002dsecret\u002d123", "at": "\ud83d\ude00"}"#;
        assert_eq!(
            key.redact(escaped),
            "{\"message\": \"bad key [redacted]\", \"at\": \"\u{1f600}\"}"
        );
        let whole: String =
            "sk-secret-123".chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        assert_eq!(key.redact(&whole), "[redacted]");
        assert_eq!(key.redact(r"no key here \u0041 \uzz"), r"no key here \u0041 \uzz");
        // Decoded, the text stays the JSON it was: what JSON needs escaped stays escaped, and
        // an escaped backslash is no escape.
        let kept = r#"{"m": "sk\u002dsecret-123 \u0022q\u0022 \u005c \u000a \\u0041 \"x\" é"}"#;
        let redacted = key.redact(kept);
        assert_eq!(redacted, r#"{"m": "[redacted] \u0022q\u0022 \u005c \u000a \\u0041 \"x\" é"}"#);
        assert!(serde_json::from_str::<serde_json::Value>(&redacted).is_ok());
        assert_eq!(key.redact("\\u00e9 ends with \\"), "\\u00e9 ends with \\");
        assert!(ApiKey::new("   ").is_none());
    }

    fn check(key: &str, text: &str, expected: &str) {
        let key = ApiKey::new(key).unwrap();
        assert_eq!(key.redact(text), expected, "{text}");
        assert_eq!(key.redact_bytes(text.as_bytes()), expected.as_bytes(), "{text}");
    }

    #[test]
    fn a_key_with_a_slash_is_redacted_where_json_escapes_the_slash() {
        let key = "sk-ab/cd+ef";
        check(key, "Bearer sk-ab/cd+ef", "Bearer [redacted]");
        // PHP's json_encode and some proxies write `/` as `\/`.
        check(key, r#"{"m": "Bearer sk-ab\/cd+ef"}"#, r#"{"m": "Bearer [redacted]"}"#);
        check(key, r#"{"m": "sk\u002dab\/cd+ef"}"#, r#"{"m": "[redacted]"}"#);
        // Decoded, the text stays the JSON it was; an escaped backslash before `/` is no escape.
        check(
            key,
            r#"{"m": "sk-ab\/cd+ef a\/b \\/ \u0022"}"#,
            r#"{"m": "[redacted] a/b \\/ \u0022"}"#,
        );
        check(key, r#"{"m": "sk-ab\\/cd+ef"}"#, r#"{"m": "sk-ab\\/cd+ef"}"#);
    }

    #[test]
    fn a_key_percent_encoded_in_a_url_is_redacted() {
        let key = "sk-ab/cd+ef";
        check(key, "Location: /x?k=sk-ab%2Fcd%2Bef&y=1", "Location: /x?k=[redacted]&y=1");
        check(key, "/x?k=sk-ab%2fcd%2bef", "/x?k=[redacted]");
        // A key of unreserved characters only is the same encoded: found once.
        check("sk-plain_1.2~3", "a sk-plain_1.2~3 b", "a [redacted] b");
    }
}
