//! Turning what a server sends into [`ChatEvent`]s: `content` goes through the tagged-text
//! parser (so tool calls a model writes as text become calls, and their markers never reach
//! the content), structured tool calls arrive as index-keyed deltas, and both kinds of call
//! share one sequence of indices. Used for streamed and complete answers alike, so both give
//! the same response, and both refuse an answer that says nothing at all (no text, no tool
//! call, no finish reason: `{}`, a stream of only `[DONE]`): that is a malformed reply, not an
//! empty answer to pass on as a success. An empty text with a finish reason is an answer.

use std::collections::{BTreeMap, HashMap};

use taskflow_parsers::{
    ArgumentsCheck, Diagnostic, DiagnosticKind, Format, ParseOptions, StreamEvent, StreamParser,
    ToolSpec, check_arguments,
};

use crate::error::ProviderError;
use crate::response::{ChatEvent, FinishReason, Usage};

pub(crate) struct Assembler {
    parser: StreamParser,
    /// Index of a call in the parser's numbering → index in the response.
    parsed_calls: HashMap<usize, usize>,
    /// Structured calls by the server's index.
    structured: BTreeMap<u64, StructuredCall>,
    next_index: usize,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    /// `content` as it arrived, before parsing.
    raw_content: String,
    /// Whether the server sent anything an answer is made of: text, a tool call or a finish
    /// reason. Reasoning alone is not an answer, nor is an empty `content` (streams start with
    /// one) without a finish reason.
    said_something: bool,
}

/// A structured call being received.
#[derive(Default)]
struct StructuredCall {
    id: Option<String>,
    name: String,
    arguments: String,
    /// Its index in the response, once announced (when its name is known).
    index: Option<usize>,
}

impl Assembler {
    pub(crate) fn new(format: Format, tools: Vec<ToolSpec>) -> Self {
        Self {
            parser: StreamParser::new(format, &ParseOptions { tools }),
            parsed_calls: HashMap::new(),
            structured: BTreeMap::new(),
            next_index: 0,
            usage: None,
            finish_reason: None,
            raw_content: String::new(),
            said_something: false,
        }
    }

    pub(crate) fn content(&mut self, text: &str, out: &mut Vec<ChatEvent>) {
        if !text.is_empty() {
            self.said_something = true;
            self.raw_content.push_str(text);
            let events = self.parser.feed(text);
            self.forward_parsed(events, out);
        }
    }

    pub(crate) fn reasoning(&mut self, text: &str, out: &mut Vec<ChatEvent>) {
        if !text.is_empty() {
            out.push(ChatEvent::Message(StreamEvent::ReasoningDelta { text: text.to_owned() }));
        }
    }

    /// A piece of the structured call `wire_index`. Servers differ: the id may be missing, the
    /// name may be empty or repeated in later pieces; the first non-empty one counts.
    pub(crate) fn tool_call(
        &mut self,
        wire_index: u64,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
        out: &mut Vec<ChatEvent>,
    ) {
        self.said_something = true;
        let call = self.structured.entry(wire_index).or_default();
        if call.id.is_none() {
            call.id = id.filter(|id| !id.is_empty()).map(str::to_owned);
        }
        if call.name.is_empty() {
            call.name = name.unwrap_or_default().to_owned();
        }
        match call.index {
            Some(index) => {
                call.arguments.push_str(arguments);
                if !arguments.is_empty() {
                    out.push(ChatEvent::Message(StreamEvent::ArgumentsDelta {
                        index,
                        text: arguments.to_owned(),
                    }));
                }
            }
            None => {
                call.arguments.push_str(arguments);
                if !call.name.is_empty() {
                    announce(call, &mut self.next_index, out);
                }
            }
        }
    }

    pub(crate) fn usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    pub(crate) fn finish_reason(&mut self, reason: Option<FinishReason>) {
        if reason.is_some() {
            self.finish_reason = reason;
            self.said_something = true;
        }
    }

