//! The DeepSeek V3 and V3.1 tool-call formats.
//!
//! Calls sit in `<｜tool▁calls▁begin｜>` … `<｜tool▁calls▁end｜>`, each between
//! `<｜tool▁call▁begin｜>` and `<｜tool▁call▁end｜>`. The two versions differ in what
//! surrounds `<｜tool▁sep｜>`:
//!
//! - V3 (and R1): `TYPE<｜tool▁sep｜>NAME`, a newline, then the arguments in a
//!   ```` ```json ```` fence (the fence is ```` ``` ````, `json` a word of syntax after it;
//!   another word there is reported with its text); TYPE is `function`;
//! - V3.1: `NAME<｜tool▁sep｜>ARGS`, with no fence.
//!
//! What follows the separator tells them apart (`{` or a fence: arguments, so the head was the
//! name; anything else, `{{` too, which begins no JSON but a template's placeholder: a name,
//! so the head was the type), so one machine reads both, and
//! either version's fence is optional. The arguments are JSON read by the shared reader: a
//! token inside a string is in doubt, a fence inside a string is text. DeepSeek writes no call
//! ids: calls get `call_0`, `call_1`, … by their index.

mod markers;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::diag::{diagnostic, unexpected_marker, with_text};
use crate::engine::driver::{Chunk, Machine, Replay, Step};
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::scan::{Found, MarkerSet, Scan, marker_len, read_to_marker};
use crate::engine::section::{Section, SectionMachine, SectionMarker};
use crate::engine::stray::{Place, Stray};
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::format::Format;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use markers::{ArgTokens, Marker, Tokens};

pub(crate) use markers::LONGEST_MARKER;

const CALL_STRAY: &str = "text inside a tool call, after its arguments";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
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
    /// After the opening fence: its language.
    FenceLanguage,
    Arguments,
    /// After the closing fence, waiting for `<｜tool▁call▁end｜>`.
    AfterFence,
}

#[derive(Debug)]
pub(crate) struct Deepseek {
    tools: Vec<ToolSpec>,
    state: State,
    text: TextOut,
    section: Section,
    /// Text after a call's closing fence, before its end marker.
    stray: Stray,
    /// The word after the opening fence as read so far, and its offset.
    fence_language: (usize, String),
    calls: Calls,
    /// The shape of the first call: V3 (`true`) or V3.1.
    first_v3: Option<bool>,
}

impl Deepseek {
    pub(crate) fn new(options: &ParseOptions, text: TextOut) -> Self {
        Self {
            tools: options.tools.clone(),
            state: State::Text,
            text,
            section: Section::default(),
            stray: Stray::default(),
            fence_language: (0, String::new()),
            calls: Calls::default(),
            first_v3: None,
        }
    }

    pub(crate) fn detected(&self) -> Option<Format> {
        self.first_v3.map(|v3| if v3 { Format::DeepseekV3 } else { Format::DeepseekV31 })
    }

    fn step_text<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let found = self.text.read_to_marker::<Tokens, S>(chunk, start, Marker::ThinkOpen, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.calls.tally.count_syntax(len);
        let offset = chunk.base + at;
        match marker {
            Marker::ThinkOpen => self.text.open(),
            Marker::ThinkClose => self.text.close(marker.text(), "<think>", offset, sink),
            Marker::SectionBegin => self.open_section(offset),
            Marker::CallBegin => self.begin_call(offset),
            Marker::EndOfSentence => {}
            _ => sink.emit(unexpected_marker(
                marker.text(),
                None,
                offset,
                "outside any tool-call section",
            )),
        }
        Step::Continue(at + len)
    }

