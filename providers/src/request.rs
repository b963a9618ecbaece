//! The normalized request every adapter translates to its wire format: a conversation
//! (system prompt, user turns, assistant turns with their tool calls, tool results), the tools
//! on offer with their JSON schemas, and the sampling settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskflow_parsers::ToolSpec;

/// One request to a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name as the server knows it; empty means the adapter's default model.
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

impl ChatRequest {
    /// A request holding one user message.
    pub fn user(prompt: impl Into<String>) -> Self {
        Self { messages: vec![ChatMessage::User { content: prompt.into() }], ..Self::default() }
    }

    /// How many assistant turns the conversation already holds.
    pub fn assistant_turns(&self) -> usize {
        self.messages.iter().filter(|m| matches!(m, ChatMessage::Assistant { .. })).count()
    }

    /// The declared tools as the parsers see them (name and parameter schema).
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|tool| ToolSpec {
                name: tool.name.clone(),
                parameters: Some(tool.parameters.clone()),
            })
            .collect()
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    User {
        content: String,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<AssistantToolCall>,
    },
    /// The result of the tool call `tool_call_id`, as text.
    Tool {
        tool_call_id: String,
        content: String,
        /// The result reports a failure (the tool failed, or the call could not be run).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

/// A tool call the model made in an earlier turn, sent back as part of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantToolCall {
    /// The id exactly as the model wrote it.
    pub id: String,
    pub name: String,
    /// The argument text exactly as the model wrote it.
    pub arguments: String,
}

impl From<&taskflow_parsers::ToolCall> for AssistantToolCall {
    fn from(call: &taskflow_parsers::ToolCall) -> Self {
        Self {
            id: call.id.clone(),
            name: call.function.name.clone(),
            arguments: call.function.arguments.clone(),
        }
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The JSON schema of the parameters (an object schema).
    pub parameters: Value,
}
