//! Parsers that turn tool calls written as tagged text into structured calls.
//!
//! Many open-weight models (Kimi K2 first of all) write their tool calls as text with special
//! markers. This crate reads that text, one-shot ([`parse`]) or while it streams in
//! ([`StreamParser`]), into the normalized [`Message`] of DESIGN §3: content, reasoning, tool
//! calls with the model's own ids, and diagnostics for whatever did not fit. It does no IO.

mod arguments;
mod auto;
mod deepseek;
mod engine;
mod event;
mod format;
mod harmony;
mod kimi;
mod llama3;
mod message;
mod mistral;
mod stream;
mod tagged;
mod tools;

pub use arguments::{ArgumentsCheck, check_arguments};
pub use event::{EventSink, MessageBuilder, StreamEvent, fold};
pub use format::{Format, UnknownFormat};
pub use kimi::LONGEST_MARKER as KIMI_LONGEST_MARKER;
pub use message::{Diagnostic, DiagnosticKind, FunctionCall, Message, ToolCall};
pub use stream::StreamParser;
pub use tools::ToolSpec;

/// What a parser needs to know besides the text.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// The tools offered to the model; they resolve calls whose ids give no name.
    pub tools: Vec<ToolSpec>,
}

impl ParseOptions {
    /// Options declaring tools known by name only.
    pub fn with_tool_names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self { tools: names.into_iter().map(ToolSpec::named).collect() }
    }
}

/// Parses a whole text at once.
pub fn parse(format: Format, input: &str, options: &ParseOptions) -> Message {
    let mut parser = StreamParser::new(format, options);
    let mut message = MessageBuilder::new();
    parser.feed_into(input, &mut message);
    parser.finish_into(&mut message);
    message.finish()
}
