//! The contract of `taskflow agent` and of `llm` steps on the command line: the bundled offline
//! agent run, what it shows, `--json`, refusals that go back to the model, and one pipeline
//! file pointed at another provider with `--provider`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn root(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(db: &Path, args: &[&str]) -> Output {
    run_with_env(db, args, &[])
}

fn run_with_env(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("TASKFLOW_CONNECT_TIMEOUT_MS")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// An OpenAI-compatible server on loopback whose every answer is `text`, and its base URL.
/// With `key`, only requests that carry it are answered (others get 404).
async fn answering(text: &str, key: Option<&str>) -> (MockServer, String) {
    let server = MockServer::start().await;
    let answer = json!({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]});
    let mock = Mock::given(method("POST"));
    let mock = match key {
        Some(key) => mock.and(header("authorization", format!("Bearer {key}").as_str())),
        None => mock,
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_json(answer)).mount(&server).await;
    let base = format!("{}/v1", server.uri());
    (server, base)
}

/// The research-brief example on the vLLM preset at `base`, with `extra` flags.
fn run_brief_on(db: &Path, out: &Path, base: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let pipeline = root("examples/pipelines/research-brief/pipeline.toml");
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--output-dir", out.to_str().unwrap()];
    args.extend(["--provider", "vllm", "--base-url", base, "--model", "Qwen/Qwen3-32B"]);
    args.extend(extra);
    run_with_env(db, &args, env)
}

fn example_agent(db: &Path, extra: &[&str]) -> Output {
    let script = root("examples/agent/kimi-turns.toml");
    let workspace = root("examples/agent/workspace");
    let mut args = vec!["agent", "--provider", "replay", "--script", script.to_str().unwrap()];
    args.extend(["--workspace", workspace.to_str().unwrap()]);
    args.extend(extra);
    args.push("What is left to do in this project?");
    run(db, &args)
}

#[test]
fn the_example_agent_answers_and_shows_its_tool_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let output = example_agent(&db, &[]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.contains("I'll look at the project first.\n"), "{}", output.stdout);
    assert!(output.stdout.contains("Three things are left in Lighthouse:"), "{}", output.stdout);
    let last = output.stdout.lines().last().unwrap();
    assert!(last.starts_with("flow ") && last.ends_with(" succeeded (6 steps done)"), "{last}");
    let stderr: Vec<&str> = output.stderr.lines().collect();
    assert!(stderr[0].starts_with("flow "), "{}", output.stderr);
    assert!(stderr.contains(&"→ list_dir {\"path\": \".\"}"), "{}", output.stderr);
    assert!(stderr.contains(&"→ read_file {\"path\": \"notes/todo.md\"}"), "{}", output.stderr);
    assert!(
        stderr.iter().any(|line| line.starts_with("← read_file: 5 line(s)")),
        "{}",
        output.stderr
    );
}

