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
pub use tools::{InvalidToolName, ToolSpec};

/// What a parser needs to know besides the text.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// The tools offered to the model. They resolve calls whose ids give no name (Kimi), say
    /// which bare JSON objects are calls (Llama 3), and type the values of parameters written
    /// as text (Qwen3-Coder, GLM, MiniMax-M2) by their JSON schemas. A tool whose name no call
    /// can have (see [`ToolSpec::check_name`]) is refused by [`ParseOptions::new`]; given
    /// here anyway, it never names a call.
    pub tools: Vec<ToolSpec>,
}

impl ParseOptions {
    /// Options declaring `tools`, each of which a call must be able to name: a name that is
    /// empty or holds whitespace is refused.
    pub fn new(tools: Vec<ToolSpec>) -> Result<Self, InvalidToolName> {
        let options = Self { tools };
        options.check()?;
        Ok(options)
    }

    /// Options declaring tools known by name only; refused as [`ParseOptions::new`] refuses.
    pub fn with_tool_names<S: Into<String>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, InvalidToolName> {
        Self::new(names.into_iter().map(ToolSpec::named).collect())
    }

    /// Checks options made field by field as [`ParseOptions::new`] does: the first declared
    /// tool that no call can name, if any.
    pub fn check(&self) -> Result<(), InvalidToolName> {
        self.tools.iter().try_for_each(ToolSpec::check_name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_refuse_tools_no_call_can_name() {
        assert_eq!(ParseOptions::with_tool_names([""]).unwrap_err(), InvalidToolName::Empty);
        let blank = ParseOptions::with_tool_names(["get_weather", " "]).unwrap_err();
        assert_eq!(blank, InvalidToolName::Whitespace(" ".to_owned()));
        assert!(blank.to_string().contains("holds whitespace"), "{blank}");
        let spaced = ParseOptions::new(vec![ToolSpec::named("get weather")]);
        assert!(matches!(spaced, Err(InvalidToolName::Whitespace(_))));
        let options = ParseOptions::with_tool_names(["get_weather", "my.ns.tool"]).unwrap();
        assert_eq!(options.tools.len(), 2);
        assert!(ParseOptions { tools: vec![ToolSpec::named("\t")] }.check().is_err());
    }
}
