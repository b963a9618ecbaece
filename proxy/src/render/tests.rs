use serde_json::{Value, json};
use taskflow_parsers::{Format, ParseOptions, ToolSpec, parse};

use super::*;

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            parameters: Some(json!({"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "integer"}}})),
        },
        ToolSpec {
            name: "search".into(),
            parameters: Some(json!({"type": "object", "properties": {"q": {"type": "string"}}})),
        },
    ]
}

fn calls() -> Vec<Call> {
    vec![
        Call {
            id: "functions.get_weather:0".into(),
            name: "get_weather".into(),
            arguments: r#"{"city": "Paris", "days": 3}"#.into(),
        },
        Call {
            id: "functions.search:1".into(),
            name: "search".into(),
            arguments: r#"{"q": "a <b> c"}"#.into(),
        },
    ]
}

#[test]
fn every_format_reads_back_the_calls_it_wrote() {
    let options = ParseOptions { tools: tools() };
    for &format in Format::ALL {
        let text = calls_text(format, &calls());
        let message = parse(format, &text, &options);
        assert!(message.diagnostics.is_empty(), "{format}: {text}\n{:?}", message.diagnostics);
        assert_eq!(message.content.as_deref().map(str::trim).unwrap_or(""), "", "{format}: {text}");
        let read: Vec<(String, Value)> = message
            .tool_calls
            .iter()
            .map(|call| {
                (
                    call.function.name.clone(),
                    serde_json::from_str(&call.function.arguments).unwrap(),
                )
            })
            .collect();
        let written: Vec<(String, Value)> = calls()
            .iter()
            .map(|call| (call.name.clone(), serde_json::from_str(&call.arguments).unwrap()))
            .collect();
        assert_eq!(read, written, "{format}: {text}");
        if matches!(format, Format::Kimi | Format::Mistral) {
            assert_eq!(message.tool_calls[0].id, "functions.get_weather:0", "{format}");
        }
    }
}

#[test]
fn a_request_loses_its_tools_to_the_prompt() {
    let mut request = json!({
        "model": "Qwen/Qwen3-Coder-30B-A3B-Instruct",
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        ],
    });
    let request = request.as_object_mut().unwrap();
    let format = format_for(Format::Auto, "Qwen/Qwen3-Coder-30B-A3B-Instruct");
    assert_eq!(format, Format::Qwen3Coder);
    assert!(tools_into_prompt(request, format));
    assert!(!request.contains_key("tools") && !request.contains_key("tool_choice"));
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.starts_with("Be brief.\n\n# Tools"), "{system}");
    assert!(
        system.contains("<name>get_weather</name>") && system.contains("You must call"),
        "{system}"
    );
    let assistant = messages[2]["content"].as_str().unwrap();
    assert!(
        assistant.contains("<function=get_weather>\n<parameter=city>\nRome\n</parameter>"),
        "{assistant}"
    );
    assert!(messages[2].get("tool_calls").is_none());
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(
        messages[3]["content"],
        "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response>"
    );
}

#[test]
fn tool_choice_none_declares_nothing_and_unknown_models_get_hermes() {
    let mut request = json!({"model": "some-model", "tool_choice": "none", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]});
    let request = request.as_object_mut().unwrap();
    assert!(tools_into_prompt(request, format_for(Format::Auto, "some-model")));
    assert_eq!(request["messages"], json!([{"role": "user", "content": "hi"}]));

    let mut plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert!(!tools_into_prompt(plain.as_object_mut().unwrap(), Format::Hermes));
    assert_eq!(format_for(Format::Auto, "unknown"), Format::Hermes);
    assert_eq!(format_for(Format::Glm45, "kimi-k2"), Format::Glm45);
}

#[test]
fn every_format_declares_the_tools() {
    let tool =
        json!({"name": "get_weather", "description": "Weather.", "parameters": {"type": "object"}});
    for &format in Format::ALL {
        let text = formats::declaration(format, &[&tool]);
        assert!(text.contains("get_weather"), "{format}: {text}");
    }
}
