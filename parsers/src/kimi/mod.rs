//! The Kimi K2 / Kimi Coding tool-call format (DESIGN §3).
//!
//! One incremental state machine serves both one-shot and streaming parsing: one-shot parsing
//! is a single `feed` of the whole input followed by `finish`. Every chunking of an input
//! therefore goes through the same decisions, which is what makes the folded events of any
//! chunking equal the one-shot result. The machine only ever stops early at a `<` that may
//! start a marker, so at most `LONGEST_MARKER - 1` bytes are carried into the next chunk and
//! no byte is scanned more than once, apart from those few.

mod call_id;
mod markers;

use memchr::{memchr, memchr2, memchr3};

use crate::arguments::{ArgumentsCheck, JsonStringState, check_arguments};
use crate::event::{EventSink, StreamEvent};
use crate::message::{Diagnostic, DiagnosticKind};
use crate::tools::{ToolSpec, resolve_unnamed};
use call_id::{CallName, parse_call_id};
use markers::{Marker, Scan, scan_marker};

pub use markers::LONGEST_MARKER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside any section or call: content, or reasoning inside `<think>`.
    Text,
    /// Inside a tool-call section, between calls.
    Section,
    /// After `<|tool_call_begin|>`, reading the id.
    CallId,
    /// After `<|tool_call_argument_begin|>`, reading the arguments.
    Arguments,
}

/// Non-whitespace text met inside a section, reported once the run ends.
#[derive(Debug)]
struct StrayText {
    offset: usize,
    text: String,
}

#[derive(Debug)]
struct Call {
    index: usize,
    /// Offset of the call's begin marker.
    offset: usize,
    /// The id text until the arguments begin (then it moves into the `CallStart` event).
    id: String,
    /// The id is a bare index: the name comes from the declared tools at the end.
    unnamed: bool,
    arguments: String,
    /// The check of the final arguments, when it was already made to settle a doubtful marker.
    checked: Option<ArgumentsCheck>,
    /// Offset of the first argument byte (or of where the arguments would have started).
    arguments_offset: Option<usize>,
    /// Whitespace after the arguments so far: it is argument text only if more follows.
    trailing_whitespace: String,
    json: JsonStringState,
    /// Text from a marker met inside an open JSON string, waiting for the string to close.
    held: Option<HeldText>,
}

/// The growable buffers of a call, kept from one call to the next so that their capacity is
/// reused.
#[derive(Debug, Default)]
struct CallBuffers {
    id: String,
    arguments: String,
    trailing_whitespace: String,
}

impl CallBuffers {
    fn reuse(call: Call) -> Self {
        let Call { mut id, mut arguments, mut trailing_whitespace, .. } = call;
        id.clear();
        arguments.clear();
        trailing_whitespace.clear();
        Self { id, arguments, trailing_whitespace }
    }
}

#[derive(Debug)]
struct HeldText {
    offset: usize,
    text: String,
}

/// How a call's arguments came to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallEnding {
    /// `<|tool_call_end|>`, as it should.
    EndMarker,
    /// Another marker, before any end marker.
    OtherMarker(Marker, usize),
    /// The end of the input.
    EndOfInput,
}

/// The Kimi K2 parser. See the module documentation.
#[derive(Debug)]
pub struct KimiParser {
    tools: Vec<ToolSpec>,
    /// Input not processed yet: a possible marker start left at the end of the last chunk.
    pending: String,
    /// Absolute offset of the first byte of `pending` (all input before it is processed).
    offset: usize,
    state: State,
    in_think: bool,
    /// Offset of the open section's begin marker.
    section: Option<usize>,
    stray: Option<StrayText>,
    call: Option<Call>,
    spare: CallBuffers,
    calls_started: usize,
    /// Set at the end of input when an open JSON string never closed: the first marker met
    /// inside it then ends the arguments after all.
    marker_ends_string: bool,
    marker_bytes: usize,
    scanned_bytes: usize,
}

impl KimiParser {
    pub fn new(tools: Vec<ToolSpec>) -> Self {
        Self {
            tools,
            pending: String::new(),
            offset: 0,
            state: State::Text,
            in_think: false,
            section: None,
            stray: None,
            call: None,
            spare: CallBuffers::default(),
            calls_started: 0,
            marker_ends_string: false,
            marker_bytes: 0,
            scanned_bytes: 0,
        }
    }

