//! Arguments written as tagged key/value pairs (Qwen3-Coder, GLM, MiniMax-M2) become the JSON
//! object text of the call's arguments, one parameter at a time, so that they stream as each
//! parameter completes. Each value is typed by the declared tool's schema
//! ([`typing`](crate::engine::typing)); one that does not fit it is kept as a string, with an
//! `invalid_arguments` diagnostic: the call must not be run as is.

use serde_json::{Map, Value};

use crate::arguments::ArgumentsCheck;
use crate::engine::call::Calls;
use crate::engine::diag::diagnostic;
use crate::engine::typing::{Source, type_value_into};
use crate::event::EventSink;
use crate::message::DiagnosticKind;

/// The parameters of the call being read.
#[derive(Debug, Default)]
pub(crate) struct Params {
    keys: Vec<String>,
    /// The member being written, kept for the next one.
    piece: String,
}

impl Params {
    /// Adds the parameter `key` with the text `raw` (its value starts at absolute `offset`) to
    /// the arguments of the open call, whose tool declares `properties` (if it does).
    pub(crate) fn add<S: EventSink>(
        &mut self,
        calls: &mut Calls,
        properties: Option<&Map<String, Value>>,
        (key, raw): (&str, &str),
        offset: usize,
        sink: &mut S,
    ) {
        let index = calls.get().index;
        let mut piece = std::mem::take(&mut self.piece);
        piece.clear();
        piece.push_str(if self.keys.is_empty() { "{" } else { ", " });
        push_json_string(key, &mut piece);
        piece.push_str(": ");
        let value_at = piece.len();
        let from = type_value_into(raw, properties.and_then(|known| known.get(key)), &mut piece);
        match &from {
            Source::Mistyped { expected } => sink.emit(diagnostic(
                DiagnosticKind::InvalidArguments,
                Some(index),
                offset,
                format!("the value of `{key}` is not {expected}; kept as a string"),
            )),
            Source::DoubleEncoded => sink.emit(diagnostic(
                DiagnosticKind::DoubleEncodedArguments,
                Some(index),
                offset,
                format!("the value of `{key}` was a JSON string holding its value; decoded once"),
            )),
            Source::Text | Source::Converted => {}
        }
        if self.has(key) {
            sink.emit(diagnostic(
                DiagnosticKind::InvalidArguments,
                Some(index),
                offset,
                format!("the parameter `{key}` is given more than once"),
            ));
        }
        self.keys.push(key.to_owned());
        // The JSON around the key and the value is written by the parser; the key and, when
        // it is written as the model wrote it, the value are the model's.
        calls.tally.count_generated(&piece[..value_at]);
        calls.tally.uncount_generated(key);
        match from {
            Source::Text | Source::Mistyped { .. } => {
                calls.tally.count_generated(&piece[value_at..]);
                calls.tally.uncount_generated(raw);
            }
            // The value is written anew: the text it was read from is consumed.
            Source::Converted | Source::DoubleEncoded => {
                calls.tally.count_generated(&piece[value_at..]);
                calls.tally.count_syntax_text(raw);
            }
        }
        calls.push_arguments(&piece, offset, sink);
        self.piece = piece;
    }

    /// Closes the arguments of the open call (`{}` when it had no parameters). They are a
    /// JSON object by construction, so the call's end need not check them again.
    pub(crate) fn close<S: EventSink>(&mut self, calls: &mut Calls, offset: usize, sink: &mut S) {
        let piece = if self.keys.is_empty() { "{}" } else { "}" };
        calls.tally.count_generated(piece);
        calls.push_arguments(piece, offset, sink);
        calls.get().checked = Some(ArgumentsCheck::Object);
        self.keys.clear();
    }

    /// Whether the open call was given the parameter `key` already.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.keys.iter().any(|seen| seen == key)
    }

    pub(crate) fn retained(&self) -> usize {
        self.keys.iter().map(String::len).sum()
    }
}

