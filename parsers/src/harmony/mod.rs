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
//!
//! The part before `<|channel|>` and the part after it are each a word (the role, the
//! channel), then maybe `to=RECIPIENT`, then maybe a content type. The recipient runs to the
//! content type or the end of its part: every word the model wrote there is the recipient's,
//! so `to=functions.get weather` names no tool (rather than the tool `get`), and such a call's
//! text is content with its diagnostic. A bare content type is one harmony writes (`json`,
//! `code`); after `<|constrain|>` any word is one. Other words of a header are reported with
//! their text. A header is short: one that runs past 64 KiB without its `<|message|>` is none,
//! so that a stream that opens a header and never ends it is not held whole. What was read of
//! it is reported as a header without `<|message|>`, and the text after that point is outside
//! any message.

mod markers;

use crate::ParseOptions;
use crate::engine::HELD_TEXT_LIMIT;
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

    /// What the header says (see the module documentation).
    fn read(&self) -> Reading<'_> {
        let role = PartReading::of(&self.role);
        let channel = PartReading::of(&self.channel);
        let mut extra = role.extra;
        extra.extend(channel.extra);
        let recipient = match (role.recipient, channel.recipient) {
            (Some(recipient), other) => {
                extra.extend(other);
                Some(recipient)
            }
            (None, recipient) => recipient,
        };
        extra.extend(self.constrain.split_whitespace().skip(1));
        Reading { channel: channel.label.unwrap_or(""), recipient, extra }
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

const NO_MESSAGE: &str = "a message header without `<|message|>`";
const TOO_LONG: &str =
    "a message header that runs past 64 KiB without `<|message|>`: no header; what follows is text";

/// The content types a header may name without `<|constrain|>`: the arguments of a function
/// (`json`) or of a built-in tool (`code`).
const CONTENT_TYPES: &[&str] = &["json", "code"];

/// What a header says.
#[derive(Debug, PartialEq, Eq)]
struct Reading<'a> {
    channel: &'a str,
    /// The recipient as written, up to the content type: it may hold spaces.
    recipient: Option<&'a str>,
    /// The words that are no part of a header, in order.
    extra: Vec<&'a str>,
}

/// What the role part or the channel part of a header says.
#[derive(Debug)]
struct PartReading<'a> {
    /// The role or the channel.
    label: Option<&'a str>,
    recipient: Option<&'a str>,
    extra: Vec<&'a str>,
}

impl<'a> PartReading<'a> {
    fn of(part: &'a str) -> Self {
        let to = part
            .match_indices("to=")
            .map(|(at, _)| at)
            .find(|&at| at == 0 || part[..at].ends_with(char::is_whitespace));
        let (before, recipient) = match to {
            Some(at) => (&part[..at], Some(strip_content_type(part[at + "to=".len()..].trim()))),
            None => (part, None),
        };
        let mut words = before.split_whitespace();
        let label = words.next();
        let mut extra: Vec<&str> = words.collect();
        if recipient.is_none() && extra.last().is_some_and(|word| CONTENT_TYPES.contains(word)) {
            extra.pop();
        }
        Self { label, recipient, extra }
    }
}