    pub fn feed(&mut self, chunk: &str, sink: &mut impl EventSink) {
        if self.pending.is_empty() {
            let consumed = self.drive(chunk, self.offset, false, sink);
            self.offset += consumed;
            self.pending.push_str(&chunk[consumed..]);
        } else {
            let mut input = std::mem::take(&mut self.pending);
            input.push_str(chunk);
            let consumed = self.drive(&input, self.offset, false, sink);
            self.offset += consumed;
            input.drain(..consumed);
            self.pending = input;
        }
    }

    pub fn finish(&mut self, sink: &mut impl EventSink) {
        let input = std::mem::take(&mut self.pending);
        let base = self.offset;
        self.offset = base + self.drive(&input, base, true, sink);
        // Arguments that end with the input while a marker inside a string is still in doubt:
        // the marker is literal if that makes them valid, otherwise it ends them.
        while let Some(held) = self.call.as_mut().and_then(|call| call.held.take()) {
            if !self.settle_held_text(&held, sink) {
                self.replay_from_held_marker();
                self.drive(&held.text, held.offset, true, sink);
            }
        }
        match self.state {
            State::Text => {}
            State::Section => {
                self.flush_stray_text(sink);
                let offset = self.section.take().unwrap_or(self.offset);
                sink.emit(diagnostic(
                    DiagnosticKind::Truncated,
                    None,
                    offset,
                    "the input ended inside a tool-call section",
                ));
            }
            State::CallId => {
                self.start_arguments(sink);
                self.end_call(CallEnding::EndOfInput, sink);
            }
            State::Arguments => self.end_call(CallEnding::EndOfInput, sink),
        }
        self.state = State::Text;
    }

    /// Bytes held back at the end of the last chunk because they may start a marker.
    pub fn buffered_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes kept between chunks: held-back text, the call being read, stray text.
    pub fn retained_bytes(&self) -> usize {
        let call = self.call.as_ref().map_or(0, |call| {
            call.id.len()
                + call.arguments.len()
                + call.trailing_whitespace.len()
                + call.held.as_ref().map_or(0, |held| held.text.len())
        });
        self.pending.len() + call + self.stray.as_ref().map_or(0, |stray| stray.text.len())
    }

    /// Bytes of markers consumed so far (markers are the only input that goes nowhere).
    pub fn marker_bytes(&self) -> usize {
        self.marker_bytes
    }

    /// Bytes handed to the scanner so far, counting bytes held back and scanned again.
    pub fn scanned_bytes(&self) -> usize {
        self.scanned_bytes
    }

    /// Processes `input` (which starts at absolute offset `base`) and returns how many bytes
    /// were consumed; the rest is a possible marker start that needs more input. Text that a
    /// step hands back for parsing again (see [`Step::Replay`]) is processed before the rest.
    fn drive(&mut self, input: &str, base: usize, eof: bool, sink: &mut impl EventSink) -> usize {
        let mut pos = 0;
        loop {
            match self.process(&input[pos..], base + pos, eof, sink) {
                Step::Continue(consumed) | Step::NeedInput(consumed) => return pos + consumed,
                Step::Replay { resume, replay } => {
                    pos += resume;
                    self.run_replays(replay, eof, sink);
                }
            }
        }
    }

    /// Parses text handed back by a step, and any text handed back while doing so, in order.
    fn run_replays(&mut self, first: Replay, eof: bool, sink: &mut impl EventSink) {
        let mut replays = vec![first];
        while let Some(replay) = replays.last_mut() {
            let text = &replay.text[replay.pos..];
            match self.process(text, replay.offset + replay.pos, eof, sink) {
                Step::Continue(consumed) | Step::NeedInput(consumed) => {
                    debug_assert_eq!(consumed, text.len(), "replays end in a whole marker");
                    replays.pop();
                }
                Step::Replay { resume, replay: inner } => {
                    replay.pos += resume;
                    replays.push(inner);
                }
            }
        }
    }

