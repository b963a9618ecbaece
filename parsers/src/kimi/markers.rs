//! The Kimi K2 markers, recognized with nom's streaming combinators: at the end of the text
//! fed so far, a proper prefix of a marker is `Incomplete`, which is what tells the stream
//! parser to hold those few bytes back until the next chunk.

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
    ArgumentBegin,
    CallEnd,
    ThinkOpen,
    ThinkClose,
}

impl SectionMarker for Marker {
    const SECTION_END: Self = Self::SectionEnd;
    const CALL_BEGIN: Self = Self::CallBegin;

    /// The canonical spelling, for messages.
    fn text(self) -> &'static str {
        match self {
            Self::SectionBegin => "<|tool_calls_section_begin|>",
            Self::SectionEnd => "<|tool_calls_section_end|>",
            Self::CallBegin => "<|tool_call_begin|>",
            Self::ArgumentBegin => "<|tool_call_argument_begin|>",
            Self::CallEnd => "<|tool_call_end|>",
            Self::ThinkOpen => "<think>",
            Self::ThinkClose => "</think>",
        }
    }

    /// Whether this is one of the tool-call markers (as opposed to a think tag).
    fn is_tool_marker(self) -> bool {
        !matches!(self, Self::ThinkOpen | Self::ThinkClose)
    }
}

/// The length in bytes of the longest marker; no more than this less one is ever held back.
pub const LONGEST_MARKER: usize = "<|tool_calls_section_begin|>".len();

/// The tool-call markers share the prefix `<|tool_call`; matching it once and then the
/// suffixes keeps the work per `<` small.
#[inline]
fn tool_marker(input: &str) -> IResult<&str, Marker> {
    preceded(
        tag("<|tool_call"),
        alt((
            value(Marker::CallBegin, tag("_begin|>")),
            value(Marker::CallEnd, tag("_end|>")),
            value(Marker::ArgumentBegin, tag("_argument_begin|>")),
            value(Marker::SectionBegin, alt((tag("s_section_begin|>"), tag("_section_begin|>")))),
            value(Marker::SectionEnd, alt((tag("s_section_end|>"), tag("_section_end|>")))),
        )),
    )
    .parse(input)
}

#[inline]
fn think_tag(input: &str) -> IResult<&str, Marker> {
    alt((value(Marker::ThinkOpen, tag("<think>")), value(Marker::ThinkClose, tag("</think>"))))
        .parse(input)
}

#[inline]
fn marker(input: &str) -> IResult<&str, Marker> {
    alt((tool_marker, think_tag)).parse(input)
}

/// The Kimi markers, all starting with `<`.
#[derive(Debug)]
pub(crate) struct KimiMarkers;

impl MarkerSet for KimiMarkers {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<";
    const SPELLINGS: &'static [&'static str] = &[
        "<|tool_calls_section_begin|>",
        "<|tool_call_section_begin|>",
        "<|tool_calls_section_end|>",
        "<|tool_call_section_end|>",
        "<|tool_call_begin|>",
        "<|tool_call_argument_begin|>",
        "<|tool_call_end|>",
        "<think>",
        "</think>",
    ];

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, marker(input))
    }
}

/// In arguments, every tool-call marker ends them (or is in doubt inside a string); think tags
/// are argument text.
impl ArgsGrammar for KimiMarkers {
    const OUTSIDE: &'static [u8] = b"<";
    const INSIDE: &'static [u8] = b"<";
    const BALANCED: bool = false;

    fn ends_arguments(marker: Marker) -> bool {
        marker.is_tool_marker()
    }
}

#[cfg(test)]
fn scan_marker(input: &str) -> Scan<Marker> {
    <KimiMarkers as MarkerSet>::scan(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    fn check(input: &str, expected: Scan<Marker>) {
        assert_eq!(scan_marker(input), expected, "input {input:?}");
    }

    #[test]
    fn marker_scans() {
        check("<|tool_calls_section_begin|> x", Scan::Marker(Marker::SectionBegin, 28));
        check("<|tool_call_section_begin|>", Scan::Marker(Marker::SectionBegin, 27));
        check("<|tool_call_section_end|>", Scan::Marker(Marker::SectionEnd, 25));
        check("<|tool_call_begin|>functions", Scan::Marker(Marker::CallBegin, 19));
        check("<|tool_call_argument_begin|>{", Scan::Marker(Marker::ArgumentBegin, 28));
        check("<|tool_call_end|>", Scan::Marker(Marker::CallEnd, 17));
        check("<think>", Scan::Marker(Marker::ThinkOpen, 7));
        check("</think>", Scan::Marker(Marker::ThinkClose, 8));
        check("<", Scan::Incomplete);
        check("<|tool_call", Scan::Incomplete);
        check("<|tool_calls_section_begin|", Scan::Incomplete);
        check("</thi", Scan::Incomplete);
        check("<|tool_call_bgin|>", Scan::NoMatch);
        check("<div>", Scan::NoMatch);
        check("<|im_end|>", Scan::NoMatch);
        check("< think>", Scan::NoMatch);
    }

    #[test]
    fn longest_marker_is_longest() {
        for spelling in ["<|tool_calls_section_begin|>", "<|tool_call_argument_begin|>"] {
            assert!(spelling.len() <= LONGEST_MARKER);
        }
    }

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<KimiMarkers>();
    }
}
