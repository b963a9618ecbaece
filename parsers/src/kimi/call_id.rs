//! The grammar of a Kimi call id (nom): `functions.NAME:IDX`, `NAME:IDX`, or a bare `IDX`.
//! NAME may hold letters, digits, `_`, `-` and `.`; `my.ns.tool` is a dotted name, and only a
//! leading `functions.` is a prefix: `functions.:IDX` has the prefix and no name after it (not
//! the name `functions.`).

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, map};
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};

/// What a call id says about the tool being called.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CallName {
    /// The id names the tool.
    Named(String),
    /// The id is a bare index: the declared tools may tell the name.
    Unnamed,
    /// The id is `functions.:IDX`: the name after the prefix is missing.
    Empty,
    /// The id has none of the allowed forms.
    Invalid,
}

fn name(input: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')).parse(input)
}

fn name_and_index(input: &str) -> IResult<&str, &str> {
    terminated(name, (char(':'), digit1)).parse(input)
}

fn call_name(input: &str) -> IResult<&str, CallName> {
    all_consuming(alt((
        map(preceded(tag("functions."), name_and_index), |name| CallName::Named(name.to_owned())),
        map((tag("functions."), char(':'), digit1), |_| CallName::Empty),
        map(name_and_index, |name| CallName::Named(name.to_owned())),
        map(digit1, |_| CallName::Unnamed),
    )))
    .parse(input)
}

/// Reads the (already trimmed) id of a call.
pub(crate) fn parse_call_id(id: &str) -> CallName {
    call_name(id).map(|(_, name)| name).unwrap_or(CallName::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, expected: CallName) {
        assert_eq!(parse_call_id(id), expected, "id {id:?}");
    }

    fn named(name: &str) -> CallName {
        CallName::Named(name.to_owned())
    }

    #[test]
    fn call_ids() {
        check("functions.get_weather:0", named("get_weather"));
        check("get_weather:12", named("get_weather"));
        check("functions.my.ns.tool:3", named("my.ns.tool"));
        check("my.ns.tool:3", named("my.ns.tool"));
        check("functions.web-search:1", named("web-search"));
        check("functions:0", named("functions"));
        check("функция:0", named("функция"));
        check("0", CallName::Unnamed);
        check("17", CallName::Unnamed);
        check("", CallName::Invalid);
        check("get_weather", CallName::Invalid);
        check("get weather:0", CallName::Invalid);
        check("get_weather:x", CallName::Invalid);
        check("functions.get_weather:0 extra", CallName::Invalid);
        check(":0", CallName::Invalid);
        check("functions.:0", CallName::Empty);
        check("functions.:", CallName::Invalid);
    }
}