    /// Runs the state machine over `input` until it ends, needs more input, or hands back
    /// text to parse again.
    fn process(&mut self, input: &str, base: usize, eof: bool, sink: &mut impl EventSink) -> Step {
        self.scanned_bytes += input.len();
        let mut pos = 0;
        while pos < input.len() {
            let step = match self.state {
                State::Text => self.step_text(input, pos, base, eof, sink),
                State::Section => self.step_section(input, pos, base, eof, sink),
                State::CallId => self.step_call_id(input, pos, base, eof, sink),
                State::Arguments => self.step_arguments(input, pos, base, eof, sink),
            };
            match step {
                Step::Continue(next) => pos = next,
                Step::NeedInput(_) => return step,
                Step::Replay { resume, replay } => {
                    self.scanned_bytes -= input.len() - resume;
                    return Step::Replay { resume, replay };
                }
            }
        }
        Step::Continue(pos)
    }

    fn step_text(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut impl EventSink,
    ) -> Step {
        let mut search = start;
        while let Some(found) = memchr(b'<', &input.as_bytes()[search..]) {
            let at = search + found;
            match scan_marker(&input[at..]) {
                Scan::Incomplete if !eof => {
                    self.emit_text(&input[start..at], sink);
                    return Step::NeedInput(at);
                }
                Scan::Marker(Marker::ThinkOpen, _) if self.in_think => {}
                Scan::Marker(marker, len) => {
                    self.emit_text(&input[start..at], sink);
                    self.consume_marker(len);
                    self.on_text_marker(marker, base + at, sink);
                    return Step::Continue(at + len);
                }
                Scan::Incomplete | Scan::NoMatch => {}
            }
            search = at + 1;
        }
        self.emit_text(&input[start..], sink);
        Step::Continue(input.len())
    }

    fn on_text_marker(&mut self, marker: Marker, offset: usize, sink: &mut impl EventSink) {
        match marker {
            Marker::ThinkOpen => self.in_think = true,
            Marker::ThinkClose if self.in_think => self.in_think = false,
            Marker::SectionBegin => {
                self.section = Some(offset);
                self.state = State::Section;
            }
            Marker::CallBegin => self.begin_call(offset),
            Marker::ThinkClose => {
                sink.emit(unexpected_marker(marker, offset, "without an open `<think>`"));
            }
            Marker::SectionEnd | Marker::ArgumentBegin | Marker::CallEnd => {
                sink.emit(unexpected_marker(marker, offset, "outside any tool-call section"));
            }
        }
    }

    fn step_section(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut impl EventSink,
    ) -> Step {
        let mut search = start;
        while let Some(found) = memchr(b'<', &input.as_bytes()[search..]) {
            let at = search + found;
            match scan_marker(&input[at..]) {
                Scan::Incomplete if !eof => {
                    self.add_stray_text(&input[start..at], base + start);
                    return Step::NeedInput(at);
                }
                Scan::Marker(marker, len) if marker.is_tool_marker() => {
                    self.add_stray_text(&input[start..at], base + start);
                    self.flush_stray_text(sink);
                    self.consume_marker(len);
                    match marker {
                        Marker::SectionEnd => {
                            self.section = None;
                            self.state = State::Text;
                        }
                        Marker::CallBegin => self.begin_call(base + at),
                        _ => sink.emit(unexpected_marker(marker, base + at, "between tool calls")),
                    }
                    return Step::Continue(at + len);
                }
                Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => {}
            }
            search = at + 1;
        }
        self.add_stray_text(&input[start..], base + start);
        Step::Continue(input.len())
    }

    fn step_call_id(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut impl EventSink,
    ) -> Step {
        let mut search = start;
        while let Some(found) = memchr(b'<', &input.as_bytes()[search..]) {
            let at = search + found;
            match scan_marker(&input[at..]) {
                Scan::Incomplete if !eof => {
                    self.call_mut().id.push_str(&input[start..at]);
                    return Step::NeedInput(at);
                }
                Scan::Marker(marker, len) if marker.is_tool_marker() => {
                    self.call_mut().id.push_str(&input[start..at]);
                    self.start_arguments(sink);
                    return match marker {
                        Marker::ArgumentBegin => {
                            self.consume_marker(len);
                            self.call_mut().arguments_offset = None;
                            self.state = State::Arguments;
                            Step::Continue(at + len)
                        }
                        Marker::CallEnd => {
                            self.consume_marker(len);
                            sink.emit(diagnostic(
                                DiagnosticKind::MalformedCall,
                                Some(self.call_mut().index),
                                base + at,
                                "the call has no `<|tool_call_argument_begin|>` marker",
                            ));
                            self.end_call(CallEnding::EndMarker, sink);
                            Step::Continue(at + len)
                        }
                        _ => {
                            self.end_call(CallEnding::OtherMarker(marker, base + at), sink);
                            Step::Continue(at)
                        }
                    };
                }
                Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => {}
            }
            search = at + 1;
        }
        self.call_mut().id.push_str(&input[start..]);
        Step::Continue(input.len())
    }

