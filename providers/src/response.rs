//! The normalized response: the message shape of DESIGN §3 plus token usage and the finish
//! reason, and the events a streaming call yields. Folding the events of a stream gives the
//! response a complete call returns.

use serde::{Deserialize, Serialize};
use taskflow_parsers::{Message, MessageBuilder, StreamEvent};

/// A model's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    #[serde(flatten)]
    pub message: Message,
    pub usage: Option<Usage>,
    pub finish_reason: Option<FinishReason>,
    /// The text the model wrote before parsing (tagged tool calls included), when the wire
    /// carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
}

/// Tokens the request used, as the server counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end of the answer.
    Stop,
    /// The answer asks for tool calls.
    ToolCalls,
    /// The token limit was reached.
    Length,
    ContentFilter,
    /// A reason this crate does not know, as the server said it.
    #[serde(untagged)]
    Other(String),
}

impl FinishReason {
    /// Reads an OpenAI-style reason; empty means none.
    pub fn from_wire(reason: &str) -> Option<Self> {
        match reason {
            "" => None,
            "stop" | "end_turn" | "stop_sequence" => Some(Self::Stop),
            "tool_calls" | "tool_use" | "function_call" => Some(Self::ToolCalls),
            "length" | "max_tokens" => Some(Self::Length),
            "content_filter" | "refusal" => Some(Self::ContentFilter),
            other => Some(Self::Other(other.to_owned())),
        }
    }
}

/// One event of a streaming call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatEvent {
    /// Text, reasoning, tool calls and diagnostics, as the parsers report them.
    Message(StreamEvent),
    Usage {
        usage: Usage,
    },
    Finish {
        finish_reason: FinishReason,
    },
    /// The whole text as the model wrote it, once it is complete.
    RawContent {
        raw_content: String,
    },
}

/// Folds the events of a stream into a response.
#[derive(Debug, Default)]
pub struct ResponseBuilder {
    message: MessageBuilder,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    raw_content: Option<String>,
}

impl ResponseBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Message(event) => self.message.apply(event),
            ChatEvent::Usage { usage } => self.usage = Some(usage),
            ChatEvent::Finish { finish_reason } => self.finish_reason = Some(finish_reason),
            ChatEvent::RawContent { raw_content } => self.raw_content = Some(raw_content),
        }
    }

    /// The response that `events`, in order, describe.
    pub fn from_events(events: impl IntoIterator<Item = ChatEvent>) -> ChatResponse {
        let mut response = Self::new();
        events.into_iter().for_each(|event| response.apply(event));
        response.finish()
    }

    pub fn finish(self) -> ChatResponse {
        ChatResponse {
            message: self.message.finish(),
            usage: self.usage,
            finish_reason: self.finish_reason,
            raw_content: self.raw_content,
        }
    }
}
