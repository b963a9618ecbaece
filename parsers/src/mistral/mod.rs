//! The Mistral tool-call formats (Mistral, Mistral Small / Large, Devstral, Magistral…).
//!
//! After `[TOOL_CALLS]` comes either a JSON array of call objects (`[{"name": …, "arguments": …},
//! …]`, older tokenizers) or one call as `NAME[ARGS]{…}`, optionally `NAME[CALL_ID]ID[ARGS]{…}`
//! (tokenizer v11 and later), repeated with a `[TOOL_CALLS]` before each. The first character after
//! `[TOOL_CALLS]` tells which. Arguments end where their JSON value closes (or at the next
//! tool-call token); the text after them is content. An element of the array is announced once its
//! name and its id are read and its arguments have begun
//! ([`call_object`](crate::engine::call_object)): Mistral's template writes the id after the
//! arguments, so in practice once the id is read, or when the element closes if it has none. An
//! element that does not close by itself (cut short by a token or the end of the input, or closed
//! by the array's `]`) and was not announced is no call and ends the array: it is content as
//! written, with the array's text since the element before it (its `[` or a comma), and what
//! follows it is text. `[THINK]` … `[/THINK]` is reasoning. Calls keep the model's id when it
//! writes one (`[CALL_ID]`, or an `id` member); otherwise they get `call_0`, `call_1`, … by their
//! index.

mod markers;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::call_object::Announce;
use crate::engine::diag::{diagnostic, unexpected_marker, with_text};
use crate::engine::driver::{Chunk, Machine, Replay, Step};
use crate::engine::envelope::finish_envelope_call;
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::scan::{Found, MarkerSet, Scan, read_to_marker_or};
use crate::engine::stray::{Place, Stray};
use crate::engine::tally::{Tally, non_whitespace_len};
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use markers::{Controls, Marker};

pub(crate) use markers::LONGEST_MARKER;

const ARRAY_STRAY: Place = Place::outside("text inside the array of tool calls, outside any call");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// After `[TOOL_CALLS]`: an array, or a name.
    CallsStart,
    /// Inside the array of calls, between calls.
    Array,
    /// A call object of the array.
    Element,
    /// The name, up to `[ARGS]`, `[CALL_ID]` or the arguments' `{`.
    Name,
    /// After `[CALL_ID]`: the model's id.
    CallId,
    Arguments,
}

#[derive(Debug)]
pub(crate) struct Mistral {
    tools: Vec<ToolSpec>,
    state: State,
    text: TextOut,
    calls: Calls,
    stray: Stray,
    /// Offset of the last `[TOOL_CALLS]`, and of the open array.
    calls_at: usize,
    array_at: usize,
    /// The array's text since the last thing it held (its `[`, commas and whitespace),
    /// counted as syntax until an element that does not close takes it back.
    punctuation: String,
    id: String,
}

impl Mistral {
    pub(crate) fn new(options: &ParseOptions, text: TextOut) -> Self {
        Self {
            tools: options.tools.clone(),
            state: State::Text,
            text,
            calls: Calls::default(),
            stray: Stray::default(),
            calls_at: 0,
            array_at: 0,
            punctuation: String::new(),
            id: String::new(),
        }
    }

    fn step_text<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let found = self.text.read_to_marker::<Controls, S>(chunk, start, Marker::ThinkOpen, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.calls.tally.count_syntax(len);
        let offset = chunk.base + at;
        match marker {
            Marker::ThinkOpen => self.text.open(),
            Marker::ThinkClose => self.text.close(marker.text(), "[THINK]", offset, sink),
            Marker::ToolCalls => {
                self.calls_at = offset;
                self.state = State::CallsStart;
            }
            _ => sink.emit(unexpected_marker(marker.text(), None, offset, "outside any tool call")),
        }
        Step::Continue(at + len)
    }

    fn step_calls_start(&mut self, chunk: &Chunk<'_>, start: usize) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        let rest = &input[start..];
        let first = start + rest.len() - rest.trim_start().len();
        let Some(&byte) = input.as_bytes().get(first) else {
            return Step::Continue(input.len());
        };
        if byte == b'[' {
            match Controls::scan(&input[first..]) {
                Scan::Incomplete if !eof => return Step::NeedInput(first),
                Scan::Marker(..) => {}
                Scan::Incomplete | Scan::NoMatch => {
                    self.calls.tally.count_syntax(1);
                    self.punctuation.clear();
                    self.punctuation.push('[');
                    self.array_at = base + first;
                    self.state = State::Array;
                    return Step::Continue(first + 1);
                }
            }
        }
        self.calls.begin(self.calls_at);
        self.state = State::Name;
        Step::Continue(first)
    }

