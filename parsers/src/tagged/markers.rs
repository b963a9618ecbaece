//! The markers of the tagged-XML family, by role, and their spellings in the two dialects:
//! `<tool_call>` (Hermes / Qwen, Qwen3-Coder, GLM) and `<minimax:tool_call>` (MiniMax-M2).
//! Recognized with nom's streaming `tag`, so that a marker cut by a chunk boundary is
//! `Incomplete`.

use nom::branch::alt;
use nom::bytes::streaming::tag;
use nom::combinator::value;
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::engine::json_args::ArgsGrammar;
use crate::engine::scan::{MarkerSet, Scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// `<tool_call>` / `<minimax:tool_call>`: a place of calls opens.
    WrapperOpen,
    WrapperClose,
    /// `<function=` / `<invoke name=`: a call whose name follows, up to `>`.
    InvokeOpen,
    InvokeClose,
    /// `<parameter=` / `<parameter name=`: a parameter whose name follows, up to `>`.
    ParamOpen,
    ParamClose,
    /// GLM's `<arg_key>`, `</arg_key>`, `<arg_value>`, `</arg_value>`.
    ArgKeyOpen,
    ArgKeyClose,
    ArgValueOpen,
    ArgValueClose,
    ThinkOpen,
    ThinkClose,
}

/// A dialect of the family: its spellings and what a place of calls may hold.
pub(crate) trait Dialect: ArgsGrammar<Marker = Marker> {
    /// A place of calls may hold one call written as a JSON object or GLM's `NAME<arg_key>…`,
    /// besides calls written as invocations.
    const OTHER_SHAPES: bool;
    /// Names and keys are written in quotes.
    const QUOTED_NAMES: bool;
    const LONGEST_MARKER: usize;
    fn spelling(marker: Marker) -> &'static str;
}

/// `<tool_call>`, `<function=NAME>`, `<parameter=KEY>`, `<arg_key>`…
#[derive(Debug)]
pub(crate) struct ToolCallTags;

#[inline]
fn tool_call_tag(input: &str) -> IResult<&str, Marker> {
    alt((
        preceded(
            tag("</"),
            alt((
                value(Marker::WrapperClose, tag("tool_call>")),
                value(Marker::InvokeClose, tag("function>")),
                value(Marker::ParamClose, tag("parameter>")),
                value(Marker::ArgKeyClose, tag("arg_key>")),
                value(Marker::ArgValueClose, tag("arg_value>")),
                value(Marker::ThinkClose, tag("think>")),
            )),
        ),
        preceded(
            tag("<"),
            alt((
                value(Marker::WrapperOpen, tag("tool_call>")),
                value(Marker::InvokeOpen, tag("function=")),
                value(Marker::ParamOpen, tag("parameter=")),
                value(Marker::ArgKeyOpen, tag("arg_key>")),
                value(Marker::ArgValueOpen, tag("arg_value>")),
                value(Marker::ThinkOpen, tag("think>")),
            )),
        ),
    ))
    .parse(input)
}

impl MarkerSet for ToolCallTags {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<";
    const SPELLINGS: &'static [&'static str] = &[
        "<tool_call>",
        "</tool_call>",
        "<function=",
        "</function>",
        "<parameter=",
        "</parameter>",
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
        "<think>",
        "</think>",
    ];

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, tool_call_tag(input))
    }
}

/// A call written as a JSON object ends at `</tool_call>`; a `<tool_call>` before it means
/// the close is missing.
impl ArgsGrammar for ToolCallTags {
    const OUTSIDE: &'static [u8] = b"<";
    const INSIDE: &'static [u8] = b"<";
    const BALANCED: bool = false;

    fn ends_arguments(marker: Marker) -> bool {
        matches!(marker, Marker::WrapperOpen | Marker::WrapperClose)
    }
}

impl Dialect for ToolCallTags {
    const OTHER_SHAPES: bool = true;
    const QUOTED_NAMES: bool = false;
    const LONGEST_MARKER: usize = "</arg_value>".len();

    fn spelling(marker: Marker) -> &'static str {
        match marker {
            Marker::WrapperOpen => "<tool_call>",
            Marker::WrapperClose => "</tool_call>",
            Marker::InvokeOpen => "<function=",
            Marker::InvokeClose => "</function>",
            Marker::ParamOpen => "<parameter=",
            Marker::ParamClose => "</parameter>",
            Marker::ArgKeyOpen => "<arg_key>",
            Marker::ArgKeyClose => "</arg_key>",
            Marker::ArgValueOpen => "<arg_value>",
            Marker::ArgValueClose => "</arg_value>",
            Marker::ThinkOpen => "<think>",
            Marker::ThinkClose => "</think>",
        }
    }
}

/// `<minimax:tool_call>`, `<invoke name="NAME">`, `<parameter name="KEY">`.
#[derive(Debug)]
pub(crate) struct MinimaxTags;

