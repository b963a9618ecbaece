//! The OpenAI-compatible adapter against a real HTTP server on loopback serving recorded
//! answers: request shape and headers, complete and streamed tool calls, Kimi tagged text in
//! `content`, and the looser servers (no ids, null finish reasons, repeated names).

mod support;

use serde_json::{Value, json};
use support::*;
use taskflow_parsers::StreamEvent;
use taskflow_providers::{AssistantToolCall, ChatEvent, ChatMessage, FinishReason, Usage};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(status: u16, body: String, content_type: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, content_type))
        .mount(&server)
        .await;
    server
}

fn base(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

fn calls(response: &taskflow_providers::ChatResponse) -> Vec<(String, String, String)> {
    response
        .message
        .tool_calls
        .iter()
        .map(|call| (call.id.clone(), call.function.name.clone(), call.function.arguments.clone()))
        .collect()
}

#[tokio::test]
async fn a_complete_tool_call() {
    let server = serve(200, fixture("openai/tool_call.json"), "application/json").await;
    let response = provider("moonshot", &base(&server)).complete(&weather_request()).await.unwrap();
    assert_eq!(
        calls(&response),
        [("get_weather:0".into(), "get_weather".into(), r#"{"city": "Beijing"}"#.into())]
    );
    assert_eq!(response.message.content, None);
    assert_eq!(response.usage, Some(Usage::new(84, 19)));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert!(response.message.diagnostics.is_empty());
}

#[tokio::test]
async fn the_request_carries_the_conversation_tools_and_key() {
    let server = serve(200, fixture("openai/tool_call.json"), "application/json").await;
    let mut request = weather_request();
    request.system = Some("Be brief.".into());
    request.temperature = Some(0.6);
    request.messages.push(ChatMessage::Assistant {
        content: Some("Checking.".into()),
        tool_calls: vec![AssistantToolCall {
            id: "functions.get_weather:0".into(),
            name: "get_weather".into(),
            arguments: r#"{"city": "Beijing"}"#.into(),
        }],
    });
    request.messages.push(ChatMessage::Tool {
        tool_call_id: "functions.get_weather:0".into(),
        content: "sunny".into(),
        is_error: false,
    });
    provider("moonshot", &base(&server)).complete(&request).await.unwrap();

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.headers["authorization"], format!("Bearer {SECRET_KEY}").as_str());
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert!(!String::from_utf8_lossy(&sent.body).contains(SECRET_KEY), "the key is in the body");
    assert_eq!(body["model"], "kimi-k2-0905-preview");
    assert_eq!(body["stream"], false);
    assert_eq!(body["temperature"], json!(0.6f32));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What's the weather in Beijing?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [{
                "id": "functions.get_weather:0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Beijing\"}"}}]},
            {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
        ])
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
}

