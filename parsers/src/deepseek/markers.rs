//! The DeepSeek markers: special tokens written with the full-width vertical bar `｜`
//! (U+FF5C) and the lower one-eighth block `▁` (U+2581) for spaces, plus the Markdown code
//! fence that V3 puts around arguments. Recognized with nom's streaming `tag`.

use nom::branch::alt;
use nom::bytes::streaming::tag;
use nom::combinator::value;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::engine::json_args::ArgsGrammar;
use crate::engine::scan::{MarkerSet, Scan};
use crate::engine::section::SectionMarker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    SectionBegin,
    SectionEnd,
    CallBegin,
    CallEnd,
    /// `<｜tool▁sep｜>`, between the call's head and its name or arguments.
    Separator,
    /// `<｜end▁of▁sentence｜>`, the end of the reply.
    EndOfSentence,
    ThinkOpen,
    ThinkClose,
    /// ```` ``` ````, around the arguments (the opening one may name a language, `json`).
    Fence,
}

impl SectionMarker for Marker {
    const SECTION_END: Self = Self::SectionEnd;
    const CALL_BEGIN: Self = Self::CallBegin;

    fn text(self) -> &'static str {
        match self {
            Self::SectionBegin => "<｜tool▁calls▁begin｜>",
            Self::SectionEnd => "<｜tool▁calls▁end｜>",
            Self::CallBegin => "<｜tool▁call▁begin｜>",
            Self::CallEnd => "<｜tool▁call▁end｜>",
            Self::Separator => "<｜tool▁sep｜>",
            Self::EndOfSentence => "<｜end▁of▁sentence｜>",
            Self::ThinkOpen => "<think>",
            Self::ThinkClose => "</think>",
            Self::Fence => "```",
        }
    }

    fn is_tool_marker(self) -> bool {
        !matches!(self, Self::ThinkOpen | Self::ThinkClose | Self::Fence | Self::EndOfSentence)
    }
}

/// The length in bytes of the longest marker.
pub(crate) const LONGEST_MARKER: usize = "<｜tool▁calls▁begin｜>".len();

#[inline]
fn token(input: &str) -> IResult<&str, Marker> {
    alt((
        preceded(
            tag("<｜"),
            alt((
                preceded(
                    tag("tool▁"),
                    alt((
                        value(Marker::SectionBegin, tag("calls▁begin｜>")),
                        value(Marker::SectionEnd, tag("calls▁end｜>")),
                        value(Marker::CallBegin, tag("call▁begin｜>")),
                        value(Marker::CallEnd, tag("call▁end｜>")),
                        value(Marker::Separator, tag("sep｜>")),
                    )),
                ),
                value(Marker::EndOfSentence, tag("end▁of▁sentence｜>")),
            )),
        ),
        value(Marker::ThinkOpen, tag("<think>")),
        value(Marker::ThinkClose, tag("</think>")),
    ))
    .parse(input)
}

#[inline]
fn fence(input: &str) -> IResult<&str, Marker> {
    value(Marker::Fence, tag("```")).parse(input)
}

/// Every spelling: the tokens, and last the code fence.
const SPELLINGS: &[&str] = &[
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>",
    "<｜end▁of▁sentence｜>",
    "<think>",
    "</think>",
    "```",
];

/// The spellings of the tokens: all but the fence.
const TOKENS: &[&str] = SPELLINGS.split_last().unwrap().1;

/// The markers of text, sections and call heads.
#[derive(Debug)]
pub(crate) struct Tokens;

impl MarkerSet for Tokens {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<";
    const SPELLINGS: &'static [&'static str] = TOKENS;

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, token(input))
    }
}

/// Where arguments may be: the tokens and the code fence.
#[derive(Debug)]
pub(crate) struct ArgTokens;

impl MarkerSet for ArgTokens {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<`";
    const SPELLINGS: &'static [&'static str] = SPELLINGS;

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        let result = if input.starts_with('`') { fence(input) } else { token(input) };
        Scan::from_result(input, result)
    }
}

/// Arguments end at a tool-call token, or at the closing fence outside a string; a fence
/// inside a string is text (code in an argument), a token inside one is in doubt.
impl ArgsGrammar for ArgTokens {
    const OUTSIDE: &'static [u8] = b"<`";
    const INSIDE: &'static [u8] = b"<";
    const BALANCED: bool = false;

    fn ends_arguments(marker: Marker) -> bool {
        marker.is_tool_marker() || marker == Marker::Fence || marker == Marker::EndOfSentence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    fn check(input: &str, expected: Scan<Marker>) {
        assert_eq!(<ArgTokens as MarkerSet>::scan(input), expected, "input {input:?}");
    }

    #[test]
    fn marker_scans() {
        let all = [
            Marker::SectionBegin,
            Marker::SectionEnd,
            Marker::CallBegin,
            Marker::CallEnd,
            Marker::Separator,
            Marker::EndOfSentence,
            Marker::ThinkOpen,
            Marker::ThinkClose,
        ];
        for marker in all {
            check(marker.text(), Scan::Marker(marker, marker.text().len()));
            assert!(marker.text().len() <= LONGEST_MARKER);
            let text = marker.text();
            for (cut, _) in text.char_indices().skip(1) {
                check(&text[..cut], Scan::Incomplete);
            }
        }
        check("```json\n{", Scan::Marker(Marker::Fence, 3));
        check("```\n", Scan::Marker(Marker::Fence, 3));
        check("``", Scan::Incomplete);
        check("<|tool▁call▁begin|>", Scan::NoMatch);
        check("<｜tool▁cal▁begin｜>", Scan::NoMatch);
        check("< think>", Scan::NoMatch);
    }

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<Tokens>();
        check_spellings::<ArgTokens>();
    }
}