    fn step_array<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        let bytes = input.as_bytes();
        let mut i = start;
        while let Some(found) =
            bytes[i..].iter().position(|b| matches!(b, b'{' | b']' | b'[' | b','))
        {
            let at = i + found;
            self.add_between(&input[i..at], base + i, sink);
            match bytes[at] {
                b',' => {
                    self.stray.flush(ARRAY_STRAY, sink);
                    self.calls.tally.count_syntax(1);
                    self.punctuation.push(',');
                }
                b'{' => {
                    self.stray.flush(ARRAY_STRAY, sink);
                    self.calls.begin_whole(base + at, Announce::NamedWithId);
                    self.calls.arguments_start();
                    self.state = State::Element;
                    return Step::Continue(at);
                }
                b']' => {
                    self.stray.flush(ARRAY_STRAY, sink);
                    self.calls.tally.count_syntax(1);
                    self.punctuation.clear();
                    self.state = State::Text;
                    return Step::Continue(at + 1);
                }
                _ => match Controls::scan(&input[at..]) {
                    Scan::Incomplete if !eof => return Step::NeedInput(at),
                    Scan::Marker(marker, _) if marker.is_tool_marker() => {
                        self.stray.flush(ARRAY_STRAY, sink);
                        self.punctuation.clear();
                        sink.emit(diagnostic(
                            DiagnosticKind::MalformedCall,
                            None,
                            self.array_at,
                            format!(
                                "the array of tool calls was not closed before `{}`",
                                marker.text()
                            ),
                        ));
                        self.state = State::Text;
                        return Step::Continue(at);
                    }
                    _ => self.add_between(&input[at..at + 1], base + at, sink),
                },
            }
            i = at + 1;
        }
        self.add_between(&input[i..], base + i, sink);
        Step::Continue(input.len())
    }

    /// Text of the array between elements (at absolute `offset`): whitespace after its
    /// punctuation, or stray text.
    fn add_between<S: EventSink>(&mut self, text: &str, offset: usize, sink: &mut S) {
        if !self.stray.is_open() && text.trim().is_empty() {
            self.punctuation.push_str(text);
        } else {
            self.punctuation.clear();
            self.stray.add(text, offset, ARRAY_STRAY, sink);
        }
    }

    /// The element being read did not close by itself: unless it was announced as a call, it
    /// is none, and the array's text before it goes to content with its own.
    fn keep_punctuation<S: EventSink>(&mut self, sink: &mut S) {
        if self.calls.is_announced() {
            self.punctuation.clear();
            return;
        }
        self.calls.tally.uncount_syntax(non_whitespace_len(&self.punctuation));
        self.text.emit(&self.punctuation, sink);
        self.punctuation.clear();
    }

    fn step_element<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<Controls, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Closed(end) => {
                // `{` closed by `]`: the array's, which ends here.
                let by_array = input.as_bytes()[end - 1] == b']';
                if by_array {
                    self.keep_punctuation(sink);
                } else {
                    self.punctuation.clear();
                }
                finish_envelope_call(&mut self.calls, &self.tools, Ending::Closed, self.text, sink);
                self.state = if by_array { State::Text } else { State::Array };
                Step::Continue(end)
            }
            ArgsStop::Marker(marker, at) => {
                let ending =
                    Ending::cut_short("the call object was not closed", marker.text(), base + at);
                self.keep_punctuation(sink);
                finish_envelope_call(&mut self.calls, &self.tools, ending, self.text, sink);
                self.state = State::Text;
                Step::Continue(at)
            }
            stop => stop.step(input.len()),
        }
    }

    /// The name (or, after `[CALL_ID]`, the id), up to `[ARGS]`, `[CALL_ID]` or the
    /// arguments' `{`.
    fn step_name<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let into_id = self.state == State::CallId;
        let accept = Marker::is_tool_marker;
        let found = if into_id {
            // The id of a call that has no name is not kept.
            let (id, keep) = (&mut self.id, !self.calls.is_nameless());
            read_to_marker_or::<Controls>(chunk, start, b'{', accept, |text, _| {
                if keep {
                    id.push_str(text);
                }
            })
        } else {
            let calls = &mut self.calls;
            let found = read_to_marker_or::<Controls>(chunk, start, b'{', accept, |text, _| {
                calls.push_head(text);
            });
            let in_name = matches!(found, Found::Done(_)) && !self.calls.is_nameless();
            if in_name && self.calls.head_names_nothing() {
                // Two words name no tool: the call is nameless now, and its head not kept.
                self.announce(sink);
                self.calls.get().head.clear();
            }
            found
        };
        match found {
            Found::Marker { at, marker: Marker::CallId, len } if !into_id => {
                self.calls.tally.count_syntax(len);
                self.id.clear();
                self.state = State::CallId;
                Step::Continue(at + len)
            }
            Found::Marker { at, marker: Marker::Args, len } => {
                self.calls.tally.count_syntax(len);
                self.start_arguments(sink);
                Step::Continue(at + len)
            }
            Found::Stop(at) => {
                self.start_arguments(sink);
                Step::Continue(at)
            }
            Found::Marker { at, marker, .. } => {
                self.announce(sink);
                let ending =
                    Ending::cut_short("the call has no arguments", marker.text(), chunk.base + at);
                self.end_call(ending, sink);
                Step::Continue(at)
            }
            Found::Done(step) => step,
        }
    }

    fn start_arguments<S: EventSink>(&mut self, sink: &mut S) {
        self.announce(sink);
        self.calls.arguments_start();
        self.state = State::Arguments;
    }

    /// Announces the call from its name and, when given, the model's id. A call already known
    /// to be nameless stays so.
    fn announce<S: EventSink>(&mut self, sink: &mut S) {
        if self.calls.is_nameless() {
            self.id.clear();
            return;
        }
        let call = self.calls.get();
        let (index, offset) = (call.index, call.offset);
        let head = std::mem::take(&mut call.head);
        let written = (self.state == State::CallId).then(|| self.id.trim().to_owned());
        let id = match written {
            Some(id) if !id.is_empty() && !id.contains(char::is_whitespace) => id,
            Some(id) => {
                if !id.is_empty() {
                    sink.emit(with_text(
                        DiagnosticKind::InvalidId,
                        Some(index),
                        offset,
                        "the call id holds whitespace; an id was made up instead",
                        id,
                    ));
                }
                self.calls.made_up_id()
            }
            None => self.calls.made_up_id(),
        };
        self.id.clear();
        self.calls.announce_name(id, head.trim(), sink);
    }

    fn step_arguments<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<Controls, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Closed(end) => {
                self.end_call(Ending::Closed, sink);
                Step::Continue(end)
            }
            ArgsStop::Marker(Marker::ToolCalls, at) => {
                self.end_call(Ending::Closed, sink);
                Step::Continue(at)
            }
            ArgsStop::Marker(marker, at) => {
                let ending = Ending::cut_short(
                    "the call's arguments were not closed",
                    marker.text(),
                    base + at,
                );
                self.end_call(ending, sink);
                Step::Continue(at)
            }
            stop => stop.step(input.len()),
        }
    }

    fn end_call<S: EventSink>(&mut self, ending: Ending, sink: &mut S) {
        self.calls.end(ending, &self.tools, sink);
        self.state = State::Text;
    }
}

