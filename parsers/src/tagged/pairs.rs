//! The calls of the family written as a name and key/value pairs: invocations
//! (`<function=NAME>` / `<invoke name="NAME">` with `<parameter=KEY>value</parameter>`) and
//! GLM's `NAME<arg_key>KEY</arg_key><arg_value>value</arg_value>`. Each value is complete at
//! its closing tag; it becomes one typed member of the call's JSON arguments then.

use super::{Dialect, Marker, Shape, State, Tagged};
use crate::engine::call::Ending;
use crate::engine::diag::{diagnostic, unexpected_marker, with_text};
use crate::engine::driver::{Chunk, Step};
use crate::engine::params::strip_one_newline;
use crate::engine::scan::{Found, read_to_marker, read_to_marker_or};
use crate::engine::stray::Place;
use crate::event::EventSink;
use crate::message::DiagnosticKind;

const CALL_STRAY: &str = "text inside a tool call, outside any parameter";

/// Think tags inside a call are text.
fn not_think(marker: Marker) -> bool {
    !matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
}

impl<D: Dialect> Tagged<D> {
    /// An invocation's name, or a parameter's key, up to `>`; a marker before it means the
    /// `>` is missing.
    pub(super) fn step_name<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let into_key = self.state == State::Key;
        let found = if into_key {
            let key = &mut self.key;
            read_to_marker_or::<D>(chunk, start, b'>', not_think, |text, _| key.push_str(text))
        } else {
            self.read_name(chunk, start, b'>', sink)
        };
        match found {
            Found::Stop(at) => {
                self.calls.tally.count_syntax(1);
                if into_key {
                    self.part_offset = chunk.base + at + 1;
                    self.value.clear();
                    self.state = State::Value;
                } else {
                    self.announce(sink);
                    self.state = State::Params;
                }
                Step::Continue(at + 1)
            }
            Found::Marker { at, .. } => {
                let offset = chunk.base + at;
                if into_key {
                    self.drop_key("the parameter name was not closed with `>`", offset, sink);
                } else {
                    self.announce(sink);
                    let index = Some(self.calls.get().index);
                    let message = "the tool name was not closed with `>`";
                    sink.emit(diagnostic(DiagnosticKind::MalformedCall, index, offset, message));
                }
                self.state = State::Params;
                Step::Continue(at)
            }
            Found::Done(step) => step,
        }
    }

    /// GLM: the name runs to the end of its line, or to the first marker.
    pub(super) fn step_glm_name<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let found = self.read_name(chunk, start, b'\n', sink);
        match found {
            Found::Stop(at)
                if !self.calls.is_nameless() && self.calls.get().head.trim().is_empty() =>
            {
                self.calls.get().head.push('\n');
                Step::Continue(at + 1)
            }
            Found::Stop(at) | Found::Marker { at, .. } => {
                self.announce(sink);
                self.state = State::Params;
                Step::Continue(at)
            }
            Found::Done(step) => step,
        }
    }

    /// Reads the call's name up to `stop` or a marker. A name still read when the chunk ends
    /// that is none already (two words) leaves the call nameless at once: the rest of it is
    /// not kept.
    fn read_name<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        stop: u8,
        sink: &mut S,
    ) -> Found<Marker> {
        let calls = &mut self.calls;
        let found =
            read_to_marker_or::<D>(chunk, start, stop, not_think, |text, _| calls.push_head(text));
        let in_name = matches!(found, Found::Done(_)) && !self.calls.is_nameless();
        if in_name && self.calls.head_names_nothing() {
            self.announce(sink);
            self.calls.get().head.clear();
        }
        found
    }

    /// Text between the parts of the call being read.
    fn call_place(&self) -> Place {
        Place { message: CALL_STRAY, call: self.calls.open().map(|call| call.index) }
    }

    /// A key whose value never came: its text is reported, so that nothing is lost.
    fn drop_key<S: EventSink>(&mut self, message: &str, offset: usize, sink: &mut S) {
        let key = std::mem::take(&mut self.key);
        let key = self.unquoted(key.trim()).to_owned();
        let index = Some(self.calls.get().index);
        sink.emit(if key.is_empty() {
            diagnostic(DiagnosticKind::MalformedCall, index, offset, message)
        } else {
            with_text(DiagnosticKind::MalformedCall, index, offset, message, key)
        });
    }

    /// Announces the call from the name read (GLM's or an invocation's).
    /// A call already known to be nameless stays so.
    fn announce<S: EventSink>(&mut self, sink: &mut S) {
        if self.calls.is_nameless() {
            return;
        }
        let head = std::mem::take(&mut self.calls.get().head);
        let name = self.unquoted(head.trim());
        self.name.clear();
        self.name.push_str(name);
        let tool =
            self.tools.iter().position(|tool| tool.name == name && tool.check_name().is_ok());
        self.tool = tool.filter(|&tool| self.tools[tool].properties().is_some());
        let id = self.calls.made_up_id();
        self.calls.announce_name(id, name, sink);
        self.calls.get().head = head;
    }

    /// A name or key without its quotes (MiniMax-M2 quotes them); the quotes are syntax.
    fn unquoted<'a>(&mut self, text: &'a str) -> &'a str {
        if !D::QUOTED_NAMES {
            return text;
        }
        for quote in ['"', '\''] {
            if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
                self.calls.tally.count_syntax(2);
                return inner;
            }
        }
        text
    }

    /// Between parameters: a key opens the next, the call's close ends it, and text is stray.
    pub(super) fn step_params<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let place = self.call_place();
        let found = self.stray.read_to_marker::<D, S>(chunk, start, not_think, place, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        let offset = chunk.base + at;
        let glm = self.shape == Shape::Glm;
        let pair_open = if glm { Marker::ArgKeyOpen } else { Marker::ParamOpen };
        let call_close = if glm { Marker::WrapperClose } else { Marker::InvokeClose };
        if marker == pair_open {
            self.count_marker(chunk, at, len);
            self.key.clear();
            self.part_offset = offset + len;
            self.state = State::Key;
        } else if marker == call_close && !glm {
            self.count_marker(chunk, at, len);
            self.end_call(Ending::Closed, offset, sink);
        } else if marker == call_close {
            // GLM's call ends at the block's close, which the block's state then reads.
            self.end_call(Ending::Closed, offset, sink);
            return Step::Continue(at);
        } else if matches!(marker, Marker::WrapperClose | Marker::WrapperOpen | Marker::InvokeOpen)
        {
            let ending = Ending::not_closed(D::spelling(call_close), D::spelling(marker), offset);
            self.end_call(ending, offset, sink);
            return Step::Continue(at);
        } else {
            self.count_marker(chunk, at, len);
            let spelling = D::spelling(marker);
            sink.emit(unexpected_marker(spelling, place.call, offset, "between parameters"));
        }
        Step::Continue(at + len)
    }

    /// GLM: the key is closed by `</arg_key>`.
    pub(super) fn step_glm_key<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let key = &mut self.key;
        let found = read_to_marker::<D>(chunk, start, not_think, |text, _| key.push_str(text));
        let Found::Marker { at, marker, len } = found else { return found.step() };
        if marker == Marker::ArgKeyClose {
            self.count_marker(chunk, at, len);
            self.state = State::AwaitValue;
            return Step::Continue(at + len);
        }
        let message = "the parameter name was not closed with `</arg_key>`";
        self.drop_key(message, chunk.base + at, sink);
        self.state = State::Params;
        Step::Continue(at)
    }

    /// GLM: between `</arg_key>` and `<arg_value>`.
    pub(super) fn step_await_value<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let place = self.call_place();
        let found = self.stray.read_to_marker::<D, S>(chunk, start, not_think, place, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        if marker == Marker::ArgValueOpen {
            self.count_marker(chunk, at, len);
            self.part_offset = chunk.base + at + len;
            self.value.clear();
            self.state = State::Value;
            return Step::Continue(at + len);
        }
        self.drop_key("the parameter has no `<arg_value>`", chunk.base + at, sink);
        self.state = State::Params;
        Step::Continue(at)
    }

    /// A value of a call whose tool declares no properties, up to its closing tag; another
    /// call or parameter marker before it means the closing tag is missing. Other markers are
    /// part of the value. (With properties: [`step_value_by_schema`](Self::step_value_by_schema).)
    pub(super) fn step_value<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let glm = self.shape == Shape::Glm;
        let (close, next) = if glm {
            (Marker::ArgValueClose, Marker::ArgKeyOpen)
        } else {
            (Marker::ParamClose, Marker::ParamOpen)
        };
        let accept = |marker: Marker| {
            marker == close
                || marker == next
                || matches!(marker, Marker::WrapperClose | Marker::WrapperOpen)
                || (!glm && matches!(marker, Marker::InvokeClose | Marker::InvokeOpen))
        };
        let value = &mut self.value;
        let found = read_to_marker::<D>(chunk, start, accept, |text, _| value.push_str(text));
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.add_param(sink);
        self.state = State::Params;
        if marker == close {
            self.count_marker(chunk, at, len);
            return Step::Continue(at + len);
        }
        let index = Some(self.calls.get().index);
        let message = format!("the parameter value was not closed with `{}`", D::spelling(close));
        sink.emit(diagnostic(DiagnosticKind::MalformedCall, index, chunk.base + at, message));
        Step::Continue(at)
    }

    /// The key and value read become a member of the call's arguments; a value whose key is
    /// empty is reported with its text instead.
    pub(super) fn add_param<S: EventSink>(&mut self, sink: &mut S) {
        let key = std::mem::take(&mut self.key);
        let value = std::mem::take(&mut self.value);
        let name = self.unquoted(key.trim()).to_owned();
        let raw = strip_one_newline(&value);
        let offset = self.part_offset + (raw.as_ptr() as usize - value.as_ptr() as usize);
        if name.is_empty() {
            let index = Some(self.calls.get().index);
            let message = "the parameter has no name; its value is not in the arguments";
            sink.emit(if raw.trim().is_empty() {
                diagnostic(DiagnosticKind::MalformedCall, index, offset, message)
            } else {
                with_text(DiagnosticKind::MalformedCall, index, offset, message, raw)
            });
        } else {
            let properties = self.tool.and_then(|tool| self.tools[tool].properties());
            self.params.add(&mut self.calls, properties, (&name, raw), offset, sink);
        }
        self.key = key;
        self.value = value;
        self.key.clear();
        self.value.clear();
        self.nesting = 0;
    }

    /// The input ended inside a call of this kind: what was read is kept.
    pub(super) fn end_pairs<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        if self.settle_doubt_at_end(sink) {
            return;
        }
        match self.state {
            State::InvokeName | State::GlmName => self.announce(sink),
            State::Key | State::AwaitValue => {
                let place = self.call_place();
                self.stray.flush(place, sink);
                self.drop_key("the input ended before the parameter's value", offset, sink);
            }
            State::Value => self.add_param(sink),
            _ => {
                let place = self.call_place();
                self.stray.flush(place, sink);
            }
        }
        self.end_call(Ending::Truncated, offset, sink);
    }
}
