//! Declared tools, as far as parsers need them: a name, and optionally the JSON schema of the
//! parameters. They let a call whose id gives no name (Kimi's bare `IDX`) be resolved, but only
//! when exactly one declared tool fits its arguments; the schemas also type parameter values
//! written as text (see `engine::typing`) and tell the tags of a call from tags written inside
//! its values (see `tagged::value`).
//!
//! A call is never emitted without a name, and no format writes a name that is empty or holds
//! whitespace; a declared tool so named could only ever lend such a name to a call, so it is
//! refused where the options are made ([`crate::ParseOptions::new`]), and a parser given one
//! anyway never resolves a call to it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    /// The JSON schema of the tool's parameters, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

impl ToolSpec {
    /// A tool known by name only.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), parameters: None }
    }

    /// Whether a tool call can name this tool: its name is not empty and holds no whitespace.
    pub fn check_name(&self) -> Result<(), InvalidToolName> {
        if self.name.is_empty() {
            Err(InvalidToolName::Empty)
        } else if self.name.contains(char::is_whitespace) {
            Err(InvalidToolName::Whitespace(self.name.clone()))
        } else {
            Ok(())
        }
    }

    /// The properties the tool gives its parameters, when its schema lists them.
    pub(crate) fn properties(&self) -> Option<&Map<String, Value>> {
        self.parameters.as_ref()?.get("properties")?.as_object()
    }

    /// Whether the tool's schema forbids properties it does not list
    /// (`"additionalProperties": false`).
    pub(crate) fn forbids_other_properties(&self) -> bool {
        self.parameters.as_ref().and_then(|schema| schema.get("additionalProperties"))
            == Some(&Value::Bool(false))
    }
}

/// A declared tool whose name no tool call can have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidToolName {
    /// The name is empty.
    Empty,
    /// The name (given) holds whitespace, or is nothing else.
    Whitespace(String),
}

impl fmt::Display for InvalidToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("a declared tool has an empty name"),
            Self::Whitespace(name) => write!(
                f,
                "the declared tool name {name:?} holds whitespace, which no tool call's name can"
            ),
        }
    }
}

impl std::error::Error for InvalidToolName {}

/// Which declared tool a call with arguments `arguments` and no name is for: `Ok` with the
/// name when exactly one tool fits, `Err` with the reason otherwise.
/// Tools whose names no call can have are left out.
pub(crate) fn resolve_unnamed(tools: &[ToolSpec], arguments: &str) -> Result<String, String> {
    let nameable: Vec<&ToolSpec> = tools.iter().filter(|tool| tool.check_name().is_ok()).collect();
    if nameable.is_empty() {
        return Err(if tools.is_empty() {
            "the id names no tool and no tools were declared".to_owned()
        } else {
            "the id names no tool and no declared tool has a name a call can have".to_owned()
        });
    }
    let object = serde_json::from_str::<Value>(arguments).ok().and_then(|value| match value {
        Value::Object(object) => Some(object),
        _ => None,
    });
    let Some(object) = object else {
        // Arguments that are not an object say nothing of which tool they are for.
        if let [only] = nameable.as_slice() {
            return Ok(only.name.clone());
        }
        return Err("the id names no tool and its arguments are not a JSON object, so they fit \
                    no single declared tool"
            .to_owned());
    };
    let fitting: Vec<&str> =
        nameable.iter().filter(|tool| fits(tool, &object)).map(|tool| tool.name.as_str()).collect();
    match fitting.as_slice() {
        [name] => Ok((*name).to_owned()),
        [] => Err("the id names no tool and no declared tool fits its arguments".to_owned()),
        several => {
            let mut names: Vec<String> =
                several.iter().take(3).map(|name| format!("`{name}`")).collect();
            if several.len() > 3 {
                names.push("…".to_owned());
            }
            Err(format!(
                "the id names no tool and several declared tools fit its arguments ({})",
                names.join(", ")
            ))
        }
    }
}

/// Whether `arguments` satisfy the object constraints of the tool's schema: every `required`
/// key present and, when `additionalProperties` is `false`, no key outside `properties`.
fn fits(tool: &ToolSpec, arguments: &Map<String, Value>) -> bool {
    let Some(schema) = &tool.parameters else {
        return true;
    };
    let required_present =
        schema.get("required").and_then(Value::as_array).is_none_or(|required| {
            required.iter().filter_map(Value::as_str).all(|key| arguments.contains_key(key))
        });
    let closed = tool.forbids_other_properties();
    let no_unknown_keys = !closed
        || schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|properties| arguments.keys().all(|key| properties.contains_key(key)));
    required_present && no_unknown_keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, parameters: Value) -> ToolSpec {
        ToolSpec { name: name.to_owned(), parameters: Some(parameters) }
    }

    fn check(tools: &[ToolSpec], arguments: &str, expected: Result<&str, &str>) {
        let actual = resolve_unnamed(tools, arguments);
        match (actual, expected) {
            (Ok(name), Ok(want)) => assert_eq!(name, want),
            (Err(reason), Err(want)) => assert!(reason.contains(want), "{reason:?} lacks {want:?}"),
            (actual, expected) => panic!("{actual:?} but expected {expected:?}"),
        }
    }

    #[test]
    fn resolution() {
        let weather = tool(
            "get_weather",
            json!({"type": "object", "required": ["city"], "properties": {"city": {}}}),
        );
        let read = tool("read_file", json!({"type": "object", "required": ["path"]}));
        let closed = tool(
            "list_dir",
            json!({"type": "object", "properties": {"dir": {}}, "additionalProperties": false}),
        );
        check(&[], "{}", Err("no tools were declared"));
        check(&[ToolSpec::named("only")], r#"{"x": 1}"#, Ok("only"));
        check(&[ToolSpec::named("a"), ToolSpec::named("b")], "{}", Err("several"));
        check(&[weather.clone(), read.clone()], r#"{"city": "Paris"}"#, Ok("get_weather"));
        check(&[weather.clone(), read.clone()], r#"{"path": "a.txt"}"#, Ok("read_file"));
        check(&[weather.clone(), read.clone()], r#"{"other": 1}"#, Err("no declared tool fits"));
        check(&[weather.clone(), read.clone()], "not json", Err("not a JSON object"));
        check(&[weather.clone(), read.clone()], "[1]", Err("not a JSON object"));
        check(std::slice::from_ref(&weather), "not json", Ok("get_weather"));
        check(&[closed.clone(), ToolSpec::named("x")], r#"{"dir": "."}"#, Err("several"));
        check(&[closed, read], r#"{"dir": ".", "path": "p"}"#, Ok("read_file"));
    }

    #[test]
    fn tools_no_call_can_name_are_never_the_name() {
        for name in ["", " ", "get weather", "tab\t"] {
            let unnameable = ToolSpec::named(name);
            assert!(unnameable.check_name().is_err(), "{name:?}");
            check(std::slice::from_ref(&unnameable), "{}", Err("no declared tool has a name"));
            let tools = [unnameable, ToolSpec::named("get_weather")];
            check(&tools, "{}", Ok("get_weather"));
        }
        assert_eq!(ToolSpec::named("").check_name(), Err(InvalidToolName::Empty));
        assert_eq!(
            ToolSpec::named(" ").check_name(),
            Err(InvalidToolName::Whitespace(" ".to_owned()))
        );
        assert_eq!(ToolSpec::named("my.ns.tool").check_name(), Ok(()));
    }
}