/// A value without the one newline (`\n` or `\r\n`) that the formats put after the opening tag
/// and before the closing tag.
pub(crate) fn strip_one_newline(value: &str) -> &str {
    let value = value.strip_prefix("\r\n").or_else(|| value.strip_prefix('\n')).unwrap_or(value);
    value.strip_suffix("\r\n").or_else(|| value.strip_suffix('\n')).unwrap_or(value)
}

pub(crate) fn json_string(text: &str) -> String {
    let mut json = String::with_capacity(text.len() + 2);
    push_json_string(text, &mut json);
    json
}

/// Writes `text` to `json` as a JSON string, escaped as `serde_json` writes it: `"`, `\\` and
/// the control characters, those that have one by their short escape.
pub(crate) fn push_json_string(text: &str, json: &mut String) {
    /// For each byte, the letter of its short escape, `u` for `\u00XX`, or 0 if it is written
    /// as it is.
    const ESCAPE: [u8; 256] = {
        let mut escape = [0; 256];
        let mut byte = 0;
        while byte < 0x20 {
            escape[byte] = b'u';
            byte += 1;
        }
        escape[0x08] = b'b';
        escape[0x09] = b't';
        escape[0x0a] = b'n';
        escape[0x0c] = b'f';
        escape[0x0d] = b'r';
        escape[b'"' as usize] = b'"';
        escape[b'\\' as usize] = b'\\';
        escape
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    json.reserve(text.len() + 2);
    json.push('"');
    let bytes = text.as_bytes();
    let mut plain = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        json.push_str(&text[plain..at]);
        json.push('\\');
        json.push(char::from(escape));
        if escape == b'u' {
            json.push_str("00");
            json.push(char::from(HEX[usize::from(byte >> 4)]));
            json.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        plain = at + 1;
    }
    json.push_str(&text[plain..]);
    json.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::ToolSpec;
    use serde_json::json;

    #[test]
    fn built_arguments_are_json_objects() {
        let mut calls = Calls::default();
        calls.begin(0);
        calls.announce("call_0".to_owned(), "f".to_owned(), &mut Vec::new());
        let mut params = Params::default();
        let tools = [ToolSpec {
            name: "f".to_owned(),
            parameters: Some(
                json!({"properties": {"n": {"type": "integer"}, "o": {"type": "object"}}}),
            ),
        }];
        let mut events = Vec::new();
        for (key, raw) in
            [("s", "a \"quoted\"\n\\ value"), ("n", " 7 "), ("o", "{\"x\": [1]}"), ("k\"ey", "")]
        {
            let properties = tools[0].properties();
            params.add(&mut calls, properties, (key, raw), 0, &mut events);
        }
        params.close(&mut calls, 0, &mut events);
        let (arguments, _) = calls.arguments();
        let value: Value = serde_json::from_str(arguments).expect("valid JSON");
        assert_eq!(
            value,
            json!({"s": "a \"quoted\"\n\\ value", "n": 7, "o": {"x": [1]}, "k\"ey": ""})
        );
        assert!(
            events.iter().all(|event| !matches!(event, crate::event::StreamEvent::Diagnostic(_)))
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0..128u8).map(char::from).collect();
        for text in [every_ascii.as_str(), "", "plain", "日本語 \u{2028} \u{7f}", "\"\\\n"] {
            let expected = serde_json::to_string(text).expect("a string serializes");
            assert_eq!(json_string(text), expected, "{text:?}");
        }
    }

    #[test]
    fn one_newline_is_stripped_at_each_end() {
        assert_eq!(strip_one_newline("\nvalue\n"), "value");
        assert_eq!(strip_one_newline("\n\nvalue\n\n"), "\nvalue\n");
        assert_eq!(strip_one_newline("  value "), "  value ");
        assert_eq!(strip_one_newline(""), "");
        assert_eq!(strip_one_newline("\n"), "");
        assert_eq!(strip_one_newline("\r\nvalue\r\n"), "value");
        assert_eq!(strip_one_newline("\r\n\r\nvalue\r\n\r\n"), "\r\nvalue\r\n");
        assert_eq!(strip_one_newline("\r\nvalue\n"), "value");
        assert_eq!(strip_one_newline("\rvalue\r"), "\rvalue\r");
        assert_eq!(strip_one_newline("\r\n"), "");
    }
}