    /// Reads argument text while tracking JSON strings. A marker outside a string ends the
    /// arguments. A marker inside a string is in doubt: from there on the text is held, and
    /// when the call ends it is literal if the arguments are then valid JSON; otherwise the
    /// first such marker ended the arguments and the held text is parsed again from it.
    fn step_arguments(
        &mut self,
        input: &str,
        start: usize,
        base: usize,
        eof: bool,
        sink: &mut impl EventSink,
    ) -> Step {
        let bytes = input.as_bytes();
        let mut run_start = start;
        let mut i = start;
        loop {
            let call = self.call.as_mut().expect("a call is open while reading arguments");
            if call.json.escaped {
                if i >= bytes.len() {
                    break;
                }
                call.json.escaped = false;
                i += 1;
                continue;
            }
            let found = if call.json.in_string {
                memchr3(b'"', b'\\', b'<', &bytes[i..])
            } else {
                memchr2(b'"', b'<', &bytes[i..])
            };
            let Some(found) = found else { break };
            let at = i + found;
            i = at + 1;
            match bytes[at] {
                b'\\' => call.json.escaped = true,
                b'"' => call.json.in_string = !call.json.in_string,
                _ => match scan_marker(&input[at..]) {
                    Scan::Incomplete if !eof => {
                        self.add_argument_text(&input[run_start..at], base + run_start, sink);
                        return Step::NeedInput(at);
                    }
                    Scan::Marker(marker, _) if marker.is_tool_marker() && call.json.in_string => {
                        if call.held.is_some() {
                            continue;
                        }
                        self.add_argument_text(&input[run_start..at], base + run_start, sink);
                        run_start = at;
                        if std::mem::take(&mut self.marker_ends_string) {
                            return self.end_arguments_at(marker, input, at, base, sink);
                        }
                        self.call_mut().held =
                            Some(HeldText { offset: base + at, text: String::new() });
                    }
                    Scan::Marker(marker, len) if marker.is_tool_marker() => {
                        let Some(mut held) = call.held.take() else {
                            self.push_arguments(&input[run_start..at], base + run_start, sink);
                            return self.end_arguments_at(marker, input, at, base, sink);
                        };
                        held.text.push_str(&input[run_start..at]);
                        if self.settle_held_text(&held, sink) {
                            return self.end_arguments_at(marker, input, at, base, sink);
                        }
                        held.text.push_str(&input[at..at + len]);
                        self.replay_from_held_marker();
                        return Step::Replay {
                            resume: at + len,
                            replay: Replay { text: held.text, offset: held.offset, pos: 0 },
                        };
                    }
                    Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => {}
                },
            }
        }
        self.add_argument_text(&input[run_start..], base + run_start, sink);
        Step::Continue(input.len())
    }

    /// Argument text: held while a marker inside a string is in doubt, streamed otherwise.
    fn add_argument_text(&mut self, text: &str, offset: usize, sink: &mut impl EventSink) {
        match &mut self.call_mut().held {
            Some(held) => held.text.push_str(text),
            None => self.push_arguments(text, offset, sink),
        }
    }

    /// The call ends after `held`: if the arguments are valid with the held text read as
    /// literal, it becomes argument text and `true` is returned; otherwise nothing changes.
    fn settle_held_text(&mut self, held: &HeldText, sink: &mut impl EventSink) -> bool {
        let call = self.call_mut();
        let mut arguments = String::with_capacity(
            call.arguments.len() + call.trailing_whitespace.len() + held.text.len(),
        );
        arguments.push_str(&call.arguments);
        arguments.push_str(&call.trailing_whitespace);
        arguments.push_str(&held.text);
        let check = check_arguments(arguments.trim());
        if matches!(check, ArgumentsCheck::Invalid(_)) {
            return false;
        }
        self.push_arguments(&held.text, held.offset, sink);
        self.call_mut().checked = Some(check);
        true
    }