#[inline]
fn minimax_tag(input: &str) -> IResult<&str, Marker> {
    alt((
        preceded(
            tag("</"),
            alt((
                value(Marker::WrapperClose, tag("minimax:tool_call>")),
                value(Marker::InvokeClose, tag("invoke>")),
                value(Marker::ParamClose, tag("parameter>")),
                value(Marker::ThinkClose, tag("think>")),
            )),
        ),
        preceded(
            tag("<"),
            alt((
                value(Marker::WrapperOpen, tag("minimax:tool_call>")),
                value(Marker::InvokeOpen, tag("invoke name=")),
                value(Marker::ParamOpen, tag("parameter name=")),
                value(Marker::ThinkOpen, tag("think>")),
            )),
        ),
    ))
    .parse(input)
}

impl MarkerSet for MinimaxTags {
    type Marker = Marker;
    const STARTS: &'static [u8] = b"<";
    const SPELLINGS: &'static [&'static str] = &[
        "<minimax:tool_call>",
        "</minimax:tool_call>",
        "<invoke name=",
        "</invoke>",
        "<parameter name=",
        "</parameter>",
        "<think>",
        "</think>",
    ];

    #[inline]
    fn recognize(input: &str) -> Scan<Marker> {
        Scan::from_result(input, minimax_tag(input))
    }
}

/// MiniMax-M2 writes no calls as JSON; nothing ends JSON arguments.
impl ArgsGrammar for MinimaxTags {
    const OUTSIDE: &'static [u8] = b"<";
    const INSIDE: &'static [u8] = b"<";
    const BALANCED: bool = false;

    fn ends_arguments(marker: Marker) -> bool {
        matches!(marker, Marker::WrapperOpen | Marker::WrapperClose)
    }
}

impl Dialect for MinimaxTags {
    const OTHER_SHAPES: bool = false;
    const QUOTED_NAMES: bool = true;
    const LONGEST_MARKER: usize = "</minimax:tool_call>".len();

    fn spelling(marker: Marker) -> &'static str {
        match marker {
            Marker::WrapperOpen => "<minimax:tool_call>",
            Marker::WrapperClose => "</minimax:tool_call>",
            Marker::InvokeOpen => "<invoke name=",
            Marker::InvokeClose => "</invoke>",
            Marker::ParamOpen => "<parameter name=",
            Marker::ParamClose => "</parameter>",
            Marker::ThinkOpen => "<think>",
            Marker::ThinkClose => "</think>",
            Marker::ArgKeyOpen => "<arg_key>",
            Marker::ArgKeyClose => "</arg_key>",
            Marker::ArgValueOpen => "<arg_value>",
            Marker::ArgValueClose => "</arg_value>",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::scan::check_spellings;

    fn tool_call(input: &str) -> Scan<Marker> {
        ToolCallTags::scan(input)
    }

    fn minimax(input: &str) -> Scan<Marker> {
        MinimaxTags::scan(input)
    }

    #[test]
    fn tool_call_tags() {
        assert_eq!(tool_call("<tool_call>\n{"), Scan::Marker(Marker::WrapperOpen, 11));
        assert_eq!(tool_call("</tool_call>"), Scan::Marker(Marker::WrapperClose, 12));
        assert_eq!(tool_call("<function=get"), Scan::Marker(Marker::InvokeOpen, 10));
        assert_eq!(tool_call("<parameter=city>"), Scan::Marker(Marker::ParamOpen, 11));
        assert_eq!(tool_call("</arg_value>"), Scan::Marker(Marker::ArgValueClose, 12));
        assert_eq!(tool_call("<think>"), Scan::Marker(Marker::ThinkOpen, 7));
        assert_eq!(tool_call("<tool_ca"), Scan::Incomplete);
        assert_eq!(tool_call("</"), Scan::Incomplete);
        assert_eq!(tool_call("<th"), Scan::Incomplete);
        assert_eq!(tool_call("<tool_call "), Scan::NoMatch);
        assert_eq!(tool_call("<div>"), Scan::NoMatch);
        assert_eq!(tool_call("<minimax:tool_call>"), Scan::NoMatch);
    }

    #[test]
    fn minimax_tags() {
        assert_eq!(minimax("<minimax:tool_call>"), Scan::Marker(Marker::WrapperOpen, 19));
        assert_eq!(minimax("</minimax:tool_call>"), Scan::Marker(Marker::WrapperClose, 20));
        assert_eq!(minimax("<invoke name=\"f\">"), Scan::Marker(Marker::InvokeOpen, 13));
        assert_eq!(minimax("<parameter name="), Scan::Marker(Marker::ParamOpen, 16));
        assert_eq!(minimax("<invoke nam"), Scan::Incomplete);
        assert_eq!(minimax("<tool_call>"), Scan::NoMatch);
        assert_eq!(minimax("<function=f>"), Scan::NoMatch);
    }

    #[test]
    fn longest_markers() {
        for marker in [Marker::WrapperClose, Marker::ArgValueClose, Marker::ParamClose] {
            assert!(ToolCallTags::spelling(marker).len() <= ToolCallTags::LONGEST_MARKER);
            assert!(MinimaxTags::spelling(marker).len() <= MinimaxTags::LONGEST_MARKER);
        }
    }

    #[test]
    fn every_spelling_is_recognized() {
        check_spellings::<ToolCallTags>();
        check_spellings::<MinimaxTags>();
    }
}
