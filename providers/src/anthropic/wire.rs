//! The Anthropic Messages wire format: the request body, and the content blocks of an answer
//! (whole, or as streamed events).

use serde_json::{Map, Value, json};

use super::tool_ids;
use crate::request::{ChatMessage, ChatRequest};

/// The token limit sent when the request sets none (the API requires one).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

pub(crate) fn request_body(request: &ChatRequest, model: &str, stream: bool) -> Value {
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ChatMessage::User { content } => {
                ("user", vec![json!({"type": "text", "text": content})])
            }
            ChatMessage::Assistant { content, tool_calls } => {
                let mut blocks = Vec::new();
                if let Some(text) = content.as_deref().filter(|text| !text.trim().is_empty()) {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": tool_ids::encode(&call.id),
                        "name": call.name,
                        "input": arguments_object(&call.arguments),
                    }));
                }
                ("assistant", blocks)
            }
            ChatMessage::Tool { tool_call_id, content, is_error } => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": tool_ids::encode(tool_call_id),
                    "content": content,
                });
                if *is_error {
                    block["is_error"] = json!(true);
                }
                ("user", vec![block])
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // The API wants roles to alternate: consecutive turns of one role become one message.
        match messages.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": stream,
    });
    if let Some(system) = &request.system {
        body["system"] = json!(system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({"name": tool.name, "description": tool.description, "input_schema": tool.parameters})
            })
            .collect();
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    body
}

/// The `input` object of a tool_use block: the arguments when they are an object, else empty
/// (the call's result already told the model what was wrong with them).
fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => Value::Object(Map::new()),
    }
}
