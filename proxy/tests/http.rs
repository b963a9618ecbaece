//! The proxy over real HTTP on loopback, for what only shows there: the header a client's
//! HTTP library must accept, and a request refused before it reaches the upstream. The
//! upstream answers every chat request with one body and counts the requests it got. (The
//! `taskflow` binary between the `openai` SDK and every recorded family is the workspace's
//! `tests/proxy.rs`.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use serde_json::{Value, json};
use taskflow_proxy::{DIAGNOSTICS_HEADER, ProxyConfig, Server};

/// An upstream that answers `answer` to every chat request, and the requests it got.
async fn upstream(answer: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let got = Arc::new(AtomicUsize::new(0));
    let counted = got.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |_: Bytes| {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, got)
}

/// A proxy in front of `upstream`; its base URL.
async fn proxy(upstream: SocketAddr) -> String {
    let mut config = ProxyConfig::new(&format!("http://{upstream}/v1")).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = Server::bind(config).await.unwrap();
    let address = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    format!("http://{address}/v1")
}

fn recorded(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/proxy").join(name);
    std::fs::read_to_string(path).unwrap()
}

/// A whole Kimi answer whose content is `content`.
fn answer(content: &str) -> String {
    json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "kimi-k2",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop"}]})
    .to_string()
}

async fn chat(base: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn request(model: &str) -> Vec<u8> {
    json!({"model": model, "messages": [{"role": "user", "content": "Weather?"}]})
        .to_string()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn double_encoded_arguments_reach_the_client_decoded() {
    let (upstream, _) = upstream(recorded("kimi/double_encoded.json")).await;
    let base = proxy(upstream).await;
    let response = chat(&base, request("moonshotai/Kimi-K2-Instruct")).await;
    let said = response.headers()[DIAGNOSTICS_HEADER].to_str().unwrap().to_owned();
    assert!(said.contains("double_encoded_arguments: "), "{said}");
    let answer: Value = response.json().await.unwrap();
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], "{\"city\": \"Paris\"}", "{answer:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_notes_keep_the_diagnostics_header_short() {
    // Calls by a bare index, with no tool declared to name them: one note each.
    let call =
        "<|tool_call_begin|>7<|tool_call_argument_begin|>{\"city\": \"Rome\"}<|tool_call_end|>";
    let content =
        format!("<|tool_calls_section_begin|>{}<|tool_calls_section_end|>", call.repeat(1000));
    let (upstream, _) = upstream(answer(&content)).await;
    let base = proxy(upstream).await;
    let response = chat(&base, request("kimi-k2")).await;
    assert!(response.status().is_success());
    let said = response.headers()[DIAGNOSTICS_HEADER].to_str().unwrap().to_owned();
    // Node's http takes 16 KB for all the headers; this one stays far below.
    assert!(said.len() <= 4096, "{} bytes", said.len());
    let held = said.matches("unresolved_name: ").count();
    assert!(
        held > 0 && said.contains(&format!("; and {} more notes left out", 1000 - held)),
        "{said}"
    );
    let answer: Value = response.json().await.unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.matches("<|tool_call_begin|>7").count(), 1000, "the calls stay text");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_is_not_utf8_is_refused_and_never_sent_on() {
    let (upstream, got) = upstream(answer("Hello")).await;
    let base = proxy(upstream).await;
    let body =
        b"{\"model\": \"kimi-k2\", \"messages\": [{\"role\": \"user\", \"content\": \"caf\xe9\"}]}";
    let response = chat(&base, body.to_vec()).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("not UTF-8 (byte 0xE9 at line 1 column 67"), "{message}");
    assert_eq!(got.load(Ordering::SeqCst), 0, "the upstream got nothing");
    // The same request in UTF-8 goes through.
    let response = chat(&base, String::from_utf8_lossy(body).into_owned().into_bytes()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(got.load(Ordering::SeqCst), 1);
}
