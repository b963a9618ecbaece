//! `taskflow proxy` end to end: the real binary between real clients (the `openai` Python SDK,
//! and raw HTTP) and a loopback server replaying recorded upstream answers of every family.
//! The SDK tests need the Python that `scripts/test` prepares (TASKFLOW_TEST_PYTHON).

#[path = "support/replay_upstream.rs"]
mod replay_upstream;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use replay_upstream::{ReplayUpstream, fixtures};

/// A running `taskflow proxy`, stopped when dropped.
struct Proxy {
    child: Child,
    base: String,
}

impl Proxy {
    fn start(upstream: &ReplayUpstream, extra: &[&str]) -> Self {
        Self::start_with_env(upstream, extra, &[])
    }

    fn start_with_env(upstream: &ReplayUpstream, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::in_front_of(&upstream.base_url(), extra, env)
    }

    /// A proxy in front of the upstream whose base URL is `url`.
    fn in_front_of(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .args(["proxy", "--upstream", url, "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let address = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the first line is {first:?}"));
        Self { child, base: address.to_owned() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("TASKFLOW_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TASKFLOW_TEST_PYTHON is not set: these tests drive the `openai` Python SDK; run them \
             through `scripts/test`, which prepares that Python and sets the variable"
        )
    })
}

/// Runs the SDK client on `cases`; returns its results by case name.
fn sdk(base_url: &str, api_key: &str, cases: Vec<Value>) -> Vec<Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/openai_client.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let spec = json!({"base_url": format!("{base_url}/v1"), "api_key": api_key, "cases": cases});
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the SDK client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    results["results"].as_array().unwrap().clone()
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "The weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
            "days": {"type": "integer"}, "unit": {"type": "string"}}, "required": ["city"]}}})
}

/// The model of a recorded answer (a Kimi model for the recorded faults, which name none).
fn model_of(fixture: &str) -> String {
    let recorded = std::fs::read_to_string(fixtures().join(format!("{fixture}.json")));
    let answer: Value =
        recorded.ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    answer["model"].as_str().unwrap_or("moonshotai/Kimi-K2-Instruct").to_owned()
}

fn case(fixture: &str, stream: bool) -> Value {
    let tools = if fixture == "kimi/unnamed" { json!([]) } else { json!([weather_tool()]) };
    json!({"name": format!("{fixture} stream={stream}"), "model": model_of(fixture), "stream": stream,
           "messages": [{"role": "user", "content": "What's the weather?"}],
           "tools": tools, "headers": {"x-fixture": fixture}})
}

/// Arguments compared as JSON where they are JSON (typed parameters are written by the parser).
fn same(actual: &Value, expected: &Value) -> bool {
    let arguments_as_json = |message: &Value| {
        let mut message = message.clone();
        for call in message["tool_calls"].as_array_mut().unwrap() {
            if let Ok(parsed) = serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()) {
                call["arguments"] = parsed;
            }
        }
        message
    };
    arguments_as_json(actual) == arguments_as_json(expected)
}

const FAMILIES: [&str; 10] = [
    "kimi/content",
    "kimi/reasoning",
    "kimi/unnamed",
    "kimi/invalid_arguments",
    "qwen3-coder/xml",
    "glm/arg_keys",
    "deepseek-v31/calls",
    "harmony/commentary",
    "structured/tool_calls",
    "structured/plain",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_gets_structured_calls_from_every_family_streamed_and_not() {
    let upstream = ReplayUpstream::start().await;
    let proxy = Proxy::start(&upstream, &[]);
    let cases: Vec<Value> =
        FAMILIES.iter().flat_map(|fixture| [case(fixture, false), case(fixture, true)]).collect();
    let base = proxy.base.clone();
    let results =
        tokio::task::spawn_blocking(move || sdk(&base, "sk-client", cases)).await.unwrap();
    assert_eq!(results.len(), FAMILIES.len() * 2);
    for (result, fixture) in results.iter().zip(FAMILIES.iter().flat_map(|f| [f, f])) {
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{fixture}.expected.json"))).unwrap(),
        )
        .unwrap();
        let message = result.get("message").unwrap_or_else(|| panic!("{result:#}"));
        assert!(
            same(message, &expected),
            "{}:\n{message:#}\nexpected\n{expected:#}",
            result["name"]
        );
    }
    // The client's own key reached the upstream, since the proxy has none of its own.
    assert!(
        upstream
            .requests()
            .iter()
            .all(|seen| seen.header("authorization") == Some("Bearer sk-client"))
    );
}