    /// The answer is complete: ends the calls, then reports usage and the finish reason. An
    /// answer that said nothing is a bad response, with a snippet of `received` (the body, or
    /// the events of the stream).
    pub(crate) fn finish(
        mut self,
        out: &mut Vec<ChatEvent>,
        received: &str,
    ) -> Result<(), ProviderError> {
        if !self.said_something {
            return Err(ProviderError::bad_response(
                "the answer has no content, no tool calls and no finish reason",
                received,
            ));
        }
        let mut events = Vec::new();
        self.parser.finish_into(&mut events);
        self.forward_parsed(events, out);
        for call in std::mem::take(&mut self.structured).into_values() {
            self.end_structured(call, out);
        }
        if !self.raw_content.is_empty() {
            out.push(ChatEvent::RawContent { raw_content: std::mem::take(&mut self.raw_content) });
        }
        if let Some(usage) = self.usage {
            out.push(ChatEvent::Usage { usage });
        }
        let has_calls = self.next_index > 0;
        let finish_reason = match self.finish_reason.take() {
            // Some servers say `stop` for an answer that asks for tools.
            Some(FinishReason::Stop) if has_calls => Some(FinishReason::ToolCalls),
            None if has_calls => Some(FinishReason::ToolCalls),
            reason => reason,
        };
        if let Some(finish_reason) = finish_reason {
            out.push(ChatEvent::Finish { finish_reason });
        }
        Ok(())
    }

    fn end_structured(&mut self, mut call: StructuredCall, out: &mut Vec<ChatEvent>) {
        let index = match call.index {
            Some(index) => index,
            // A call is announced once named: one that never was is not a call.
            None => {
                out.push(ChatEvent::Message(StreamEvent::Diagnostic(Diagnostic {
                    kind: DiagnosticKind::UnresolvedName,
                    call_index: None,
                    offset: 0,
                    message: "the server sent a tool call without a name: not a tool call"
                        .to_owned(),
                    text: Some(std::mem::take(&mut call.arguments)),
                })));
                return;
            }
        };
        let mut notes = Vec::new();
        let arguments = match check_arguments(call.arguments.trim()) {
            ArgumentsCheck::Object => None,
            ArgumentsCheck::DoubleEncoded(decoded) => {
                let mut diagnostic = note(
                    DiagnosticKind::DoubleEncodedArguments,
                    index,
                    "the arguments were a JSON string holding an object; decoded once",
                );
                diagnostic.text = Some(call.arguments.clone());
                notes.push(diagnostic);
                Some(decoded)
            }
            ArgumentsCheck::Invalid(reason) => {
                notes.push(note(DiagnosticKind::InvalidArguments, index, &reason));
                None
            }
        };
        out.push(ChatEvent::Message(StreamEvent::CallEnd { index, arguments }));
        out.extend(notes.into_iter().map(|note| ChatEvent::Message(StreamEvent::Diagnostic(note))));
    }

    /// Passes the parser's events on, renumbering its calls into the response's sequence.
    fn forward_parsed(&mut self, events: Vec<StreamEvent>, out: &mut Vec<ChatEvent>) {
        for event in events {
            let event = match event {
                StreamEvent::CallStart { index, id, name } => {
                    let global = self.next_index;
                    self.next_index += 1;
                    self.parsed_calls.insert(index, global);
                    StreamEvent::CallStart { index: global, id, name }
                }
                StreamEvent::ArgumentsDelta { index, text } => {
                    StreamEvent::ArgumentsDelta { index: self.parsed_calls[&index], text }
                }
                StreamEvent::CallEnd { index, arguments } => {
                    StreamEvent::CallEnd { index: self.parsed_calls[&index], arguments }
                }
                StreamEvent::Diagnostic(mut diagnostic) => {
                    diagnostic.call_index =
                        diagnostic.call_index.map(|index| self.parsed_calls[&index]);
                    StreamEvent::Diagnostic(diagnostic)
                }
                text @ (StreamEvent::TextDelta { .. } | StreamEvent::ReasoningDelta { .. }) => text,
            };
            out.push(ChatEvent::Message(event));
        }
    }
}

