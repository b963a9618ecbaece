//! The contract of `taskflow chat` (DESIGN §6): one request, the reply and its tool calls
//! shown (not run), `--json` as the normalized response, one `error:` line per failure, and the
//! key never printed. Servers are the replay provider or a real HTTP server on loopback.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-cli-test-key-never-shown";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/providers").join(name)
}

fn taskflow() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    for variable in [
        "MOONSHOT_API_KEY",
        "KIMI_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "TASKFLOW_CONNECT_TIMEOUT_MS",
    ] {
        command.env_remove(variable);
    }
    command
}

fn replay() -> Command {
    let mut command = taskflow();
    command.args(["chat", "--provider", "replay", "--script"]).arg(fixture("replay/weather.toml"));
    command
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("taskflow runs");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A server whose every answer is a plain assistant message saying `content`.
async fn answering(content: &str) -> MockServer {
    let body = json!({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]});
    openai_server(200, body.to_string(), "application/json").await
}

async fn openai_server(status: u16, body: String, content_type: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, content_type))
        .mount(&server)
        .await;
    server
}

#[test]
fn the_reply_and_its_tool_calls_are_shown() {
    let output = run(replay().arg("What's the weather in Beijing?"));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(
        output.stdout,
        "I'll check the weather.\ntool call 0: get_weather (id functions.get_weather:0)\n  {\"city\": \"Beijing\"}\n"
    );
    assert_eq!(output.stderr, "finish: tool_calls · tokens: 40 prompt + 25 completion\n");
}

