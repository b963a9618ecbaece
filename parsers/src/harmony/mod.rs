//! The gpt-oss harmony format: the reply is a sequence of messages, each a header and a body,
//! `<|start|>ROLE<|channel|>CHANNEL<|message|>BODY<|end|>` (the first message usually starts
//! at `<|channel|>`, the prompt having written `<|start|>assistant`).
//!
//! The header says where the body goes: a recipient `to=functions.NAME` (in the role part or
//! the channel part) makes the body the JSON arguments of a call of NAME, closed by `<|call|>`
//! (`<|constrain|>json` or a bare `json` may say the arguments are JSON); other recipients
//! (`browser.search`, `python`) are called by their whole name. Without a recipient, the
//! `analysis` channel is reasoning and every other channel (`final`, `commentary`) is content.
//! Text outside any message is content. Harmony writes no call ids: calls get `call_0`,
//! `call_1`, … by their index.

mod markers;

use crate::ParseOptions;
use crate::engine::call::{Calls, Ending};
use crate::engine::diag::{unexpected_marker, with_text};
use crate::engine::driver::{Chunk, Machine, Replay, Step};
use crate::engine::json_args::{self, ArgsStop, read_arguments};
use crate::engine::scan::{Found, marker_len, read_to_marker};
use crate::engine::tally::{Tally, non_whitespace_len};
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;
use markers::{Marker, Tokens};

pub(crate) use markers::LONGEST_MARKER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages.
    Outside,
    /// A message header, up to `<|message|>`.
    Header,
    /// The body of a message for the user (`in_think`: the analysis channel).
    Body,
    /// The body of a message to a tool: the call's arguments.
    Arguments,
}

/// The parts of a header as written: before `<|channel|>`, after it, after `<|constrain|>`.
#[derive(Debug, Default)]
struct Header {
    offset: usize,
    role: String,
    channel: String,
    constrain: String,
    part: Part,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Part {
    #[default]
    Role,
    Channel,
    Constrain,
}

impl Header {
    fn part_mut(&mut self) -> &mut String {
        match self.part {
            Part::Role => &mut self.role,
            Part::Channel => &mut self.channel,
            Part::Constrain => &mut self.constrain,
        }
    }

    fn clear(&mut self, offset: usize, part: Part) {
        self.offset = offset;
        self.role.clear();
        self.channel.clear();
        self.constrain.clear();
        self.part = part;
    }

    /// The recipient named by `to=…` in the role or channel part.
    fn recipient(&self) -> Option<&str> {
        self.role
            .split_whitespace()
            .chain(self.channel.split_whitespace())
            .find_map(|word| word.strip_prefix("to="))
    }

    fn channel_name(&self) -> &str {
        self.channel.split_whitespace().find(|word| !word.starts_with("to=")).unwrap_or("")
    }

    fn text(&self) -> String {
        let mut text = self.role.clone();
        for part in [&self.channel, &self.constrain] {
            if !part.is_empty() {
                text.push(' ');
                text.push_str(part);
            }
        }
        text.trim().to_owned()
    }

    fn len(&self) -> usize {
        self.role.len() + self.channel.len() + self.constrain.len()
    }
}

#[derive(Debug)]
pub(crate) struct Harmony {
    tools: Vec<ToolSpec>,
    state: State,
    /// Content, or reasoning while in the analysis channel.
    body: TextOut,
    header: Header,
    calls: Calls,
}

impl Harmony {
    pub(crate) fn new(options: &ParseOptions) -> Self {
        Self {
            tools: options.tools.clone(),
            state: State::Outside,
            body: TextOut::default(),
            header: Header::default(),
            calls: Calls::default(),
        }
    }

    /// Outside a message and in a body for the user: text until a token.
    fn step_text<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let out = self.body;
        let found =
            read_to_marker::<Tokens>(chunk, start, |_| true, |text, _| out.emit(text, sink));
        let Found::Marker { at, marker, len } = found else { return found.step() };
        self.calls.tally.count_syntax(len);
        let offset = chunk.base + at;
        let in_body = self.state == State::Body;
        match marker {
            Marker::Start => self.open_header(offset, Part::Role),
            Marker::Channel => self.open_header(offset, Part::Channel),
            Marker::Message if !in_body => {
                self.header.clear(offset, Part::Role);
                self.open_body(sink);
            }
            Marker::End | Marker::Return | Marker::Call if in_body => self.close_body(),
            _ => {
                let context = if in_body { "inside a message" } else { "outside any message" };
                sink.emit(unexpected_marker(marker.text(), offset, context));
            }
        }
        Step::Continue(at + len)
    }

    /// A header begins at `offset`. It may name a recipient, so it is a call's beginning
    /// until it turns out to name none.
    fn open_header(&mut self, offset: usize, part: Part) {
        self.body = TextOut::default();
        self.header.clear(offset, part);
        self.calls.begin(offset);
        self.state = State::Header;
    }

    /// The header being read turned out to be no call's.
    fn not_a_call(&mut self) {
        if self.calls.is_open() {
            self.calls.abandon();
        }
    }