/// An agent that used its turns failed by its own rule, with no step to try again: the hint
/// points at a resume with more turns, which goes on from its last turn without asking the
/// model again for a turn it answered; a pipeline has no turn limit to raise.
#[test]
fn an_agent_out_of_turns_goes_on_with_more() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let output = example_agent(&db, &["--max-turns", "1"]);
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(output.stderr.contains("used its 1 turns (--max-turns)"), "{}", output.stderr);
    let id = output.stderr.lines().next().unwrap().trim_start_matches("flow ").to_owned();
    let hint = format!("hint: `taskflow flows resume {id} --max-turns N` goes on with more turns");
    assert!(output.stderr.contains(&hint), "{}", output.stderr);

    let resumed = run(&db, &["flows", "resume", &id, "--max-turns", "10"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(resumed.stdout.contains("Three things are left in Lighthouse:"), "{}", resumed.stdout);
    let inspected: Value =
        serde_json::from_str(&run(&db, &["--json", "flows", "inspect", &id]).stdout).unwrap();
    let llm_one =
        inspected["steps"].as_array().unwrap().iter().filter(|step| step["name"] == "llm 1");
    assert_eq!(llm_one.count(), 1, "the answered turn was not asked for again");

    let file = root("examples/pipelines/news-digest/pipeline.toml");
    let out = dir.path().join("out");
    let piped = run(
        &db,
        &["run", file.to_str().unwrap(), "--output-dir", out.to_str().unwrap(), "--id", "p"],
    );
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    let refused = run(&db, &["flows", "resume", "p", "--max-turns", "3"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("turn limit is an agent run's"), "{}", refused.stderr);
}

#[test]
fn json_prints_the_flow_and_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let output = example_agent(&dir.path().join("flows.db"), &["--json"]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.stderr, "");
    let document: Value = serde_json::from_str(&output.stdout).expect("one JSON document");
    assert_eq!(document["flow"]["status"], "succeeded");
    let kinds: Vec<&str> =
        document["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["llm", "tool", "llm", "tool", "tool", "llm"]);
}

#[test]
fn a_refused_command_goes_back_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("turns.toml");
    std::fs::write(
        &script,
        r#"
[[turn]]
text = """<|tool_calls_section_begin|><|tool_call_begin|>functions.run_command:0<|tool_call_argument_begin|>{"command": "rm -rf ."}<|tool_call_end|><|tool_calls_section_end|>"""

[[turn]]
content = "I may not delete files."
"#,
    )
    .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let output = run(
        &db,
        &[
            "agent",
            "--provider",
            "replay",
            "--script",
            script.to_str().unwrap(),
            "--workspace",
            workspace.path().to_str().unwrap(),
            "--allow-command",
            "ls",
            "clean up",
        ],
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stderr.contains("← run_command: error: `rm` is not allowed; allowed programs: ls"),
        "{}",
        output.stderr
    );
    assert!(output.stdout.contains("I may not delete files."));
}

#[test]
fn agent_mistakes_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["agent", "hi"], 2, "error: no provider chosen"),
        (
            &["agent", "--provider", "replay", "--workspace", "/no/such/dir", "hi"],
            1,
            "error: --workspace /no/such/dir",
        ),
        (
            &["agent", "--provider", "replay", "--tools", "teleport", "hi"],
            1,
            "there is no agent tool `teleport`",
        ),
        (
            &["agent", "--provider", "replay", "--max-turns", "0", "hi"],
            2,
            "error: invalid value '0'",
        ),
    ];
    for (args, code, message) in cases {
        let output = run(&db, args);
        assert_eq!(output.code, *code, "{args:?}: {}", output.stderr);
        assert!(output.stderr.contains(message), "{args:?}: {}", output.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pipeline_file_runs_on_another_provider() {
    let (server, base) = answering("From the server.", None).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let out = dir.path().join("out");
    let output = tokio::task::spawn_blocking(move || run_brief_on(&db, &out, &base, &[], &[]))
        .await
        .unwrap();
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/brief.md")).unwrap(),
        "From the server."
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "analyze and draft");
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(body["model"], "Qwen/Qwen3-32B");
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("From the server."));

    // The choice is part of the flow: a fork (like a resume) runs on the same server and model,
    // with no provider flag given.
    let id = output.stdout.split_whitespace().nth(1).unwrap().to_owned();
    let db = dir.path().join("flows.db");
    let forked = tokio::task::spawn_blocking(move || {
        run(&db, &["flows", "fork", &id, "--from-step", "draft"])
    })
    .await
    .unwrap();
    assert_eq!(forked.code, 0, "{}", forked.stderr);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "only the draft ran again");
    let body: Value = serde_json::from_slice(&requests[2].body).unwrap();
    assert_eq!(body["model"], "Qwen/Qwen3-32B");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_variable_is_kept_with_the_flow_and_the_key_is_not() {
    const KEY: &str = "sk-test-0123456789abcdef";
    let (server, base) = answering("Keyed.", Some(KEY)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let out = dir.path().join("out");
    let env = [("TASKFLOW_TEST_KEY", KEY)];
    let output = tokio::task::spawn_blocking({
        let db = db.clone();
        move || run_brief_on(&db, &out, &base, &["--api-key-env", "TASKFLOW_TEST_KEY"], &env)
    })
    .await
    .unwrap();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let id = output.stdout.split_whitespace().nth(1).unwrap().to_owned();

    let inspect = run(&db, &["--json", "flows", "inspect", &id]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let document: Value = serde_json::from_str(&inspect.stdout).unwrap();
    let variables: Vec<&Value> = document["flow"]["spec"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["action"] == "llm")
        .map(|step| &step["with"]["api_key_env"])
        .collect();
    assert_eq!(variables, [&json!("TASKFLOW_TEST_KEY"), &json!("TASKFLOW_TEST_KEY")]);
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(KEY.len()).any(|window| window == KEY.as_bytes());
            assert!(!found, "the key is in {}", path.display());
        }
    }

    // A fork with no provider flags reads the key from the same variable.
    let forked = tokio::task::spawn_blocking(move || {
        run_with_env(&db, &["flows", "fork", &id, "--from-step", "draft"], &env)
    })
    .await
    .unwrap();
    assert_eq!(forked.code, 0, "{}", forked.stderr);
    assert_eq!(server.received_requests().await.unwrap().len(), 3, "analyze, draft, draft again");
}

