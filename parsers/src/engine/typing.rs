//! Typing a parameter value written as text (Qwen3-Coder, GLM, MiniMax-M2) by its property's
//! JSON schema. The same rules hold in the three formats:
//!
//! - without a type for the property (no declared tool, no schema, the property unknown, or
//!   no `type`), the value is a string: these models' templates write the string `5` and the
//!   number `5` alike, so only a schema tells them apart;
//! - the type names are read leniently: `int` is `integer`; `float` and `double` are `number`;
//!   `bool`, `str`, `dict` and `list` are `boolean`, `string`, `object` and `array`;
//! - a nullable property (`null` among its types, `{"type": "null"}` in its `anyOf`/`oneOf`,
//!   or `nullable: true`) takes `null`, `None` or `NULL` as null, even where a string is
//!   allowed;
//! - otherwise a property that allows a string takes the text as a string;
//! - a boolean is `true` or `false` in any case; an integer or a number is JSON's;
//! - an object or an array is JSON, or else a Python literal (`{'key': 'value'}`, `True`,
//!   `None`, tuples); JSON text of one held in a JSON string (`"{\"key\": 1}"`) is decoded
//!   once, with a `double_encoded_arguments` note.
//!
//! A value that fits none of its types stays a string, with an `invalid_arguments` diagnostic.

use serde_json::Value;

#[cfg(test)]
use crate::engine::params::json_string;
use crate::engine::params::push_json_string;
use crate::engine::py_literal::{self, Literal};

/// A value's JSON text, and how it came from the text the model wrote.
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Typed {
    pub json: String,
    pub from: Source,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The text itself (trimmed), or quoted as a JSON string: the model's bytes are in `json`.
    Text,
    /// Written anew from the text (`True` as `true`, a Python literal as JSON).
    Converted,
    /// Decoded from a JSON string that held it.
    DoubleEncoded,
    /// Kept as a string because it is not what its schema says: `expected` is what it should
    /// have been.
    Mistyped { expected: String },
}

/// The types a schema names, by their JSON Schema names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Integer,
    Number,
    Object,
    Array,
    String,
}

impl Kind {
    fn named(name: &str) -> Option<Kind> {
        Some(match name {
            "null" => Kind::Null,
            "boolean" | "bool" => Kind::Boolean,
            "integer" | "int" => Kind::Integer,
            "number" | "float" | "double" => Kind::Number,
            "object" | "dict" => Kind::Object,
            "array" | "list" => Kind::Array,
            "string" | "str" => Kind::String,
            _ => return None,
        })
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn article(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "a boolean",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
        }
    }
}

/// What a property's schema says about its values' types (read without allocating: most
/// values are typed on the way).
#[derive(Debug, Default, Clone, Copy)]
struct Declared {
    /// The [`Kind`]s named, as bits.
    kinds: u8,
    /// A type name this reader does not know was named.
    unknown: bool,
    nullable: bool,
}

impl Declared {
    fn of(property: Option<&Value>) -> Declared {
        let mut declared = Declared::default();
        let Some(property) = property else { return declared };
        for_each_type_name(property, |name| match Kind::named(name) {
            Some(kind) => declared.kinds |= kind.bit(),
            None => declared.unknown = true,
        });
        declared.nullable =
            declared.allows(Kind::Null) || property.get("nullable") == Some(&Value::Bool(true));
        declared
    }

    fn says_nothing(&self) -> bool {
        self.kinds == 0 && !self.unknown
    }

    fn allows(&self, kind: Kind) -> bool {
        self.kinds & kind.bit() != 0
    }
}

