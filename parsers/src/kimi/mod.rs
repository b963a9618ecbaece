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
    id: String,
    name: CallName,
    arguments: String,
    /// Offset of the first argument byte (or of where the arguments would have started).
    arguments_offset: Option<usize>,
    /// Whitespace after the arguments so far: it is argument text only if more follows.
    trailing_whitespace: String,
    json: JsonStringState,
    /// Text from a marker met inside an open JSON string, waiting for the string to close.
    held: Option<HeldText>,
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
            calls_started: 0,
            marker_ends_string: false,
            marker_bytes: 0,
            scanned_bytes: 0,
        }
    }

    pub fn feed(&mut self, chunk: &str, sink: &mut impl EventSink) {
        if self.pending.is_empty() {
            let consumed = self.process(chunk, self.offset, false, sink);
            self.offset += consumed;
            self.pending.push_str(&chunk[consumed..]);
        } else {
            let mut input = std::mem::take(&mut self.pending);
            input.push_str(chunk);
            let consumed = self.process(&input, self.offset, false, sink);
            self.offset += consumed;
            input.drain(..consumed);
            self.pending = input;
        }
    }

    pub fn finish(&mut self, sink: &mut impl EventSink) {
        let mut input = std::mem::take(&mut self.pending);
        let mut base = self.offset;
        loop {
            let consumed = self.process(&input, base, true, sink);
            debug_assert_eq!(consumed, input.len(), "nothing is held back at the end");
            self.offset = base + consumed;
            // A JSON string that never closed: its first marker ends the arguments after all,
            // and everything from that marker on is parsed again.
            let held = self.call.as_mut().and_then(|call| {
                let held = call.held.take()?;
                call.json = JsonStringState { in_string: true, escaped: false };
                Some(held)
            });
            match held {
                Some(held) => {
                    input = held.text;
                    base = held.offset;
                    self.marker_ends_string = true;
                }
                None => break,
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
    /// were consumed; the rest is a possible marker start that needs more input.
    fn process(&mut self, input: &str, base: usize, eof: bool, sink: &mut impl EventSink) -> usize {
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
                Step::NeedInput(at) => return at,
            }
        }
        pos
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
            Marker::ThinkClose | Marker::SectionEnd | Marker::ArgumentBegin | Marker::CallEnd => {
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
            if let Some(held) = &mut call.held {
                // Inside a JSON string after a marker: wait for the string to close.
                match memchr2(b'"', b'\\', &bytes[i..]) {
                    None => {
                        held.text.push_str(&input[run_start..]);
                        return Step::Continue(input.len());
                    }
                    Some(found) if bytes[i + found] == b'\\' => {
                        call.json.escaped = true;
                        i += found + 1;
                    }
                    Some(found) => {
                        let close = i + found + 1;
                        let HeldText { offset, text: mut released } =
                            call.held.take().expect("held text");
                        released.push_str(&input[run_start..close]);
                        call.json.in_string = false;
                        self.push_arguments(&released, offset, sink);
                        run_start = close;
                        i = close;
                    }
                }
                continue;
            }
            let found = if call.json.in_string {
                memchr3(b'"', b'\\', b'<', &bytes[i..])
            } else {
                memchr2(b'"', b'<', &bytes[i..])
            };
            let Some(found) = found else { break };
            let at = i + found;
            match bytes[at] {
                b'\\' => {
                    call.json.escaped = true;
                    i = at + 1;
                }
                b'"' => {
                    call.json.in_string = !call.json.in_string;
                    i = at + 1;
                }
                _ => match scan_marker(&input[at..]) {
                    Scan::Incomplete if !eof => {
                        self.push_arguments(&input[run_start..at], base + run_start, sink);
                        return Step::NeedInput(at);
                    }
                    Scan::Marker(marker, _) if call.json.in_string && marker.is_tool_marker() => {
                        if std::mem::take(&mut self.marker_ends_string) {
                            self.push_arguments(&input[run_start..at], base + run_start, sink);
                            return self.end_arguments_at(marker, input, at, base, sink);
                        }
                        call.held = Some(HeldText { offset: base + at, text: String::new() });
                        let before = &input[run_start..at];
                        self.push_arguments(before, base + run_start, sink);
                        run_start = at;
                        i = at + 1;
                    }
                    Scan::Marker(marker, _) if marker.is_tool_marker() => {
                        self.push_arguments(&input[run_start..at], base + run_start, sink);
                        return self.end_arguments_at(marker, input, at, base, sink);
                    }
                    Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => i = at + 1,
                },
            }
        }
        let rest = &input[run_start..];
        match &mut self.call_mut().held {
            Some(held) => held.text.push_str(rest),
            None => self.push_arguments(rest, base + run_start, sink),
        }
        Step::Continue(input.len())
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
        let text = text.to_owned();
        sink.emit(if self.in_think {
            StreamEvent::ReasoningDelta { text }
        } else {
            StreamEvent::TextDelta { text }
        });
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
        self.call = Some(Call {
            index: self.calls_started,
            offset,
            id: String::new(),
            name: CallName::Invalid,
            arguments: String::new(),
            arguments_offset: Some(offset),
            trailing_whitespace: String::new(),
            json: JsonStringState::default(),
            held: None,
        });
        self.calls_started += 1;
        self.state = State::CallId;
    }

    /// The id is complete: announces the call.
    fn start_arguments(&mut self, sink: &mut impl EventSink) {
        let call = self.call_mut();
        let trimmed = call.id.trim();
        if trimmed.len() != call.id.len() {
            call.id = trimmed.to_owned();
        }
        call.name = parse_call_id(&call.id);
        let (index, id, offset) = (call.index, call.id.clone(), call.offset);
        let name = match &call.name {
            CallName::Named(name) => Some(name.clone()),
            CallName::Unnamed => None,
            CallName::Invalid => Some(String::new()),
        };
        let invalid = call.name == CallName::Invalid;
        sink.emit(StreamEvent::CallStart { index, id, name });
        if invalid {
            let message = if self.call_mut().id.is_empty() {
                "the call has an empty id".to_owned()
            } else {
                "the call id is not `functions.NAME:IDX`, `NAME:IDX` or `IDX`".to_owned()
            };
            sink.emit(diagnostic(DiagnosticKind::InvalidId, Some(index), offset, message));
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
        let mut delta = std::mem::take(&mut call.trailing_whitespace);
        delta.push_str(body);
        call.trailing_whitespace.push_str(&text[body.len()..]);
        call.arguments.push_str(&delta);
        let index = call.index;
        sink.emit(StreamEvent::ArgumentsDelta { index, text: delta });
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
        let replaced = match check_arguments(&call.arguments) {
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
        let name = match call.name {
            CallName::Unnamed => {
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
            }
            CallName::Named(_) | CallName::Invalid => None,
        };
        sink.emit(StreamEvent::CallEnd { index: call.index, name, arguments: replaced });
        for note in notes {
            sink.emit(note);
        }
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
