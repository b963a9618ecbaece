//! The DeepSeek V3 and V3.1 tool-call formats.
//!
//! Calls sit in `<｜tool▁calls▁begin｜>` … `<｜tool▁calls▁end｜>`, each between
//! `<｜tool▁call▁begin｜>` and `<｜tool▁call▁end｜>`. The two versions differ in what
//! surrounds `<｜tool▁sep｜>`:
//!
//! - V3 (and R1): `TYPE<｜tool▁sep｜>NAME`, a newline, then the arguments in a
//!   ```` ```json ```` fence; TYPE is `function`;
//! - V3.1: `NAME<｜tool▁sep｜>ARGS`, with no fence.
//!
//! What follows the separator tells them apart (`{` or a fence: arguments, so the head was the
//! name; anything else: a name, so the head was the type), so one machine reads both, and
//! either version's fence is optional. The arguments are JSON read by the shared reader: a
//! token inside a string is in doubt, a fence inside a string is text. DeepSeek writes no call
//! ids: calls get `call_0`, `call_1`, … by their index.

mod markers;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::diag::{diagnostic, unexpected_marker, with_text};
use crate::engine::driver::{Machine, Replay, Step};
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::scan::{MarkerSet, Next, Scan, marker_len, next_marker};
use crate::engine::stray::Stray;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::format::Format;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use markers::{ArgTokens, Marker, Tokens};

pub(crate) use markers::LONGEST_MARKER;

const SECTION_STRAY: &str = "text inside a tool-call section, outside any call";
const CALL_STRAY: &str = "text inside a tool call, after its arguments";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    Section,
    /// After `<｜tool▁call▁begin｜>`: the type (V3) or the name (V3.1), up to the separator.
    Head,
    /// After the separator: which version this call is.
    AfterSeparator,
    /// V3: the name, up to the end of its line.
    Name,
    /// Before the arguments: an optional opening fence.
    ArgumentsStart,
    Arguments,
    /// After the closing fence, waiting for `<｜tool▁call▁end｜>`.
    AfterFence,
}

#[derive(Debug)]
pub(crate) struct Deepseek {
    tools: Vec<ToolSpec>,
    state: State,
    text: TextOut,
    section: Option<usize>,
    stray: Stray,
    calls: Calls,
    /// The shape of the first call: V3 (`true`) or V3.1.
    first_v3: Option<bool>,
    marker_bytes: usize,
}

impl Deepseek {
    pub(crate) fn new(options: &ParseOptions, text: TextOut) -> Self {
        Self {
            tools: options.tools.clone(),
            state: State::Text,
            text,
            section: None,
            stray: Stray::default(),
            calls: Calls::default(),
            first_v3: None,
            marker_bytes: 0,
        }
    }

    pub(crate) fn detected(&self) -> Option<Format> {
        self.first_v3.map(|v3| if v3 { Format::DeepseekV3 } else { Format::DeepseekV31 })
    }

