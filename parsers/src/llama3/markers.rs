//! The Llama 3 special tokens that matter to tool calls, and think tags, recognized with
//! nom's streaming `tag`.

use nom::branch::alt;
use nom::bytes::streaming::tag;
use nom::combinator::value;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::engine::json_args::ArgsGrammar;
use crate::engine::scan::{MarkerSet, Scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    PythonTag,
    EndOfMessage,
    EndOfTurn,
    ThinkOpen,
    ThinkClose,
}

impl Marker {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::PythonTag => "<|python_tag|>",
            Self::EndOfMessage => "<|eom_id|>",
            Self::EndOfTurn => "<|eot_id|>",
            Self::ThinkOpen => "<think>",
            Self::ThinkClose => "</think>",
        }
    }
}

pub(crate) const LONGEST_MARKER: usize = "<|python_tag|>".len();

#[inline]
fn token(input: &str) -> IResult<&str, Marker> {
    alt((
        preceded(
            tag("<|"),
            alt((
                value(Marker::PythonTag, tag("python_tag|>")),
                value(Marker::EndOfMessage, tag("eom_id|>")),
                value(Marker::EndOfTurn, tag("eot_id|>")),
            )),
        ),
        value(Marker::ThinkOpen, tag("<think>")),
        value(Marker::ThinkClose, tag("</think>")),
    ))
    .parse(input)
}

#[derive(Debug)]
pub(crate) struct Tags;

impl MarkerSet for Tags {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<";
    const SPELLINGS: &'static [&'static str] =
        &["<|python_tag|>", "<|eom_id|>", "<|eot_id|>", "<think>", "</think>"];

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, token(input))
    }
}

/// A call object ends where it closes, or at a special token outside a string (one inside a
/// string is in doubt).
impl ArgsGrammar for Tags {
    const OUTSIDE: &'static [u8] = b"<";
    const INSIDE: &'static [u8] = b"<";
    const BALANCED: bool = true;

    fn ends_arguments(marker: Marker) -> bool {
        matches!(marker, Marker::PythonTag | Marker::EndOfMessage | Marker::EndOfTurn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    #[test]
    fn marker_scans() {
        for marker in [
            Marker::PythonTag,
            Marker::EndOfMessage,
            Marker::EndOfTurn,
            Marker::ThinkOpen,
            Marker::ThinkClose,
        ] {
            let text = marker.text();
            assert_eq!(Tags::scan(text), Scan::Marker(marker, text.len()));
            assert!(text.len() <= LONGEST_MARKER);
            for cut in 1..text.len() {
                assert_eq!(Tags::scan(&text[..cut]), Scan::Incomplete, "{}", &text[..cut]);
            }
        }
        assert_eq!(Tags::scan("<|python_tag>"), Scan::NoMatch);
        assert_eq!(Tags::scan("<b>"), Scan::NoMatch);
    }

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<Tags>();
    }
}
