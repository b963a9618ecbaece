//! Anthropic tool-use ids must match `^[a-zA-Z0-9_-]+$`; Kimi's ids (`functions.get_weather:0`)
//! do not. Ids are mapped reversibly on the way out and back, so that results pair with their
//! calls and a model gets its own ids back byte for byte.
//!
//! An id that already fits the alphabet (and does not start with the escape prefix) is sent
//! as it is, which covers Anthropic's own `toolu_…` ids. Any other id is sent as `tf_` plus its
//! escaped text: letters, digits and `-` stay, `_` becomes `__`, and every other byte becomes
//! `_` and two hex digits.

const PREFIX: &str = "tf_";

/// The id to send to Anthropic for `id`.
pub fn encode(id: &str) -> String {
    let fits = !id.is_empty() && id.bytes().all(is_plain_or_underscore);
    if fits && !id.starts_with(PREFIX) {
        return id.to_owned();
    }
    let mut encoded = String::with_capacity(PREFIX.len() + id.len() * 2);
    encoded.push_str(PREFIX);
    for byte in id.bytes() {
        match byte {
            b'_' => encoded.push_str("__"),
            byte if is_plain(byte) => encoded.push(byte as char),
            byte => encoded.push_str(&format!("_{byte:02x}")),
        }
    }
    encoded
}

/// The original id of an id that came back from Anthropic. Ids not made by [`encode`] are
/// returned as they are.
pub fn decode(id: &str) -> String {
    id.strip_prefix(PREFIX).and_then(unescape).unwrap_or_else(|| id.to_owned())
}

fn unescape(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' if bytes.get(i + 1) == Some(&b'_') => {
                out.push(b'_');
                i += 2;
            }
            b'_' => {
                let hex = escaped.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

fn is_plain_or_underscore(byte: u8) -> bool {
    is_plain(byte) || byte == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, wire: &str) {
        assert_eq!(encode(id), wire, "encoding {id:?}");
        assert_eq!(decode(wire), id, "decoding {wire:?}");
        assert!(wire.bytes().all(is_plain_or_underscore), "{wire:?} leaves the alphabet");
    }

    #[test]
    fn ids_round_trip() {
        check("toolu_01AbC", "toolu_01AbC");
        check("call-7", "call-7");
        check("functions.get_weather:0", "tf_functions_2eget__weather_3a0");
        check("my.ns.tool:12", "tf_my_2ens_2etool_3a12");
        check("0", "0");
        check("", "tf_");
        check("tf_x", "tf_tf__x");
        check("日", "tf__e6_97_a5");
    }

    #[test]
    fn foreign_ids_are_left_alone() {
        assert_eq!(decode("toolu_abc"), "toolu_abc");
        assert_eq!(decode("tf_bad_zz"), "tf_bad_zz");
    }
}