/// A recipient as written, without the content type that may end it.
fn strip_content_type(recipient: &str) -> &str {
    match recipient.rsplit_once(char::is_whitespace) {
        Some((name, last)) if CONTENT_TYPES.contains(&last) => name.trim_end(),
        _ => recipient,
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
            Marker::End | Marker::Return | Marker::Call if in_body => self.close_body(),
            _ => {
                let context = if in_body { "inside a message" } else { "outside any message" };
                sink.emit(unexpected_marker(marker.text(), None, offset, context));
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
        if self.header.len() > HELD_TEXT_LIMIT {
            return self.cut_header(chunk, found.taken_to(), sink);
        }
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
                self.drop_header(NO_MESSAGE, sink);
                self.not_a_call();
                self.state = State::Outside;
            }
            Marker::Start => {
                self.drop_header(NO_MESSAGE, sink);
                self.not_a_call();
                self.state = State::Outside;
                return Step::Continue(at);
            }
        }
        self.calls.tally.count_syntax(len);
        Step::Continue(at + len)
    }

    /// A header that never reached `<|message|>`: its text is reported, with `message`.
    fn drop_header<S: EventSink>(&mut self, message: &str, sink: &mut S) {
        let text = self.header.text();
        if !text.is_empty() {
            let offset = self.header.offset;
            sink.emit(with_text(DiagnosticKind::StrayText, None, offset, message, text));
        }
        self.header.clear(0, Part::Role);
    }

    /// The header grew past the limit without its `<|message|>` (a step took it to
    /// `taken_to`): no header is that long, and none is held longer. Its text up to the limit
    /// is reported as a header's, and the text from there on is outside any message.
    fn cut_header<S: EventSink>(
        &mut self,
        chunk: &Chunk<'_>,
        taken_to: usize,
        sink: &mut S,
    ) -> Step {
        let mut cut = taken_to - (self.header.len() - HELD_TEXT_LIMIT);
        while !chunk.text.is_char_boundary(cut) {
            cut -= 1;
        }
        let part = self.header.part_mut();
        part.truncate(part.len() - (taken_to - cut));
        self.drop_header(TOO_LONG, sink);
        self.not_a_call();
        self.state = State::Outside;
        Step::Continue(cut)
    }

    /// The header is complete: the body goes to a call, to reasoning or to content.
    fn open_body<S: EventSink>(&mut self, sink: &mut S) {
        let header = &self.header;
        let Reading { channel, recipient, extra } = header.read();
        let recipient = recipient.filter(|r| !matches!(*r, "assistant" | "user"));
        if recipient.is_some() && !self.calls.is_open() {
            self.calls.begin(header.offset);
        }
        let header = &self.header;
        let mut syntax = non_whitespace_len(&header.role)
            + non_whitespace_len(&header.channel)
            + non_whitespace_len(&header.constrain);
        if !extra.is_empty() {
            let text = extra.join(" ");
            syntax -= non_whitespace_len(&text);
            // A header that names a recipient is its call's first part.
            let call = recipient.and(self.calls.open()).map(|call| call.index);
            let message = "words in a message header that are no part of one";
            sink.emit(with_text(DiagnosticKind::StrayText, call, header.offset, message, text));
        }
        if let Some(recipient) = recipient {
            let name = recipient.strip_prefix("functions.").unwrap_or(recipient).to_owned();
            self.calls.tally.count_syntax(syntax - non_whitespace_len(&name));
            let id = self.calls.made_up_id();
            self.calls.announce_name(id, &name, sink);
            self.calls.arguments_start();
            self.state = State::Arguments;
        } else {
            let in_think = channel == "analysis";
            self.not_a_call();
            self.calls.tally.count_syntax(syntax);
            self.body = TextOut { in_think };
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
                self.drop_header(NO_MESSAGE, sink);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `(role part, channel part, constrain part)` and what they say: `(channel, recipient,
    /// other words)`.
    type Case<'a> = ((&'a str, &'a str, &'a str), (&'a str, Option<&'a str>, &'a [&'a str]));

    fn check(cases: &[Case<'_>]) {
        for &((role, channel, constrain), (name, recipient, extra)) in cases {
            let header = Header {
                role: role.to_owned(),
                channel: channel.to_owned(),
                constrain: constrain.to_owned(),
                ..Header::default()
            };
            let expected = Reading { channel: name, recipient, extra: extra.to_vec() };
            assert_eq!(header.read(), expected, "{role:?} / {channel:?} / {constrain:?}");
        }
    }

    #[test]
    fn headers_are_read_word_by_word() {
        let weather = Some("functions.get_weather");
        check(&[
            (("", "commentary to=functions.get_weather ", "json"), ("commentary", weather, &[])),
            (("", "commentary to=functions.get_weather json", ""), ("commentary", weather, &[])),
            (
                ("assistant to=functions.get_weather", "commentary json", ""),
                ("commentary", weather, &[]),
            ),
            ((" to=functions.get_weather", "commentary code", ""), ("commentary", weather, &[])),
            (
                ("", "analysis to=browser.search code", ""),
                ("analysis", Some("browser.search"), &[]),
            ),
            (("assistant", "final", ""), ("final", None, &[])),
            (("", "", ""), ("", None, &[])),
            (("", "commentary to=", ""), ("commentary", Some(""), &[])),
        ]);
    }

    #[test]
    fn words_that_are_no_part_of_a_header_are_kept() {
        let spaced = Some("functions.get weather");
        let junk = Some("functions.get_weather junk words here");
        check(&[
            (("", "commentary to=functions.get weather ", "json"), ("commentary", spaced, &[])),
            (("", "commentary to=functions.get weather", ""), ("commentary", spaced, &[])),
            (
                ("", "commentary to=functions.get_weather junk words here", ""),
                ("commentary", junk, &[]),
            ),
            (
                ("", "commentary please to=f", "json more"),
                ("commentary", Some("f"), &["please", "more"]),
            ),
            (("", "final answer", ""), ("final", None, &["answer"])),
            (("assistant to=a", "commentary to=b", ""), ("commentary", Some("a"), &["b"])),
            (("", "commentary auto=x", ""), ("commentary", None, &["auto=x"])),
        ]);
    }
}
