//! The normalized message (DESIGN §3): the OpenAI assistant-message shape, plus the
//! diagnostics a careful user needs. Every parser, one-shot or streaming, produces this shape.

use serde::{Deserialize, Serialize};

/// What a model wrote, split into text, reasoning and structured tool calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The text meant for the user, from before, between and after tool-call sections.
    /// `None` when there was none.
    pub content: Option<String>,
    /// The text of `<think>…</think>` blocks (harmony's analysis channel, Mistral's
    /// `[THINK]`). `None` when there was none.
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Message {
    /// The diagnostics of text written as a tool call that did not become one (a call without
    /// a usable name, kept as content; a block that holds no call): the model meant to call a
    /// tool, and nothing can be run for it.
    pub fn failed_calls(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|diagnostic| {
            diagnostic.call_index.is_none()
                && matches!(
                    diagnostic.kind,
                    DiagnosticKind::InvalidId
                        | DiagnosticKind::UnresolvedName
                        | DiagnosticKind::MalformedCall
                )
        })
    }
}

/// One tool call, in the OpenAI `tool_calls` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id exactly as the model wrote it (for Kimi, e.g. `functions.get_weather:0`); for
    /// formats whose models write none, `call_N` with N the call's index in the message.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

/// The function part of a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name, never empty: a call whose name cannot be told from the text is not
    /// emitted (its text is content, with a diagnostic).
    pub name: String,
    /// The argument text as the model wrote it, trimmed. Valid JSON stays byte-exact.
    pub arguments: String,
}

/// Something in the input that did not fit the format, and what the parser made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    /// The index in `tool_calls` of the call this is about, if any.
    pub call_index: Option<usize>,
    /// Byte offset in the input where the problem starts.
    pub offset: usize,
    pub message: String,
    /// Input text that went nowhere else (stray text, the raw form of decoded arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The kinds of diagnostics. Each names one rule of the format that the input broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// The arguments are not a JSON object; the call keeps the raw text and must not be run.
    InvalidArguments,
    /// The arguments were a JSON string holding an object; they were decoded once.
    DoubleEncodedArguments,
    /// The input ended inside a call or a section; what arrived is kept.
    Truncated,
    /// Non-whitespace text inside a tool-call section, outside any call.
    StrayText,
    /// A marker where the format does not allow one; it was dropped.
    UnexpectedMarker,
    /// A call id or tool name that has none of the forms the format allows. When it leaves
    /// the call without a name, the call is not emitted: its text is content.
    InvalidId,
    /// A call whose id gives no name, and the declared tools do not tell it either: it is not
    /// emitted, its text is content.
    UnresolvedName,
    /// A call that is missing a part (the argument marker, the end marker).
    MalformedCall,
}

impl DiagnosticKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArguments => "invalid_arguments",
            Self::DoubleEncodedArguments => "double_encoded_arguments",
            Self::Truncated => "truncated",
            Self::StrayText => "stray_text",
            Self::UnexpectedMarker => "unexpected_marker",
            Self::InvalidId => "invalid_id",
            Self::UnresolvedName => "unresolved_name",
            Self::MalformedCall => "malformed_call",
        }
    }
}

impl std::fmt::Display for DiagnosticKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
