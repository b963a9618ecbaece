//! The tagged-XML family of formats: calls inside `<tool_call>` (Hermes / Qwen2.5, Qwen3-Coder,
//! GLM-4.5 / 4.6 / 4.7) or `<minimax:tool_call>` (MiniMax-M2).
//!
//! What a `<tool_call>` holds is told by its first character, so one machine reads every shape
//! whichever of these formats is named:
//!
//! - `{` — a JSON object `{"name": …, "arguments": …}` (Hermes), read by the shared JSON
//!   reader up to `</tool_call>`; a `</tool_call>` inside a JSON string does not end it;
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

use std::marker::PhantomData;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::diag::{diagnostic, unexpected_marker, with_text};
use crate::engine::driver::{Machine, Replay, Step};
use crate::engine::envelope::finish_envelope_call;
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::non_whitespace_len;
use crate::engine::params::{Params, strip_one_newline};
use crate::engine::scan::{Next, NextOr, Scan, marker_len, next_marker, next_marker_or};
use crate::engine::stray::Stray;
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
    /// GLM: the name, up to the first `<arg_key>` or the end of the call.
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

const WRAPPER_STRAY: &str = "text inside a tool-call block, outside any call";
const CALL_STRAY: &str = "text inside a tool call, outside any parameter";

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
    /// The tool name of the call being read, for typing its values.
    name: String,
    key: String,
    value: String,
    /// Offset of the key's or value's first byte.
    part_offset: usize,
    first_shape: Option<Shape>,
    marker_bytes: usize,
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
            key: String::new(),
            value: String::new(),
            part_offset: 0,
            first_shape: None,
            marker_bytes: 0,
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

    fn step_text<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let (opens, bare) = (self.text.opens(), self.bare_invoke);
        let next = next_marker::<D>(input, start, eof, |marker| match marker {
            Marker::ThinkOpen => opens,
            Marker::InvokeOpen => bare,
            Marker::ThinkClose | Marker::WrapperOpen | Marker::WrapperClose => true,
            _ => false,
        });
        match next {
            Next::Marker { at, marker, len } => {
                self.text.emit(&input[start..at], sink);
                self.marker_bytes += non_whitespace_len(&input[at..at + len]);
                let offset = base + at;
                match marker {
                    Marker::ThinkOpen => self.text.open(),
                    Marker::ThinkClose => {
                        self.text.close(D::spelling(marker), "<think>", offset, sink)
                    }
                    Marker::WrapperOpen => self.open_wrapper(offset),
                    Marker::InvokeOpen => self.begin(offset, Shape::Invoke, State::InvokeName),
                    _ => sink.emit(unexpected_marker(
                        D::spelling(marker),
                        offset,
                        "outside any tool call",
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

    fn open_wrapper(&mut self, offset: usize) {
        self.wrapper = Some(offset);
        self.wrapper_calls = 0;
        self.state = State::Wrapper;
    }

    fn step_wrapper<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        if D::OTHER_SHAPES && self.wrapper_calls == 0 {
            let rest = &input[start..];
            let first = start + rest.len() - rest.trim_start().len();
            let Some(&byte) = input.as_bytes().get(first) else {
                return Step::Continue(input.len());
            };
            let offset = self.wrapper.unwrap_or(base + first);
            match byte {
                b'{' => {
                    self.begin(offset, Shape::Object, State::Object);
                    self.calls.arguments_start();
                    return Step::Continue(first);
                }
                b'<' => match D::scan(&input[first..]) {
                    Scan::Incomplete if !eof => return Step::NeedInput(first),
                    Scan::Marker(
                        Marker::InvokeOpen | Marker::WrapperClose | Marker::WrapperOpen,
                        _,
                    ) => {}
                    _ => {
                        self.begin(offset, Shape::Glm, State::GlmName);
                        return Step::Continue(first);
                    }
                },
                _ => {
                    self.begin(offset, Shape::Glm, State::GlmName);
                    return Step::Continue(first);
                }
            }
        }
        let next = next_marker::<D>(input, start, eof, |marker| {
            matches!(marker, Marker::InvokeOpen | Marker::WrapperClose | Marker::WrapperOpen)
        });
        match next {
            Next::Marker { at, marker, len } => {
                self.stray.add(&input[start..at], base + start);
                self.stray.flush(WRAPPER_STRAY, sink);
                self.marker_bytes += non_whitespace_len(&input[at..at + len]);
                let offset = base + at;
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

    fn close_wrapper<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        if self.wrapper_calls == 0 {
            let start = self.wrapper.unwrap_or(offset);
            sink.emit(diagnostic(
                DiagnosticKind::MalformedCall,
                None,
                start,
                format!("`{}` holds no call", D::spelling(Marker::WrapperOpen)),
            ));
        }
        self.wrapper = None;
        self.state = State::Text;
    }

    fn report_unclosed_wrapper<S: EventSink>(&mut self, offset: usize, sink: &mut S) {
        let start = self.wrapper.unwrap_or(offset);
        sink.emit(diagnostic(
            DiagnosticKind::MalformedCall,
            None,
            start,
            format!(
                "`{}` was not closed with `{}` before the next one",
                D::spelling(Marker::WrapperOpen),
                D::spelling(Marker::WrapperClose)
            ),
        ));
    }

    fn begin(&mut self, offset: usize, shape: Shape, state: State) {
        self.calls.begin(offset);
        self.shape = shape;
        self.first_shape.get_or_insert(shape);
        self.state = state;
    }

    fn step_object<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        match read_arguments::<D, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Marker(Marker::WrapperClose, at) => {
                self.marker_bytes +=
                    non_whitespace_len(&input[at..at + marker_len::<D>(input, at)]);
                self.marker_bytes +=
                    finish_envelope_call(&mut self.calls, &self.tools, Ending::Closed, sink);
                self.wrapper = None;
                self.state = State::Text;
                Step::Continue(at + marker_len::<D>(input, at))
            }
            ArgsStop::Marker(marker, at) => {
                let ending = self.not_closed(Marker::WrapperClose, marker, base + at);
                self.marker_bytes +=
                    finish_envelope_call(&mut self.calls, &self.tools, ending, sink);
                self.after_call();
                Step::Continue(at)
            }
            ArgsStop::NeedInput(at) => Step::NeedInput(at),
            ArgsStop::Exhausted | ArgsStop::Closed(_) => Step::Continue(input.len()),
            ArgsStop::Replay { resume, replay } => Step::Replay { resume, replay },
        }
    }

    /// Reads a name or key up to `>`; `done` is called with the `>` consumed, `cut` when a
    /// marker comes first (left for the next state).
    fn step_name<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let into_key = self.state == State::Key;
        let next = next_marker_or::<D>(input, start, eof, b'>', |marker| {
            !matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
        });
        let buffer = if into_key { &mut self.key } else { &mut self.calls.get().head };
        match next {
            NextOr::Stop(at) => {
                buffer.push_str(&input[start..at]);
                self.marker_bytes += 1;
                if into_key {
                    self.part_offset = base + at + 1;
                    self.value.clear();
                    self.state = State::Value;
                } else {
                    self.announce(sink);
                    self.state = State::Params;
                }
                Step::Continue(at + 1)
            }
            NextOr::Next(Next::Marker { at, .. }) => {
                buffer.push_str(&input[start..at]);
                if into_key {
                    self.drop_key("the parameter name was not closed with `>`", base + at, sink);
                } else {
                    self.announce(sink);
                    sink.emit(diagnostic(
                        DiagnosticKind::MalformedCall,
                        Some(self.calls.get().index),
                        base + at,
                        "the tool name was not closed with `>`",
                    ));
                }
                self.state = State::Params;
                Step::Continue(at)
            }
            NextOr::Next(Next::NeedInput(at)) => {
                buffer.push_str(&input[start..at]);
                Step::NeedInput(at)
            }
            NextOr::Next(Next::End) => {
                buffer.push_str(&input[start..]);
                Step::Continue(input.len())
            }
        }
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
    fn announce<S: EventSink>(&mut self, sink: &mut S) {
        let head = std::mem::take(&mut self.calls.get().head);
        let name = self.unquoted(head.trim());
        self.name.clear();
        self.name.push_str(name);
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
                self.marker_bytes += 2;
                return inner;
            }
        }
        text
    }

    /// GLM: the name runs to the end of its line, or to the first marker.
    fn step_glm_name<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let next = next_marker_or::<D>(input, start, eof, b'\n', |marker| {
            !matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
        });
        let head = &mut self.calls.get().head;
        match next {
            NextOr::Stop(at) if head.trim().is_empty() && input[start..at].trim().is_empty() => {
                head.push_str(&input[start..=at]);
                Step::Continue(at + 1)
            }
            NextOr::Stop(at) | NextOr::Next(Next::Marker { at, .. }) => {
                head.push_str(&input[start..at]);
                self.announce(sink);
                self.state = State::Params;
                Step::Continue(at)
            }
            NextOr::Next(Next::NeedInput(at)) => {
                head.push_str(&input[start..at]);
                Step::NeedInput(at)
            }
            NextOr::Next(Next::End) => {
                head.push_str(&input[start..]);
                Step::Continue(input.len())
            }
        }
    }

    fn step_params<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let next = next_marker::<D>(input, start, eof, |marker| {
            !matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
        });
        let (at, marker, len) = match next {
            Next::Marker { at, marker, len } => (at, marker, len),
            Next::NeedInput(at) => {
                self.stray.add(&input[start..at], base + start);
                return Step::NeedInput(at);
            }
            Next::End => {
                self.stray.add(&input[start..], base + start);
                return Step::Continue(input.len());
            }
        };
        self.stray.add(&input[start..at], base + start);
        self.stray.flush(CALL_STRAY, sink);
        let offset = base + at;
        let pair_open =
            if self.shape == Shape::Glm { Marker::ArgKeyOpen } else { Marker::ParamOpen };
        let call_close =
            if self.shape == Shape::Glm { Marker::WrapperClose } else { Marker::InvokeClose };
        if marker == pair_open {
            self.marker_bytes += non_whitespace_len(&input[at..at + len]);
            self.key.clear();
            self.part_offset = offset + len;
            self.state = State::Key;
            return Step::Continue(at + len);
        }
        if marker == call_close {
            self.marker_bytes += non_whitespace_len(&input[at..at + len]);
            self.end_call(Ending::Closed, offset, sink);
            if marker == Marker::WrapperClose {
                self.wrapper = None;
                self.state = State::Text;
            }
            return Step::Continue(at + len);
        }
        match marker {
            Marker::WrapperClose | Marker::WrapperOpen | Marker::InvokeOpen => {
                let ending = self.not_closed(call_close, marker, offset);
                self.end_call(ending, offset, sink);
                Step::Continue(at)
            }
            _ => {
                self.marker_bytes += non_whitespace_len(&input[at..at + len]);
                sink.emit(unexpected_marker(D::spelling(marker), offset, "between parameters"));
                Step::Continue(at + len)
            }
        }
    }

    /// GLM: the key is closed by `</arg_key>`.
    fn step_glm_key<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let next = next_marker::<D>(input, start, eof, |marker| {
            !matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
        });
        match next {
            Next::Marker { at, marker: Marker::ArgKeyClose, len } => {
                self.key.push_str(&input[start..at]);
                self.marker_bytes += non_whitespace_len(&input[at..at + len]);
                self.state = State::AwaitValue;
                Step::Continue(at + len)
            }
            Next::Marker { at, .. } => {
                self.key.push_str(&input[start..at]);
                self.drop_key(
                    "the parameter name was not closed with `</arg_key>`",
                    base + at,
                    sink,
                );
                self.state = State::Params;
                Step::Continue(at)
            }
            Next::NeedInput(at) => {
                self.key.push_str(&input[start..at]);
                Step::NeedInput(at)
            }
            Next::End => {
                self.key.push_str(&input[start..]);
                Step::Continue(input.len())
            }
        }
    }

    fn step_await_value<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let next = next_marker::<D>(input, start, eof, |marker| {
            !matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
        });
        match next {
            Next::Marker { at, marker: Marker::ArgValueOpen, len } => {
                self.stray.add(&input[start..at], base + start);
                self.stray.flush(CALL_STRAY, sink);
                self.marker_bytes += non_whitespace_len(&input[at..at + len]);
                self.part_offset = base + at + len;
                self.value.clear();
                self.state = State::Value;
                Step::Continue(at + len)
            }
            Next::Marker { at, .. } => {
                self.stray.add(&input[start..at], base + start);
                self.stray.flush(CALL_STRAY, sink);
                self.drop_key("the parameter has no `<arg_value>`", base + at, sink);
                self.state = State::Params;
                Step::Continue(at)
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

    fn step_value<S: EventSink>(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut S,
    ) -> Step {
        let glm = self.shape == Shape::Glm;
        let next = next_marker::<D>(input, start, eof, |marker| {
            if glm {
                matches!(
                    marker,
                    Marker::ArgValueClose
                        | Marker::ArgKeyOpen
                        | Marker::WrapperClose
                        | Marker::WrapperOpen
                )
            } else {
                matches!(
                    marker,
                    Marker::ParamClose
                        | Marker::ParamOpen
                        | Marker::InvokeClose
                        | Marker::WrapperClose
                        | Marker::WrapperOpen
                        | Marker::InvokeOpen
                )
            }
        });
        match next {
            Next::Marker { at, marker, len } => {
                self.value.push_str(&input[start..at]);
                let closed = matches!(marker, Marker::ParamClose | Marker::ArgValueClose);
                self.add_param(sink);
                if closed {
                    self.marker_bytes += non_whitespace_len(&input[at..at + len]);
                } else {
                    let close = if glm { Marker::ArgValueClose } else { Marker::ParamClose };
                    sink.emit(diagnostic(
                        DiagnosticKind::MalformedCall,
                        Some(self.calls.get().index),
                        base + at,
                        format!("the parameter value was not closed with `{}`", D::spelling(close)),
                    ));
                }
                self.state = State::Params;
                Step::Continue(if closed { at + len } else { at })
            }
            Next::NeedInput(at) => {
                self.value.push_str(&input[start..at]);
                Step::NeedInput(at)
            }
            Next::End => {
                self.value.push_str(&input[start..]);
                Step::Continue(input.len())
            }
        }
    }

    fn add_param<S: EventSink>(&mut self, sink: &mut S) {
        let key = std::mem::take(&mut self.key);
        let value = std::mem::take(&mut self.value);
        let name = self.unquoted(key.trim()).to_owned();
        let raw = strip_one_newline(&value);
        let offset = self.part_offset + (raw.as_ptr() as usize - value.as_ptr() as usize);
        self.params.add(&mut self.calls, &self.tools, &self.name, &name, raw, offset, sink);
        self.key = key;
        self.value = value;
        self.key.clear();
        self.value.clear();
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

    fn not_closed(&self, close: Marker, found: Marker, offset: usize) -> Ending {
        Ending::Malformed {
            offset,
            message: format!(
                "the call was not closed with `{}` before `{}`",
                D::spelling(close),
                D::spelling(found)
            ),
        }
    }
}

impl<D: Dialect> Machine for Tagged<D> {
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
            State::Wrapper => self.step_wrapper(input, pos, base, eof, sink),
            State::Object => self.step_object(input, pos, base, eof, sink),
            State::InvokeName => self.step_name(input, pos, base, eof, sink),
            State::Key if self.shape != Shape::Glm => self.step_name(input, pos, base, eof, sink),
            State::Key => self.step_glm_key(input, pos, base, eof, sink),
            State::GlmName => self.step_glm_name(input, pos, eof, sink),
            State::Params => self.step_params(input, pos, base, eof, sink),
            State::AwaitValue => self.step_await_value(input, pos, base, eof, sink),
            State::Value => self.step_value(input, pos, base, eof, sink),
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
                sink.emit(diagnostic(
                    DiagnosticKind::Truncated,
                    None,
                    start,
                    format!("the input ended inside `{}`", D::spelling(Marker::WrapperOpen)),
                ));
            }
            State::Object => {
                self.marker_bytes +=
                    finish_envelope_call(&mut self.calls, &self.tools, Ending::Truncated, sink);
            }
            State::InvokeName | State::GlmName => {
                self.announce(sink);
                self.end_call(Ending::Truncated, offset, sink);
            }
            State::Params => {
                self.stray.flush(CALL_STRAY, sink);
                self.end_call(Ending::Truncated, offset, sink);
            }
            State::Key | State::AwaitValue => {
                self.stray.flush(CALL_STRAY, sink);
                self.drop_key("the input ended before the parameter's value", offset, sink);
                self.end_call(Ending::Truncated, offset, sink);
            }
            State::Value => {
                self.add_param(sink);
                self.end_call(Ending::Truncated, offset, sink);
            }
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
    }

    fn marker_bytes(&self) -> usize {
        self.marker_bytes
    }

    fn generated_bytes(&self) -> usize {
        self.calls.generated_bytes()
    }
}
