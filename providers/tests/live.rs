//! One real request per hosted preset. These reach the real services, so the test is ignored
//! unless asked for, `cargo test -p taskflow-providers --test live -- --ignored`, and CI runs
//! none of them. A preset whose key variable is not set is skipped (`--nocapture` lists it); a
//! run that skipped them all checked nothing, and fails.

use taskflow_providers::{ChatRequest, Preset, ProviderConfig, ToolDefinition, collect};

/// Sends one request to `preset`; without its key, returns the variable that holds it.
async fn check_live(preset: &str) -> Option<&'static str> {
    let config = ProviderConfig::named(preset).unwrap();
    let variable = config.preset.key_env.unwrap();
    if config.api_key.is_none() {
        return Some(variable);
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
    None
}

#[tokio::test]
#[ignore = "reaches the real hosted services; needs MOONSHOT_API_KEY, KIMI_API_KEY, OPENAI_API_KEY \
            or ANTHROPIC_API_KEY"]
async fn live_presets() {
    let mut checked = 0;
    let mut missing: Vec<&str> = Vec::new();
    for preset in Preset::names()
        .split(", ")
        .filter(|name| Preset::find(name).is_some_and(|preset| preset.key_required))
    {
        match check_live(preset).await {
            Some(variable) => {
                println!("skipped: {preset} needs {variable}");
                if !missing.contains(&variable) {
                    missing.push(variable);
                }
            }
            None => checked += 1,
        }
    }
    assert!(checked > 0, "no preset was checked: set at least one of {}", missing.join(", "));
}