#[test]
fn a_command_the_model_runs_does_not_see_the_secrets_of_the_environment() {
    const KEY: &str = "sk-test-run-command-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("turns.toml");
    std::fs::write(
        &script,
        r#"
[[turn]]
text = """<|tool_calls_section_begin|><|tool_call_begin|>functions.run_command:0<|tool_call_argument_begin|>{"command": "env"}<|tool_call_end|><|tool_calls_section_end|>"""

[[turn]]
content = "Done."
"#,
    )
    .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let env = [
        ("TASKFLOW_TEST_API_KEY", KEY),
        ("TASKFLOW_TEST_SERVICE_TOKEN", KEY),
        ("TASKFLOW_TEST_PLAIN", "plain-value"),
    ];
    let output = run_with_env(
        &db,
        &[
            "--json",
            "agent",
            "--provider",
            "replay",
            "--script",
            script.to_str().unwrap(),
            "--workspace",
            workspace.path().to_str().unwrap(),
            "--allow-command",
            "env",
            "show the environment",
        ],
        &env,
    );
    assert_eq!(output.code, 0, "{}", output.stderr);
    let document: Value = serde_json::from_str(&output.stdout).unwrap();
    let content = document["steps"][1]["output"]["content"].as_str().unwrap();
    let result: Value = serde_json::from_str(content).unwrap();
    let lines: Vec<&str> = result["stdout"].as_str().unwrap().lines().collect();
    assert!(lines.contains(&"TASKFLOW_TEST_PLAIN=plain-value"), "{lines:?}");
    assert!(lines.iter().any(|line| line.starts_with("TASKFLOW_IDEMPOTENCY_KEY=")), "{lines:?}");
    assert!(lines.iter().any(|line| line.starts_with("TASKFLOW_RUN_TOKEN=")), "{lines:?}");
    for name in ["TASKFLOW_TEST_API_KEY", "TASKFLOW_TEST_SERVICE_TOKEN"] {
        assert!(!lines.iter().any(|line| line.starts_with(name)), "{name}: {lines:?}");
    }
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let found = bytes.windows(KEY.len()).any(|window| window == KEY.as_bytes());
        assert!(!found, "the key is in {}", path.display());
    }
}

/// A tool call's name and id come from the model: shown with their control characters escaped,
/// and an id no decision could name gets the call's place, so it can be approved.
#[test]
fn what_the_model_names_reaches_the_terminal_escaped_and_can_be_decided() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let script = dir.path().join("turns.toml");
    std::fs::write(
        &script,
        r#"[[turn]]
content = "x"
tool_calls = [{ id = "c\u001b]0;PWNED\u0007", name = "run_command", arguments = { command = "printf hi" } }, { id = "c2", name = "read_\u001b[2Jfile", arguments = { path = "x" } }]
[[turn]]
content = "done"
"#,
    )
    .unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let agent = |extra: &[&str]| {
        let mut args = vec!["agent", "--provider", "replay", "--script", script.to_str().unwrap()];
        args.extend([
            "--workspace",
            workspace.path().to_str().unwrap(),
            "--allow-command",
            "printf",
        ]);
        args.extend(extra);
        args.push("go");
        run(&db, &args)
    };
    let asked = agent(&["--ask", "run_command", "--detach"]);
    assert_eq!(asked.code, 0, "{}", asked.stderr);
    assert!(!asked.stderr.contains(['\u{1b}', '\u{7}']), "{:?}", asked.stderr);
    assert!(asked.stderr.contains("(call call_0)"), "{}", asked.stderr);
    let id = asked.stderr.lines().next().unwrap().trim_start_matches("flow ").to_owned();
    let approved = run(&db, &["flows", "approve", &id, "call_0"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let resumed = run(&db, &["flows", "resume", &id]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(!resumed.stderr.contains('\u{1b}'), "{:?}", resumed.stderr);
    assert!(resumed.stderr.contains(r"→ read_\u{1b}[2Jfile"), "{}", resumed.stderr);
}
