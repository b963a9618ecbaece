//! Shared pieces of the provider tests: fixtures, configs pointed at a loopback server, and a
//! raw TCP server for failures an HTTP mock cannot produce (a cut stream, a server that never
//! answers).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use taskflow_providers::{
    ApiKey, ChatEvent, ChatRequest, ChatResponse, Provider, ProviderConfig, RetryPolicy,
    ToolDefinition,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A key that must never show up anywhere but its header.
pub const SECRET_KEY: &str = "sk-test-5ecret-never-printed";

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/providers").join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

/// The preset `preset`, pointed at `base_url`, with the test key, short timeouts and quick
/// retries.
pub fn config(preset: &str, base_url: &str) -> ProviderConfig {
    let mut config = ProviderConfig::named(preset).expect("known preset");
    config.base_url = base_url.to_owned();
    if config.model.is_empty() {
        config.model = "test-model".to_owned();
    }
    config.api_key = ApiKey::new(SECRET_KEY);
    config.connect_timeout = Duration::from_millis(500);
    config.read_timeout = Duration::from_millis(800);
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
    };
    config
}

pub fn provider(preset: &str, base_url: &str) -> Arc<dyn Provider> {
    config(preset, base_url).build().expect("provider builds")
}

pub fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".to_owned(),
        description: "Current weather of a city".to_owned(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }),
    }
}

pub fn weather_request() -> ChatRequest {
    let mut request = ChatRequest::user("What's the weather in Beijing?");
    request.tools = vec![weather_tool()];
    request
}

/// Streams the answer, returning every event and the folded response.
pub async fn stream_all(
    provider: &dyn Provider,
    request: &ChatRequest,
) -> (Vec<ChatEvent>, ChatResponse) {
    use futures_util::StreamExt;
    let mut stream = provider.stream(request).await.expect("the stream opens");
    let mut events = Vec::new();
    let mut response = taskflow_providers::ResponseBuilder::new();
    while let Some(event) = stream.next().await {
        let event = event.expect("no error in the stream");
        response.apply(event.clone());
        events.push(event);
    }
    (events, response.finish())
}

/// A loopback server that answers every connection with `head` and `body`, then either
/// closes the connection (cutting whatever was promised) or keeps it open without a word.
pub async fn raw_server(reply: Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let _ = socket.read(&mut buffer).await;
                match reply {
                    Some(reply) => {
                        let _ = socket.write_all(reply.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    format!("http://{address}")
}
