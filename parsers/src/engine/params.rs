//! Arguments written as tagged key/value pairs (Qwen3-Coder, GLM, MiniMax-M2) become the JSON
//! object text of the call's arguments, one parameter at a time, so that they stream as each
//! parameter completes.
//!
//! A value is typed by the declared tool's JSON schema (`ToolSpec::parameters`, the property's
//! `type`, or the types of its `anyOf`/`oneOf`): a string when the schema allows a string or
//! says nothing; otherwise `null`, a boolean, an integer, a number, an object or an array when
//! the text is one. A value that fits none of the declared types is kept as a string, with an
//! `invalid_arguments` diagnostic: the call must not be run as is.

use serde_json::Value;

use crate::arguments::ArgumentsCheck;
use crate::engine::call::Calls;
use crate::engine::diag::diagnostic;
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;

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
        let property = property_schema(tools, tool, key);
        let value = match typed(raw, property) {
            Ok(value) => value,
            Err((value, expected)) => {
                sink.emit(diagnostic(
                    DiagnosticKind::InvalidArguments,
                    Some(index),
                    offset,
                    format!("the value of `{key}` is not {expected}; kept as a string"),
                ));
                value
            }
        };
        if self.keys.iter().any(|seen| seen == key) {
            sink.emit(diagnostic(
                DiagnosticKind::InvalidArguments,
                Some(index),
                offset,
                format!("the parameter `{key}` is given more than once"),
            ));
        }
        let mut piece = String::with_capacity(key.len() + value.len() + 8);
        piece.push_str(if self.keys.is_empty() { "{" } else { ", " });
        piece.push_str(&json_string(key));
        piece.push_str(": ");
        piece.push_str(&value);
        self.keys.push(key.to_owned());
        calls.tally.count_generated(&piece);
        calls.tally.uncount_generated(key);
        calls.tally.uncount_generated(raw);
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
    tools.iter().find(|spec| spec.name == tool)?.parameters.as_ref()?.get("properties")?.get(key)
}

/// The types a property's schema allows; empty when it says nothing about types.
fn declared_types(property: Option<&Value>) -> Vec<&str> {
    let Some(property) = property else { return Vec::new() };
    let mut types = Vec::new();
    collect_types(property.get("type"), &mut types);
    for combinator in ["anyOf", "oneOf"] {
        if let Some(Value::Array(choices)) = property.get(combinator) {
            for choice in choices {
                collect_types(choice.get("type"), &mut types);
            }
        }
    }
    types
}

fn collect_types<'a>(declared: Option<&'a Value>, types: &mut Vec<&'a str>) {
    match declared {
        Some(Value::String(name)) => types.push(name),
        Some(Value::Array(names)) => types.extend(names.iter().filter_map(Value::as_str)),
        _ => {}
    }
}

/// The JSON text of a value, typed by its property's schema; `Err` holds the value kept as a
/// string and what it should have been.
fn typed(raw: &str, property: Option<&Value>) -> Result<String, (String, String)> {
    let types = declared_types(property);
    if types.is_empty() || types.contains(&"string") {
        return Ok(json_string(raw));
    }
    let text = raw.trim();
    for kind in ["null", "boolean", "integer", "number", "object", "array"] {
        if !types.contains(&kind) {
            continue;
        }
        let fits = match kind {
            "null" => text == "null",
            "boolean" => {
                if text.eq_ignore_ascii_case("true") {
                    return Ok("true".to_owned());
                }
                if text.eq_ignore_ascii_case("false") {
                    return Ok("false".to_owned());
                }
                false
            }
            "integer" => is_number(text) && !text.contains(['.', 'e', 'E']),
            "number" => is_number(text),
            "object" => serde_json::from_str::<Value>(text).is_ok_and(|value| value.is_object()),
            _ => serde_json::from_str::<Value>(text).is_ok_and(|value| value.is_array()),
        };
        if fits {
            return Ok(text.to_owned());
        }
    }
    let expected = types
        .iter()
        .map(|kind| match *kind {
            "integer" | "object" | "array" => format!("an {kind}"),
            other => format!("a {other}"),
        })
        .collect::<Vec<_>>()
        .join(" or ");
    Err((json_string(raw), expected))
}

fn is_number(text: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(text).is_ok()
}

pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(raw: &str, property: Value, expected: Result<&str, &str>) {
        let actual = typed(raw, Some(&property));
        match (&actual, expected) {
            (Ok(value), Ok(want)) => assert_eq!(value, want, "{raw:?} as {property}"),
            (Err((value, reason)), Err(want)) => {
                assert_eq!(value, &json_string(raw));
                assert_eq!(reason, want, "{raw:?} as {property}");
            }
            _ => panic!("{raw:?} as {property}: {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn values_are_typed_by_the_schema() {
        check("Paris", json!({"type": "string"}), Ok("\"Paris\""));
        check(" 5 ", json!({"type": "string"}), Ok("\" 5 \""));
        check("5", json!({}), Ok("\"5\""));
        check(" 5\n", json!({"type": "integer"}), Ok("5"));
        check("-12", json!({"type": "integer"}), Ok("-12"));
        check("5.5", json!({"type": "integer"}), Err("an integer"));
        check("5.5", json!({"type": "number"}), Ok("5.5"));
        check("1e3", json!({"type": "number"}), Ok("1e3"));
        check("five", json!({"type": "number"}), Err("a number"));
        check("True", json!({"type": "boolean"}), Ok("true"));
        check("false", json!({"type": "boolean"}), Ok("false"));
        check("yes", json!({"type": "boolean"}), Err("a boolean"));
        check("{\"a\": [1]}", json!({"type": "object"}), Ok("{\"a\": [1]}"));
        check("[1, 2]", json!({"type": "object"}), Err("an object"));
        check("[1, 2]", json!({"type": "array"}), Ok("[1, 2]"));
        check("null", json!({"type": ["integer", "null"]}), Ok("null"));
        check("7", json!({"type": ["integer", "null"]}), Ok("7"));
        check("x", json!({"type": ["integer", "null"]}), Err("an integer or a null"));
        check("7", json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}), Ok("\"7\""));
        check("7", json!({"oneOf": [{"type": "integer"}, {"type": "boolean"}]}), Ok("7"));
    }

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
