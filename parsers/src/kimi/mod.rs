//! The Kimi K2 / Kimi Coding tool-call format (DESIGN §3).
//!
//! Markers: `<|tool_calls_section_begin|>` … `<|tool_calls_section_end|>` (also singular),
//! and calls `<|tool_call_begin|> ID <|tool_call_argument_begin|> ARGS <|tool_call_end|>`. The
//! machine's states are text, section, call id and arguments; the arguments are JSON read by
//! the shared reader, so a marker inside a JSON string is literal when the arguments are then
//! valid. The model's call id is kept verbatim.
//!
//! The machine says nothing while it reads a call's id, so calls begin quiet: the driver's gate
//! holds a call only when its id gives no name (a bare index, resolved by the declared tools once
//! the arguments are read, or an id of no allowed form), from the step that finds so.

mod call_id;
mod markers;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending, Note};
use crate::engine::diag::{diagnostic, unexpected_marker};
use crate::engine::driver::{Chunk, Machine, Replay, Step};
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::scan::{Found, marker_len, read_to_marker};
use crate::engine::section::{Section, SectionMachine, SectionMarker};
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use call_id::{CallName, parse_call_id};
use markers::{KimiMarkers, Marker};

pub use markers::LONGEST_MARKER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Outside any section or call: content, or reasoning inside `<think>`.
    Text,
    /// Inside a tool-call section, between calls.
    Section,
    /// After `<|tool_call_begin|>`, reading the id.
    CallId,
    /// The id is read and gives no name: the marker that ended it is read next, once the gate
    /// holds the call.
    IdRead,
    /// After `<|tool_call_argument_begin|>`, reading the arguments.
    Arguments,
}

/// The Kimi K2 machine. See the module documentation.
#[derive(Debug)]
pub(crate) struct Kimi {
    tools: Vec<ToolSpec>,
    state: State,
    text: TextOut,
    section: Section,
    calls: Calls,
}

impl Kimi {
    pub(crate) fn new(options: &ParseOptions, text: TextOut) -> Self {
        Self {
            tools: options.tools.clone(),
            state: State::Text,
            text,
            section: Section::default(),
            calls: Calls::default(),
        }
    }

    fn step_text<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let found =
            self.text.read_to_marker::<KimiMarkers, S>(chunk, start, Marker::ThinkOpen, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.calls.tally.count_syntax(len);
        self.on_text_marker(marker, chunk.base + at, sink);
        Step::Continue(at + len)
    }

    fn on_text_marker<S: EventSink>(&mut self, marker: Marker, offset: usize, sink: &mut S) {
        match marker {
            Marker::ThinkOpen => self.text.open(),
            Marker::ThinkClose => self.text.close(marker.text(), "<think>", offset, sink),
            Marker::SectionBegin => self.open_section(offset),
            Marker::CallBegin => self.begin_call(offset),
            Marker::SectionEnd | Marker::ArgumentBegin | Marker::CallEnd => {
                let context = "outside any tool-call section";
                sink.emit(unexpected_marker(marker.text(), None, offset, context));
            }
        }
    }

