//! Python literals read as JSON. Models trained on Python write an object parameter as
//! `{'path': 'a.txt', 'force': True}` and an array as `('a', 'b')`; when a value declared an
//! object or an array is not JSON, this reads it as a Python literal instead: dicts with
//! string keys, lists and tuples, strings in either quote with their escapes, numbers, `True`,
//! `False` and `None` (JSON's `true`, `false` and `null` are accepted too). The JSON written
//! keeps the dict's keys in the model's order.

use std::borrow::Cow;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, none_of, one_of};
use nom::combinator::{all_consuming, map, map_opt, opt, recognize, value};
use nom::multi::{fold_many0, separated_list0};
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};
use serde_json::Number;

use crate::engine::params::json_string;

/// Nesting deeper than this is refused rather than read (the reader recurses).
const MAX_DEPTH: usize = 64;

/// A Python literal, as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    /// A list or a tuple.
    List(Vec<Literal>),
    /// A dict, its entries in the order written.
    Dict(Vec<(String, Literal)>),
}

impl Literal {
    /// The literal as JSON text, written as Python's `json.dumps` would.
    pub(crate) fn to_json(&self) -> String {
        let mut json = String::new();
        self.write_json(&mut json);
        json
    }

    fn write_json(&self, json: &mut String) {
        match self {
            Literal::Null => json.push_str("null"),
            Literal::Bool(value) => json.push_str(if *value { "true" } else { "false" }),
            Literal::Number(number) => json.push_str(&number.to_string()),
            Literal::String(text) => json.push_str(&json_string(text)),
            Literal::List(items) => {
                json.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        json.push_str(", ");
                    }
                    item.write_json(json);
                }
                json.push(']');
            }
            Literal::Dict(entries) => {
                json.push('{');
                for (n, (key, item)) in entries.iter().enumerate() {
                    if n > 0 {
                        json.push_str(", ");
                    }
                    json.push_str(&json_string(key));
                    json.push_str(": ");
                    item.write_json(json);
                }
                json.push('}');
            }
        }
    }
}

/// The Python literal `text`, if it is one.
pub(crate) fn read(text: &str) -> Option<Literal> {
    all_consuming(delimited(ws, |input| literal(input, 0), ws)).parse(text).ok().map(|(_, v)| v)
}

fn ws(input: &str) -> IResult<&str, &str> {
    take_while(|c: char| c.is_whitespace()).parse(input)
}