#[tokio::test]
async fn streamed_parallel_calls_with_arguments_in_many_pieces() {
    let server = serve(200, fixture("openai/stream_parallel_calls.sse"), "text/event-stream").await;
    let provider = provider("vllm", &base(&server));
    let (events, response) = stream_all(provider.as_ref(), &weather_request()).await;
    assert_eq!(
        calls(&response),
        [
            (
                "chatcmpl-tool-a1".into(),
                "read_file".into(),
                r#"{"path": "README.md", "max_bytes": 4096}"#.into()
            ),
            (
                "chatcmpl-tool-b2".into(),
                "list_dir".into(),
                r#"{"path": "src", "recursive": true}"#.into()
            ),
        ]
    );
    assert_eq!(response.message.content.as_deref(), Some("Reading both."));
    assert_eq!(response.usage, Some(Usage::new(230, 41)));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    let argument_pieces = events
        .iter()
        .filter(|event| matches!(event, ChatEvent::Message(StreamEvent::ArgumentsDelta { .. })))
        .count();
    assert!(argument_pieces > 10, "arguments arrive as they stream ({argument_pieces} pieces)");
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn kimi_tagged_text_in_content_becomes_tool_calls() {
    let server = serve(200, fixture("openai/kimi_tagged_stream.sse"), "text/event-stream").await;
    let provider = provider("moonshot", &base(&server));
    let (events, streamed) = stream_all(provider.as_ref(), &weather_request()).await;
    assert_eq!(
        calls(&streamed),
        [
            (
                "functions.get_weather:0".into(),
                "get_weather".into(),
                r#"{"city": "Beijing", "note": "a <|tool_call_end|> inside"}"#.into()
            ),
            ("functions.get_time:1".into(), "get_time".into(), r#"{"tz": "Asia/Shanghai"}"#.into()),
        ]
    );
    assert_eq!(streamed.message.content.as_deref(), Some("I'll check the weather first."));
    for event in &events {
        if let ChatEvent::Message(StreamEvent::TextDelta { text }) = event {
            assert!(!text.contains("<|"), "a marker leaked into content: {text:?}");
        }
    }
    // The server said `stop`, but the answer asks for tools.
    assert_eq!(streamed.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(streamed.usage, Some(Usage::new(120, 64)));
}

#[tokio::test]
async fn tagged_text_in_a_complete_answer_becomes_tool_calls_too() {
    let content = "Checking.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0\
        <|tool_call_argument_begin|>{\"city\": \"Oslo\"}<|tool_call_end|><|tool_calls_section_end|>";
    let answer = json!({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
    let server = serve(200, answer.to_string(), "application/json").await;
    let response =
        provider("kimi-code", &base(&server)).complete(&weather_request()).await.unwrap();
    assert_eq!(response.message.content.as_deref(), Some("Checking."));
    assert_eq!(
        calls(&response),
        [("functions.get_weather:0".into(), "get_weather".into(), r#"{"city": "Oslo"}"#.into())]
    );
}

#[tokio::test]
async fn ollama_style_streams_without_ids_or_finish_reason() {
    let server = serve(200, fixture("ollama/finish_null_no_ids.sse"), "text/event-stream").await;
    let mut config = config("ollama", &base(&server));
    config.api_key = None;
    let provider = config.build().unwrap();
    let (_, response) = stream_all(provider.as_ref(), &weather_request()).await;
    assert_eq!(
        calls(&response),
        [("call_0".into(), "search".into(), r#"{"q": "durable agents"}"#.into())]
    );
    assert_eq!(response.message.content.as_deref(), Some("Sure."));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(response.usage, None);
    let sent = &server.received_requests().await.unwrap()[0];
    assert!(!sent.headers.contains_key("authorization"), "no key, no header");
}

#[tokio::test]
async fn invalid_structured_arguments_get_a_diagnostic() {
    let answer = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{city: Oslo}"}}
    ]}, "finish_reason": "tool_calls"}]});
    let server = serve(200, answer.to_string(), "application/json").await;
    let response = provider("vllm", &base(&server)).complete(&weather_request()).await.unwrap();
    assert_eq!(response.message.tool_calls[0].function.arguments, "{city: Oslo}");
    assert_eq!(response.message.diagnostics.len(), 1);
    assert_eq!(response.message.diagnostics[0].kind.as_str(), "invalid_arguments");
    assert_eq!(response.message.diagnostics[0].call_index, Some(0));
}

#[tokio::test]
async fn streaming_and_complete_answers_agree() {
    let server = serve(200, fixture("openai/kimi_tagged_stream.sse"), "text/event-stream").await;
    let streamed =
        stream_all(provider("moonshot", &base(&server)).as_ref(), &weather_request()).await.1;
    let mut text = String::new();
    for event in fixture("openai/kimi_tagged_stream.sse").split("\n\n") {
        let Some(data) = event.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        text.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
    }
    let answer = json!({
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 64},
    });
    let server = serve(200, answer.to_string(), "application/json").await;
    let complete = provider("moonshot", &base(&server)).complete(&weather_request()).await.unwrap();
    assert_eq!(complete, streamed);
}

#[tokio::test]
async fn the_key_goes_in_the_header_only() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {SECRET_KEY}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("openai/tool_call.json"), "application/json"),
        )
        .mount(&server)
        .await;
    let provider = provider("kimi-code", &base(&server));
    assert!(!format!("{provider:?}").contains(SECRET_KEY), "Debug shows the key");
    provider.complete(&weather_request()).await.unwrap();
}

#[tokio::test]
async fn the_model_name_picks_the_tagged_format() {
    let content = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}\n</tool_call>";
    let answer = json!({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
    for model in ["Qwen/Qwen2.5-72B-Instruct", "some-unknown-model"] {
        let server = serve(200, answer.to_string(), "application/json").await;
        let mut request = weather_request();
        request.model = model.to_owned();
        let response = provider("vllm", &base(&server)).complete(&request).await.unwrap();
        assert_eq!(response.message.content.as_deref(), Some("Let me look.\n"), "{model}");
        assert_eq!(response.message.tool_calls.len(), 1, "{model}");
        assert_eq!(response.message.tool_calls[0].function.name, "get_weather");
        let arguments: Value =
            serde_json::from_str(&response.message.tool_calls[0].function.arguments).unwrap();
        assert_eq!(arguments, json!({"city": "Lima"}));
    }
}