    fn step_head<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let head = &mut self.calls.get().head;
        let found = read_to_marker::<Tokens>(chunk, start, Marker::is_tool_marker, |text, _| {
            head.push_str(text)
        });
        let Found::Marker { at, marker, len } = found else { return found.step() };
        if marker == Marker::Separator {
            self.calls.tally.count_syntax(len);
            self.state = State::AfterSeparator;
            return Step::Continue(at + len);
        }
        self.announce_head(sink);
        sink.emit(diagnostic(
            DiagnosticKind::MalformedCall,
            Some(self.calls.get().index),
            chunk.base + at,
            "the call has no `<｜tool▁sep｜>`",
        ));
        self.end_at(marker, chunk, at, sink)
    }

    /// V3.1: the head is the name.
    fn announce_head<S: EventSink>(&mut self, sink: &mut S) {
        self.first_v3.get_or_insert(false);
        self.calls.announce_head(sink);
    }

    fn step_after_separator<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, eof, .. } = *chunk;
        let rest = &input[start..];
        let first = start + rest.len() - rest.trim_start().len();
        let Some(&byte) = input.as_bytes().get(first) else {
            return Step::Continue(input.len());
        };
        let arguments_follow = match byte {
            // No JSON begins with `{{`: a template's placeholder where a name should be.
            b'{' => match input.as_bytes().get(first + 1) {
                None if !eof => return Step::NeedInput(first),
                next => next != Some(&b'{'),
            },
            b'`' | b'[' | b'"' => true,
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
                self.calls.tally.count_syntax(kind.len());
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
    fn step_name<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let Chunk { text: input, eof, .. } = *chunk;
        let bytes = input.as_bytes();
        let end = bytes[start..]
            .iter()
            .position(|byte| matches!(byte, b'\n' | b'`' | b'{' | b'<'))
            .map(|found| start + found);
        let Some(at) = end else {
            self.push_name(&input[start..], sink);
            return Step::Continue(input.len());
        };
        if bytes[at] == b'{' {
            // `{{` is a template's placeholder in the name, not the arguments.
            match bytes.get(at + 1) {
                None if !eof => {
                    self.push_name(&input[start..at], sink);
                    return Step::NeedInput(at);
                }
                Some(b'{') => {
                    self.push_name(&input[start..at + 2], sink);
                    return Step::Continue(at + 2);
                }
                _ => {}
            }
        }
        if bytes[at] == b'<' {
            match <Tokens as MarkerSet>::scan(&input[at..]) {
                Scan::Incomplete if !eof => {
                    self.push_name(&input[start..at], sink);
                    return Step::NeedInput(at);
                }
                Scan::Marker(marker, _) if marker.is_tool_marker() => {}
                _ => {
                    self.push_name(&input[start..=at], sink);
                    return Step::Continue(at + 1);
                }
            }
        }
        self.calls.push_head(&input[start..at]);
        self.calls.announce_head(sink);
        self.state = State::ArgumentsStart;
        Step::Continue(at)
    }

    /// Adds text to the V3 name, which goes on after the step: a name of two words is none
    /// already, and the call is nameless at once (the rest of it is not kept).
    fn push_name<S: EventSink>(&mut self, text: &str, sink: &mut S) {
        self.calls.push_head(text);
        if !self.calls.is_nameless() && self.calls.head_names_nothing() {
            self.calls.announce_head(sink);
        }
    }

    fn step_arguments_start(&mut self, chunk: &Chunk<'_>, start: usize) -> Step {
        let Chunk { text: input, eof, .. } = *chunk;
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
                    self.calls.tally.count_syntax(len);
                    self.fence_language.0 = chunk.base + first + len;
                    self.state = State::FenceLanguage;
                    return Step::Continue(first + len);
                }
                _ => {}
            }
        }
        self.state = State::Arguments;
        Step::Continue(first)
    }

    /// After the opening fence: the name of its language, up to the first byte that is not
    /// a letter or a digit.
    fn step_fence_language<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let rest = &chunk.text[start..];
        let len = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        self.fence_language.1.push_str(&rest[..len]);
        if len < rest.len() {
            self.end_fence_language(sink);
            self.state = State::Arguments;
        }
        Step::Continue(start + len)
    }

    /// The fence's language is read: `json` is syntax, any other word is reported.
    fn end_fence_language<S: EventSink>(&mut self, sink: &mut S) {
        let (offset, language) = &mut self.fence_language;
        if language.is_empty() || language.eq_ignore_ascii_case("json") {
            self.calls.tally.count_syntax(language.len());
        } else {
            let index = Some(self.calls.get().index);
            let message = "the code fence around the arguments names a language other than `json`";
            let text = language.as_str();
            sink.emit(with_text(DiagnosticKind::MalformedCall, index, *offset, message, text));
        }
        language.clear();
    }

    fn step_arguments<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<ArgTokens, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Marker(Marker::Fence, at) => {
                let len = marker_len::<ArgTokens>(input, at);
                self.calls.tally.count_syntax(len);
                self.state = State::AfterFence;
                Step::Continue(at + len)
            }
            ArgsStop::Marker(marker, at) => self.end_at(marker, chunk, at, sink),
            stop => stop.step(input.len()),
        }
    }

    fn step_after_fence<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let accept = Marker::is_tool_marker;
        let place = self.call_place();
        let found = self.stray.read_to_marker::<Tokens, S>(chunk, start, accept, place, sink);
        let Found::Marker { at, marker, .. } = found else { return found.step() };
        self.end_at(marker, chunk, at, sink)
    }

    /// Text after the arguments of the call being read.
    fn call_place(&self) -> Place {
        Place { message: CALL_STRAY, call: self.calls.open().map(|call| call.index) }
    }

    /// Ends the call at the marker at `input[at..]`: its end marker is consumed, any other
    /// marker is left for the state after the call.
    fn end_at<S: EventSink>(
        &mut self,
        marker: Marker,
        chunk: &Chunk<'_>,
        at: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, .. } = *chunk;
        if marker == Marker::CallEnd {
            let len = marker_len::<Tokens>(input, at);
            self.calls.tally.count_syntax(len);
            self.end_call(Ending::Closed, sink);
            return Step::Continue(at + len);
        }
        let ending = Ending::not_closed(Marker::CallEnd.text(), marker.text(), base + at);
        self.end_call(ending, sink);
        Step::Continue(at)
    }

    fn end_call<S: EventSink>(&mut self, ending: Ending, sink: &mut S) {
        self.calls.end(ending, &self.tools, sink);
        self.after_call();
    }
}