/// Calls `f` with each type name `property` gives: its `type` (a name or a list of names), then
/// those of its `anyOf` and `oneOf` choices.
fn for_each_type_name<'a>(property: &'a Value, mut f: impl FnMut(&'a str)) {
    let mut names = |declared: Option<&'a Value>| match declared {
        Some(Value::String(name)) => f(name),
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).for_each(&mut f),
        _ => {}
    };
    names(property.get("type"));
    for combinator in ["anyOf", "oneOf"] {
        if let Some(Value::Array(choices)) = property.get(combinator) {
            choices.iter().for_each(|choice| names(choice.get("type")));
        }
    }
}

/// What a value of `property` should have been, for the diagnostic of one that is not: the
/// types it names, those this reader knows first.
fn expected(property: Option<&Value>) -> String {
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    if let Some(property) = property {
        for_each_type_name(property, |name| match Kind::named(name) {
            Some(kind) => known.push(kind.article().to_owned()),
            None => unknown.push(format!("a {name}")),
        });
    }
    known.extend(unknown);
    known.join(" or ")
}

/// The JSON text of the value written as `raw`, typed by its property's schema.
#[cfg(test)]
pub(crate) fn type_value(raw: &str, property: Option<&Value>) -> Typed {
    let mut json = String::new();
    let from = type_value_into(raw, property, &mut json);
    Typed { json, from }
}

