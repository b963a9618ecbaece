//! Streaming events (DESIGN §3) and the fold that turns a sequence of them back into a
//! [`Message`]. Folding the events of any chunking of an input gives the one-shot result.

use serde::Serialize;

use crate::message::{Diagnostic, DiagnosticKind, FunctionCall, Message, ToolCall};

/// One thing a streaming parser learned from the text it was fed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// More content for the user.
    TextDelta { text: String },
    /// More reasoning (`<think>` text).
    ReasoningDelta { text: String },
    /// A tool call begins. A call is announced only once its tool's name is known (for a
    /// Kimi bare index, when its arguments are complete); a call that never gets one is not
    /// a call (see the diagnostics).
    CallStart { index: usize, id: String, name: String },
    /// More argument text of the call `index`.
    ArgumentsDelta { index: usize, text: String },
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
    /// Something that did not fit the format. Stray text (`stray_text`) longer than a limit
    /// (64 KiB) is reported in pieces as it is read, each piece's offset where the text of the
    /// one before it ends: folded, they are one diagnostic.
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
            StreamEvent::Diagnostic(diagnostic) => self.add_diagnostic(diagnostic),
        }
    }

    /// Adds a diagnostic, or the next piece of the one before it (see
    /// [`StreamEvent::Diagnostic`]).
    fn add_diagnostic(&mut self, diagnostic: Diagnostic) {
        if let Some(last) = self.diagnostics.last_mut()
            && let Some(piece) = continued(last, &diagnostic)
        {
            last.text.get_or_insert_default().push_str(piece);
            return;
        }
        self.diagnostics.push(diagnostic);
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

/// The text of `next` when it continues `last`: stray text of the same place, starting where
/// the text of `last` ends. (Stray text is the input as written, so two separate runs are never
/// contiguous: a marker stands between them.)
fn continued<'a>(last: &Diagnostic, next: &'a Diagnostic) -> Option<&'a str> {
    let (Some(text), Some(piece)) = (&last.text, &next.text) else { return None };
    let continues = next.kind == DiagnosticKind::StrayText
        && last.kind == DiagnosticKind::StrayText
        && next.call_index == last.call_index
        && next.message == last.message
        && next.offset == last.offset + text.len();
    continues.then_some(piece.as_str())
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stray(offset: usize, message: &str, text: &str) -> StreamEvent {
        StreamEvent::Diagnostic(Diagnostic {
            kind: DiagnosticKind::StrayText,
            call_index: None,
            offset,
            message: message.to_owned(),
            text: Some(text.to_owned()),
        })
    }

    #[test]
    fn pieces_of_stray_text_fold_into_one_diagnostic() {
        let message = fold([stray(5, "m", "abc"), stray(8, "m", "  def"), stray(13, "m", "g")]);
        assert_eq!(message.diagnostics.len(), 1);
        assert_eq!(message.diagnostics[0].text.as_deref(), Some("abc  defg"));
        assert_eq!(message.diagnostics[0].offset, 5);
        // Not where the next one starts, or of another place: separate runs.
        let apart = fold([stray(5, "m", "abc"), stray(9, "m", "d"), stray(10, "n", "e")]);
        assert_eq!(apart.diagnostics.len(), 3);
    }
}
