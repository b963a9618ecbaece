//! One text field of one choice (`content`, or the reasoning field) read by the tagged-text
//! parser as it arrives. The parser's events become pieces for the client; a call is passed
//! on as soon as its name is known, and a call whose name never becomes known is given back
//! as the text it was written as, since no client can run a call without a name.

use std::collections::HashMap;

use taskflow_parsers::{
    Diagnostic, DiagnosticKind, Format, ParseOptions, StreamEvent, StreamParser,
};

use super::choice::Calls;
use super::pieces::Pieces;

/// Which field the text came from: its plain text goes back to the same field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Content,
    Reasoning,
}

/// A call of the parser's numbering.
#[derive(Debug)]
enum ParsedCall {
    /// Passed on under this index of the client's numbering.
    Live(usize),
    /// Its name is not known yet: held until its end says it.
    Held { id: String, arguments: String },
    /// Ended without a name: given back as text.
    Unnamed { offset: Option<usize> },
}

pub(crate) struct FieldReader {
    field: Field,
    parser: StreamParser,
    /// Bytes fed to the parser so far.
    fed: usize,
    /// The input since the last call ended (a call's text starts some way before the parser
    /// announces it), so that an unnamed call can be given back as the text it was.
    raw: String,
    raw_base: usize,
    /// Where the last call ended: the input before it is no call's text.
    settled: usize,
    calls: HashMap<usize, ParsedCall>,
    held: usize,
    events: Vec<StreamEvent>,
}

impl FieldReader {
    pub(crate) fn new(field: Field, format: Format, options: &ParseOptions) -> Self {
        Self {
            field,
            parser: StreamParser::new(format, options),
            fed: 0,
            raw: String::new(),
            raw_base: 0,
            settled: 0,
            calls: HashMap::new(),
            held: 0,
            events: Vec::new(),
        }
    }

    /// The format read, once known.
    pub(crate) fn format(&self) -> Option<Format> {
        self.parser.format()
    }

    /// Feeds the next text of the field. The text is fed in pieces that end after a `>`, the
    /// last byte of every marker that ends a call, so that a call ends at the end of a piece
    /// and the input up to there is exactly its text.
    pub(crate) fn feed(&mut self, text: &str, calls: &mut Calls, out: &mut Pieces) {
        let mut rest = text;
        while !rest.is_empty() {
            let cut = rest.find('>').map_or(rest.len(), |at| at + 1);
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            self.forget_settled();
            self.raw.push_str(piece);
            self.fed += piece.len();
            let mut events = std::mem::take(&mut self.events);
            self.parser.feed_into(piece, &mut events);
            let end = self.fed - self.parser.buffered_len();
            self.handle(&mut events, end, calls, out);
            self.events = events;
        }
    }

    /// The field is complete: what was held back is decided, open calls end.
    pub(crate) fn finish(&mut self, calls: &mut Calls, out: &mut Pieces) {
        let mut events = std::mem::take(&mut self.events);
        self.parser.finish_into(&mut events);
        let end = self.fed;
        self.handle(&mut events, end, calls, out);
    }

    /// Drops the input before the end of the last call, unless a held call may need it.
    fn forget_settled(&mut self) {
        if self.held > 0 {
            return;
        }
        let drop = self.settled.saturating_sub(self.raw_base).min(self.raw.len());
        if drop > 0 && self.raw.is_char_boundary(drop) {
            self.raw.drain(..drop);
            self.raw_base += drop;
        }
    }

    fn text(&self, out: &mut Pieces, text: &str) {
        match self.field {
            Field::Content => out.content.push_str(text),
            Field::Reasoning => out.reasoning.push_str(text),
        }
    }

    fn handle(
        &mut self,
        events: &mut Vec<StreamEvent>,
        end: usize,
        calls: &mut Calls,
        out: &mut Pieces,
    ) {
        let mut unnamed = Vec::new();
        for event in events.drain(..) {
            match event {
                StreamEvent::TextDelta { text } => self.text(out, &text),
                StreamEvent::ReasoningDelta { text } => out.reasoning.push_str(&text),
                StreamEvent::CallStart { index, id, name } => {
                    match name.filter(|n| !n.is_empty()) {
                        Some(name) => {
                            let client = calls.start_tagged();
                            out.start_call(client, calls.client_id(&id), name, "");
                            self.calls.insert(index, ParsedCall::Live(client));
                        }
                        None => {
                            self.held += 1;
                            self.calls
                                .insert(index, ParsedCall::Held { id, arguments: String::new() });
                        }
                    }
                }
                StreamEvent::ArgumentsDelta { index, text } => match self.calls.get_mut(&index) {
                    Some(ParsedCall::Live(client)) => out.arguments(*client, &text),
                    Some(ParsedCall::Held { arguments, .. }) => arguments.push_str(&text),
                    _ => {}
                },
                StreamEvent::CallEnd { index, name, arguments } => {
                    self.settled = end;
                    let Some(ParsedCall::Held { id, arguments: held }) = self.calls.remove(&index)
                    else {
                        continue;
                    };
                    self.held -= 1;
                    match name.filter(|n| !n.is_empty()) {
                        Some(name) => {
                            let client = calls.start_tagged();
                            let arguments = arguments.unwrap_or(held);
                            out.start_call(client, calls.client_id(&id), name, &arguments);
                            self.calls.insert(index, ParsedCall::Live(client));
                        }
                        None => {
                            self.calls.insert(index, ParsedCall::Unnamed { offset: None });
                            unnamed.push(index);
                        }
                    }
                }
                StreamEvent::Diagnostic(mut diagnostic) => {
                    let call = diagnostic.call_index.and_then(|index| self.calls.get_mut(&index));
                    diagnostic.call_index = match call {
                        Some(ParsedCall::Live(client)) => Some(*client),
                        Some(ParsedCall::Unnamed { offset }) => {
                            if diagnostic.kind == DiagnosticKind::UnresolvedName {
                                offset.get_or_insert(diagnostic.offset);
                            }
                            None
                        }
                        _ => None,
                    };
                    calls.notes.push(diagnostic);
                }
            }
        }
        for index in unnamed {
            let Some(ParsedCall::Unnamed { offset }) = self.calls.get(&index) else { continue };
            let text = offset.and_then(|offset| {
                let from = offset.checked_sub(self.raw_base)?;
                self.raw.get(from..end.checked_sub(self.raw_base)?)
            });
            let offset = offset.unwrap_or(0);
            if let Some(text) = text {
                let text = text.to_owned();
                self.text(out, &text);
            }
            calls.notes.push(Diagnostic {
                kind: DiagnosticKind::UnresolvedName,
                call_index: None,
                offset,
                message: "a call without a name was passed on as text, not as a tool call".into(),
                text: None,
            });
        }
    }
}