impl Machine for Mistral {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step {
        match self.state {
            State::Text => self.step_text(chunk, pos, sink),
            State::CallsStart => self.step_calls_start(chunk, pos),
            State::Array => self.step_array(chunk, pos, sink),
            State::Element => self.step_element(chunk, pos, sink),
            State::Name | State::CallId => self.step_name(chunk, pos, sink),
            State::Arguments => self.step_arguments(chunk, pos, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, _offset: usize, sink: &mut S) {
        match self.state {
            State::Text => {}
            State::CallsStart => sink.emit(diagnostic(
                DiagnosticKind::Truncated,
                None,
                self.calls_at,
                "the input ended after `[TOOL_CALLS]`",
            )),
            State::Array => {
                self.stray.flush(ARRAY_STRAY, sink);
                self.punctuation.clear();
                sink.emit(diagnostic(
                    DiagnosticKind::Truncated,
                    None,
                    self.array_at,
                    "the input ended inside the array of tool calls",
                ));
            }
            State::Element => {
                self.keep_punctuation(sink);
                finish_envelope_call(
                    &mut self.calls,
                    &self.tools,
                    Ending::Truncated,
                    self.text,
                    sink,
                );
            }
            State::Name | State::CallId => {
                self.announce(sink);
                self.end_call(Ending::Truncated, sink);
            }
            State::Arguments => {
                let open =
                    self.calls.open().is_some_and(|call| call.depth > 0 || call.json.in_string);
                self.end_call(if open { Ending::Truncated } else { Ending::Closed }, sink);
            }
        }
        self.state = State::Text;
    }

    fn retained(&self) -> usize {
        self.calls.retained() + self.stray.len() + self.id.len() + self.punctuation.len()
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
