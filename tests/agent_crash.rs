//! An agent run killed with SIGKILL at random moments, again and again, resumes to the same
//! final answer; the model server (a real HTTP server on loopback playing an OpenAI-compatible
//! Kimi model that writes tagged tool calls) sees each turn once, plus at most one repeat per
//! kill: the turn in flight when it happened.
//!
//! `TASKFLOW_AGENT_KILLS` sets how many kills (30 by default).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::method};

/// Tool calls the model makes, one turn each, before it answers.
const TOOL_TURNS: &[(&str, &str)] = &[
    ("list_dir", r#"{"path": "."}"#),
    ("read_file", r#"{"path": "README.md"}"#),
    ("list_dir", r#"{"path": "notes"}"#),
    ("read_file", r#"{"path": "notes/todo.md"}"#),
    ("run_command", r#"{"command": "sleep 0.2"}"#),
    ("read_file", r#"{"path": "README.md", "max_bytes": 20}"#),
];

const ANSWER: &str =
    "Lighthouse still needs its digest mailer, fetcher retries and an install section.";

/// Plays the model: the turn asked for is the number of assistant turns in the conversation
/// plus one; each answer is streamed Kimi text after a short think.
struct KimiModel {
    requests_per_turn: Arc<Mutex<BTreeMap<usize, usize>>>,
}

impl Respond for KimiModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let turn = body["messages"]
            .as_array()
            .map_or(0, |messages| messages.iter().filter(|m| m["role"] == "assistant").count())
            + 1;
        *self.requests_per_turn.lock().unwrap().entry(turn).or_default() += 1;
        let text = match TOOL_TURNS.get(turn - 1) {
            Some((tool, arguments)) => format!(
                "Step {turn}.<|tool_calls_section_begin|><|tool_call_begin|>functions.{tool}:{turn}\
                 <|tool_call_argument_begin|>{arguments}<|tool_call_end|><|tool_calls_section_end|>"
            ),
            None => ANSWER.to_owned(),
        };
        let mut sse = String::new();
        for piece in text.as_bytes().chunks(9) {
            let piece = String::from_utf8_lossy(piece);
            let chunk = json!({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
            sse.push_str(&format!("data: {chunk}\n\n"));
        }
        let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 100 * turn, "completion_tokens": 20}});
        sse.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
        ResponseTemplate::new(200)
            .set_body_raw(sse, "text/event-stream")
            .set_delay(Duration::from_millis(120))
    }
}

fn taskflow(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command.arg("--db").arg(db).env_remove("TASKFLOW_CONNECT_TIMEOUT_MS");
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# Lighthouse\nRSS digests.\n").unwrap();
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    std::fs::write(dir.path().join("notes/todo.md"), "- mailer\n- retries\n- install\n").unwrap();
    dir
}

fn start_agent(db: &Path, base_url: &str, workspace: &Path) -> Child {
    taskflow(db)
        .args([
            "agent",
            "--provider",
            "vllm",
            "--model",
            "kimi-k2-instruct",
            "--base-url",
            base_url,
        ])
        .arg("--workspace")
        .arg(workspace)
        .args(["--allow-command", "sleep", "--max-turns", "10", "What is left to do?"])
        .spawn()
        .unwrap()
}

/// Reads the `flow ID` line an agent run prints first.
fn flow_id(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap()).read_line(&mut line).unwrap();
    line.trim().strip_prefix("flow ").unwrap_or_else(|| panic!("no flow id in {line:?}")).to_owned()
}

/// Waits up to `limit` for the process to end; kills it (SIGKILL) if it has not.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

fn inspect(db: &Path, id: &str) -> Value {
    let output = taskflow(db).args(["--json", "flows", "inspect", id]).output().unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// One agent run, killed at random moments until it is done or `kill_budget` kills were
/// made, then let finish. Checks the run and returns how many kills it took.
async fn killed_run(seed: u64, kill_budget: usize) -> usize {
    let requests_per_turn = Arc::new(Mutex::new(BTreeMap::new()));
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(KimiModel { requests_per_turn: Arc::clone(&requests_per_turn) })
        .mount(&server)
        .await;
    let base_url = format!("{}/v1", server.uri());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let workspace = workspace();

    let (id, kills) = tokio::task::spawn_blocking(move || {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut kills = 0;
        let mut child = start_agent(&db, &base_url, workspace.path());
        let id = flow_id(&mut child);
        loop {
            let limit = if kills < kill_budget {
                Duration::from_millis(rng.u64(15..250))
            } else {
                Duration::from_secs(60)
            };
            match wait_or_kill(&mut child, limit) {
                Some(status) => {
                    let mut stderr = String::new();
                    let _ =
                        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr);
                    assert!(status.success(), "the run ended with {status}: {stderr}");
                    break;
                }
                None => kills += 1,
            }
            // The kill may have come after the last checkpoint: then there is nothing to resume.
            if inspect(&db, &id)["flow"]["status"] == "succeeded" {
                break;
            }
            child = taskflow(&db).args(["flows", "resume", &id]).spawn().unwrap();
        }
        (id, kills)
    })
    .await
    .unwrap();

    let db = dir.path().join("flows.db");
    let flow = inspect(&db, &id);
    assert_eq!(flow["flow"]["status"], "succeeded", "{flow:#}");
    assert_eq!(flow["flow"]["state"]["answer"], ANSWER);
    let steps = flow["steps"].as_array().unwrap();
    let succeeded = |kind: &str| {
        steps.iter().filter(|step| step["kind"] == kind && step["status"] == "succeeded").count()
    };
    assert_eq!(succeeded("llm"), TOOL_TURNS.len() + 1, "one checkpointed answer per turn");
    assert_eq!(succeeded("tool"), TOOL_TURNS.len(), "one result per tool call");

    let requests = requests_per_turn.lock().unwrap().clone();
    let turns: Vec<usize> = requests.keys().copied().collect();
    assert_eq!(turns, (1..=TOOL_TURNS.len() + 1).collect::<Vec<_>>(), "{requests:?}");
    let repeats: usize = requests.values().map(|count| count - 1).sum();
    assert!(repeats <= kills, "{repeats} repeated requests for {kills} kills: {requests:?}");
    println!("run {seed}: {kills} kills, {repeats} repeated turns, requests per turn {requests:?}");
    kills
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_agent_runs_resume_to_the_same_answer() {
    let wanted: usize =
        std::env::var("TASKFLOW_AGENT_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(30);
    let mut kills = 0;
    let mut seed = 1;
    while kills < wanted {
        kills += killed_run(seed, wanted - kills).await;
        seed += 1;
        assert!(seed < 200, "only {kills} kills landed in {seed} runs");
    }
    println!("{kills} kills in {} runs", seed - 1);
}