impl Machine for Deepseek {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step {
        match self.state {
            State::Text => self.step_text(chunk, pos, sink),
            State::Section => self.step_section(chunk, pos, sink),
            State::Head => self.step_head(chunk, pos, sink),
            State::AfterSeparator => self.step_after_separator(chunk, pos, sink),
            State::Name => self.step_name(chunk, pos, sink),
            State::ArgumentsStart => self.step_arguments_start(chunk, pos),
            State::FenceLanguage => self.step_fence_language(chunk, pos, sink),
            State::Arguments => self.step_arguments(chunk, pos, sink),
            State::AfterFence => self.step_after_fence(chunk, pos, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        match self.state {
            State::Text => {}
            State::Section => self.section.truncated(offset, sink),
            State::Head | State::AfterSeparator => {
                self.announce_head(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::Name => {
                self.calls.announce_head(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::FenceLanguage => {
                self.end_fence_language(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::ArgumentsStart | State::Arguments => self.end_call(Ending::Truncated, sink),
            State::AfterFence => {
                let place = self.call_place();
                self.stray.flush(place, sink);
                self.end_call(Ending::Truncated, sink);
            }
        }
        self.state = State::Text;
    }

    fn retained(&self) -> usize {
        self.calls.retained()
            + self.section.retained()
            + self.stray.len()
            + self.fence_language.1.len()
    }

    fn tally(&self) -> Tally {
        self.calls.tally
    }

    fn calls(&mut self) -> Option<&mut Calls> {
        Some(&mut self.calls)
    }

    fn text_out(&self) -> TextOut {
        self.text
    }
}

impl SectionMachine for Deepseek {
    type Markers = Tokens;
    type State = State;

    const TEXT: State = State::Text;
    const SECTION: State = State::Section;
    const CALL: State = State::Head;

    fn parts(&mut self) -> (&mut State, &mut Section, &mut Calls) {
        (&mut self.state, &mut self.section, &mut self.calls)
    }
}
