//! Tools written into the prompt, for an upstream that refuses `tools` (a server started
//! without tool support, a chat template without it). The request loses `tools`,
//! `tool_choice` and `parallel_tool_calls`; the system prompt gains the tools and how to call
//! them, in the model's own format; earlier calls become the tagged text the model would have
//! written, and tool results user turns in the format's wrapper. The answer is then read by
//! the same parser as any other, so the round trip is the format's own (tested: every
//! rendered call parses back to itself).

mod formats;

use serde_json::{Map, Value, json};
use taskflow_parsers::Format;

pub(crate) use formats::{Call, calls_text};

/// The format tools are written in: the proxy's, else the model's, else Hermes (the
/// `<tool_call>` JSON form most models follow when told to).
pub(crate) fn format_for(format: Format, model: &str) -> Format {
    match format {
        Format::Auto => Format::for_model(model).unwrap_or(Format::Hermes),
        format => format,
    }
}

/// Rewrites `request` for an upstream that takes no tools; says whether it changed.
pub(crate) fn tools_into_prompt(request: &mut Map<String, Value>, format: Format) -> bool {
    let tools = request.remove("tools");
    let choice = request.remove("tool_choice");
    let parallel = request.remove("parallel_tool_calls");
    let mut changed = tools.is_some() || choice.is_some() || parallel.is_some();
    let Some(Value::Array(messages)) = request.get_mut("messages") else { return changed };
    changed |= history_into_text(messages, format);
    let tools: Vec<&Value> = match &tools {
        Some(Value::Array(tools)) => tools.iter().filter_map(|tool| tool.get("function")).collect(),
        _ => Vec::new(),
    };
    let demand = match &choice {
        Some(Value::String(choice)) if choice == "none" => return changed,
        Some(Value::String(choice)) if choice == "required" => {
            Some("You must call at least one of these tools.".to_owned())
        }
        Some(Value::Object(choice)) => choice
            .get("function")
            .and_then(|function| function.get("name"))
            .and_then(Value::as_str)
            .map(|name| format!("You must call the tool `{name}`.")),
        _ => None,
    };
    if tools.is_empty() {
        return changed;
    }
    let mut declaration = formats::declaration(format, &tools);
    if let Some(demand) = demand {
        declaration.push_str("\n\n");
        declaration.push_str(&demand);
    }
    match messages.first_mut() {
        Some(Value::Object(first))
            if first.get("role").and_then(Value::as_str) == Some("system")
                && first.get("content").is_some_and(Value::is_string) =>
        {
            let content = first.get("content").and_then(Value::as_str).unwrap_or_default();
            let content = format!("{content}\n\n{declaration}");
            first.insert("content".into(), json!(content));
        }
        _ => messages.insert(0, json!({"role": "system", "content": declaration})),
    }
    true
}

/// Assistant calls become their tagged text; tool results become user turns (consecutive
/// results in one).
fn history_into_text(messages: &mut Vec<Value>, format: Format) -> bool {
    let mut changed = false;
    let mut names: Vec<(String, String)> = Vec::new();
    let mut out: Vec<Value> = Vec::with_capacity(messages.len());
    let mut last_was_result = false;
    for mut message in messages.drain(..) {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default().to_owned();
        if role == "assistant" {
            if let Some(Value::Array(wire_calls)) =
                message.as_object_mut().and_then(|m| m.remove("tool_calls"))
            {
                changed = true;
                let calls: Vec<Call> = wire_calls.iter().filter_map(Call::from_wire).collect();
                names.extend(calls.iter().map(|call| (call.id.clone(), call.name.clone())));
                let text = content_text(message.get("content"));
                let calls = calls_text(format, &calls);
                let joined = if text.is_empty() { calls } else { format!("{text}\n\n{calls}") };
                message["content"] = json!(joined);
            }
            out.push(message);
            last_was_result = false;
        } else if role == "tool" {
            changed = true;
            let id = message.get("tool_call_id").and_then(Value::as_str).unwrap_or_default();
            let name =
                names.iter().rev().find(|(known, _)| known == id).map(|(_, name)| name.as_str());
            let result = formats::result_text(
                format,
                id,
                name.unwrap_or("tool"),
                &content_text(message.get("content")),
            );
            match out.last_mut() {
                Some(previous) if last_was_result => {
                    let before = content_text(previous.get("content"));
                    previous["content"] = json!(format!("{before}\n{result}"));
                }
                _ => out.push(json!({"role": "user", "content": result})),
            }
            last_was_result = true;
        } else {
            out.push(message);
            last_was_result = false;
        }
    }
    *messages = out;
    changed
}

/// A message's content as text: a string, or the text parts of a list of parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