    fn close_body(&mut self) {
        self.body = TextOut::default();
        self.state = State::Outside;
    }

    fn step_header<S: EventSink>(&mut self, chunk: &Chunk<'_>, start: usize, sink: &mut S) -> Step {
        let header = &mut self.header;
        let found = read_to_marker::<Tokens>(
            chunk,
            start,
            |_| true,
            |text, _| header.part_mut().push_str(text),
        );
        let Found::Marker { at, marker, len } = found else { return found.step() };
        match marker {
            Marker::Channel => self.header.part = Part::Channel,
            Marker::Constrain => self.header.part = Part::Constrain,
            Marker::Message => {
                self.calls.tally.count_syntax(len);
                self.open_body(sink);
                return Step::Continue(at + len);
            }
            Marker::End | Marker::Return | Marker::Call => {
                self.drop_header(sink);
                self.not_a_call();
                self.state = State::Outside;
            }
            Marker::Start => {
                self.drop_header(sink);
                self.not_a_call();
                self.state = State::Outside;
                return Step::Continue(at);
            }
        }
        self.calls.tally.count_syntax(len);
        Step::Continue(at + len)
    }

    /// A header that never reached `<|message|>`: its text is reported.
    fn drop_header<S: EventSink>(&mut self, sink: &mut S) {
        let text = self.header.text();
        if !text.is_empty() {
            sink.emit(with_text(
                DiagnosticKind::StrayText,
                None,
                self.header.offset,
                "a message header without `<|message|>`",
                text,
            ));
        }
        self.header.clear(0, Part::Role);
    }

    /// The header is complete: the body goes to a call, to reasoning or to content.
    fn open_body<S: EventSink>(&mut self, sink: &mut S) {
        let header_bytes = non_whitespace_len(&self.header.role)
            + non_whitespace_len(&self.header.channel)
            + non_whitespace_len(&self.header.constrain);
        let recipient = self.header.recipient().filter(|r| !matches!(*r, "assistant" | "user"));
        if let Some(recipient) = recipient {
            let name = recipient.strip_prefix("functions.").unwrap_or(recipient).to_owned();
            self.calls.tally.count_syntax(header_bytes - non_whitespace_len(&name));
            if !self.calls.is_open() {
                self.calls.begin(self.header.offset);
            }
            let id = self.calls.made_up_id();
            self.calls.announce_name(id, &name, sink);
            self.calls.arguments_start();
            self.state = State::Arguments;
        } else {
            self.not_a_call();
            self.calls.tally.count_syntax(header_bytes);
            self.body = TextOut { in_think: self.header.channel_name() == "analysis" };
            self.state = State::Body;
        }
        self.header.clear(0, Part::Role);
    }

    fn step_arguments<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        start: usize,
        sink: &mut S,
    ) -> Step {
        let Chunk { text: input, base, eof } = *chunk;
        match read_arguments::<Tokens, S>(&mut self.calls, input, start, base, eof, sink) {
            ArgsStop::Marker(Marker::Call, at) => {
                let len = marker_len::<Tokens>(input, at);
                self.calls.tally.count_syntax(len);
                self.calls.end(Ending::Closed, &self.tools, sink);
                self.state = State::Outside;
                Step::Continue(at + len)
            }
            ArgsStop::Marker(marker, at) => {
                let closes = matches!(marker, Marker::End | Marker::Return);
                let ending = Ending::not_closed(Marker::Call.text(), marker.text(), base + at);
                self.calls.end(ending, &self.tools, sink);
                self.state = State::Outside;
                if closes {
                    let len = marker_len::<Tokens>(input, at);
                    self.calls.tally.count_syntax(len);
                    return Step::Continue(at + len);
                }
                Step::Continue(at)
            }
            stop => stop.step(input.len()),
        }
    }
}

impl Machine for Harmony {
    fn step<S: EventSink>(&mut self, chunk: &Chunk<'_>, pos: usize, sink: &mut S) -> Step {
        match self.state {
            State::Outside | State::Body => self.step_text(chunk, pos, sink),
            State::Header => self.step_header(chunk, pos, sink),
            State::Arguments => self.step_arguments(chunk, pos, sink),
        }
    }

    fn unsettled<S: EventSink>(&mut self, sink: &mut S) -> Option<Replay> {
        json_args::unsettled(&mut self.calls, sink)
    }

    fn end<S: EventSink>(&mut self, _offset: usize, sink: &mut S) {
        match self.state {
            State::Outside | State::Body => {}
            State::Header => {
                self.drop_header(sink);
                self.not_a_call();
            }
            State::Arguments => self.calls.end(Ending::Truncated, &self.tools, sink),
        }
        self.state = State::Outside;
    }

    fn retained(&self) -> usize {
        self.calls.retained() + self.header.len()
    }

    fn tally(&self) -> Tally {
        self.calls.tally
    }

    fn calls(&mut self) -> Option<&mut Calls> {
        Some(&mut self.calls)
    }

    fn text_out(&self) -> TextOut {
        self.body
    }
}
