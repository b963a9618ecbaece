//! Arguments written as tagged key/value pairs (Qwen3-Coder, GLM, MiniMax-M2) become the JSON
//! object text of the call's arguments, one parameter at a time, so that they stream as each
//! parameter completes. Each value is typed by the declared tool's schema
//! ([`typing`](crate::engine::typing)); one that does not fit it is kept as a string, with an
//! `invalid_arguments` diagnostic: the call must not be run as is.

use serde_json::Value;

use crate::arguments::ArgumentsCheck;
use crate::engine::call::Calls;
use crate::engine::diag::diagnostic;
use crate::engine::typing::{Source, type_value};
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::{ToolSpec, properties};

/// The parameters of the call being read.
#[derive(Debug, Default)]
pub(crate) struct Params {
    keys: Vec<String>,
}

impl Params {
    /// Adds the parameter `key` with the text `raw` (its value starts at absolute `offset`) to
    /// the arguments of the open call, a call of `tool`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add<S: EventSink>(
        &mut self,
        calls: &mut Calls,
        tools: &[ToolSpec],
        tool: &str,
        key: &str,
        raw: &str,
        offset: usize,
        sink: &mut S,
    ) {
        let index = calls.get().index;
        let typed = type_value(raw, property_schema(tools, tool, key));
        match &typed.from {
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
        let mut piece = String::with_capacity(key.len() + typed.json.len() + 8);
        piece.push_str(if self.keys.is_empty() { "{" } else { ", " });
        piece.push_str(&json_string(key));
        piece.push_str(": ");
        piece.push_str(&typed.json);
        self.keys.push(key.to_owned());
        calls.tally.count_generated(&piece);
        calls.tally.uncount_generated(key);
        match typed.from {
            // The model's text is in the value as written (or quoted).
            Source::Text | Source::Mistyped { .. } => calls.tally.uncount_generated(raw),
            // The value is written anew: the text it was read from is consumed.
            Source::Converted | Source::DoubleEncoded => calls.tally.count_syntax_text(raw),
        }
        calls.push_arguments(&piece, offset, sink);
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

/// A value without the one newline that the formats put after the opening tag and before the
/// closing tag.
pub(crate) fn strip_one_newline(value: &str) -> &str {
    let value = value.strip_prefix('\n').unwrap_or(value);
    value.strip_suffix('\n').unwrap_or(value)
}

fn property_schema<'a>(tools: &'a [ToolSpec], tool: &str, key: &str) -> Option<&'a Value> {
    properties(tools, tool)?.get(key)
}

pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
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
            params.add(&mut calls, &tools, "f", key, raw, 0, &mut events);
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
    fn one_newline_is_stripped_at_each_end() {
        assert_eq!(strip_one_newline("\nvalue\n"), "value");
        assert_eq!(strip_one_newline("\n\nvalue\n\n"), "\nvalue\n");
        assert_eq!(strip_one_newline("  value "), "  value ");
        assert_eq!(strip_one_newline(""), "");
        assert_eq!(strip_one_newline("\n"), "");
    }
}
