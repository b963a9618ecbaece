//! The proxy over real HTTP on loopback, in front of stub upstreams, for what only shows there:
//! the headers a client's HTTP library must accept, requests refused before they reach the
//! upstream, timeouts, redirects, methods, keep-alives and what must never reach a client (the
//! upstream key, the credentials of the upstream URL). (The `taskflow` binary between the
//! `openai` SDK and every recorded family is the workspace's `tests/proxy.rs`.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use taskflow_providers::ApiKey;
use taskflow_proxy::{DIAGNOSTICS_HEADER, ProxyConfig, Server};
use tokio::sync::Notify;

/// Serves `app` on a free loopback port.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

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
    (serve(app).await, got)
}

/// A request as an upstream got it: `METHOD PATH`, and its `Authorization` if any.
type Got = (String, Option<String>);

/// The requests an upstream got.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Got>>>);

impl Seen {
    fn record(&self, request: &Request) {
        let authorization = request.headers().get(header::AUTHORIZATION);
        self.0.lock().unwrap().push((
            format!("{} {}", request.method(), request.uri().path()),
            authorization.map(|value| value.to_str().unwrap().to_owned()),
        ));
    }

    fn take(&self) -> Vec<Got> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// A streamed answer of `pieces`, each after a pause of its milliseconds.
fn streamed(pieces: Vec<(u64, Vec<u8>)>) -> Response {
    let body = futures_util::stream::iter(pieces).then(|(pause, bytes)| async move {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        Ok::<_, Infallible>(Bytes::from(bytes))
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(body)).into_response()
}

/// A streamed chunk whose delta has `content` (and the finish reason, if any) as an SSE event.
fn event(content: &str, finish: Option<&str>) -> Vec<u8> {
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
        "model": "kimi-k2",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
    format!("data: {chunk}\n\n").into_bytes()
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// A proxy in front of `upstream`, set up by `setup`; its base URL.
async fn proxy_of(upstream: &str, setup: impl FnOnce(&mut ProxyConfig)) -> String {
    let mut config = ProxyConfig::new(upstream).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    setup(&mut config);
    let server = Server::bind(config).await.unwrap();
    let address = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));
    format!("http://{address}/v1")
}

/// A proxy in front of the upstream at `upstream`; its base URL.
async fn proxy(upstream: SocketAddr) -> String {
    proxy_of(&format!("http://{upstream}/v1"), |_| {}).await
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

fn streamed_request(model: &str) -> Vec<u8> {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "Hi"}]})
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

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_silent_past_the_read_timeout_is_a_504_not_an_unreachable_one() {
    // Pauses as long as the request's `x-pause-ms` asks: before its answer, or, streamed, after
    // its first event.
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|headers: HeaderMap, body: Bytes| async move {
            let pause: u64 = headers["x-pause-ms"].to_str().unwrap().parse().unwrap();
            if serde_json::from_slice::<Value>(&body).unwrap()["stream"] == true {
                let finish = [event("", Some("stop")), DONE.to_vec()].concat();
                return streamed(vec![(0, event("Hello", None)), (pause, finish)]);
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
            ([(header::CONTENT_TYPE, "application/json")], answer("Hello")).into_response()
        }),
    );
    let upstream = serve(app).await;
    let base = proxy_of(&format!("http://{upstream}/v1"), |config| {
        config.read_timeout = Duration::from_millis(1000);
    })
    .await;
    let waited = format!("the upstream http://{upstream}/v1 was reached but");
    // (streamed, pause in ms, status, what the client reads)
    let cases = [
        (false, 50, 200, "\"content\":\"Hello\"".to_owned()),
        (false, 3000, 504, format!("{waited} did not answer within 1 s")),
        (true, 50, 200, "data: [DONE]".to_owned()),
        (true, 3000, 200, format!("{waited} sent nothing for 1 s before its answer was complete")),
    ];
    for (stream, pause, status, said) in cases {
        let body = if stream { streamed_request("kimi-k2") } else { request("kimi-k2") };
        let response = reqwest::Client::new()
            .post(format!("{base}/chat/completions"))
            .header("x-pause-ms", pause.to_string())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "stream={stream} pause={pause}");
        let text = response.text().await.unwrap().replace(' ', "");
        assert!(text.contains(&said.replace(' ', "")), "stream={stream} pause={pause}: {text}");
        if status == 504 || text.contains("error") {
            assert!(text.contains("\"type\":\"upstream_timeout\""), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_goes_back_to_the_client_and_the_key_never_follows_it() {
    let elsewhere_saw = Seen::default();
    let seen = elsewhere_saw.clone();
    let elsewhere = serve(Router::new().fallback(move |request: Request| {
        seen.record(&request);
        async { "landed" }
    }))
    .await;
    let location = format!("http://{elsewhere}/landed");
    let pointed = location.clone();
    let upstream = serve(Router::new().fallback(move || {
        let location = pointed.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]) }
    }))
    .await;
    let base = proxy_of(&format!("http://{upstream}/v1"), |config| {
        config.api_key = ApiKey::new("sk-upstream-key");
    })
    .await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build();
    let client = client.unwrap();
    for (method, path) in [(Method::POST, "/chat/completions"), (Method::GET, "/models")] {
        let response = client
            .request(method.clone(), format!("{base}{path}"))
            .body(request("kimi-k2"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT, "{method} {path}");
        assert_eq!(response.headers()[header::LOCATION], location.as_str());
    }
    assert_eq!(elsewhere_saw.take(), [], "the proxy followed no redirect");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_is_not_utf8_passes_as_it_came_and_the_stream_goes_on() {
    // A server that cut an emoji between two events.
    let cut: Vec<u8> = event("X", None)
        .into_iter()
        .flat_map(|byte| if byte == b'X' { vec![0xf0, 0x9f] } else { vec![byte] })
        .collect();
    let events = [event("Hello ", None), cut.clone(), event("world", Some("stop")), DONE.to_vec()];
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || async move { streamed(events.map(|e| (0, e)).to_vec()) }),
    );
    let base = proxy(serve(app).await).await;
    let body = chat(&base, streamed_request("kimi-k2")).await.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(body.windows(cut.len()).any(|window| window == cut), "as it came: {text}");
    assert!(text.contains(": taskflow-proxy upstream_not_json: "), "{text}");
    assert!(text.contains("\"content\":\"world\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("upstream_interrupted"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_other_method_on_the_chat_path_passes_through_and_a_preflight_needs_no_token() {
    let upstream_saw = Seen::default();
    let seen = upstream_saw.clone();
    let upstream = serve(Router::new().fallback(move |request: Request| {
        seen.record(&request);
        let said = request.method().to_string();
        async move { ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], said) }
    }))
    .await;
    let base = proxy_of(&format!("http://{upstream}/v1"), |config| {
        config.api_key = ApiKey::new("sk-upstream-key");
        config.client_token = ApiKey::new("client-token");
    })
    .await;
    let key = Some("Bearer sk-upstream-key".to_owned());
    // (method, with the client token, a preflight) → status, what the upstream saw
    let cases = [
        ((Method::GET, true, false), (200, Some(key.clone()))),
        ((Method::PUT, true, false), (200, Some(key.clone()))),
        ((Method::DELETE, true, false), (200, Some(key.clone()))),
        ((Method::HEAD, true, false), (200, Some(key.clone()))),
        ((Method::OPTIONS, false, true), (200, Some(None))),
        ((Method::OPTIONS, false, false), (401, None)),
        ((Method::GET, false, false), (401, None)),
    ];
    for ((method, token, preflight), (status, saw)) in cases {
        let mut asked =
            reqwest::Client::new().request(method.clone(), format!("{base}/chat/completions"));
        if token {
            asked = asked.bearer_auth("client-token");
        }
        if preflight {
            asked = asked
                .header(header::ORIGIN, "http://localhost:3000")
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST");
        }
        let response = asked.send().await.unwrap();
        let case = format!("{method} token={token} preflight={preflight}");
        assert_eq!(response.status(), status, "{case}");
        let seen: Vec<_> = upstream_saw.take().into_iter().map(|(_, auth)| auth).collect();
        assert_eq!(seen, Vec::from_iter(saw), "{case}");
        if status == 200 {
            assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{case}");
            let body = response.text().await.unwrap();
            let expected = if method == Method::HEAD { String::new() } else { method.to_string() };
            assert_eq!(body, expected, "{case}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alives_pass_at_once_and_events_keep_their_fields() {
    // A server that pings while the model thinks, and names and numbers its events; the rest
    // comes once the test has seen the ping.
    let thought = Arc::new(Notify::new());
    let thinking = thought.clone();
    let call = "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0\
                <|tool_call_argument_begin|>{\"city\": \"Rome\"}<|tool_call_end|>\
                <|tool_calls_section_end|>";
    let rest = [
        b"event: message\nid: 1\n".to_vec(),
        event("Sure.", None),
        b"id: 2\n".to_vec(),
        event(call, Some("stop")),
        DONE.to_vec(),
    ]
    .concat();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let (thinking, rest) = (thinking.clone(), rest.clone());
            async move {
                let ping = futures_util::stream::once(async { Ok(Bytes::from(": ping\n\n")) });
                let rest = futures_util::stream::once(async move {
                    thinking.notified().await;
                    Ok::<_, Infallible>(Bytes::from(rest))
                });
                let body = Body::from_stream(ping.chain(rest));
                ([(header::CONTENT_TYPE, "text/event-stream")], body)
            }
        }),
    );
    let base = proxy(serve(app).await).await;
    let mut response = chat(&base, streamed_request("kimi-k2")).await;
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the keep-alive reaches the client while the upstream thinks");
    assert_eq!(first.unwrap().unwrap(), ": ping\n\n");
    thought.notify_one();
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // Passed as it came, and rewritten (the call), each with its fields.
    let sure = String::from_utf8(event("Sure.", None)).unwrap();
    assert!(text.starts_with(&format!("event: message\nid: 1\n{sure}")), "{text}");
    let (_, rewritten) = text.split_once("id: 2\ndata: ").unwrap_or_else(|| panic!("{text}"));
    assert!(rewritten.starts_with('{') && rewritten.contains("\"tool_calls\""), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_key_is_taken_out_of_whatever_the_client_gets() {
    const KEY: &str = "sk-upstream-SECRET-123";
    let escaped = KEY.replace('-', "\\u002d");
    let answer = answer(&format!("your key is {KEY}"));
    let error = format!("data: {{\"error\": {{\"message\": \"invalid key {escaped}\"}}}}\n\n");
    let models = format!("{{\"data\": [{{\"id\": \"m\", \"owner\": \"{KEY}\"}}]}}").into_bytes();
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |body: Bytes| async move {
                if serde_json::from_slice::<Value>(&body).unwrap()["stream"] == true {
                    streamed(vec![(0, event("Hi", None)), (0, error.into_bytes())])
                } else {
                    ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
                }
            }),
        )
        // The key cut between two chunks of the body.
        .route(
            "/v1/models",
            get(move || async move {
                let (one, two) = models.split_at(models.len() - 10);
                streamed(vec![(0, one.to_vec()), (50, two.to_vec())])
            }),
        );
    let upstream = serve(app).await;
    let base = proxy_of(&format!("http://{upstream}/v1"), |config| {
        config.api_key = ApiKey::new(KEY);
    })
    .await;
    let client = reqwest::Client::new();
    let answers = [
        ("a whole answer", chat(&base, request("kimi-k2")).await),
        ("an error event of a stream", chat(&base, streamed_request("kimi-k2")).await),
        ("another path", client.get(format!("{base}/models")).send().await.unwrap()),
    ];
    for (what, response) in answers {
        assert_eq!(response.status(), 200, "{what}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(KEY) && !text.contains(&escaped), "{what}: {text}");
        assert!(text.contains("[redacted]"), "{what}: {text}");
    }
}

