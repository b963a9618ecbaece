//! Checking the argument text of a finished call: whether it is a JSON object, and decoding
//! arguments that a model encoded twice (a JSON string holding an object). Shared by formats.

use serde::de::IgnoredAny;

/// What the argument text of a call turned out to be (for every format, and for structured
/// calls that providers receive).
#[derive(Debug, PartialEq, Eq)]
pub enum ArgumentsCheck {
    /// A JSON object, kept byte-exact.
    Object,
    /// A JSON string holding an object; the decoded object text replaces it.
    DoubleEncoded(String),
    /// Anything else; the reason says what is wrong.
    Invalid(String),
}

pub fn check_arguments(arguments: &str) -> ArgumentsCheck {
    match arguments.as_bytes().first() {
        None => ArgumentsCheck::Invalid("the arguments are empty".to_owned()),
        Some(b'{') => match serde_json::from_str::<IgnoredAny>(arguments) {
            Ok(_) => ArgumentsCheck::Object,
            Err(error) => {
                ArgumentsCheck::Invalid(format!("the arguments are not valid JSON: {error}"))
            }
        },
        Some(b'"') => match serde_json::from_str::<String>(arguments) {
            Ok(inner) if inner.trim_start().starts_with('{') => {
                match serde_json::from_str::<IgnoredAny>(&inner) {
                    Ok(_) => ArgumentsCheck::DoubleEncoded(inner),
                    Err(_) => ArgumentsCheck::Invalid(
                        "the arguments are a JSON string, not an object".to_owned(),
                    ),
                }
            }
            Ok(_) => {
                ArgumentsCheck::Invalid("the arguments are a JSON string, not an object".to_owned())
            }
            Err(error) => {
                ArgumentsCheck::Invalid(format!("the arguments are not valid JSON: {error}"))
            }
        },
        Some(_) => match serde_json::from_str::<IgnoredAny>(arguments) {
            Ok(_) => ArgumentsCheck::Invalid("the arguments are JSON but not an object".to_owned()),
            Err(error) => {
                ArgumentsCheck::Invalid(format!("the arguments are not valid JSON: {error}"))
            }
        },
    }
}

/// Where a scan of JSON text stands with respect to strings, carried across chunks so that
/// marker-like text inside a string is told apart from a real marker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct JsonStringState {
    pub in_string: bool,
    /// The previous character was a backslash inside a string.
    pub escaped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(arguments: &str, expected: ArgumentsCheck) {
        let actual = check_arguments(arguments);
        match (&actual, &expected) {
            (ArgumentsCheck::Invalid(reason), ArgumentsCheck::Invalid(want)) => {
                assert!(reason.contains(want.as_str()), "{reason:?} lacks {want:?}")
            }
            _ => assert_eq!(actual, expected),
        }
    }

    #[test]
    fn argument_checks() {
        use ArgumentsCheck::*;
        check(r#"{"a": 1}"#, Object);
        check(r#"{"a": "<|tool_call_end|>"}"#, Object);
        check(r#""{\"a\": 1}""#, DoubleEncoded(r#"{"a": 1}"#.to_owned()));
        check(r#""  {\"a\": 1}""#, DoubleEncoded(r#"  {"a": 1}"#.to_owned()));
        check(r#""hello""#, Invalid("a JSON string, not an object".to_owned()));
        check(r#""{not json""#, Invalid("a JSON string, not an object".to_owned()));
        check("", Invalid("empty".to_owned()));
        check("[1, 2]", Invalid("JSON but not an object".to_owned()));
        check("{\"a\": ", Invalid("not valid JSON".to_owned()));
        check("{\"a\": 1} trailing", Invalid("not valid JSON".to_owned()));
        check("city=Paris", Invalid("not valid JSON".to_owned()));
    }
}