/// Writes the JSON text of the value written as `raw`, typed by its property's schema, to
/// `json`; returns how it came from the text.
pub(crate) fn type_value_into(raw: &str, property: Option<&Value>, json: &mut String) -> Source {
    let declared = Declared::of(property);
    if declared.says_nothing() || (declared.allows(Kind::String) && !declared.nullable) {
        push_json_string(raw, json);
        return Source::Text;
    }
    let text = raw.trim();
    if declared.nullable && matches!(text, "null" | "None" | "NULL") {
        json.push_str("null");
        return if text == "null" { Source::Text } else { Source::Converted };
    }
    if declared.allows(Kind::String) {
        push_json_string(raw, json);
        return Source::Text;
    }
    if declared.allows(Kind::Boolean) {
        for literal in ["true", "false"] {
            if text.eq_ignore_ascii_case(literal) {
                json.push_str(literal);
                return if text == literal { Source::Text } else { Source::Converted };
            }
        }
    }
    if declared.allows(Kind::Integer) || declared.allows(Kind::Number) {
        let number = serde_json::from_str::<serde_json::Number>(text).is_ok();
        let integer = number && !text.contains(['.', 'e', 'E']);
        if (declared.allows(Kind::Integer) && integer) || (declared.allows(Kind::Number) && number)
        {
            json.push_str(text);
            return Source::Text;
        }
    }
    if declared.allows(Kind::Object) || declared.allows(Kind::Array) {
        let fits = |value: &Value| {
            (value.is_object() && declared.allows(Kind::Object))
                || (value.is_array() && declared.allows(Kind::Array))
        };
        let literal_fits = |literal: &Literal| match literal {
            Literal::Dict(_) => declared.allows(Kind::Object),
            Literal::List(_) => declared.allows(Kind::Array),
            _ => false,
        };
        match serde_json::from_str::<Value>(text) {
            Ok(value) if fits(&value) => {
                json.push_str(text);
                return Source::Text;
            }
            Ok(Value::String(inner)) => {
                if serde_json::from_str::<Value>(&inner).is_ok_and(|value| fits(&value)) {
                    json.push_str(inner.trim());
                    return Source::DoubleEncoded;
                }
            }
            Ok(_) => {}
            Err(_) => {
                if let Some(literal) = py_literal::read(text).filter(literal_fits) {
                    json.push_str(&literal.to_json());
                    return Source::Converted;
                }
            }
        }
    }
    push_json_string(raw, json);
    Source::Mistyped { expected: expected(property) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(raw: &str, property: Value, json: &str, from: Source) {
        let typed = type_value(raw, Some(&property));
        assert_eq!(typed, Typed { json: json.to_owned(), from }, "{raw:?} as {property}");
    }

    fn mistyped(raw: &str, property: Value, expected: &str) {
        let from = Source::Mistyped { expected: expected.to_owned() };
        check(raw, property, &json_string(raw), from);
    }

    #[test]
    fn values_are_typed_by_the_schema() {
        use Source::*;
        check("Paris", json!({"type": "string"}), "\"Paris\"", Text);
        check(" 5 ", json!({"type": "string"}), "\" 5 \"", Text);
        check("5", json!({}), "\"5\"", Text);
        check(" 5\n", json!({"type": "integer"}), "5", Text);
        check("-12", json!({"type": "integer"}), "-12", Text);
        mistyped("5.5", json!({"type": "integer"}), "an integer");
        check("5.5", json!({"type": "number"}), "5.5", Text);
        check("1e3", json!({"type": "number"}), "1e3", Text);
        mistyped("five", json!({"type": "number"}), "a number");
        check("True", json!({"type": "boolean"}), "true", Converted);
        check("false", json!({"type": "boolean"}), "false", Text);
        mistyped("yes", json!({"type": "boolean"}), "a boolean");
        check("{\"a\": [1]}", json!({"type": "object"}), "{\"a\": [1]}", Text);
        mistyped("[1, 2]", json!({"type": "object"}), "an object");
        check("[1, 2]", json!({"type": "array"}), "[1, 2]", Text);
        check("null", json!({"type": ["integer", "null"]}), "null", Text);
        check("7", json!({"type": ["integer", "null"]}), "7", Text);
        mistyped("x", json!({"type": ["integer", "null"]}), "an integer or null");
        check("7", json!({"anyOf": [{"type": "integer"}, {"type": "string"}]}), "\"7\"", Text);
        check("7", json!({"oneOf": [{"type": "integer"}, {"type": "boolean"}]}), "7", Text);
        mistyped("x", json!({"type": "date"}), "a date");
    }

    #[test]
    fn type_names_have_aliases() {
        use Source::*;
        check("3", json!({"type": "int"}), "3", Text);
        mistyped("3.5", json!({"type": "int"}), "an integer");
        check("3.5", json!({"type": "float"}), "3.5", Text);
        check("-1e-3", json!({"type": "double"}), "-1e-3", Text);
        check("TRUE", json!({"type": "bool"}), "true", Converted);
        check("{'a': 1}", json!({"type": "dict"}), "{\"a\": 1}", Converted);
        check("(1, 2)", json!({"type": "list"}), "[1, 2]", Converted);
        check("5", json!({"type": "str"}), "\"5\"", Text);
    }

    #[test]
    fn nullable_properties_take_null_none_and_null_in_capitals() {
        use Source::*;
        for property in [
            json!({"type": ["string", "null"]}),
            json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
            json!({"type": "string", "nullable": true}),
        ] {
            check("null", property.clone(), "null", Text);
            check(" None\n", property.clone(), "null", Converted);
            check("NULL", property.clone(), "null", Converted);
            check("none", property.clone(), "\"none\"", Text);
        }
        check("None", json!({"type": "string"}), "\"None\"", Text);
        mistyped("None", json!({"type": "integer"}), "an integer");
    }

    #[test]
    fn objects_and_arrays_may_be_python_literals_or_encoded_twice() {
        use Source::*;
        let object = json!({"type": "object"});
        let python = "{'key': 'value', 'on': True, 'x': None}";
        check(python, object.clone(), r#"{"key": "value", "on": true, "x": null}"#, Converted);
        check("\"{\\\"key\\\": 1}\"", object.clone(), "{\"key\": 1}", DoubleEncoded);
        mistyped("\"[1]\"", object.clone(), "an object");
        mistyped("{'key': value}", object.clone(), "an object");
        check("\"[1, 2]\"", json!({"type": "array"}), "[1, 2]", DoubleEncoded);
        check("['a', ('b',)]", json!({"type": ["array", "null"]}), r#"["a", ["b"]]"#, Converted);
    }
}
