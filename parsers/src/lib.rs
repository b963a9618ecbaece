//! Parsers that turn tool calls written as tagged text into structured calls.
//!
//! Many open-weight models write their tool calls as text with special markers, each family in
//! its own dialect: Kimi K2, Hermes / Qwen, Qwen3-Coder, GLM, DeepSeek V3 and V3.1, Mistral,
//! Llama 3, gpt-oss harmony, MiniMax-M2 (see [`Format`]; [`Format::Auto`] tells them apart by
//! their markers, [`Format::for_model`] by the model's name). This crate reads that text,
//! one-shot ([`parse`]) or while it streams in ([`StreamParser`]), into the normalized
//! [`Message`] of DESIGN §3: content, reasoning, tool calls with the model's own ids (or
//! `call_0`, `call_1`, … where the model writes none), and diagnostics for whatever did not
//! fit. It does no IO.

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
mod one_format;
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
    /// The tools offered to the model. They resolve calls whose ids give no name (Kimi), say
    /// which bare JSON objects are calls (Llama 3), and type the values of parameters written
    /// as text (Qwen3-Coder, GLM, MiniMax-M2) by their JSON schemas.
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