    /// Makes the held marker end the arguments when the held text is parsed again: the scan
    /// resumes inside the string where that marker was met.
    fn replay_from_held_marker(&mut self) {
        let call = self.call_mut();
        call.held = None;
        call.json = JsonStringState { in_string: true, escaped: false };
        self.marker_ends_string = true;
    }

    /// Ends the arguments at the marker at `input[at..]`: the end marker is consumed, any
    /// other marker is left for the state after the call.
    fn end_arguments_at(
        &mut self,
        marker: Marker,
        input: &str,
        at: usize,
        base: usize,
        sink: &mut impl EventSink,
    ) -> Step {
        if marker == Marker::CallEnd {
            let len = marker_len(input, at);
            self.consume_marker(len);
            self.end_call(CallEnding::EndMarker, sink);
            Step::Continue(at + len)
        } else {
            self.end_call(CallEnding::OtherMarker(marker, base + at), sink);
            Step::Continue(at)
        }
    }

    fn emit_text(&mut self, text: &str, sink: &mut impl EventSink) {
        if text.is_empty() {
            return;
        }
        if self.in_think {
            sink.reasoning(text);
        } else {
            sink.text(text);
        }
    }

    fn add_stray_text(&mut self, text: &str, offset: usize) {
        match &mut self.stray {
            Some(stray) => stray.text.push_str(text),
            None => {
                let trimmed = text.trim_start();
                if !trimmed.is_empty() {
                    let offset = offset + text.len() - trimmed.len();
                    self.stray = Some(StrayText { offset, text: trimmed.to_owned() });
                }
            }
        }
    }

    fn flush_stray_text(&mut self, sink: &mut impl EventSink) {
        if let Some(stray) = self.stray.take() {
            sink.emit(StreamEvent::Diagnostic(Diagnostic {
                kind: DiagnosticKind::StrayText,
                call_index: None,
                offset: stray.offset,
                message: "text inside a tool-call section, outside any call".to_owned(),
                text: Some(stray.text.trim_end().to_owned()),
            }));
        }
    }

    fn begin_call(&mut self, offset: usize) {
        let CallBuffers { id, arguments, trailing_whitespace } = std::mem::take(&mut self.spare);
        self.call = Some(Call {
            index: self.calls_started,
            offset,
            id,
            unnamed: false,
            arguments,
            checked: None,
            arguments_offset: Some(offset),
            trailing_whitespace,
            json: JsonStringState::default(),
            held: None,
        });
        self.calls_started += 1;
        self.state = State::CallId;
    }

    /// The id is complete: announces the call.
    fn start_arguments(&mut self, sink: &mut impl EventSink) {
        let call = self.call_mut();
        let id = call.id.trim().to_owned();
        call.id.clear();
        let (index, offset) = (call.index, call.offset);
        let parsed = parse_call_id(&id);
        call.unnamed = parsed == CallName::Unnamed;
        let problem = match (&parsed, id.is_empty()) {
            (CallName::Invalid, true) => Some("the call has an empty id"),
            (CallName::Invalid, false) => {
                Some("the call id is not `functions.NAME:IDX`, `NAME:IDX` or `IDX`")
            }
            _ => None,
        };
        let name = match parsed {
            CallName::Named(name) => Some(name),
            CallName::Unnamed => None,
            CallName::Invalid => Some(String::new()),
        };
        sink.emit(StreamEvent::CallStart { index, id, name });
        if let Some(problem) = problem {
            sink.emit(diagnostic(DiagnosticKind::InvalidId, Some(index), offset, problem));
        }
    }

    /// Adds argument text (at absolute `offset`), trimmed at both ends of the whole.
    fn push_arguments(&mut self, text: &str, offset: usize, sink: &mut impl EventSink) {
        let call = self.call_mut();
        let text = if call.arguments.is_empty() {
            let trimmed = text.trim_start();
            let offset = offset + text.len() - trimmed.len();
            if !trimmed.is_empty() {
                call.arguments_offset.get_or_insert(offset);
            }
            trimmed
        } else {
            text
        };
        let body = text.trim_end();
        if body.is_empty() {
            call.trailing_whitespace.push_str(text);
            return;
        }
        let start = call.arguments.len();
        call.arguments.push_str(&call.trailing_whitespace);
        call.arguments.push_str(body);
        call.trailing_whitespace.clear();
        call.trailing_whitespace.push_str(&text[body.len()..]);
        sink.arguments(call.index, &call.arguments[start..]);
    }

