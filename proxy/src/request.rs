//! A client's chat request on its way to the upstream: read for what the answer's reading
//! needs (model, streaming, declared tools), with ids given back in the model's own alphabet
//! and, where the upstream takes no tools, the tools written into the prompt. A request that
//! needs none of that is forwarded as the bytes the client sent.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use taskflow_parsers::{Format, ToolSpec};
use taskflow_providers::tool_ids;

use crate::config::IdMode;
use crate::render;

/// A request the client got wrong; answered with 400.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadRequest(pub String);

#[derive(Debug)]
pub(crate) struct ChatRequest {
    /// What goes to the upstream.
    pub body: Bytes,
    pub model: String,
    pub stream: bool,
    pub tools: Vec<ToolSpec>,
}

/// How a request is changed on its way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Changes {
    pub ids: IdMode,
    /// The upstream refuses `tools`: write them into the prompt in the model's format.
    pub tools_in_prompt: bool,
    /// The proxy's format ([`Format::Auto`]: the model's, by its name).
    pub format: Format,
}

/// What the answer's reading needs of a request, read without building the conversation.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<PeekTool>>,
    #[serde(default)]
    messages: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct PeekTool {
    #[serde(default)]
    function: Option<PeekFunction>,
}

#[derive(Deserialize)]
struct PeekFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
}

pub(crate) fn prepare(body: Bytes, changes: Changes) -> Result<ChatRequest, BadRequest> {
    // JSON is UTF-8. The peek skips the strings it does not keep (the conversation) without
    // checking their bytes, so the whole body is checked first: a request with bytes that are
    // not UTF-8 in a message is refused here, not passed to the upstream.
    let text = std::str::from_utf8(&body).map_err(|error| not_utf8(&body, &error))?;
    let peek: Peek = serde_json::from_str(text).map_err(|error| {
        if error.is_data() {
            BadRequest(format!("the request body is not a chat request: {error}"))
        } else {
            BadRequest(format!("the request body is not valid JSON: {error}"))
        }
    })?;
    if peek.messages.is_none() {
        return Err(BadRequest("the request has no `messages` array".into()));
    }
    let model = peek.model.map(|model| model.into_owned()).unwrap_or_default();
    let stream = peek.stream.unwrap_or(false);
    let tools = peek
        .tools
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            let function = tool.function?;
            Some(ToolSpec { name: function.name?, parameters: function.parameters })
        })
        .collect();
    if changes.ids == IdMode::Keep && !changes.tools_in_prompt {
        return Ok(ChatRequest { body, model, stream, tools });
    }
    let Ok(Value::Object(mut request)) = serde_json::from_str::<Value>(text) else {
        return Err(BadRequest("the request body is not a JSON object".into()));
    };
    let mut changed = false;
    if let Some(Value::Array(messages)) = request.get_mut("messages")
        && changes.ids == IdMode::Safe
    {
        changed |= restore_ids(messages);
    }
    if changes.tools_in_prompt {
        let format = render::format_for(changes.format, &model);
        changed |= render::tools_into_prompt(&mut request, format);
    }
    let body = if changed {
        let text = serde_json::to_vec(&Value::Object(request));
        Bytes::from(text.map_err(|error| BadRequest(error.to_string()))?)
    } else {
        body
    };
    Ok(ChatRequest { body, model, stream, tools })
}

/// Where a body stops being UTF-8, as a position a person can find.
fn not_utf8(body: &[u8], error: &std::str::Utf8Error) -> BadRequest {
    let at = error.valid_up_to();
    let before = &body[..at];
    let line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|&&byte| byte != b'\n').count();
    BadRequest(format!(
        "the request body is not valid JSON: it is not UTF-8 (byte 0x{:02X} at line {line} \
         column {column}, byte offset {at})",
        body[at]
    ))
}

/// Turns ids the proxy escaped for the client back into the model's own, in the assistant
/// turns' calls and the tool results; says whether any changed.
fn restore_ids(messages: &mut [Value]) -> bool {
    let mut changed = false;
    let mut restore = |id: &mut Value| {
        if let Value::String(text) = id {
            let original = tool_ids::decode(text);
            if original != *text {
                *text = original;
                changed = true;
            }
        }
    };
    for message in messages.iter_mut() {
        if let Some(id) = message.get_mut("tool_call_id") {
            restore(id);
        }
        if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
            for call in calls {
                if let Some(id) = call.get_mut("id") {
                    restore(id);
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keep() -> Changes {
        Changes { ids: IdMode::Keep, tools_in_prompt: false, format: Format::Auto }
    }

    #[test]
    fn an_untouched_request_is_forwarded_as_sent() {
        let sent =
            Bytes::from_static(br#"{"model": "kimi-k2", "stream": true, "messages": [], "x": 1}"#);
        let request = prepare(sent.clone(), keep()).unwrap();
        assert_eq!(request.body, sent);
        assert_eq!(request.model, "kimi-k2");
        assert!(request.stream);
    }

    #[test]
    fn escaped_ids_are_restored_in_the_history() {
        let escaped = tool_ids::encode("functions.get_weather:0");
        let sent = json!({"model": "m", "messages": [
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": escaped, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": escaped, "content": "sunny"},
        ]});
        let changes = Changes { ids: IdMode::Safe, tools_in_prompt: false, format: Format::Auto };
        let request = prepare(Bytes::from(sent.to_string()), changes).unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["messages"][0]["tool_calls"][0]["id"], "functions.get_weather:0");
        assert_eq!(body["messages"][1]["tool_call_id"], "functions.get_weather:0");
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        for (body, expected) in [
            (&b"{not json"[..], "not valid JSON"),
            (b"[1, 2]", "not a chat request"),
            (b"{\"messages\": 3, \"model\": 4}", "not a chat request"),
            (b"{\"model\": \"m\"}", "no `messages`"),
            (b"{\"model\": \"m\", \"messages\": \"x\"}", "expected a sequence"),
            (b"\xff\xfe", "not UTF-8 (byte 0xFF at line 1 column 1, byte offset 0)"),
            // Inside a message's text, which the peek does not read.
            (
                b"{\"model\": \"m\",\n \"messages\": \
                  [{\"role\": \"user\", \"content\": \"caf\xe9\"}]}",
                "not valid JSON: it is not UTF-8 (byte 0xE9 at line 2 column 47, byte offset 61)",
            ),
            // Inside the model's name, which it does read.
            (b"{\"model\": \"m\xc3\", \"messages\": []}", "not UTF-8 (byte 0xC3 at line 1"),
        ] {
            let error = prepare(Bytes::copy_from_slice(body), keep()).unwrap_err();
            assert!(error.0.contains(expected), "{error}");
        }
    }

    #[test]
    fn declared_tools_are_read() {
        let sent = json!({"messages": [], "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
            {"type": "function"},
        ]});
        let request = prepare(Bytes::from(sent.to_string()), keep()).unwrap();
        assert_eq!(request.tools.len(), 1);
        assert_eq!(request.tools[0].name, "get_weather");
    }
}
