//! Llama 3.x JSON tool calls: `{"name": "NAME", "parameters": {…}}` (`arguments` is accepted
//! too), several separated by `;`, optionally after `<|python_tag|>`.
//!
//! Such a call is plain JSON, so the rule for telling it from JSON content is explicit:
//!
//! - after `<|python_tag|>`, the text is calls: each JSON object is a call, and text that is
//!   not one is content with a `malformed_call` diagnostic;
//! - without the tag, only a message that *begins* (after whitespace and think blocks) with a
//!   JSON object is read as calls, and an object is a call only when it has a string `name`
//!   that is a declared tool and an object of arguments. Any other object is content; one
//!   that has the shape of a call but names no declared tool is content with an
//!   `unresolved_name` diagnostic. After the first object that is not a call, the rest of the
//!   message is content.
//!
//! After `<|python_tag|>`, a call is announced once its name is read and its arguments have
//! begun, and they stream from then on ([`call_object`](crate::engine::call_object)); a bare
//! object may turn out to be content, so it is announced once it is complete. Text after the
//! calls is content, from the whitespace before it on (whitespace between calls is ignored).
//! `<|eom_id|>` and `<|eot_id|>` end a turn and are dropped. Llama writes no call ids: calls
//! get `call_0`, `call_1`, … by their index.

mod markers;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::call_object::Announce;
use crate::engine::diag::diagnostic;
use crate::engine::driver::{Chunk, Machine, Replay, Step};
use crate::engine::envelope::{finish_envelope_call, read_envelope};
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::scan::{Found, MarkerSet, Scan};
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use markers::{Marker, Tags};

pub(crate) use markers::LONGEST_MARKER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace and think blocks so far: a JSON object here may be calls.
    Start,
    /// Content: this message is not (or no longer) calls.
    Text,
    /// After `<|python_tag|>`: a call object is expected.
    Expect,
    /// A JSON object, `tagged` when it follows `<|python_tag|>`.
    Object { tagged: bool },
    /// After a call: `;`, whitespace, or another object.
    After { tagged: bool },
}

#[derive(Debug)]
pub(crate) struct Llama3 {
    tools: Vec<ToolSpec>,
    state: State,
    text: TextOut,
    calls: Calls,
    /// Offset of the last `<|python_tag|>`.
    tag_at: usize,
    /// Whitespace read where a call may come, after a call or `<|python_tag|>`: ignored
    /// before the next call, content before text.
    gap: String,
}

/// What a complete object turned out to be.
enum Verdict {
    Call,
    Content(Option<String>),
}

impl Llama3 {
    pub(crate) fn new(options: &ParseOptions, text: TextOut) -> Self {
        Self {
            tools: options.tools.clone(),
            state: State::Start,
            text,
            calls: Calls::default(),
            tag_at: 0,
            gap: String::new(),
        }
    }

