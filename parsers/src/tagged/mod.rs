//! The tagged-XML family of formats: calls inside `<tool_call>` (Hermes / Qwen2.5, Qwen3-Coder,
//! GLM-4.5 / 4.6 / 4.7) or `<minimax:tool_call>` (MiniMax-M2).
//!
//! What a `<tool_call>` holds is told by its first character, so one machine reads every shape
//! whichever of these formats is named:
//!
//! - `{` — a JSON object `{"name": …, "arguments": …}` (Hermes), read by the shared JSON
//!   reader up to `</tool_call>`; a `</tool_call>` inside a JSON string does not end it. The
//!   call is announced once its name is read and its arguments have begun, and they stream
//!   ([`call_object`](crate::engine::call_object));
//! - `<function=NAME>` — parameters `<parameter=KEY>value</parameter>` (Qwen3-Coder), up to
//!   `</function>`;
//! - anything else — GLM's `NAME<arg_key>KEY</arg_key><arg_value>value</arg_value>…`, with or
//!   without newlines between the parts; the name ends at its line.
//!
//! MiniMax-M2 writes `<invoke name="NAME">` with `<parameter name="KEY">`, several per
//! `<minimax:tool_call>`. Parameter values lose one leading and one trailing newline and are
//! typed by the declared tool's schema (see [`params`](crate::engine::params)). These formats
//! write no call ids: calls get `call_0`, `call_1`, … by their index.

mod markers;
mod pairs;
mod value;

use std::marker::PhantomData;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::call_object::Announce;
use crate::engine::diag::{diagnostic, unexpected_marker};
use crate::engine::driver::{Chunk, Machine, Replay, Step};
use crate::engine::envelope::finish_envelope_call;
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::params::Params;
use crate::engine::scan::{Found, Scan, marker_len, read_to_marker};
use crate::engine::stray::{Place, Stray};
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::format::Format;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use markers::Marker;
pub(crate) use markers::{Dialect, MinimaxTags, ToolCallTags};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Content, or reasoning inside `<think>`.
    Text,
    /// Inside a place of calls, between calls.
    Wrapper,
    /// A call written as a JSON object.
    Object,
    /// After `<function=` / `<invoke name=`: the name, up to `>`.
    InvokeName,
    /// GLM: the name, up to the end of its line or the first marker.
    GlmName,
    /// Inside a call, between parameters.
    Params,
    /// A parameter's key.
    Key,
    /// GLM: after `</arg_key>`, waiting for `<arg_value>`.
    AwaitValue,
    /// A parameter's value.
    Value,
}

/// How the call being read is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    Invoke,
    Glm,
}

const WRAPPER_STRAY: Place = Place::outside("text inside a tool-call block, outside any call");

