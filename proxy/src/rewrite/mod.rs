//! Turning an upstream answer into the one the client gets: tagged tool calls in `content` or
//! in the reasoning field become `tool_calls`, the text around them stays content, and every
//! other field is left as it came. Streamed and complete answers go through the same
//! per-choice reader ([`choice::ChoiceRewriter`]), so both give the client the same calls.

mod choice;
mod complete;
mod field;
mod pieces;
mod stream;

pub(crate) use complete::{Completion, rewrite_completion};
pub(crate) use stream::StreamRewriter;

use taskflow_parsers::{Diagnostic, Format, ToolSpec};

use crate::config::IdMode;

/// What an answer is read with: the format, the tools the request declared, the client's ids.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub format: Format,
    pub tools: Vec<ToolSpec>,
    pub ids: IdMode,
}

/// The kind of the note that an upstream's answer or event is not JSON (beside the parsers'
/// kinds, in the diagnostics header, the stream's comments and the exchange log).
pub(crate) const NOT_JSON: &str = "upstream_not_json";

/// What the proxy did to one answer, for the exchange log and the diagnostics header.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Tool calls written as text that the client got as `tool_calls`.
    pub calls_fixed: usize,
    /// What the parsers noted; `call_index` is the call's index as the client sees it.
    pub notes: Vec<Diagnostic>,
    /// The format that read the tagged text, once one did.
    pub format: Option<Format>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Why the answer (or an event of it) could not be read: it was passed on as it came.
    pub unreadable: Option<String>,
}

impl Report {
    /// Notes, the first time, that the upstream sent something that is not JSON (`why`, with
    /// its position).
    fn not_json(&mut self, what: &str, why: &serde_json::Error) {
        self.unreadable.get_or_insert_with(|| {
            format!("the upstream's {what} is not JSON ({why}); it was passed on as it came")
        });
    }

    fn usage(&mut self, usage: Option<&serde_json::Value>) {
        if let Some(usage) = usage.filter(|usage| usage.is_object()) {
            self.prompt_tokens = usage.get("prompt_tokens").and_then(|v| v.as_u64());
            self.completion_tokens = usage.get("completion_tokens").and_then(|v| v.as_u64());
        }
    }
}

#[cfg(test)]
mod tests;