#[test]
fn json_prints_the_normalized_response() {
    for extra in [&[][..], &["--no-stream"][..]] {
        let output = run(replay().arg("--json").args(extra).arg("Weather?"));
        assert_eq!(output.code, 0, "{}", output.stderr);
        assert_eq!(output.stderr, "");
        let response: Value = serde_json::from_str(&output.stdout).expect("one JSON document");
        for key in ["content", "reasoning", "tool_calls", "diagnostics", "usage", "finish_reason"] {
            assert!(response.get(key).is_some(), "no {key} in {response}");
        }
        assert_eq!(response["tool_calls"][0]["id"], "functions.get_weather:0");
        assert_eq!(response["finish_reason"], "tool_calls");
        assert_eq!(response["usage"]["total_tokens"], 65);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kimi_server_streams_tagged_calls_and_the_key_stays_hidden() {
    let server = openai_server(
        200,
        std::fs::read_to_string(fixture("openai/kimi_tagged_stream.sse")).unwrap(),
        "text/event-stream",
    )
    .await;
    let base = format!("{}/v1", server.uri());
    let output = tokio::task::spawn_blocking(move || {
        run(taskflow().env("MOONSHOT_API_KEY", KEY).args([
            "chat",
            "--provider",
            "moonshot",
            "--base-url",
            &base,
            "Weather?",
        ]))
    })
    .await
    .unwrap();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.starts_with("I'll check the weather first.\n"), "{}", output.stdout);
    assert!(output.stdout.contains("tool call 0: get_weather (id functions.get_weather:0)"));
    assert!(output.stdout.contains("tool call 1: get_time (id functions.get_time:1)"));
    let content = output.stdout.lines().next().unwrap();
    assert_eq!(content, "I'll check the weather first.", "markers leaked into the content");
    assert!(!output.stdout.contains("<|tool_calls_section"), "{}", output.stdout);
    assert!(!output.stdout.contains(KEY) && !output.stderr.contains(KEY));
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(sent.headers["authorization"], format!("Bearer {KEY}").as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_is_one_error_line_with_a_hint() {
    let body = format!(r#"{{"error": {{"message": "bad key {KEY}"}}}}"#);
    let server = openai_server(401, body, "application/json").await;
    let base = format!("{}/v1", server.uri());
    let output = tokio::task::spawn_blocking(move || {
        run(taskflow().env("MOONSHOT_API_KEY", KEY).args([
            "chat",
            "--provider",
            "moonshot",
            "--base-url",
            &base,
            "hi",
        ]))
    })
    .await
    .unwrap();
    assert_eq!(output.code, 1);
    assert!(output.stdout.is_empty());
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", output.stderr);
    assert!(
        lines[0].starts_with("error: moonshot: the server refused the API key (HTTP 401)"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "hint: check the key in MOONSHOT_API_KEY");
    assert!(!output.stderr.contains(KEY), "{}", output.stderr);
}

#[test]
fn setup_mistakes_are_clear_errors() {
    let cases: &[(&[&str], i32, &str)] = &[
        (&["chat", "hi"], 2, "error: no provider chosen"),
        (&["chat", "--provider", "nope", "hi"], 2, "error: unknown provider `nope`"),
        (
            &["chat", "--provider", "moonshot", "hi"],
            1,
            "error: provider `moonshot` needs an API key: set MOONSHOT_API_KEY",
        ),
        (
            &["chat", "--provider", "replay", "hi"],
            1,
            "error: the replay provider needs a script file",
        ),
        (
            &["chat", "--provider", "vllm", "--tools", "no_such_tool", "hi"],
            2,
            "error: unknown tool `no_such_tool`",
        ),
        // A key variable named but not set is said so, not a request sent without a key.
        (
            &["chat", "--provider", "vllm", "--api-key-env", "TASKFLOW_TEST_NO_SUCH_KEY", "hi"],
            2,
            "error: the variable `TASKFLOW_TEST_NO_SUCH_KEY` named for the API key",
        ),
    ];
    for (args, code, message) in cases {
        let output = run(taskflow().args(*args));
        assert_eq!(output.code, *code, "{args:?}: {}", output.stderr);
        assert!(output.stderr.starts_with(message), "{args:?}: {}", output.stderr);
    }
}

#[test]
fn an_unreachable_server_names_its_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let output = run(taskflow().args([
        "chat",
        "--provider",
        "vllm",
        "--model",
        "m",
        "--attempts",
        "1",
        "--base-url",
        &base,
        "hi",
    ]));
    assert_eq!(output.code, 1);
    assert!(output.stderr.starts_with("error: vllm: cannot reach the server"), "{}", output.stderr);
    assert!(
        output.stderr.contains(&format!("hint: is the server running at {base}?")),
        "{}",
        output.stderr
    );
}

#[test]
fn an_unreadable_connect_timeout_is_a_usage_error_and_nothing_is_sent() {
    let output = run(replay().env("TASKFLOW_CONNECT_TIMEOUT_MS", "soon").args(["--json", "hi"]));
    assert_eq!(output.code, 2);
    assert_eq!(output.stdout, "");
    assert!(
        output.stderr.starts_with(
            "error: TASKFLOW_CONNECT_TIMEOUT_MS=\"soon\" is not a number of milliseconds\nhint: "
        ),
        "{}",
        output.stderr
    );
}

#[test]
fn a_script_that_runs_out_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("empty.toml");
    std::fs::write(&script, "[[turn]]\ncontent = \"only one\"\n").unwrap();
    // `chat` sends a single user turn, so the first turn answers; the script itself is fine.
    let output =
        run(taskflow().args(["chat", "--provider", "replay", "--script"]).arg(&script).arg("hi"));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.stdout, "only one\n");
    std::fs::write(&script, "[[turn]]\ncontent = 1\n").unwrap();
    let output =
        run(taskflow().args(["chat", "--provider", "replay", "--script"]).arg(&script).arg("hi"));
    assert_eq!(output.code, 1);
    assert!(output.stderr.contains("empty.toml:2:"), "{}", output.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_file_names_the_default_provider() {
    let server = answering("configured").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nprovider = \"local\"\n\n[providers.local]\npreset = \"vllm\"\nbase_url = \"{}/v1\"\nmodel = \"my-model\"\napi_key_env = \"LOCAL_KEY\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let config_path = config.clone();
    let output = tokio::task::spawn_blocking(move || {
        run(taskflow().env("TASKFLOW_CONFIG", &config_path).env("LOCAL_KEY", KEY).args([
            "chat",
            "--no-stream",
            "hi",
        ]))
    })
    .await
    .unwrap();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.stdout, "configured\n");
    let sent = &server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "my-model");
    assert_eq!(sent.headers["authorization"], format!("Bearer {KEY}").as_str());

    std::fs::write(&config, "[defaults]\nprovidr = \"x\"\n").unwrap();
    let output = run(taskflow().env("TASKFLOW_CONFIG", &config).args(["chat", "hi"]));
    assert_eq!(output.code, 1);
    assert!(
        output.stderr.contains("config.toml:2:1: unknown field `providr`"),
        "{}",
        output.stderr
    );

    // A file TASKFLOW_CONFIG names must be there: a misspelt name is said, not run on defaults.
    let missing = config.with_file_name("confg.toml");
    let output = run(taskflow().env("TASKFLOW_CONFIG", &missing).args(["chat", "hi"]));
    assert_eq!(output.code, 1, "{}", output.stderr);
    let said = format!("error: TASKFLOW_CONFIG names {}, which does not exist", missing.display());
    assert!(output.stderr.starts_with(&said), "{}", output.stderr);
    assert!(output.stderr.contains("hint: unset TASKFLOW_CONFIG"), "{}", output.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_tools_and_tools_files_are_offered_with_their_schemas() {
    let server = answering("ok").await;
    let dir = tempfile::tempdir().unwrap();
    let tools_file = dir.path().join("tools.json");
    std::fs::write(
        &tools_file,
        r#"[{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "required": ["city"]}}}]"#,
    )
    .unwrap();
    let base = format!("{}/v1", server.uri());
    let output = tokio::task::spawn_blocking(move || {
        run(taskflow()
            .args([
                "chat",
                "--provider",
                "vllm",
                "--model",
                "m",
                "--base-url",
                &base,
                "--no-stream",
            ])
            .args(["--tools", "read_file,run_command", "--tools-file"])
            .arg(&tools_file)
            .arg("hi"))
    })
    .await
    .unwrap();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["read_file", "run_command", "get_weather"]);
    assert_eq!(body["tools"][0]["function"]["parameters"]["required"], serde_json::json!(["path"]));
    assert_eq!(body["tools"][2]["function"]["parameters"]["required"], serde_json::json!(["city"]));
}
