//! How providers fail: each HTTP error class, retries with backoff and `Retry-After`, a stream
//! cut in the middle, malformed answers and answers that say nothing, a server that never
//! answers, an address that is no http(s) URL, and keys kept out of every message.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::*;
use taskflow_providers::{ApiKey, ErrorKind, ProviderChoice, ProviderError, preset_providers};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

async fn server_answering(responses: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    let count = responses.len();
    for (position, response) in responses.into_iter().enumerate() {
        let mock = Mock::given(method("POST")).respond_with(response);
        // Each answer is used once, in order; the last one for every request after.
        if position + 1 < count {
            mock.up_to_n_times(1).with_priority(position as u8 + 1).mount(&server).await;
        } else {
            mock.with_priority(u8::MAX).mount(&server).await;
        }
    }
    server
}

async fn complete_error(server: &MockServer) -> ProviderError {
    provider("vllm", &server.uri()).complete(&weather_request()).await.unwrap_err()
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

fn ok_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture("openai/tool_call.json"), "application/json")
}

#[tokio::test]
async fn auth_errors_are_not_retried_and_never_show_the_key() {
    let body = format!(r#"{{"error": {{"message": "Invalid key {SECRET_KEY}"}}}}"#);
    let server = server_answering(vec![ResponseTemplate::new(401).set_body_string(body)]).await;
    let error = complete_error(&server).await;
    assert_eq!(error.kind, ErrorKind::Auth);
    assert_eq!(error.status, Some(401));
    assert_eq!(requests(&server).await, 1);
    assert!(!error.message.contains(SECRET_KEY), "{}", error.message);
    assert!(!format!("{error:?}").contains(SECRET_KEY));
    assert!(error.message.contains("[redacted]"), "{}", error.message);
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_key_goes_nowhere_else() {
    for preset in ["vllm", "anthropic"] {
        let elsewhere = server_answering(vec![ok_answer()]).await;
        let redirect = ResponseTemplate::new(307)
            .insert_header("location", format!("{}/v1/chat/completions", elsewhere.uri()));
        let server = server_answering(vec![redirect]).await;
        let error = provider(preset, &server.uri()).complete(&weather_request()).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Config, "{preset}: {error}");
        assert!(error.message.contains(&elsewhere.uri()), "{preset}: {error}");
        assert_eq!(requests(&server).await, 1, "{preset}: not tried again");
        assert_eq!(requests(&elsewhere).await, 0, "{preset}: the redirect was followed");
    }
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let server = server_answering(vec![
        ResponseTemplate::new(429).insert_header("retry-after", "1").set_body_string("slow down"),
        ok_answer(),
    ])
    .await;
    let started = Instant::now();
    let response = provider("vllm", &server.uri()).complete(&weather_request()).await.unwrap();
    assert_eq!(response.message.tool_calls.len(), 1);
    assert_eq!(requests(&server).await, 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server =
        server_answering(vec![ResponseTemplate::new(500).set_body_string("boom"), ok_answer()])
            .await;
    let response = provider("vllm", &server.uri()).complete(&weather_request()).await.unwrap();
    assert_eq!(response.message.tool_calls.len(), 1);
    assert_eq!(requests(&server).await, 2);

    let server = server_answering(vec![ResponseTemplate::new(503).set_body_string("down")]).await;
    let error = complete_error(&server).await;
    assert_eq!(error.kind, ErrorKind::Server);
    assert_eq!(requests(&server).await, 3, "every attempt was made");
    assert!(error.message.contains("after 3 attempts"), "{}", error.message);
}

#[tokio::test]
async fn context_length_and_bad_requests_are_permanent() {
    let server = server_answering(vec![ResponseTemplate::new(400).set_body_string(
        r#"{"error": {"code": "context_length_exceeded", "message": "too long"}}"#,
    )])
    .await;
    assert_eq!(complete_error(&server).await.kind, ErrorKind::ContextLength);
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn malformed_json_is_a_bad_response_with_a_snippet() {
    let server = server_answering(vec![
        ResponseTemplate::new(200).set_body_raw("<html>gateway says hi</html>", "text/html"),
    ])
    .await;
    let error = complete_error(&server).await;
    assert_eq!(error.kind, ErrorKind::BadResponse);
    assert!(error.message.contains("<html>gateway says hi</html>"), "{}", error.message);
    assert_eq!(requests(&server).await, 1);

    let server = server_answering(vec![
        ResponseTemplate::new(200).set_body_raw("data: {not json\n\n", "text/event-stream"),
    ])
    .await;
    let provider = provider("vllm", &server.uri());
    let mut stream = provider.stream(&weather_request()).await.unwrap();
    let error = stream.next().await.unwrap().unwrap_err();
    assert_eq!(error.kind, ErrorKind::BadResponse);
    assert!(stream.next().await.is_none(), "an error ends the stream");
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_is_interrupted() {
    let full = fixture("openai/stream_parallel_calls.sse");
    let cut = &full[..full.len() / 2];
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{cut}",
        full.len()
    );
    let base = raw_server(Some(reply)).await;
    let provider = provider("vllm", &base);
    let mut stream = provider.stream(&weather_request()).await.unwrap();
    let mut events = 0;
    let error = loop {
        match stream.next().await {
            Some(Ok(_)) => events += 1,
            Some(Err(error)) => break error,
            None => panic!("the stream ended cleanly after {events} events"),
        }
    };
    assert!(events > 0, "what arrived before the cut was delivered");
    assert_eq!(error.kind, ErrorKind::Interrupted, "{error}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_stream_that_ends_without_finishing_is_interrupted() {
    let full = fixture("openai/kimi_tagged_stream.sse");
    let unfinished: String = full.split_inclusive("\n\n").take(5).collect();
    let server = server_answering(vec![
        ResponseTemplate::new(200).set_body_raw(unfinished, "text/event-stream"),
    ])
    .await;
    let provider = provider("moonshot", &server.uri());
    let mut stream = provider.stream(&weather_request()).await.unwrap();
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    assert_eq!(last.unwrap().unwrap_err().kind, ErrorKind::Interrupted);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let base = raw_server(None).await;
    let mut config = config("vllm", &base);
    config.read_timeout = Duration::from_millis(300);
    config.retry.max_attempts = 2;
    let started = Instant::now();
    let error = config.build().unwrap().complete(&weather_request()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut config = config("vllm", &base);
    config.retry.max_attempts = 1;
    let error = config.build().unwrap().complete(&weather_request()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connect, "{error}");
}

#[tokio::test]
async fn local_presets_need_a_model_and_take_no_key_from_other_services() {
    for preset in ["vllm", "llamacpp", "ollama", "lmstudio"] {
        let config = taskflow_providers::ProviderConfig::named(preset).unwrap();
        assert_eq!(config.preset.key_env, None, "{preset}");
        let error = config.build().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Config);
        assert!(error.message.contains("needs a model"), "{}", error.message);
    }
}

#[tokio::test]
async fn hosted_presets_need_a_key() {
    let mut config = config("moonshot", "http://127.0.0.1:9");
    config.api_key = None;
    let error = config.build().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Config);
    assert!(error.message.contains("MOONSHOT_API_KEY"), "{}", error.message);
}

#[tokio::test]
async fn keys_echoed_in_successful_answers_are_scrubbed() {
    let echo = format!("proxy: rejected header Bearer {SECRET_KEY}");
    let server =
        server_answering(vec![ResponseTemplate::new(200).set_body_raw(echo.clone(), "text/plain")])
            .await;
    let error = complete_error(&server).await;
    assert_eq!(error.kind, ErrorKind::BadResponse);
    assert!(!error.message.contains(SECRET_KEY), "{}", error.message);
    assert!(error.message.contains("[redacted]"), "{}", error.message);

    let stream = format!("data: {{\"error\": \"bad key {SECRET_KEY}\"}}\n\n");
    let server = server_answering(vec![
        ResponseTemplate::new(200).set_body_raw(stream, "text/event-stream"),
    ])
    .await;
    let provider = provider("vllm", &server.uri());
    let mut events = provider.stream(&weather_request()).await.unwrap();
    let error = events.next().await.unwrap().unwrap_err();
    assert!(!error.message.contains(SECRET_KEY), "{}", error.message);
}

#[tokio::test]
async fn an_absurd_retry_after_is_capped_not_a_crash() {
    let server = server_answering(vec![
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1e20")
            .set_body_string("slow down"),
    ])
    .await;
    let mut config = config("vllm", &server.uri());
    config.retry.max_attempts = 1;
    let error = config.build().unwrap().complete(&weather_request()).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(86_400)));
}

/// A body that says nothing, and what its error quotes of it.
struct Silent {
    preset: &'static str,
    body: &'static str,
    stream: bool,
    quoted: &'static str,
}

async fn check_silent(case: Silent) {
    let content_type = if case.stream { "text/event-stream" } else { "application/json" };
    let server =
        server_answering(vec![ResponseTemplate::new(200).set_body_raw(case.body, content_type)])
            .await;
    let provider = provider(case.preset, &server.uri());
    let error = if case.stream {
        let mut stream = provider.stream(&weather_request()).await.unwrap();
        let error = match stream.next().await {
            Some(Ok(event)) => panic!("{}: an event from nothing: {event:?}", case.body),
            Some(Err(error)) => error,
            None => panic!("{}: the stream ended as a success", case.body),
        };
        assert!(stream.next().await.is_none(), "an error ends the stream");
        error
    } else {
        provider.complete(&weather_request()).await.unwrap_err()
    };
    assert_eq!(error.kind, ErrorKind::BadResponse, "{}: {error}", case.body);
    assert!(error.message.contains(case.quoted), "{}: {}", case.body, error.message);
    assert_eq!(requests(&server).await, 1, "{}: not retried", case.body);
}

#[tokio::test]
async fn answers_that_say_nothing_are_bad_responses_with_a_snippet() {
    for case in [
        Silent { preset: "vllm", body: "{}", stream: false, quoted: "no choices: {}" },
        Silent {
            preset: "vllm",
            body: r#"{"object": "list", "choices": []}"#,
            stream: false,
            quoted: r#"no choices: {"object": "list", "choices": []}"#,
        },
        Silent {
            preset: "vllm",
            body: r#"{"choices": [{"index": 0, "message": {"role": "assistant"}}]}"#,
            stream: false,
            quoted: r#"no content, no tool calls and no finish reason: {"choices": [{"index": 0, "#,
        },
        Silent {
            preset: "vllm",
            body: r#"{"choices": [{"message": {"content": "", "tool_calls": []}, "finish_reason": null}]}"#,
            stream: false,
            quoted: "no finish reason: {",
        },
        Silent {
            preset: "vllm",
            body: "data: [DONE]\n\n",
            stream: true,
            quoted: "no content, no tool calls and no finish reason: [DONE]",
        },
        Silent {
            preset: "moonshot",
            body: "data: {\"choices\": [{\"delta\": {\"role\": \"assistant\", \"content\": \"\"}}]}\n\n\
                   data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 9}}\n\ndata: [DONE]\n\n",
            stream: true,
            quoted: r#"no finish reason: {"choices": [{"delta""#,
        },
        Silent {
            preset: "anthropic",
            body: r#"{"type": "message", "content": [], "stop_reason": null}"#,
            stream: false,
            quoted: r#"no stop reason: {"type": "message", "content": []"#,
        },
        Silent {
            preset: "anthropic",
            body: "event: message_start\ndata: {\"type\": \"message_start\", \"message\": {}}\n\n\
                   event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n",
            stream: true,
            quoted: r#"no stop reason: {"type": "message_start""#,
        },
    ] {
        check_silent(case).await;
    }
}

#[tokio::test]
async fn empty_answers_that_say_they_are_done_and_tool_calls_alone_are_answers() {
    let openai_stop = r#"{"choices": [{"message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}"#;
    let openai_calls = fixture("openai/tool_call.json");
    let anthropic_stop = r#"{"type": "message", "content": [], "stop_reason": "end_turn"}"#;
    for (preset, body) in
        [("vllm", openai_stop), ("vllm", openai_calls.as_str()), ("anthropic", anthropic_stop)]
    {
        let server = server_answering(vec![
            ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json"),
        ])
        .await;
        let response = provider(preset, &server.uri()).complete(&weather_request()).await;
        let response = response.unwrap_or_else(|error| panic!("{body}: {error}"));
        assert!(response.finish_reason.is_some(), "{body}");
    }
    let stream = "data: {\"choices\": [{\"delta\": {\"role\": \"assistant\", \"content\": \"\"}}]}\n\n\
                  data: {\"choices\": [{\"delta\": {}, \"finish_reason\": \"stop\"}]}\n\n\
                  data: [DONE]\n\n";
    let server = server_answering(vec![
        ResponseTemplate::new(200).set_body_raw(stream, "text/event-stream"),
    ])
    .await;
    let provider = provider("vllm", &server.uri());
    let (_, response) = stream_all(provider.as_ref(), &weather_request()).await;
    assert_eq!(response.finish_reason, Some(taskflow_providers::FinishReason::Stop));
    assert!(response.message.tool_calls.is_empty());
}

/// A server that does not stream (it ignores `stream: true`) answers with one JSON body: that is
/// the whole answer, read as `complete` reads it, not a stream cut before its first event (which
/// would be asked for again); a body that says nothing is a bad response at once.
#[tokio::test]
async fn a_streamed_request_answered_with_one_json_body_reads_it_whole() {
    let whole = r#"{"choices": [{"message": {"role": "assistant", "content": "Sunny."}, "finish_reason": "stop"}]}"#;
    let server = server_answering(vec![
        ResponseTemplate::new(200).set_body_raw(whole, "application/json; charset=utf-8"),
    ])
    .await;
    let streaming = provider("vllm", &server.uri());
    let (_, response) = stream_all(streaming.as_ref(), &weather_request()).await;
    assert_eq!(response.message.content.as_deref(), Some("Sunny."));
    assert_eq!(response.finish_reason, Some(taskflow_providers::FinishReason::Stop));

    let server =
        server_answering(vec![ResponseTemplate::new(200).set_body_raw("{}", "application/json")])
            .await;
    let provider = provider("vllm", &server.uri());
    let error = match provider.stream(&weather_request()).await {
        Ok(mut stream) => stream.next().await.expect("an event").unwrap_err(),
        Err(error) => error,
    };
    assert_eq!(error.kind, ErrorKind::BadResponse, "{error}");
    assert!(error.message.contains("no choices: {}"), "{}", error.message);
    assert_eq!(requests(&server).await, 1, "not retried");
}

/// A server (a proxy, say) that writes the key it was sent into its answer: the
/// `Authorization` or `x-api-key` header, in a JSON string whose `/` it escapes as PHP does.
struct EchoKey {
    status: u16,
    stream: bool,
}

impl Respond for EchoKey {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
        };
        let sent = format!("{}{}", header("authorization"), header("x-api-key"));
        let error = serde_json::json!({"error": {"message": format!("bad credentials: {sent}")}});
        let error = error.to_string().replace('/', "\\/");
        if self.stream && self.status == 200 {
            return ResponseTemplate::new(self.status)
                .set_body_raw(format!("data: {error}\n\n"), "text/event-stream");
        }
        ResponseTemplate::new(self.status).set_body_raw(error, "application/json")
    }
}