    fn step_text<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let found = self.text.read_to_marker::<Tags, S>(chunk, start, Marker::ThinkOpen, sink);
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.on_marker(marker, len, chunk.base + at, sink);
        Step::Continue(at + len)
    }

    fn on_marker<S: EventSink>(&mut self, marker: Marker, len: usize, offset: usize, sink: &mut S) {
        self.calls.tally.count_syntax(len);
        match marker {
            Marker::ThinkOpen => self.text.open(),
            Marker::ThinkClose => self.text.close(marker.text(), "<think>", offset, sink),
            Marker::PythonTag => {
                self.tag_at = offset;
                self.state = State::Expect;
            }
            Marker::EndOfMessage | Marker::EndOfTurn => {}
        }
    }

    /// Where a call object may come (`Start`, `Expect`, `After`): whitespace is skipped, `{`
    /// begins an object, markers are handled; anything else is content.
    fn step_expecting<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        if self.state == State::Start && self.text.in_think {
            return self.step_text(chunk, start, sink);
        }
        let rest = &input[start..];
        let first = start + rest.len() - rest.trim_start().len();
        if self.state == State::Start {
            self.text.emit(&input[start..first], sink);
        } else {
            self.gap.push_str(&input[start..first]);
        }
        let Some(&byte) = input.as_bytes().get(first) else {
            return Step::Continue(input.len());
        };
        let tagged = matches!(self.state, State::Expect | State::After { tagged: true });
        match byte {
            b'{' => {
                let announce = if tagged { Announce::Named } else { Announce::Whole };
                self.calls.begin_whole(base + first, announce);
                self.calls.arguments_start();
                self.state = State::Object { tagged };
                return Step::Continue(first);
            }
            b';' if matches!(self.state, State::After { .. }) => {
                self.gap.clear();
                self.calls.tally.count_syntax(1);
                return Step::Continue(first + 1);
            }
            b'<' => match Tags::scan(&input[first..]) {
                Scan::Incomplete if !eof => return Step::NeedInput(first),
                Scan::Marker(marker, len)
                    if marker != Marker::ThinkOpen || self.state == State::Start =>
                {
                    let state = self.state;
                    let to_text = matches!(marker, Marker::ThinkOpen | Marker::ThinkClose)
                        && state != State::Start;
                    if to_text {
                        self.leave_for_text(sink);
                    }
                    self.on_marker(marker, len, base + first, sink);
                    return Step::Continue(first + len);
                }
                _ => {}
            },
            _ => {}
        }
        if self.state == State::Expect {
            sink.emit(diagnostic(
                DiagnosticKind::MalformedCall,
                None,
                self.tag_at,
                "the text after `<|python_tag|>` is not a JSON tool call",
            ));
        }
        self.leave_for_text(sink);
        Step::Continue(first)
    }

    /// Text follows where a call may have come: the rest of the message is content, from the
    /// whitespace before it on.
    fn leave_for_text<S: EventSink>(&mut self, sink: &mut S) {
        self.text.emit(&self.gap, sink);
        self.gap.clear();
        self.state = State::Text;
    }

    fn step_object<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        tagged: bool,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<Tags, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Closed(end) => {
                match self.verdict(tagged) {
                    Verdict::Call => {
                        self.gap.clear();
                        finish_envelope_call(
                            &mut self.calls,
                            &self.tools,
                            Ending::Closed,
                            self.text,
                            sink,
                        );
                        self.state = State::After { tagged };
                    }
                    Verdict::Content(note) => self.give_up(note, sink),
                }
                Step::Continue(end)
            }
            ArgsStop::Marker(marker, at) => {
                if tagged {
                    self.gap.clear();
                    let what = "the call object was not closed";
                    let ending = Ending::cut_short(what, marker.text(), base + at);
                    finish_envelope_call(&mut self.calls, &self.tools, ending, self.text, sink);
                    self.state = State::Text;
                } else {
                    self.give_up(None, sink);
                }
                Step::Continue(at)
            }
            stop => stop.step(input.len()),
        }
    }

    /// Whether the complete object being read is a call (see the module documentation).
    fn verdict(&self, tagged: bool) -> Verdict {
        if tagged {
            return Verdict::Call;
        }
        if !self.calls.is_open() {
            return Verdict::Content(None);
        }
        let (text, _) = self.calls.arguments();
        let Ok(envelope) = read_envelope(text) else { return Verdict::Content(None) };
        let (Some(name), Some(arguments)) = (envelope.name, envelope.arguments) else {
            return Verdict::Content(None);
        };
        let Some(name) = name.plain_string() else { return Verdict::Content(None) };
        if !arguments.value.starts_with('{') {
            return Verdict::Content(None);
        }
        if self.tools.iter().any(|tool| tool.name == name) {
            return Verdict::Call;
        }
        let why = if self.tools.is_empty() {
            "no tools were declared"
        } else {
            "it is not a declared tool"
        };
        Verdict::Content(Some(format!(
            "the message is a JSON object naming `{name}`, but {why}: kept as content"
        )))
    }

    /// The object is not a call: its text is content, and so is the rest of the message.
    fn give_up<S: EventSink>(&mut self, note: Option<String>, sink: &mut S) {
        let offset = self.calls.arguments().1;
        let text = self.calls.abandon();
        self.leave_for_text(sink);
        self.text.emit(&text, sink);
        if let Some(note) = note {
            sink.emit(diagnostic(DiagnosticKind::UnresolvedName, None, offset, note));
        }
        self.state = State::Text;
    }
}

impl Machine for Llama3 {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step {
        match self.state {
            State::Text => self.step_text(chunk, pos, sink),
            State::Start | State::Expect | State::After { .. } => {
                self.step_expecting(chunk, pos, sink)
            }
            State::Object { tagged } => self.step_object(chunk, pos, tagged, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, _offset: usize, sink: &mut S) {
        match self.state {
            State::Object { tagged: true } => {
                finish_envelope_call(
                    &mut self.calls,
                    &self.tools,
                    Ending::Truncated,
                    self.text,
                    sink,
                );
            }
            State::Object { tagged: false } => self.give_up(None, sink),
            State::Expect => sink.emit(diagnostic(
                DiagnosticKind::Truncated,
                None,
                self.tag_at,
                "the input ended after `<|python_tag|>`",
            )),
            State::Start | State::Text | State::After { .. } => {}
        }
        self.gap.clear();
        self.state = State::Text;
    }

    fn retained(&self) -> usize {
        self.calls.retained() + self.gap.len()
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