/// The machine of the family, in dialect `D`. See the module documentation.
#[derive(Debug)]
pub(crate) struct Tagged<D> {
    tools: Vec<ToolSpec>,
    /// `<function=` outside `<tool_call>` begins a call (Qwen3-Coder writes it so at times).
    bare_invoke: bool,
    state: State,
    text: TextOut,
    calls: Calls,
    params: Params,
    stray: Stray,
    /// Offset of the open `<tool_call>`, and how many calls it held so far.
    wrapper: Option<usize>,
    wrapper_calls: usize,
    shape: Shape,
    /// The tool name of the call being read.
    name: String,
    /// The declared tool of the call being read, when it declares its properties: they type
    /// its values, and tell tags inside a value from the call's (see [`value`]).
    tool: Option<usize>,
    key: String,
    value: String,
    /// A tag inside the value being read whose meaning the text after it decides.
    doubt: Option<value::Doubt>,
    /// Nested blocks of text open inside the value being read.
    nesting: usize,
    /// The buffer of the last doubt, kept for the next one.
    held: String,
    /// Offset of the key's or value's first byte.
    part_offset: usize,
    first_shape: Option<Shape>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> Tagged<D> {
    pub(crate) fn new(options: &ParseOptions, text: TextOut, bare_invoke: bool) -> Self {
        Self {
            tools: options.tools.clone(),
            bare_invoke,
            state: State::Text,
            text,
            calls: Calls::default(),
            params: Params::default(),
            stray: Stray::default(),
            wrapper: None,
            wrapper_calls: 0,
            shape: Shape::Invoke,
            name: String::new(),
            tool: None,
            key: String::new(),
            value: String::new(),
            doubt: None,
            nesting: 0,
            held: String::new(),
            part_offset: 0,
            first_shape: None,
            dialect: PhantomData,
        }
    }

    /// The format the first call's shape belongs to, once a call was read.
    pub(crate) fn detected(&self) -> Option<Format> {
        self.first_shape.map(|shape| match (D::OTHER_SHAPES, shape) {
            (false, _) => Format::MinimaxM2,
            (true, Shape::Object) => Format::Hermes,
            (true, Shape::Invoke) => Format::Qwen3Coder,
            (true, Shape::Glm) => Format::Glm45,
        })
    }

    /// Counts the marker at `chunk.text[at..at + len]` as syntax.
    fn count_marker(&mut self, chunk: &Chunk<'_>, at: usize, len: usize) {
        self.calls.tally.count_syntax_text(&chunk.text[at..at + len]);
    }

    fn step_text<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let (out, opens, bare) = (self.text, self.text.opens(), self.bare_invoke);
        let accept = |marker| match marker {
            Marker::ThinkOpen => opens,
            Marker::InvokeOpen => bare,
            Marker::ThinkClose | Marker::WrapperOpen | Marker::WrapperClose => true,
            _ => false,
        };
        let found = read_to_marker::<D>(chunk, start, accept, |text, _| out.emit(text, sink));
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.count_marker(chunk, at, len);
        let offset = chunk.base + at;
        match marker {
            Marker::ThinkOpen => self.text.open(),
            Marker::ThinkClose => self.text.close(D::spelling(marker), "<think>", offset, sink),
            Marker::WrapperOpen => self.open_wrapper(offset),
            Marker::InvokeOpen => self.begin(offset, Shape::Invoke, State::InvokeName),
            _ => sink.emit(unexpected_marker(
                D::spelling(marker),
                None,
                offset,
                "outside any tool call",
            )),
        }
        Step::Continue(at + len)
    }

    fn open_wrapper(&mut self, offset: usize) {
        self.wrapper = Some(offset);
        self.wrapper_calls = 0;
        self.state = State::Wrapper;
    }

    fn step_wrapper<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        if D::OTHER_SHAPES
            && self.wrapper_calls == 0
            && let Some(step) = self.first_shape_of_wrapper(chunk, start)
        {
            return step;
        }
        let accept = |marker| {
            matches!(marker, Marker::InvokeOpen | Marker::WrapperClose | Marker::WrapperOpen)
        };
        let found = self.stray.read_to_marker::<D, S>(chunk, start, accept, WRAPPER_STRAY, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.count_marker(chunk, at, len);
        let offset = chunk.base + at;
        match marker {
            Marker::InvokeOpen => self.begin(offset, Shape::Invoke, State::InvokeName),
            Marker::WrapperClose => self.close_wrapper(offset, sink),
            _ => {
                self.report_unclosed_wrapper(offset, sink);
                self.open_wrapper(offset);
            }
        }
        Step::Continue(at + len)
    }

    /// The first character inside `<tool_call>` tells the shape of its call: `{` a JSON
    /// object (but `{{`, which no JSON begins with, a template's placeholder for GLM's name),
    /// `<function=` an invocation (read like any marker), anything else GLM's name.
    fn first_shape_of_wrapper(&mut self, chunk: &Chunk<'_>, start: usize) -> Option<Step> {
        let rest = &chunk.text[start..];
        let first = start + rest.len() - rest.trim_start().len();
        let Some(&byte) = chunk.text.as_bytes().get(first) else {
            return Some(Step::Continue(chunk.text.len()));
        };
        let offset = self.wrapper.unwrap_or(chunk.base + first);
        let shape = match (byte, chunk.text.as_bytes().get(first + 1)) {
            (b'{', None) if !chunk.eof => return Some(Step::NeedInput(first)),
            (b'{', Some(b'{')) => Shape::Glm,
            (b'{', _) => Shape::Object,
            (b'<', _) => match D::scan(&chunk.text[first..]) {
                Scan::Incomplete if !chunk.eof => return Some(Step::NeedInput(first)),
                Scan::Marker(
                    Marker::InvokeOpen | Marker::WrapperClose | Marker::WrapperOpen,
                    _,
                ) => {
                    return None;
                }
                _ => Shape::Glm,
            },
            _ => Shape::Glm,
        };
        if shape == Shape::Object {
            self.begin(offset, Shape::Object, State::Object);
            self.calls.arguments_start();
        } else {
            self.begin(offset, Shape::Glm, State::GlmName);
        }
        Some(Step::Continue(first))
    }