    fn step_call_id<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let calls = &mut self.calls;
        let found =
            read_to_marker::<KimiMarkers>(chunk, start, Marker::is_tool_marker, |text, _| {
                calls.push_head(text);
            });
        let in_id = matches!(found, Found::Done(_)) && self.state == State::CallId;
        if in_id && self.calls.head_names_nothing() {
            // An id of two words has no allowed form: the call is nameless now, and the rest
            // of its id is not kept.
            self.announce(sink);
            self.calls.get().head.clear();
            self.state = State::IdRead;
            // The gate takes the call up from here, before a marker is read.
            return found.step();
        }
        let Found::Marker { at, marker, len } = found else { return found.step() };
        if self.state == State::CallId && !self.announce(sink) {
            self.state = State::IdRead;
            return Step::Continue(at);
        }
        match marker {
            Marker::ArgumentBegin => {
                self.calls.tally.count_syntax(len);
                self.calls.arguments_start();
                self.state = State::Arguments;
                Step::Continue(at + len)
            }
            Marker::CallEnd => {
                self.calls.tally.count_syntax(len);
                sink.emit(diagnostic(
                    DiagnosticKind::MalformedCall,
                    Some(self.calls.get().index),
                    chunk.base + at,
                    "the call has no `<|tool_call_argument_begin|>` marker",
                ));
                self.end_call(Ending::Closed, sink);
                Step::Continue(at + len)
            }
            _ => {
                let ending =
                    Ending::not_closed(Marker::CallEnd.text(), marker.text(), chunk.base + at);
                self.end_call(ending, sink);
                Step::Continue(at)
            }
        }
    }

    fn step_arguments<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<KimiMarkers, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Marker(Marker::CallEnd, at) => {
                let len = marker_len::<KimiMarkers>(input, at);
                self.calls.tally.count_syntax(len);
                self.end_call(Ending::Closed, sink);
                Step::Continue(at + len)
            }
            ArgsStop::Marker(marker, at) => {
                let ending = Ending::not_closed(Marker::CallEnd.text(), marker.text(), base + at);
                self.end_call(ending, sink);
                Step::Continue(at)
            }
            stop => stop.step(input.len()),
        }
    }

    /// The id is complete: announces the call it names, waits for the arguments to tell a
    /// bare index's name, or leaves a call whose id has no allowed form nameless. Returns
    /// whether the call was announced.
    fn announce<S: EventSink>(&mut self, sink: &mut S) -> bool {
        let call = self.calls.get();
        let id = call.head.trim().to_owned();
        let offset = call.offset;
        match parse_call_id(&id) {
            CallName::Named(name) => {
                self.calls.tally.count_generated(&name);
                self.calls.announce(id, name, sink);
                return true;
            }
            CallName::Unnamed => self.calls.defer(id),
            CallName::Empty => {
                let message = "the call id has no tool name after `functions.`";
                self.calls.nameless(Note::no_name(offset, message));
            }
            CallName::Invalid => {
                let message = if id.is_empty() {
                    "the call has an empty id"
                } else {
                    "the call id is not `functions.NAME:IDX`, `NAME:IDX` or `IDX`"
                };
                let kind = DiagnosticKind::InvalidId;
                self.calls.nameless(Note { kind, offset, message: message.to_owned() });
            }
        }
        false
    }

    fn end_call<S: EventSink>(&mut self, ending: Ending, sink: &mut S) {
        self.calls.end(ending, &self.tools, sink);
        self.after_call();
    }
}

impl Machine for Kimi {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step {
        match self.state {
            State::Text => self.step_text(chunk, pos, sink),
            State::Section => self.step_section(chunk, pos, sink),
            State::CallId | State::IdRead => self.step_call_id(chunk, pos, sink),
            State::Arguments => self.step_arguments(chunk, pos, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        match self.state {
            State::Text => {}
            State::Section => self.section.truncated(offset, sink),
            State::CallId => {
                self.announce(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::IdRead | State::Arguments => self.end_call(Ending::Truncated, sink),
        }
        self.state = State::Text;
    }

    fn retained(&self) -> usize {
        self.calls.retained() + self.section.retained()
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

impl SectionMachine for Kimi {
    type Markers = KimiMarkers;
    type State = State;

    const TEXT: State = State::Text;
    const SECTION: State = State::Section;
    const CALL: State = State::CallId;

    fn parts(&mut self) -> (&mut State, &mut Section, &mut Calls) {
        (&mut self.state, &mut self.section, &mut self.calls)
    }

    fn begin_call(&mut self, offset: usize) {
        self.calls.begin_quiet(offset, Marker::CallBegin.text());
        self.state = State::CallId;
    }
}
