//! The Mistral control tokens, all written in square brackets, recognized with nom's
//! streaming `tag`.

use nom::branch::alt;
use nom::bytes::streaming::tag;
use nom::combinator::value;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::engine::json_args::ArgsGrammar;
use crate::engine::scan::{MarkerSet, Scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    ToolCalls,
    Args,
    CallId,
    ThinkOpen,
    ThinkClose,
}

impl Marker {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::ToolCalls => "[TOOL_CALLS]",
            Self::Args => "[ARGS]",
            Self::CallId => "[CALL_ID]",
            Self::ThinkOpen => "[THINK]",
            Self::ThinkClose => "[/THINK]",
        }
    }

    pub(crate) fn is_tool_marker(self) -> bool {
        matches!(self, Self::ToolCalls | Self::Args | Self::CallId)
    }
}

pub(crate) const LONGEST_MARKER: usize = "[TOOL_CALLS]".len();

#[inline]
fn control(input: &str) -> IResult<&str, Marker> {
    preceded(
        tag("["),
        alt((
            value(Marker::ToolCalls, tag("TOOL_CALLS]")),
            value(Marker::Args, tag("ARGS]")),
            value(Marker::CallId, tag("CALL_ID]")),
            value(Marker::ThinkOpen, tag("THINK]")),
            value(Marker::ThinkClose, tag("/THINK]")),
        )),
    )
    .parse(input)
}

#[derive(Debug)]
pub(crate) struct Controls;

impl MarkerSet for Controls {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"[";
    const SPELLINGS: &'static [&'static str] =
        &["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]"];

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, control(input))
    }
}

/// Arguments (and the objects of the array form) end where their JSON value closes, or at a
/// tool-call token outside a string; one inside a string is in doubt.
impl ArgsGrammar for Controls {
    const OUTSIDE: &'static [u8] = b"[";
    const INSIDE: &'static [u8] = b"[";
    const BALANCED: bool = true;

    fn ends_arguments(marker: Marker) -> bool {
        marker.is_tool_marker()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    #[test]
    fn marker_scans() {
        for marker in
            [Marker::ToolCalls, Marker::Args, Marker::CallId, Marker::ThinkOpen, Marker::ThinkClose]
        {
            let text = marker.text();
            assert_eq!(Controls::scan(text), Scan::Marker(marker, text.len()));
            assert!(text.len() <= LONGEST_MARKER);
            for cut in 1..text.len() {
                assert_eq!(Controls::scan(&text[..cut]), Scan::Incomplete, "{}", &text[..cut]);
            }
        }
        assert_eq!(Controls::scan("[1, 2]"), Scan::NoMatch);
        assert_eq!(Controls::scan("[TOOL_CALL]"), Scan::NoMatch);
        assert_eq!(Controls::scan("[{\"name\""), Scan::NoMatch);
    }

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<Controls>();
    }
}