    fn close_wrapper<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        if self.wrapper_calls == 0 {
            let start = self.wrapper.unwrap_or(offset);
            let message = format!("`{}` holds no call", D::spelling(Marker::WrapperOpen));
            sink.emit(diagnostic(DiagnosticKind::MalformedCall, None, start, message));
        }
        self.wrapper = None;
        self.state = State::Text;
    }

    fn report_unclosed_wrapper<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        let start = self.wrapper.unwrap_or(offset);
        let message = format!(
            "`{}` was not closed with `{}` before the next one",
            D::spelling(Marker::WrapperOpen),
            D::spelling(Marker::WrapperClose)
        );
        sink.emit(diagnostic(DiagnosticKind::MalformedCall, None, start, message));
    }

    fn begin(&mut self, offset: usize, shape: Shape, state: State) {
        if shape == Shape::Object {
            self.calls.begin_whole(offset, Announce::Named);
        } else {
            self.calls.begin(offset);
        }
        self.shape = shape;
        self.first_shape.get_or_insert(shape);
        self.state = state;
    }

    fn step_object<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<D, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Marker(Marker::WrapperClose, at) => {
                let len = marker_len::<D>(input, at);
                self.count_marker(chunk, at, len);
                self.finish_object(Ending::Closed, sink);
                self.wrapper = None;
                self.state = State::Text;
                Step::Continue(at + len)
            }
            ArgsStop::Marker(marker, at) => {
                let close = D::spelling(Marker::WrapperClose);
                let ending = Ending::not_closed(close, D::spelling(marker), base + at);
                self.finish_object(ending, sink);
                self.after_call();
                Step::Continue(at)
            }
            stop => stop.step(input.len()),
        }
    }

    fn finish_object<S: EventSink>(&mut self, ending: Ending, sink: &mut S) {
        finish_envelope_call(&mut self.calls, &self.tools, ending, self.text, sink);
    }

    fn end_call<S: EventSink>(&mut self, ending: Ending, offset: usize, sink: &mut S) {
        self.params.close(&mut self.calls, offset, sink);
        self.calls.end(ending, &self.tools, sink);
        self.after_call();
    }

    /// The state after a call: back in its place of calls, or in text.
    fn after_call(&mut self) {
        self.wrapper_calls += 1;
        self.state = if self.wrapper.is_some() { State::Wrapper } else { State::Text };
    }
}

impl<D: Dialect> Machine for Tagged<D> {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step {
        match self.state {
            State::Text => self.step_text(chunk, pos, sink),
            State::Wrapper => self.step_wrapper(chunk, pos, sink),
            State::Object => self.step_object(chunk, pos, sink),
            State::InvokeName => self.step_name(chunk, pos, sink),
            State::Key if self.shape != Shape::Glm => self.step_name(chunk, pos, sink),
            State::Key => self.step_glm_key(chunk, pos, sink),
            State::GlmName => self.step_glm_name(chunk, pos, sink),
            State::Params => self.step_params(chunk, pos, sink),
            State::AwaitValue => self.step_await_value(chunk, pos, sink),
            State::Value if self.tool.is_some() => self.step_value_by_schema(chunk, pos, sink),
            State::Value => self.step_value(chunk, pos, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        match self.state {
            State::Text => {}
            State::Wrapper => {
                self.stray.flush(WRAPPER_STRAY, sink);
                let start = self.wrapper.unwrap_or(offset);
                let message =
                    format!("the input ended inside `{}`", D::spelling(Marker::WrapperOpen));
                sink.emit(diagnostic(DiagnosticKind::Truncated, None, start, message));
            }
            State::Object => self.finish_object(Ending::Truncated, sink),
            _ => self.end_pairs(offset, sink),
        }
        self.state = State::Text;
    }

    fn retained(&self) -> usize {
        self.calls.retained()
            + self.params.retained()
            + self.stray.len()
            + self.name.len()
            + self.key.len()
            + self.value.len()
            + self.doubt.as_ref().map_or(0, value::Doubt::len)
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
