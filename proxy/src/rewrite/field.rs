//! One text field of one choice (`content`, or the reasoning field) read by the tagged-text
//! parser as it arrives. The parser's events become pieces for the client. The parser announces
//! a call only with its tool's name, so a call is passed on at its start; a call whose name
//! cannot be told comes out of the parser as the text it was written as, with its diagnostic,
//! since no client can run a call without a name.

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

pub(crate) struct FieldReader {
    field: Field,
    parser: StreamParser,
    /// The client's index of each call, by the parser's.
    calls: HashMap<usize, usize>,
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
                    self.calls.insert(index, client);
                }
                StreamEvent::ArgumentsDelta { index, text } => {
                    if let Some(&client) = self.calls.get(&index) {
                        out.arguments(client, &text);
                    }
                }
                StreamEvent::CallEnd { .. } => {}
                StreamEvent::Diagnostic(mut diagnostic) => {
                    diagnostic.call_index =
                        diagnostic.call_index.and_then(|index| self.calls.get(&index).copied());
                    calls.notes.push(diagnostic);
                }
            }
        }
    }
}
