//! Streaming events (DESIGN §3) and the fold that turns a sequence of them back into a
//! [`Message`]. Folding the events of any chunking of an input gives the one-shot result.

use serde::Serialize;

use crate::message::{Diagnostic, FunctionCall, Message, ToolCall};

/// One thing a streaming parser learned from the text it was fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// More content for the user.
    TextDelta {
        text: String,
    },
    /// More reasoning (`<think>` text).
    ReasoningDelta {
        text: String,
    },
    /// A tool call begins. A call is announced only once its tool's name is known (for a
    /// Kimi bare index, when its arguments are complete); a call that never gets one is not
    /// a call (see the diagnostics).
    CallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// More argument text of the call `index`.
    ArgumentsDelta {
        index: usize,
        text: String,
    },
    /// The call `index` is complete. `arguments` is set when the streamed text is replaced,
    /// and only for arguments that began as a JSON string (their first character `"`): a
    /// string holding an object, decoded once (`double_encoded_arguments`). Arguments that
    /// began any other way are never replaced, so a caller may pass them on as they stream and
    /// hold back only those that begin with `"` until this event (the proxy relies on this).
    CallEnd {
        index: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<String>,
    },
    Diagnostic(Diagnostic),
}

/// Where a parser sends its events: a `Vec` for streaming callers, a [`MessageBuilder`] for
/// one-shot parsing (no intermediate events are kept).
///
/// Text arrives through [`text`](Self::text), [`reasoning`](Self::reasoning) and
/// [`arguments`](Self::arguments) as borrowed slices, so that a sink which folds them need not
/// allocate an event for each; by default they become owned events passed to `emit`.
pub trait EventSink {
    fn emit(&mut self, event: StreamEvent);

    fn text(&mut self, text: &str) {
        self.emit(StreamEvent::TextDelta { text: text.to_owned() });
    }

    fn reasoning(&mut self, text: &str) {
        self.emit(StreamEvent::ReasoningDelta { text: text.to_owned() });
    }

    fn arguments(&mut self, index: usize, text: &str) {
        self.emit(StreamEvent::ArgumentsDelta { index, text: text.to_owned() });
    }
}

impl EventSink for Vec<StreamEvent> {
    fn emit(&mut self, event: StreamEvent) {
        self.push(event);
    }
}

/// Room made for a call's arguments up front, so that arguments streamed in small pieces do
/// not regrow the string many times.
const TYPICAL_ARGUMENTS_LEN: usize = 128;

/// Folds events into the message they describe.
#[derive(Debug, Default)]
pub struct MessageBuilder {
    content: String,
    reasoning: String,
    tool_calls: Vec<ToolCall>,
    diagnostics: Vec<Diagnostic>,
}

impl MessageBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.content.push_str(&text),
            StreamEvent::ReasoningDelta { text } => self.reasoning.push_str(&text),
            StreamEvent::CallStart { index, id, name } => {
                debug_assert_eq!(index, self.tool_calls.len(), "calls start in index order");
                self.tool_calls.push(ToolCall {
                    id,
                    kind: "function".to_owned(),
                    function: FunctionCall {
                        name,
                        arguments: String::with_capacity(TYPICAL_ARGUMENTS_LEN),
                    },
                });
            }
            StreamEvent::ArgumentsDelta { index, text } => {
                if let Some(call) = self.tool_calls.get_mut(index) {
                    call.function.arguments.push_str(&text);
                }
            }
            StreamEvent::CallEnd { index, arguments } => {
                if let (Some(call), Some(arguments)) = (self.tool_calls.get_mut(index), arguments) {
                    call.function.arguments = arguments;
                }
            }
            StreamEvent::Diagnostic(diagnostic) => self.diagnostics.push(diagnostic),
        }
    }

    pub fn finish(self) -> Message {
        Message {
            content: non_empty(self.content),
            reasoning: non_empty(self.reasoning),
            tool_calls: self.tool_calls,
            diagnostics: self.diagnostics,
        }
    }
}

impl EventSink for MessageBuilder {
    fn emit(&mut self, event: StreamEvent) {
        self.apply(event);
    }

    fn text(&mut self, text: &str) {
        self.content.push_str(text);
    }

    fn reasoning(&mut self, text: &str) {
        self.reasoning.push_str(text);
    }

    fn arguments(&mut self, index: usize, text: &str) {
        if let Some(call) = self.tool_calls.get_mut(index) {
            call.function.arguments.push_str(text);
        }
    }
}

/// The message a sequence of events describes.
pub fn fold(events: impl IntoIterator<Item = StreamEvent>) -> Message {
    let mut builder = MessageBuilder::new();
    for event in events {
        builder.apply(event);
    }
    builder.finish()
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}