    fn step_text<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let opens = self.text.opens();
        match next_marker::<Tokens>(input, start, eof, |m| m != Marker::ThinkOpen || opens) {
            Next::Marker { at, marker, len } => {
                self.text.emit(&input[start..at], sink);
                self.marker_bytes += len;
                let offset = base + at;
                match marker {
                    Marker::ThinkOpen => self.text.open(),
                    Marker::ThinkClose => self.text.close(marker.text(), "<think>", offset, sink),
                    Marker::SectionBegin => {
                        self.section = Some(offset);
                        self.state = State::Section;
                    }
                    Marker::CallBegin => self.begin_call(offset),
                    Marker::EndOfSentence => {}
                    _ => sink.emit(unexpected_marker(
                        marker.text(),
                        offset,
                        "outside any tool-call section",
                    )),
                }
                Step::Continue(at + len)
            }
            Next::NeedInput(at) => {
                self.text.emit(&input[start..at], sink);
                Step::NeedInput(at)
            }
            Next::End => {
                self.text.emit(&input[start..], sink);
                Step::Continue(input.len())
            }
        }
    }

    fn step_section<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        match next_marker::<Tokens>(input, start, eof, Marker::is_tool_marker) {
            Next::Marker { at, marker, len } => {
                self.stray.add(&input[start..at], base + start);
                self.stray.flush(SECTION_STRAY, sink);
                self.marker_bytes += len;
                match marker {
                    Marker::SectionEnd => {
                        self.section = None;
                        self.state = State::Text;
                    }
                    Marker::CallBegin => self.begin_call(base + at),
                    _ => {
                        sink.emit(unexpected_marker(marker.text(), base + at, "between tool calls"))
                    }
                }
                Step::Continue(at + len)
            }
            Next::NeedInput(at) => {
                self.stray.add(&input[start..at], base + start);
                Step::NeedInput(at)
            }
            Next::End => {
                self.stray.add(&input[start..], base + start);
                Step::Continue(input.len())
            }
        }
    }

    fn begin_call(&mut self, offset: usize) {
        self.calls.begin(offset);
        self.state = State::Head;
    }

    fn step_head<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        match next_marker::<Tokens>(input, start, eof, Marker::is_tool_marker) {
            Next::Marker { at, marker, len } => {
                self.calls.get().head.push_str(&input[start..at]);
                match marker {
                    Marker::Separator => {
                        self.marker_bytes += len;
                        self.state = State::AfterSeparator;
                        Step::Continue(at + len)
                    }
                    _ => {
                        self.announce_head(sink);
                        sink.emit(diagnostic(
                            DiagnosticKind::MalformedCall,
                            Some(self.calls.get().index),
                            base + at,
                            "the call has no `<｜tool▁sep｜>`",
                        ));
                        self.end_at(marker, input, at, base, sink)
                    }
                }
            }
            Next::NeedInput(at) => {
                self.calls.get().head.push_str(&input[start..at]);
                Step::NeedInput(at)
            }
            Next::End => {
                self.calls.get().head.push_str(&input[start..]);
                Step::Continue(input.len())
            }
        }
    }

    /// V3.1: the head is the name.
    fn announce_head<S: EventSink>(&mut self, sink: &mut S) {
        self.first_v3.get_or_insert(false);
        self.calls.announce_head(sink);
    }

    fn step_after_separator<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let rest = &input[start..];
        let first = start + rest.len() - rest.trim_start().len();
        let Some(&byte) = input.as_bytes().get(first) else {
            return Step::Continue(input.len());
        };
        let arguments_follow = match byte {
            b'{' | b'`' | b'[' | b'"' => true,
            b'<' => match <Tokens as MarkerSet>::scan(&input[first..]) {
                Scan::Incomplete if !eof => return Step::NeedInput(first),
                Scan::Marker(marker, _) => marker.is_tool_marker(),
                Scan::Incomplete | Scan::NoMatch => false,
            },
            _ => false,
        };
        if arguments_follow {
            self.announce_head(sink);
            self.state = State::ArgumentsStart;
        } else {
            self.first_v3.get_or_insert(true);
            let head = std::mem::take(&mut self.calls.get().head);
            let kind = head.trim();
            if kind == "function" {
                self.marker_bytes += kind.len();
            } else {
                let call = self.calls.get();
                let (index, offset) = (call.index, call.offset);
                sink.emit(if kind.is_empty() {
                    diagnostic(
                        DiagnosticKind::MalformedCall,
                        Some(index),
                        offset,
                        "the call has no type",
                    )
                } else {
                    with_text(
                        DiagnosticKind::MalformedCall,
                        Some(index),
                        offset,
                        "the call's type is not `function`",
                        kind,
                    )
                });
            }
            self.state = State::Name;
        }
        Step::Continue(first)
    }

    /// V3: the name runs to the end of its line (or to the fence or arguments).
    fn step_name<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let bytes = input.as_bytes();
        let end = bytes[start..]
            .iter()
            .position(|byte| matches!(byte, b'\n' | b'`' | b'{' | b'<'))
            .map(|found| start + found);
        let Some(at) = end else {
            self.calls.get().head.push_str(&input[start..]);
            return Step::Continue(input.len());
        };
        if bytes[at] == b'<' {
            match <Tokens as MarkerSet>::scan(&input[at..]) {
                Scan::Incomplete if !eof => {
                    self.calls.get().head.push_str(&input[start..at]);
                    return Step::NeedInput(at);
                }
                Scan::Marker(marker, _) if marker.is_tool_marker() => {}
                _ => {
                    self.calls.get().head.push_str(&input[start..=at]);
                    return Step::Continue(at + 1);
                }
            }
        }
        self.calls.get().head.push_str(&input[start..at]);
        self.calls.announce_head(sink);
        self.state = State::ArgumentsStart;
        Step::Continue(at)
    }

    fn step_arguments_start(&mut self, input: &str, start: usize, eof: bool) -> Step {
        let rest = &input[start..];
        let first = start + rest.len() - rest.trim_start().len();
        if first == input.len() {
            return Step::Continue(first);
        }
        self.calls.arguments_start();
        if input.as_bytes()[first] == b'`' {
            match <ArgTokens as MarkerSet>::scan(&input[first..]) {
                Scan::Incomplete if !eof => return Step::NeedInput(first),
                Scan::Marker(Marker::Fence, len) => {
                    self.marker_bytes += len;
                    self.state = State::Arguments;
                    return Step::Continue(first + len);
                }
                _ => {}
            }
        }
        self.state = State::Arguments;
        Step::Continue(first)
    }

    fn step_arguments<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        match read_arguments::<ArgTokens, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Marker(Marker::Fence, at) => {
                self.marker_bytes += marker_len::<ArgTokens>(input, at);
                self.state = State::AfterFence;
                Step::Continue(at + marker_len::<ArgTokens>(input, at))
            }
            ArgsStop::Marker(marker, at) => self.end_at(marker, input, at, base, sink),
            ArgsStop::NeedInput(at) => Step::NeedInput(at),
            ArgsStop::Exhausted | ArgsStop::Closed(_) => Step::Continue(input.len()),
            ArgsStop::Replay { resume, replay } => Step::Replay { resume, replay },
        }
    }

    fn step_after_fence<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        match next_marker::<Tokens>(input, start, eof, Marker::is_tool_marker) {
            Next::Marker { at, marker, .. } => {
                self.stray.add(&input[start..at], base + start);
                self.stray.flush(CALL_STRAY, sink);
                self.end_at(marker, input, at, base, sink)
            }
            Next::NeedInput(at) => {
                self.stray.add(&input[start..at], base + start);
                Step::NeedInput(at)
            }
            Next::End => {
                self.stray.add(&input[start..], base + start);
                Step::Continue(input.len())
            }
        }
    }

    /// Ends the call at the marker at `input[at..]`: its end marker is consumed, any other
    /// marker is left for the state after the call.
    fn end_at<S: EventSink>(
        &mut self,
        marker: Marker,
        input: &str,
        at: usize,
        base: usize,
        sink: &mut S,
    ) -> Step {
        if marker == Marker::CallEnd {
            let len = marker_len::<Tokens>(input, at);
            self.marker_bytes += len;
            self.end_call(Ending::Closed, sink);
            return Step::Continue(at + len);
        }
        let ending = Ending::Malformed {
            offset: base + at,
            message: format!(
                "the call was not closed with `<｜tool▁call▁end｜>` before `{}`",
                marker.text()
            ),
        };
        self.end_call(ending, sink);
        Step::Continue(at)
    }

    fn end_call<S: EventSink>(&mut self, ending: Ending, sink: &mut S) {
        self.calls.end(ending, &self.tools, sink);
        self.state = if self.section.is_some() { State::Section } else { State::Text };
    }
}