async fn post(url: &str, fixture: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new().post(url).header("x-fixture", fixture).json(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_without_tagged_text_and_other_paths_pass_byte_for_byte() {
    let upstream = ReplayUpstream::start().await;
    let proxy = Proxy::start(&upstream, &[]);
    for fixture in ["structured/plain", "structured/tool_calls"] {
        for stream in [false, true] {
            let body = json!({"model": model_of(fixture), "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
            let direct =
                post(&format!("{}/chat/completions", upstream.base_url()), fixture, &body).await;
            let through = post(&proxy.url("/v1/chat/completions"), fixture, &body).await;
            assert_eq!(through.status(), direct.status());
            assert_eq!(through.headers()["x-upstream"], "replay");
            assert_eq!(through.headers()["content-type"], direct.headers()["content-type"]);
            let (direct, through) = (direct.bytes().await.unwrap(), through.bytes().await.unwrap());
            assert_eq!(through, direct, "{fixture} stream={stream}");
        }
    }
    let client = reqwest::Client::new();
    let models = client.get(proxy.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 200);
    let direct = client.get(format!("{}/models", upstream.base_url())).send().await.unwrap();
    assert_eq!(models.bytes().await.unwrap(), direct.bytes().await.unwrap());
    let other = client.get(proxy.url("/health?deep=1")).send().await.unwrap();
    assert_eq!(other.status(), 404, "the upstream's own answer to a path it does not have");
    assert!(upstream.requests().iter().any(|seen| seen.path == "/health?deep=1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_needs_safe_ids_gets_them_and_the_upstream_its_own_back() {
    let upstream = ReplayUpstream::start().await;
    let proxy = Proxy::start(&upstream, &[]);
    let mut first = case("kimi/content", true);
    first["headers"]["x-taskflow-ids"] = json!("safe");
    let base = proxy.base.clone();
    let results = tokio::task::spawn_blocking(move || sdk(&base, "k", vec![first])).await.unwrap();
    let calls = results[0]["message"]["tool_calls"].clone();
    assert_eq!(calls[0]["id"], "tf_functions_2eget__weather_3a0", "{results:#?}");
    assert_eq!(calls[1]["id"], "tf_functions_2eget__weather_3a1");

    // The next turn sends the calls and their results back under the ids the client got.
    let history: Vec<Value> = calls
        .as_array()
        .unwrap()
        .iter()
        .map(|call| json!({"role": "tool", "tool_call_id": call["id"], "content": "sunny"}))
        .collect();
    let mut messages = vec![
        json!({"role": "user", "content": "What's the weather?"}),
        json!({"role": "assistant", "content": null, "tool_calls": calls.as_array().unwrap().iter().map(|call| json!({
            "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}})).collect::<Vec<_>>()}),
    ];
    messages.extend(history);
    let mut second = case("structured/plain", false);
    second["messages"] = json!(messages);
    second["headers"]["x-taskflow-ids"] = json!("safe");
    let base = proxy.base.clone();
    tokio::task::spawn_blocking(move || sdk(&base, "k", vec![second])).await.unwrap();
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "functions.get_weather:0");
    assert_eq!(sent["messages"][2]["tool_call_id"], "functions.get_weather:0");
    assert_eq!(sent["messages"][3]["tool_call_id"], "functions.get_weather:1");
    assert!(upstream.requests().iter().all(|seen| seen.header("x-taskflow-ids").is_none()));

    let refused = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .header("x-taskflow-ids", "fancy")
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_a_name_stays_text_and_the_answer_says_why() {
    let upstream = ReplayUpstream::start().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let proxy = Proxy::start(&upstream, &["--log", log.path().to_str().unwrap()]);
    let body =
        json!({"model": model_of("kimi/unnamed"), "messages": [{"role": "user", "content": "hi"}]});
    let answer = post(&proxy.url("/v1/chat/completions"), "kimi/unnamed", &body).await;
    let why = answer.headers()["x-taskflow-diagnostics"].to_str().unwrap().to_owned();
    assert!(why.contains("unresolved_name"), "{why}");
    let answer: Value = answer.json().await.unwrap();
    let message = &answer["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "{answer:#}");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("<|tool_call_begin|>0<|tool_call_argument_begin|>")
    );

    let streamed = post(
        &proxy.url("/v1/chat/completions"),
        "kimi/unnamed",
        &json!({"stream": true, "messages": []}),
    )
    .await;
    let text = streamed.text().await.unwrap();
    assert!(text.contains(": taskflow-proxy unresolved_name"), "{text}");
    drop(proxy);
    let lines: Vec<Value> = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        assert!(
            line["diagnostics"].as_array().unwrap().iter().any(|d| d["kind"] == "unresolved_name"),
            "{line}"
        );
        assert_eq!(line["calls_fixed"], 0);
        assert_eq!(line["status"], 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_pass_upstream_or_go_into_the_prompt_when_it_refuses_them() {
    let upstream = ReplayUpstream::start().await;
    let passing = Proxy::start(&upstream, &[]);
    let rendering = Proxy::start(&upstream, &["--tools-in-prompt"]);
    let conversation = json!([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Berlin?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Berlin\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "12 C"},
    ]);
    let body = json!({"model": "Qwen/Qwen3-Coder-30B-A3B-Instruct", "messages": conversation,
                      "tools": [weather_tool()], "tool_choice": "auto"});
    post(&passing.url("/v1/chat/completions"), "qwen3-coder/xml", &body).await;
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(sent["tools"], json!([weather_tool()]));
    assert_eq!(sent["tool_choice"], "auto");

    let answer: Value = post(&rendering.url("/v1/chat/completions"), "qwen3-coder/xml", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    let sent = upstream.requests().last().unwrap().json();
    assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none(), "{sent:#}");
    let messages = sent["messages"].as_array().unwrap();
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("Be brief.\n\n# Tools") && system.contains("<name>get_weather</name>"),
        "{system}"
    );
    assert_eq!(
        messages[2]["content"],
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nBerlin\n</parameter>\n</function>\n</tool_call>"
    );
    assert_eq!(
        messages[3],
        json!({"role": "user", "content": "<tool_response>\n12 C\n</tool_response>"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_faults_reach_the_client_and_bad_requests_are_400() {
    let upstream = ReplayUpstream::start().await;
    let proxy = Proxy::start(&upstream, &[]);
    let (server_error, refused, cut) = (
        case("faults/server_error", false),
        case("faults/tools_refused", true),
        case("faults/cut", true),
    );
    let base = proxy.base.clone();
    let results =
        tokio::task::spawn_blocking(move || sdk(&base, "k", vec![server_error, refused, cut]))
            .await
            .unwrap();
    let error =
        |at: usize| results[at].get("error").unwrap_or_else(|| panic!("{:#}", results[at])).clone();
    assert_eq!(error(0)["status"], 500);
    assert!(error(0)["message"].as_str().unwrap().contains("model overloaded"), "{:#}", error(0));
    assert_eq!(error(1)["status"], 400);
    assert!(error(1)["message"].as_str().unwrap().contains("enable-auto-tool-choice"));
    assert_eq!(error(2)["class"], "APIError", "a cut stream is an error, not a short answer");
    assert!(
        error(2)["message"].as_str().unwrap().contains("before the answer was complete"),
        "{:#}",
        error(2)
    );

    let body = std::fs::read_to_string(fixtures().join("faults/server_error.json")).unwrap();
    let through =
        post(&proxy.url("/v1/chat/completions"), "faults/server_error", &json!({"messages": []}))
            .await;
    assert_eq!(through.status(), 500);
    assert_eq!(through.text().await.unwrap(), body, "the upstream's error body, as it was");

    // An answer that is not JSON (here not even UTF-8) goes on as it came, and says so.
    let latin1 =
        post(&proxy.url("/v1/chat/completions"), "faults/latin1", &json!({"messages": []})).await;
    assert_eq!(latin1.status(), 200);
    let why = latin1.headers()["x-taskflow-diagnostics"].to_str().unwrap().to_owned();
    assert!(why.starts_with("upstream_not_json: the upstream's answer is not JSON ("), "{why}");
    assert!(why.contains("line 1 column"), "with the position: {why}");
    let sent = std::fs::read(fixtures().join("faults/latin1.json")).unwrap();
    assert_eq!(latin1.bytes().await.unwrap(), sent);

    let client = reqwest::Client::new();
    for bad in ["{\"messages\": [", "[]", "", "\u{0}\u{1}"] {
        let answer = client.post(proxy.url("/v1/chat/completions")).body(bad).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{bad:?}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let before = upstream.requests().len();
    let bytes = client
        .post(proxy.url("/v1/chat/completions"))
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.status(), 400);
    assert_eq!(upstream.requests().len(), before, "a bad request never reaches the upstream");

    // An upstream nobody listens at.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let dead = Proxy::in_front_of(&dead_url, &[], &[]);
    let answer = client
        .post(dead.url("/v1/chat/completions"))
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 502);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["type"], "upstream_unreachable");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_upstream_is_a_504_after_the_read_timeout_its_flag_sets() {
    // An upstream that takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", silent.local_addr().unwrap());
    let mut proxy = Proxy::in_front_of(&url, &["--read-timeout-ms", "300"], &[]);
    let asked = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .json(&json!({"messages": []}))
        .send();
    let answer = tokio::time::timeout(Duration::from_secs(30), asked)
        .await
        .expect("the proxy answers once its read timeout is over, not the default 600 s")
        .unwrap();
    assert_eq!(answer.status(), 504);
    let error: Value = answer.json().await.unwrap();
    assert_eq!(error["error"]["type"], "upstream_timeout");
    let message = error["error"]["message"].as_str().unwrap();
    let said = format!("the upstream {url} was reached but did not answer within 300 ms");
    assert!(message.starts_with(&said) && message.contains("--read-timeout-ms"), "{message}");
    let _ = proxy.child.kill();
    let _ = proxy.child.wait();

    // The connect timeout's variable is read as other commands read it: a value that is no
    // number of milliseconds is refused, not taken for the default (a proxy that starts
    // instead is ended after ten seconds).
    let refused = assert_cmd::Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(["proxy", "--upstream", &url, "--listen", "127.0.0.1:0"])
        .env("TASKFLOW_CONNECT_TIMEOUT_MS", "fast")
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.starts_with(
            "error: TASKFLOW_CONNECT_TIMEOUT_MS=\"fast\" is not a number of milliseconds"
        ),
        "{stderr}"
    );

    for flag in ["--read-timeout-ms", "--connect-timeout-ms"] {
        let refused = Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .args(["proxy", "--upstream", &url, flag, "0"])
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("must be more than 0"), "{flag}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_json_the_first_line_is_a_json_document() {
    let upstream = ReplayUpstream::start().await;
    for args in [["--json", "proxy"], ["proxy", "--json"]] {
        let child = Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .args(args)
            .args(["--upstream", &upstream.base_url(), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Stopped when dropped, also when an assertion fails.
        let mut proxy = Proxy { child, base: String::new() };
        let mut first = String::new();
        BufReader::new(proxy.child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let said: Value = serde_json::from_str(&first)
            .unwrap_or_else(|_| panic!("{args:?}: the first line is {first:?}"));
        let address = said["listening"].as_str().unwrap();
        assert!(address.starts_with("http://127.0.0.1:"), "{args:?}: {said}");
        assert_eq!(said.as_object().unwrap().len(), 1, "{said}");
        let models = reqwest::get(format!("{address}/v1/models")).await.unwrap();
        assert_eq!(models.status(), 200, "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_streams_at_once_and_a_client_that_leaves_cancels_the_upstream() {
    let upstream = ReplayUpstream::start().await;
    let proxy = Proxy::start(&upstream, &[]);
    let mut answer = post(
        &proxy.url("/v1/chat/completions"),
        "hold",
        &json!({"model": "kimi-k2", "stream": true, "messages": []}),
    )
    .await;
    // The upstream sent one chunk and holds the rest: the client has it already.
    let first = tokio::time::timeout(Duration::from_secs(5), answer.chunk())
        .await
        .expect("the first chunk arrives while the upstream holds");
    let first = String::from_utf8(first.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains("\"content\": \"Hello\""), "{first}");
    drop(answer);
    tokio::time::timeout(Duration::from_secs(5), upstream.gone.notified())
        .await
        .expect("the upstream's connection closes when the client leaves");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_by_default_tokens_and_keys_never_leak() {
    let upstream = ReplayUpstream::start().await;
    let refused = Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(["proxy", "--upstream", &upstream.base_url(), "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.starts_with("error: refusing to listen on 0.0.0.0:0"), "{stderr}");
    assert!(stderr.contains("hint: ") && stderr.contains("--token-env"), "{stderr}");

    let unset = Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args([
            "proxy",
            "--upstream",
            &upstream.base_url(),
            "--api-key-env",
            "TASKFLOW_TEST_NO_SUCH_VAR",
        ])
        .env_remove("TASKFLOW_TEST_NO_SUCH_VAR")
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(2));

    // A client token is as long as serve's must be, and is never shown.
    let short = Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(["proxy", "--upstream", &upstream.base_url(), "--token-env", "SHORT_TOKEN"])
        .args(["--listen", "0.0.0.0:0"])
        .env("SHORT_TOKEN", "short")
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(
        stderr.starts_with(
            "error: the token in SHORT_TOKEN (--token-env) is shorter than 16 characters"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("short\n") && !stderr.contains(" short "), "{stderr}");

    let log = tempfile::NamedTempFile::new().unwrap();
    let secrets =
        [("UPSTREAM_KEY", "sk-upstream-secret-77"), ("CLIENT_TOKEN", "client-token-secret-88")];
    let mut proxy = Proxy::start_with_env(
        &upstream,
        &[
            "--api-key-env",
            "UPSTREAM_KEY",
            "--token-env",
            "CLIENT_TOKEN",
            "--log",
            log.path().to_str().unwrap(),
        ],
        &secrets,
    );
    let client = reqwest::Client::new();
    let body =
        json!({"model": model_of("kimi/content"), "messages": [{"role": "user", "content": "hi"}]});
    let without = client.post(proxy.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let wrong = client.get(proxy.url("/v1/models")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(upstream.requests().is_empty(), "refused clients never reach the upstream");
    let answer = client
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth("client-token-secret-88")
        .header("x-fixture", "kimi/content")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    let seen = upstream.requests();
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-upstream-secret-77"));
    assert!(!seen[0].headers.iter().any(|(_, value)| value.contains("client-token-secret-88")));
    // An upstream that echoes the key, as it is and escaped in a JSON string.
    let echoed = client
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth("client-token-secret-88")
        .header("x-fixture", "faults/echoes_key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 401);
    let text = echoed.text().await.unwrap();
    assert_eq!(text.matches("[redacted]").count(), 2, "{text}");
    assert!(!text.contains("secret"), "{text}");

    let _ = proxy.child.kill();
    let output = proxy.child.wait_with_output_of_pipes();
    let log_text = std::fs::read_to_string(log.path()).unwrap();
    for (_, secret) in secrets {
        assert!(
            !log_text.contains(secret) && !output.contains(secret),
            "a secret leaked:\n{log_text}\n{output}"
        );
    }
    let lines: Vec<Value> =
        log_text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{log_text}");
    assert_eq!(lines[0]["status"], 401);
    let exchange = &lines[2];
    assert_eq!(exchange["calls_fixed"], 2, "{exchange}");
    assert_eq!(exchange["format"], "kimi");
    assert_eq!(exchange["prompt_tokens"], 120);
    assert_eq!(exchange["completion_tokens"], 48);
    assert_eq!(exchange["upstream_status"], 200);
    assert!(exchange["latency_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_upstream_streams_across_events_never_reaches_the_sdk() {
    // Recordings of an upstream that echoes its `Authorization` into the answer, streamed five
    // characters an event, as plain text and around a tagged call that holds it too.
    let key = "sk-upstream-secret-77";
    let upstream = ReplayUpstream::start().await;
    let proxy = Proxy::start_with_env(
        &upstream,
        &["--api-key-env", "UPSTREAM_KEY"],
        &[("UPSTREAM_KEY", key)],
    );
    let content = "I'll check. key=Bearer [redacted]";
    let expected = [
        (
            "echoed-key/content",
            json!({"content": content, "reasoning": null, "tool_calls": [], "finish_reason": "stop"}),
        ),
        (
            "echoed-key/tagged",
            json!({"content": content, "reasoning": null, "finish_reason": "tool_calls",
                   "tool_calls": [{"id": "functions.get_weather:0", "name": "get_weather",
                                   "arguments": "{\"city\": \"[redacted]\"}"}]}),
        ),
    ];
    let cases: Vec<Value> = expected
        .iter()
        .flat_map(|(fixture, _)| [case(fixture, false), case(fixture, true)])
        .collect();
    let base = proxy.base.clone();
    let results =
        tokio::task::spawn_blocking(move || sdk(&base, "sk-client", cases)).await.unwrap();
    let expected = expected.iter().flat_map(|(_, message)| [message, message]);
    for (result, expected) in results.iter().zip(expected) {
        let message = result.get("message").unwrap_or_else(|| panic!("{result:#}"));
        assert!(same(message, expected), "{}:\n{message:#}", result["name"]);
    }
    for fixture in ["echoed-key/content", "echoed-key/tagged"] {
        let body = json!({"model": model_of(fixture), "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
        let through = post(&proxy.url("/v1/chat/completions"), fixture, &body).await;
        let text = through.text().await.unwrap();
        assert!(!text.contains(key) && text.ends_with("data: [DONE]\n\n"), "{fixture}: {text}");
    }
}

trait Pipes {
    fn wait_with_output_of_pipes(&mut self) -> String;
}

impl Pipes for Child {
    /// What the process wrote to stdout (past its first line) and stderr, once it ended.
    fn wait_with_output_of_pipes(&mut self) -> String {
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        }
        text
    }
}
