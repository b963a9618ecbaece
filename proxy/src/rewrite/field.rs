//! One text field of one choice (`content`, or the reasoning field) read by the tagged-text
//! parser as it arrives. The parser's events become pieces for the client. The parser announces
//! a call only with its tool's name, so a call is passed on at its start; a call whose name
//! cannot be told comes out of the parser as the text it was written as, with its diagnostic,
//! since no client can run a call without a name.
//!
//! Argument text streams as the parser gives it, with one exception. Arguments written as a
//! JSON string that holds an object (double-encoded) are decoded once by the parser, which says
//! so only at the call's end (`CallEnd { arguments: Some(decoded) }`), after the raw text went
//! out as deltas; a client cannot take back what it appended. Only a JSON string can be
//! double-encoded, and the parser's argument text starts at its first non-blank character, so
//! arguments whose first character is `"` are held until the call ends and then sent once:
//! decoded when the parser decoded them, as written otherwise. Arguments that start any other
//! way (every object) stream at once. The whole answer goes through the same reader, so both
//! modes give the client the same arguments for every chunking.

use std::collections::HashMap;

use taskflow_parsers::{Format, ParseOptions, StreamEvent, StreamParser};

use super::choice::Calls;
use super::pieces::Pieces;

/// Which field the text came from: its plain text goes back to the same field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Content,
    Reasoning,
}

/// A call of the field the parser announced, by the parser's index (kept after its end, for
/// the notes that follow it; the parser reuses an index only of a call it never announced).
struct TaggedCall {
    /// The client's index of the call.
    client: usize,
    arguments: Arguments,
}

/// How a call's argument text goes to the client.
enum Arguments {
    /// Held until the call ends: blank so far, or a JSON string, which the parser may decode.
    Held(String),
    /// As it arrives: its first character is not `"`.
    Streamed,
}

pub(crate) struct FieldReader {
    field: Field,
    parser: StreamParser,
    calls: HashMap<usize, TaggedCall>,
    events: Vec<StreamEvent>,
}

impl FieldReader {
    pub(crate) fn new(field: Field, format: Format, options: &ParseOptions) -> Self {
        Self {
            field,
            parser: StreamParser::new(format, options),
            calls: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// The format read, once known.
    pub(crate) fn format(&self) -> Option<Format> {
        self.parser.format()
    }

    /// Feeds the next text of the field.
    pub(crate) fn feed(&mut self, text: &str, calls: &mut Calls, out: &mut Pieces) {
        let mut events = std::mem::take(&mut self.events);
        self.parser.feed_into(text, &mut events);
        self.handle(&mut events, calls, out);
        self.events = events;
    }

    /// The field is complete: what was held back is decided, open calls end.
    pub(crate) fn finish(&mut self, calls: &mut Calls, out: &mut Pieces) {
        let mut events = std::mem::take(&mut self.events);
        self.parser.finish_into(&mut events);
        self.handle(&mut events, calls, out);
    }

    fn text(&self, out: &mut Pieces, text: &str) {
        match self.field {
            Field::Content => out.content.push_str(text),
            Field::Reasoning => out.reasoning.push_str(text),
        }
    }

    fn handle(&mut self, events: &mut Vec<StreamEvent>, calls: &mut Calls, out: &mut Pieces) {
        for event in events.drain(..) {
            match event {
                StreamEvent::TextDelta { text } => self.text(out, &text),
                StreamEvent::ReasoningDelta { text } => out.reasoning.push_str(&text),
                StreamEvent::CallStart { index, id, name } => {
                    let client = calls.start_tagged();
                    out.start_call(client, calls.client_id(&id), name, "");
                    let arguments = Arguments::Held(String::new());
                    self.calls.insert(index, TaggedCall { client, arguments });
                }
                StreamEvent::ArgumentsDelta { index, text } => {
                    let Some(call) = self.calls.get_mut(&index) else { continue };
                    match &mut call.arguments {
                        Arguments::Streamed => out.arguments(call.client, &text),
                        Arguments::Held(held) => {
                            let first = held.trim_start().bytes().next();
                            match first.or_else(|| text.trim_start().bytes().next()) {
                                None | Some(b'"') => held.push_str(&text),
                                Some(_) => {
                                    if !held.is_empty() {
                                        out.arguments(call.client, held);
                                    }
                                    out.arguments(call.client, &text);
                                    call.arguments = Arguments::Streamed;
                                }
                            }
                        }
                    }
                }
                StreamEvent::CallEnd { index, arguments } => {
                    let Some(call) = self.calls.get_mut(&index) else { continue };
                    // A decoding replaces held text; text already streamed began with
                    // something other than `"`, which is never double-encoded.
                    let ended = std::mem::replace(&mut call.arguments, Arguments::Streamed);
                    if let Arguments::Held(held) = ended {
                        let arguments = arguments.unwrap_or(held);
                        if !arguments.is_empty() {
                            out.arguments(call.client, &arguments);
                        }
                    }
                }
                StreamEvent::Diagnostic(mut diagnostic) => {
                    // Notes about a call may follow its end: the call stays known by index.
                    diagnostic.call_index = diagnostic
                        .call_index
                        .and_then(|index| self.calls.get(&index).map(|call| call.client));
                    calls.notes.push(diagnostic);
                }
            }
        }
    }
}