impl Machine for Deepseek {
    fn step<S: EventSink>(
        &mut self,
        input: &str,
        pos: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        match self.state {
            State::Text => self.step_text(input, pos, base, eof, sink),
            State::Section => self.step_section(input, pos, base, eof, sink),
            State::Head => self.step_head(input, pos, base, eof, sink),
            State::AfterSeparator => self.step_after_separator(input, pos, eof, sink),
            State::Name => self.step_name(input, pos, eof, sink),
            State::ArgumentsStart => self.step_arguments_start(input, pos, eof),
            State::Arguments => self.step_arguments(input, pos, base, eof, sink),
            State::AfterFence => self.step_after_fence(input, pos, base, eof, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        match self.state {
            State::Text => {}
            State::Section => {
                self.stray.flush(SECTION_STRAY, sink);
                let start = self.section.take().unwrap_or(offset);
                sink.emit(diagnostic(
                    DiagnosticKind::Truncated,
                    None,
                    start,
                    "the input ended inside a tool-call section",
                ));
            }
            State::Head | State::AfterSeparator => {
                self.announce_head(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::Name => {
                self.calls.announce_head(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::ArgumentsStart | State::Arguments => self.end_call(Ending::Truncated, sink),
            State::AfterFence => {
                self.stray.flush(CALL_STRAY, sink);
                self.end_call(Ending::Truncated, sink);
            }
        }
        self.state = State::Text;
    }

    fn retained(&self) -> usize {
        self.calls.retained() + self.stray.len()
    }

    fn marker_bytes(&self) -> usize {
        self.marker_bytes
    }

    fn generated_bytes(&self) -> usize {
        self.calls.generated_bytes()
    }
}