async fn check_echoed_key(preset: &str, key: &str, status: u16, stream: bool) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(EchoKey { status, stream }).mount(&server).await;
    let mut config = config(preset, &server.uri());
    config.api_key = ApiKey::new(key);
    let provider = config.build().unwrap();
    let error = if stream {
        match provider.stream(&weather_request()).await {
            Ok(mut events) => events.next().await.unwrap().unwrap_err(),
            Err(error) => error,
        }
    } else {
        provider.complete(&weather_request()).await.unwrap_err()
    };
    let shown = format!("{error} {error:?}");
    let case = format!("{preset} {key} {status} stream={stream}");
    assert!(error.message.contains("bad credentials"), "{case}: {shown}");
    assert!(!shown.contains(key), "{case}: {shown}");
    assert!(!shown.contains(&key.replace('/', "\\/")), "{case}: {shown}");
    assert!(error.message.contains("[redacted]"), "{case}: {shown}");
}

#[tokio::test]
async fn keys_echoed_by_the_server_never_reach_an_error() {
    for key in [SECRET_KEY, "sk-test/5ecret+never/printed=="] {
        for preset in ["vllm", "anthropic"] {
            check_echoed_key(preset, key, 401, false).await;
            check_echoed_key(preset, key, 401, true).await;
        }
        // Some servers report failures in a 200 answer.
        check_echoed_key("vllm", key, 200, false).await;
        check_echoed_key("vllm", key, 200, true).await;
    }
}

#[tokio::test]
async fn a_base_url_that_is_not_http_is_refused_before_any_request() {
    let server = MockServer::start().await;
    for base_url in ["not a url", "ftp://host/v1", "127.0.0.1:8000/v1", ""] {
        let error = config("vllm", base_url).build().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Config, "{base_url:?}: {error}");
        assert!(!error.is_transient());
        assert!(
            error.message.contains("the base URL must be an http(s) URL"),
            "{base_url:?}: {error}"
        );
        assert!(error.message.contains(&format!("{base_url:?}")), "{error}");
        // A stored choice (a pipeline step's `with.base_url`) is refused the same way.
        let choice = ProviderChoice {
            provider: "vllm".to_owned(),
            model: Some("m".to_owned()),
            base_url: Some(base_url.to_owned()),
            ..ProviderChoice::default()
        };
        let refused = preset_providers()(&choice).unwrap_err();
        assert_eq!(refused, error.message);
    }
    let mut config = config("vllm", &server.uri());
    config.read_timeout = Duration::ZERO;
    let error = config.build().unwrap_err();
    assert_eq!(error.kind, ErrorKind::Config);
    assert!(error.message.contains("read timeout must be longer than 0 ms"), "{error}");
    assert_eq!(requests(&server).await, 0);
}