/// Gives a structured call its index in the response and announces it, with the arguments
/// that arrived before its name.
fn announce(call: &mut StructuredCall, next_index: &mut usize, out: &mut Vec<ChatEvent>) -> usize {
    let index = *next_index;
    *next_index += 1;
    call.index = Some(index);
    let id = call.id.clone().unwrap_or_else(|| format!("call_{index}"));
    out.push(ChatEvent::Message(StreamEvent::CallStart { index, id, name: call.name.clone() }));
    if !call.arguments.is_empty() {
        out.push(ChatEvent::Message(StreamEvent::ArgumentsDelta {
            index,
            text: call.arguments.clone(),
        }));
    }
    index
}

fn note(kind: DiagnosticKind, index: usize, message: &str) -> Diagnostic {
    Diagnostic { kind, call_index: Some(index), offset: 0, message: message.to_owned(), text: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_structured_call_that_never_gets_a_name_is_not_a_call() {
        let mut assembler = Assembler::new(Format::Kimi, Vec::new());
        let mut out = Vec::new();
        assembler.tool_call(0, Some("a"), None, "{\"x\": 1}", &mut out);
        assembler.tool_call(1, Some("b"), Some("list_dir"), "{}", &mut out);
        assembler.finish(&mut out, "").unwrap();
        let starts: Vec<(usize, &str)> = out
            .iter()
            .filter_map(|event| match event {
                ChatEvent::Message(StreamEvent::CallStart { index, name, .. }) => {
                    Some((*index, name.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(starts, [(0, "list_dir")]);
        let dropped = out.iter().find_map(|event| match event {
            ChatEvent::Message(StreamEvent::Diagnostic(diagnostic)) => Some(diagnostic),
            _ => None,
        });
        let dropped = dropped.expect("a diagnostic for the call without a name");
        assert_eq!(dropped.kind, DiagnosticKind::UnresolvedName);
        assert_eq!((dropped.call_index, dropped.text.as_deref()), (None, Some("{\"x\": 1}")));
    }

    /// What a server sent (`content`, tool calls, finish reason) and whether it is an answer.
    fn check(said: &[&str], is_answer: bool) {
        let mut assembler = Assembler::new(Format::Auto, Vec::new());
        let mut out = Vec::new();
        for piece in said {
            match *piece {
                "reasoning" => assembler.reasoning("hmm", &mut out),
                "content" => assembler.content("hi", &mut out),
                "empty content" => assembler.content("", &mut out),
                "call" => assembler.tool_call(0, None, Some("list_dir"), "{}", &mut out),
                "stop" => assembler.finish_reason(Some(FinishReason::Stop)),
                "usage" => assembler.usage(Usage::new(1, 0)),
                other => panic!("no such piece {other}"),
            }
        }
        match assembler.finish(&mut out, "{}") {
            Ok(()) => assert!(is_answer, "{said:?} was taken for an answer"),
            Err(error) => {
                assert!(!is_answer, "{said:?} was refused: {error}");
                assert_eq!(error.kind, crate::ErrorKind::BadResponse);
                assert_eq!(
                    error.message,
                    "the answer has no content, no tool calls and no finish reason: {}"
                );
            }
        }
    }

    #[test]
    fn an_answer_that_says_nothing_is_refused() {
        check(&[], false);
        check(&["usage"], false);
        check(&["reasoning"], false);
        check(&["content"], true);
        check(&["empty content"], false);
        check(&["empty content", "stop"], true);
        check(&["call"], true);
        check(&["stop"], true);
        check(&["reasoning", "stop"], true);
        check(&["usage", "empty content", "stop"], true);
    }
}