fn literal(input: &str, depth: usize) -> IResult<&str, Literal> {
    if depth > MAX_DEPTH {
        return Err(nom::Err::Failure(nom::error::Error::new(
            input,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    alt((
        |input| dict(input, depth),
        map(|input| sequence(input, depth, '[', ']'), Literal::List),
        map(|input| sequence(input, depth, '(', ')'), Literal::List),
        map(string, Literal::String),
        map(number, Literal::Number),
        value(Literal::Bool(true), alt((tag("True"), tag("true")))),
        value(Literal::Bool(false), alt((tag("False"), tag("false")))),
        value(Literal::Null, alt((tag("None"), tag("null")))),
    ))
    .parse(input)
}

/// Items between `open` and `close`, separated by commas, a trailing comma allowed.
fn sequence(input: &str, depth: usize, open: char, close: char) -> IResult<&str, Vec<Literal>> {
    let item = |input| delimited(ws, |input| literal(input, depth + 1), ws).parse(input);
    delimited(
        char(open),
        terminated(separated_list0(char(','), item), pair(opt(char(',')), ws)),
        char(close),
    )
    .parse(input)
}

fn dict(input: &str, depth: usize) -> IResult<&str, Literal> {
    let entry = |input| {
        pair(
            delimited(ws, string, ws),
            preceded(char(':'), delimited(ws, |input| literal(input, depth + 1), ws)),
        )
        .parse(input)
    };
    map(
        delimited(
            char('{'),
            terminated(separated_list0(char(','), entry), pair(preceded(ws, opt(char(','))), ws)),
            char('}'),
        ),
        Literal::Dict,
    )
    .parse(input)
}

/// A string in single or double quotes, on one line, with Python's escapes.
fn string(input: &str) -> IResult<&str, String> {
    alt((quoted('\''), quoted('"'))).parse(input)
}

fn quoted(quote: char) -> impl FnMut(&str) -> IResult<&str, String> {
    move |input| {
        let plain = take_while1(move |c: char| c != quote && c != '\\' && c != '\n');
        delimited(
            char(quote),
            fold_many0(alt((map(plain, Cow::Borrowed), escape)), String::new, |mut text, piece| {
                text.push_str(piece.as_ref());
                text
            }),
            char(quote),
        )
        .parse(input)
    }
}

/// A backslash and what follows it; an escape Python does not know keeps its backslash.
fn escape(input: &str) -> IResult<&str, Cow<'_, str>> {
    let known = alt((
        value('\n', char('n')),
        value('\t', char('t')),
        value('\r', char('r')),
        value('\u{8}', char('b')),
        value('\u{c}', char('f')),
        value('\0', char('0')),
        one_of("\\'\""),
        preceded(char('x'), hex(2)),
        preceded(char('u'), hex(4)),
        preceded(char('U'), hex(8)),
    ));
    let unknown = recognize(pair(char('\\'), none_of("\n")));
    alt((
        map(preceded(char('\\'), known), |c| Cow::Owned(c.to_string())),
        map(unknown, Cow::Borrowed),
    ))
    .parse(input)
}

fn hex(digits: usize) -> impl FnMut(&str) -> IResult<&str, char> {
    move |input| {
        map_opt(take_while_m_n(digits, digits, |c: char| c.is_ascii_hexdigit()), |hex| {
            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
        })
        .parse(input)
    }
}

/// An integer or a float as Python writes them (`-3`, `2.5`, `1e3`, `.5`, `5.`).
fn number(input: &str) -> IResult<&str, Number> {
    let digits = || take_while1(|c: char| c.is_ascii_digit());
    let mantissa = alt((
        recognize((digits(), opt((char('.'), opt(digits()))))),
        recognize((char('.'), digits())),
    ));
    let exponent = (one_of("eE"), opt(one_of("+-")), digits());
    map_opt(recognize((opt(one_of("+-")), mantissa, opt(exponent))), |text: &str| {
        let text = text.strip_prefix('+').unwrap_or(text);
        if !text.contains(['.', 'e', 'E'])
            && let Ok(number) = serde_json::from_str::<Number>(text)
        {
            return Some(number);
        }
        text.parse::<f64>().ok().and_then(Number::from_f64)
    })
    .parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Option<String> {
        read(text).map(|literal| literal.to_json())
    }

    #[test]
    fn python_literals_are_written_as_json() {
        assert_eq!(json("{'key': 'value'}").as_deref(), Some(r#"{"key": "value"}"#));
        assert_eq!(
            json(" {'z': True, \"b\": None, 'c': [1, 2.5, -3], 'd': ('x', 'y',), } ").as_deref(),
            Some(r#"{"z": true, "b": null, "c": [1, 2.5, -3], "d": ["x", "y"]}"#)
        );
        assert_eq!(
            json("['it\\'s', \"tab\\there\", '\\x41\\u00e9', 'a\\qb']").as_deref(),
            Some(r#"["it's", "tab\there", "Aé", "a\\qb"]"#)
        );
        assert_eq!(json("[.5, 5., 1e3, +2]").as_deref(), Some("[0.5, 5.0, 1000.0, 2]"));
        assert_eq!(json("{}").as_deref(), Some("{}"));
        assert_eq!(json("( )").as_deref(), Some("[]"));
        assert_eq!(json("{'a': false, 'b': null}").as_deref(), Some(r#"{"a": false, "b": null}"#));
    }

    #[test]
    fn other_text_is_refused() {
        for text in
            ["{a: 1}", "{1: 'x'}", "['a' 'b']", "'line\nbreak'", "[1, 2", "Truth", "", "{'a': 1} x"]
        {
            assert_eq!(read(text), None, "{text:?}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(read(&deep), None);
    }
}
