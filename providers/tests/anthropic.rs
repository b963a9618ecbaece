//! The Anthropic Messages adapter against a loopback server: headers, the request's content
//! blocks (roles merged, tool ids mapped), a streamed `tool_use`, and a complete answer with
//! thinking.

mod support;

use serde_json::{Value, json};
use support::*;
use taskflow_providers::{AssistantToolCall, ChatMessage, FinishReason, Usage, tool_ids};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(body: String, content_type: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, content_type))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_streamed_tool_use() {
    let server = serve(fixture("anthropic/stream_tool_use.sse"), "text/event-stream").await;
    let provider = provider("anthropic", &server.uri());
    let (_, response) = stream_all(provider.as_ref(), &weather_request()).await;
    assert_eq!(response.message.content.as_deref(), Some("Let me check that file."));
    let call = &response.message.tool_calls[0];
    assert_eq!(call.id, "toolu_01T1x5");
    assert_eq!(call.function.name, "read_file");
    assert_eq!(call.function.arguments, r#"{"path": "docs/notes.md", "max_bytes": 2048}"#);
    assert_eq!(response.usage, Some(Usage::new(310, 58)));
    assert_eq!(response.finish_reason, Some(FinishReason::ToolCalls));
    assert!(response.message.diagnostics.is_empty());
}

#[tokio::test]
async fn a_complete_answer_with_thinking() {
    let server = serve(fixture("anthropic/tool_use.json"), "application/json").await;
    let response =
        provider("kimi-code-anthropic", &server.uri()).complete(&weather_request()).await.unwrap();
    assert_eq!(response.message.reasoning.as_deref(), Some("The user wants the time."));
    assert_eq!(response.message.content.as_deref(), Some("Checking."));
    assert_eq!(response.message.tool_calls[0].function.arguments, r#"{"tz":"UTC"}"#);
    assert_eq!(response.usage, Some(Usage::new(50, 20)));
}

#[tokio::test]
async fn the_request_uses_content_blocks_and_maps_tool_ids() {
    let server = serve(fixture("anthropic/tool_use.json"), "application/json").await;
    let kimi_id = "functions.get_weather:0";
    let mut request = weather_request();
    request.system = Some("Be brief.".into());
    request.messages.push(ChatMessage::Assistant {
        content: None,
        tool_calls: vec![AssistantToolCall {
            id: kimi_id.into(),
            name: "get_weather".into(),
            arguments: r#"{"city": "Beijing"}"#.into(),
        }],
    });
    request.messages.push(ChatMessage::Tool {
        tool_call_id: kimi_id.into(),
        content: "sunny".into(),
        is_error: false,
    });
    request.messages.push(ChatMessage::User { content: "And tomorrow?".into() });
    provider("anthropic", &server.uri()).complete(&request).await.unwrap();

    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(sent.headers["x-api-key"], SECRET_KEY);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert!(!sent.headers.contains_key("authorization"));
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    let wire_id = tool_ids::encode(kimi_id);
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "What's the weather in Beijing?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": wire_id, "name": "get_weather", "input": {"city": "Beijing"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": wire_id, "content": "sunny"},
                {"type": "text", "text": "And tomorrow?"}]},
        ])
    );
    assert_eq!(body["tools"][0]["input_schema"]["required"], json!(["city"]));
    assert_eq!(tool_ids::decode(&wire_id), kimi_id);
}