/// The text a client joins from a stream's chunks: each choice's `delta.content` (a chat
/// chunk) or `text` (a legacy completion), and its calls' `arguments`.
fn joined_text(sse: &str) -> String {
    let mut joined = String::new();
    for data in sse.split("\n\n").filter_map(|event| event.strip_prefix("data: ")) {
        let Ok(chunk) = serde_json::from_str::<Value>(data) else { continue };
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            let calls = delta["tool_calls"].as_array().into_iter().flatten();
            let arguments = calls.map(|call| &call["function"]["arguments"]);
            let texts = [&delta["content"], &choice["text"]].into_iter().chain(arguments);
            joined.extend(texts.filter_map(Value::as_str));
        }
    }
    joined
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_streamed_a_few_characters_an_event_never_reaches_the_client_joined() {
    const KEY: &str = "sk-upstream-SECRET-123";
    let call = "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0\
                <|tool_call_argument_begin|>{\"key\": \"sk-upstream-SECRET-123\"}\
                <|tool_call_end|><|tool_calls_section_end|>";
    let said = format!("I'll check. key=Bearer {KEY} (and {KEY})");
    // The chunks of an upstream that streams `text` `size` characters an event, as a chat
    // completion or a legacy one (another path, which the proxy does not rewrite).
    let chunks = |text: &str, size: usize, chat: bool| {
        let characters: Vec<char> = text.chars().collect();
        let mut events: Vec<(u64, Vec<u8>)> = characters
            .chunks(size)
            .map(|piece| {
                let piece: String = piece.iter().collect();
                let choice = if chat {
                    json!({"index": 0, "delta": {"content": piece}, "finish_reason": null})
                } else {
                    json!({"index": 0, "text": piece, "finish_reason": null})
                };
                let chunk =
                    json!({"id": "c1", "created": 1, "model": "kimi-k2", "choices": [choice]});
                (0, format!("data: {chunk}\n\n").into_bytes())
            })
            .collect();
        events.push((0, DONE.to_vec()));
        events
    };
    let (chat_text, completion_text) = (format!("{call}{said}"), said.clone());
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |body: Bytes| async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                let size = request["piece"].as_u64().unwrap() as usize;
                let text = if request["tagged"] == true { chat_text } else { said };
                streamed(chunks(&text, size, true))
            }),
        )
        .route(
            "/v1/completions",
            post(move |body: Bytes| async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                let size = request["piece"].as_u64().unwrap() as usize;
                streamed(chunks(&completion_text, size, false))
            }),
        );
    let upstream = serve(app).await;
    let base = proxy_of(&format!("http://{upstream}/v1"), |config| {
        config.api_key = ApiKey::new(KEY);
    })
    .await;
    let client = reqwest::Client::new();
    let redacted = "I'll check. key=Bearer [redacted] (and [redacted])";
    for size in 1..=8 {
        // (path, request, what the client joins)
        let cases = [
            ("chat/completions", json!({"tagged": false}), redacted.to_owned()),
            // Tool parsing: the call's arguments are joined too.
            (
                "chat/completions",
                json!({"tagged": true}),
                format!("{{\"key\": \"[redacted]\"}}{redacted}"),
            ),
            ("completions", json!({}), redacted.to_owned()),
        ];
        for (path, mut request, expected) in cases {
            request["model"] = json!("kimi-k2");
            request["stream"] = json!(true);
            request["piece"] = json!(size);
            request["messages"] = json!([{"role": "user", "content": "Check my key"}]);
            let response =
                client.post(format!("{base}/{path}")).json(&request).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let text = response.text().await.unwrap();
            assert_eq!(joined_text(&text), expected, "{path} {request}, {size} a chunk:\n{text}");
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_the_upstream_url_are_used_and_never_shown() {
    let upstream_saw = Seen::default();
    let seen = upstream_saw.clone();
    let live = serve(Router::new().fallback(move |request: Request| {
        seen.record(&request);
        async { "ok" }
    }))
    .await;
    let base = proxy_of(&format!("http://user:hunter2@{live}/v1"), |_| {}).await;
    reqwest::get(format!("{base}/models")).await.unwrap();
    let basic = "Basic dXNlcjpodW50ZXIy"; // user:hunter2
    assert_eq!(upstream_saw.take(), [("GET /v1/models".to_owned(), Some(basic.to_owned()))]);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let log = std::env::temp_dir().join(format!("taskflow-proxy-userinfo-{}.jsonl", dead.port()));
    let logged = log.clone();
    let base = proxy_of(&format!("http://user:hunter2@{dead}/v1"), |config| {
        config.log = Some(logged);
    })
    .await;
    let response = chat(&base, request("kimi-k2")).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("cannot reach the upstream http://{dead}/v1: ")),
        "{message}"
    );
    let mut line = String::new();
    for _ in 0..100 {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        if !line.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&log).unwrap();
    assert!(line.contains("cannot reach the upstream") && !line.contains("hunter2"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_is_a_413_and_never_sent_on() {
    let (upstream, got) = upstream(answer("Hello")).await;
    let base = proxy(upstream).await;
    let client = reqwest::Client::new();
    for path in ["/chat/completions", "/embeddings"] {
        let body = vec![b' '; 64 * 1024 * 1024 + 1];
        let response = client.post(format!("{base}{path}")).body(body).send().await.unwrap();
        assert_eq!(response.status(), 413, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{path}");
        let message = error["error"]["message"].as_str().unwrap();
        assert_eq!(message, "the request body is larger than the 64 MiB the proxy takes");
    }
    assert_eq!(got.load(Ordering::SeqCst), 0, "the upstream got nothing");
}
