//! One real request per hosted preset, run only when its key variable is set (and said to be
//! skipped otherwise). These reach the real service, so CI runs none of them: no key is set
//! there.

use taskflow_providers::{ChatRequest, Preset, ProviderConfig, ToolDefinition, collect};

async fn check_live(preset: &str) {
    let config = ProviderConfig::named(preset).unwrap();
    let variable = config.preset.key_env.unwrap();
    if config.api_key.is_none() {
        println!("skipped: {preset} needs {variable}");
        return;
    }
    let provider = config.build().unwrap();
    let mut request =
        ChatRequest::user("Call the tool `ping` with {\"n\": 1}. Do not answer in text.");
    request.tools = vec![ToolDefinition {
        name: "ping".into(),
        description: "Answers pong".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
    }];
    request.max_tokens = Some(200);
    let response =
        collect(provider.stream(&request).await.expect("the live stream opens")).await.unwrap();
    assert!(
        response.message.content.is_some() || !response.message.tool_calls.is_empty(),
        "{preset} gave an empty answer"
    );
}

#[tokio::test]
async fn live_presets() {
    for preset in Preset::names()
        .split(", ")
        .filter(|name| Preset::find(name).is_some_and(|preset| preset.key_required))
    {
        check_live(preset).await;
    }
}