    fn end_call(&mut self, ending: CallEnding, sink: &mut impl EventSink) {
        let call = self.call.take().expect("a call is open");
        self.state = if self.section.is_some() { State::Section } else { State::Text };
        let index = Some(call.index);
        let arguments_offset = call.arguments_offset.unwrap_or(call.offset);
        let mut notes = Vec::new();
        match ending {
            CallEnding::EndMarker => {}
            CallEnding::OtherMarker(marker, offset) => notes.push(diagnostic(
                DiagnosticKind::MalformedCall,
                index,
                offset,
                format!(
                    "the call was not closed with `<|tool_call_end|>` before `{}`",
                    marker.text()
                ),
            )),
            CallEnding::EndOfInput => notes.push(diagnostic(
                DiagnosticKind::Truncated,
                index,
                call.offset,
                "the input ended inside this tool call",
            )),
        }
        let mut call = call;
        let check = call.checked.take().unwrap_or_else(|| check_arguments(&call.arguments));
        let replaced = match check {
            ArgumentsCheck::Object => None,
            ArgumentsCheck::DoubleEncoded(decoded) => {
                notes.push(StreamEvent::Diagnostic(Diagnostic {
                    kind: DiagnosticKind::DoubleEncodedArguments,
                    call_index: index,
                    offset: arguments_offset,
                    message: "the arguments were a JSON string holding an object; decoded once"
                        .to_owned(),
                    text: Some(call.arguments.clone()),
                }));
                Some(decoded)
            }
            ArgumentsCheck::Invalid(reason) => {
                notes.push(diagnostic(
                    DiagnosticKind::InvalidArguments,
                    index,
                    arguments_offset,
                    reason,
                ));
                None
            }
        };
        let name = if call.unnamed {
            let arguments = replaced.as_deref().unwrap_or(&call.arguments);
            match resolve_unnamed(&self.tools, arguments) {
                Ok(name) => Some(name),
                Err(reason) => {
                    notes.push(diagnostic(
                        DiagnosticKind::UnresolvedName,
                        index,
                        call.offset,
                        reason,
                    ));
                    None
                }
            }
        } else {
            None
        };
        sink.emit(StreamEvent::CallEnd { index: call.index, name, arguments: replaced });
        for note in notes {
            sink.emit(note);
        }
        self.spare = CallBuffers::reuse(call);
    }

    fn consume_marker(&mut self, len: usize) {
        self.marker_bytes += len;
    }

    fn call_mut(&mut self) -> &mut Call {
        self.call.as_mut().expect("a call is open")
    }
}

enum Step {
    /// Go on from this position (the state may have changed).
    Continue(usize),
    /// Stop here: the text from this position may start a marker.
    NeedInput(usize),
    /// Parse `replay` (text already seen, ending in a whole marker) before going on from
    /// `resume`.
    Replay { resume: usize, replay: Replay },
}

/// Text to parse again, and how far that has got.
#[derive(Debug)]
struct Replay {
    text: String,
    offset: usize,
    pos: usize,
}

fn marker_len(input: &str, at: usize) -> usize {
    match scan_marker(&input[at..]) {
        Scan::Marker(_, len) => len,
        Scan::Incomplete | Scan::NoMatch => unreachable!("a marker was found at this position"),
    }
}

fn diagnostic(
    kind: DiagnosticKind,
    call_index: Option<usize>,
    offset: usize,
    message: impl Into<String>,
) -> StreamEvent {
    StreamEvent::Diagnostic(Diagnostic {
        kind,
        call_index,
        offset,
        message: message.into(),
        text: None,
    })
}

fn unexpected_marker(marker: Marker, offset: usize, context: &str) -> StreamEvent {
    diagnostic(
        DiagnosticKind::UnexpectedMarker,
        None,
        offset,
        format!("`{}` {context}; dropped", marker.text()),
    )
}
