//! The harmony special tokens (gpt-oss), recognized with nom's streaming `tag`.

use nom::branch::alt;
use nom::bytes::streaming::tag;
use nom::combinator::value;
use nom::sequence::delimited;
use nom::{IResult, Parser};

use crate::engine::json_args::ArgsGrammar;
use crate::engine::scan::{MarkerSet, Scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Start,
    Channel,
    Constrain,
    Message,
    End,
    Call,
    Return,
}

impl Marker {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::Start => "<|start|>",
            Self::Channel => "<|channel|>",
            Self::Constrain => "<|constrain|>",
            Self::Message => "<|message|>",
            Self::End => "<|end|>",
            Self::Call => "<|call|>",
            Self::Return => "<|return|>",
        }
    }
}

pub(crate) const LONGEST_MARKER: usize = "<|constrain|>".len();

#[inline]
fn token(input: &str) -> IResult<&str, Marker> {
    delimited(
        tag("<|"),
        alt((
            value(Marker::Start, tag("start")),
            value(Marker::Channel, tag("channel")),
            value(Marker::Constrain, tag("constrain")),
            value(Marker::Message, tag("message")),
            value(Marker::End, tag("end")),
            value(Marker::Call, tag("call")),
            value(Marker::Return, tag("return")),
        )),
        tag("|>"),
    )
    .parse(input)
}

#[derive(Debug)]
pub(crate) struct Tokens;

impl MarkerSet for Tokens {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<";
    const SPELLINGS: &'static [&'static str] = &[
        "<|start|>",
        "<|channel|>",
        "<|constrain|>",
        "<|message|>",
        "<|end|>",
        "<|call|>",
        "<|return|>",
    ];

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, token(input))
    }
}

/// Every token ends a call's arguments (outside a string; inside one it is in doubt).
impl ArgsGrammar for Tokens {
    const OUTSIDE: &'static [u8] = b"<";
    const INSIDE: &'static [u8] = b"<";
    const BALANCED: bool = false;

    fn ends_arguments(_: Marker) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    #[test]
    fn marker_scans() {
        let all = [
            Marker::Start,
            Marker::Channel,
            Marker::Constrain,
            Marker::Message,
            Marker::End,
            Marker::Call,
            Marker::Return,
        ];
        for marker in all {
            let text = marker.text();
            assert_eq!(Tokens::scan(text), Scan::Marker(marker, text.len()));
            assert!(text.len() <= LONGEST_MARKER);
            for cut in 1..text.len() {
                assert_eq!(Tokens::scan(&text[..cut]), Scan::Incomplete, "{}", &text[..cut]);
            }
        }
        assert_eq!(Tokens::scan("<|endoftext|>"), Scan::NoMatch);
        assert_eq!(Tokens::scan("<|channel>"), Scan::NoMatch);
    }

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<Tokens>();
    }
}
