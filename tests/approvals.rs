//! Approvals through the CLI: an agent whose `run_command` calls wait for a person's decision
//! (`--ask`), decided with `taskflow flows approve` while the agent waits in the foreground,
//! after it was killed, or after it exited with `--detach`; the run goes on with the tool run
//! exactly once when approved and never when denied, and the model (a real HTTP server on
//! loopback playing an OpenAI-compatible Kimi model) reads the tool's result or "denied:
//! REASON". A decision is recorded once, and only for a call the flow waits for (two calls a
//! turn gave one id are two calls, each decided); a tool denied
//! by policy never runs and never waits. Over HTTP, `POST /v1/flows/{id}/approvals/{call_id}`
//! decides the call and serve runs the flow on.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::method};

#[path = "support/cli.rs"]
mod cli;
#[path = "support/serve.rs"]
mod support;

use support::{Serve, call, client, status_of, wait_until};

/// The command the model asks to run: it appends a line to `runs.log` in the workspace, so the
/// log counts the times the tool really ran.
const COMMAND: &str = r#"sh -c "echo ran >> runs.log""#;
const CALL_ID: &str = "functions.run_command:1";
/// The call of an agent whose prompt says `(second)`.
const SECOND_CALL_ID: &str = "functions.run_command:2";
const ANSWER: &str = "The command's outcome is noted.";

/// Plays the model: turn 1 asks for `run_command`, turn 2 answers. Every request is kept.
#[derive(Clone, Default)]
struct Model {
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Respond for Model {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let turn = body["messages"]
            .as_array()
            .map_or(0, |messages| messages.iter().filter(|m| m["role"] == "assistant").count())
            + 1;
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
        let call_id = if prompt.contains("(second)") { SECOND_CALL_ID } else { CALL_ID };
        self.requests.lock().unwrap().push(body);
        let arguments = json!({"command": COMMAND}).to_string();
        let call = format!(
            "<|tool_call_begin|>{call_id}<|tool_call_argument_begin|>{arguments}<|tool_call_end|>"
        );
        // `(twice)`: the same call twice, under one id, as a model may write it.
        let calls = if prompt.contains("(twice)") { call.repeat(2) } else { call };
        let text = match turn {
            1 => {
                format!("Running it.<|tool_calls_section_begin|>{calls}<|tool_calls_section_end|>")
            }
            _ => ANSWER.to_owned(),
        };
        let chunk =
            json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
        let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let sse = format!("data: {chunk}\n\ndata: {end}\n\ndata: [DONE]\n\n");
        ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
    }
}

impl Model {
    /// The tool results the model was sent, in order.
    fn tool_results(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        let last = requests.last().cloned().unwrap_or(Value::Null);
        let messages = last["messages"].as_array().cloned().unwrap_or_default();
        messages
            .iter()
            .filter(|message| message["role"] == "tool")
            .map(|message| message["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    db: PathBuf,
    workspace: PathBuf,
    base: String,
    model: Model,
    _server: MockServer,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let server = MockServer::start().await;
    let model = Model::default();
    Mock::given(method("POST")).respond_with(model.clone()).mount(&server).await;
    let base = format!("{}/v1", server.uri());
    Setup { db: dir.path().join("flows.db"), workspace, base, model, _server: server, _dir: dir }
}

impl Setup {
    fn taskflow(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
        command.arg("--db").arg(&self.db).env_remove("TASKFLOW_CONNECT_TIMEOUT_MS");
        // Serve (tests/support) runs as alice.
        command.args(["--owner", "alice"]);
        command.env("TASKFLOW_CONFIG", "/dev/null");
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        command
    }

    /// `taskflow agent` on the model, allowed to run `sh`, with `policy` flags.
    fn agent(&self, policy: &[&str]) -> Command {
        self.agent_asked(policy, "Run the command and tell me how it went.")
    }

    /// [`Self::agent`] with the prompt `prompt`.
    fn agent_asked(&self, policy: &[&str], prompt: &str) -> Command {
        let mut command = self.taskflow();
        command.args(["agent", "--provider", "vllm", "--base-url", &self.base, "--model", "k2"]);
        command.arg("--workspace").arg(&self.workspace);
        command.args(["--allow-command", "sh", "--tools", "run_command"]);
        command.args(policy);
        command.arg(prompt);
        command
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        cli::run(self.taskflow(), args)
    }

    fn inspect(&self, id: &str) -> Value {
        cli::inspect(self.taskflow(), id)
    }

    fn flow_id(&self) -> String {
        cli::only_flow_id(self.taskflow())
    }

    /// Waits until the only flow waits for approval; its id.
    fn until_waiting(&self) -> String {
        let start = Instant::now();
        loop {
            let id = self.flow_id();
            if !id.is_empty() && self.inspect(&id)["flow"]["status"] == "waiting" {
                return id;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "the flow never waited");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many times the command ran.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.workspace.join("runs.log"))
            .map_or(0, |log| log.lines().count())
    }
}

/// How the agent that asked is left before the decision.
#[derive(Debug, Clone, Copy)]
enum Left {
    /// Still waiting in the foreground: it runs on by itself once the call is decided.
    Foreground,
    /// Killed with SIGKILL while it waited: `flows resume` runs on.
    Killed,
    /// Exited with `--detach`: `flows resume` runs on.
    Detached,
}

struct Case {
    left: Left,
    /// The `flows approve` arguments after the flow id.
    decide: &'static [&'static str],
    /// How many times the command runs.
    runs: usize,
    /// How the tool result the model reads begins.
    result: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asked_call_waits_for_its_decision_across_a_restart_and_runs_once_or_never() {
    let cases = [
        Case { left: Left::Foreground, decide: &[], runs: 1, result: "{\"exit_code\":0" },
        Case { left: Left::Killed, decide: &[CALL_ID], runs: 1, result: "{\"exit_code\":0" },
        Case {
            left: Left::Detached,
            decide: &["--deny", "--reason", "not on Fridays"],
            runs: 0,
            result: "denied: not on Fridays",
        },
        Case {
            left: Left::Killed,
            decide: &["--deny"],
            runs: 0,
            result: "denied: no reason was given",
        },
    ];
    for case in cases {
        let setup = setup().await;
        let label = format!("{:?} {:?}", case.left, case.decide);
        let mut agent = setup.agent(&["--ask", "run_command"]);
        if let Left::Detached = case.left {
            agent.arg("--detach");
        }
        let mut child = Some(agent.spawn().unwrap());
        let id = setup.until_waiting();

        // The flow waits for the call without a lease; nothing ran yet.
        let inspection = setup.inspect(&id);
        let flow = &inspection["flow"];
        assert_eq!(flow["lease"], Value::Null, "{label}: {flow}");
        assert_eq!(
            flow["wait"]["approval"],
            json!({"call_id": CALL_ID, "tool": "run_command", "arguments": {"command": COMMAND}}),
            "{label}"
        );
        assert_eq!(setup.runs(), 0, "{label}");
        let (_, table, _) = setup.run(&["flows", "inspect", &id]);
        assert!(table.contains("approval of run_command"), "{label}: {table}");
        assert!(table.contains(&format!("taskflow flows approve {id}")), "{label}: {table}");
        // A call it does not wait for is refused, naming the one it does.
        let (code, _, stderr) = setup.run(&["flows", "approve", &id, "functions.read_file:0"]);
        assert_eq!(code, 1, "{label}: {stderr}");
        assert!(stderr.contains(&format!("it waits for `{CALL_ID}`")), "{label}: {stderr}");

        match case.left {
            Left::Killed => {
                let mut killed = child.take().unwrap();
                killed.kill().unwrap();
                killed.wait().unwrap();
            }
            Left::Detached => {
                let detached = child.take().unwrap();
                let (code, stdout, stderr) = cli::outcome(detached.wait_with_output().unwrap());
                assert_eq!(code, 0, "{label}: {stderr}");
                assert!(stdout.contains(&format!("flow {id} waiting")), "{label}: {stdout}");
                assert!(
                    stderr.contains("waiting for approval of run_command"),
                    "{label}: {stderr}"
                );
            }
            Left::Foreground => {}
        }

        let mut approve = vec!["flows", "approve", &id];
        approve.extend(case.decide);
        let (code, stdout, stderr) = setup.run(&approve);
        assert_eq!(code, 0, "{label}: {stderr}");
        let word = if case.runs == 1 { "approved" } else { "denied" };
        assert!(
            stdout.contains(&format!("call {CALL_ID} of flow {id} {word}")),
            "{label}: {stdout}"
        );
        // A second decision is refused, whatever it says.
        for again in
            [&["flows", "approve", &id, CALL_ID][..], &["flows", "approve", &id, CALL_ID, "--deny"]]
        {
            let (code, _, stderr) = setup.run(again);
            assert_eq!(code, 1, "{label}: {stderr}");
            assert!(
                stderr
                    .contains(&format!("error: call `{CALL_ID}` of flow {id} was already {word}")),
                "{label}: {stderr}"
            );
            assert!(stderr.contains("hint: a call is decided once"), "{label}: {stderr}");
        }
        if child.is_none() {
            // Decided, it asks for no decision any more: it says how it runs on.
            let (_, table, _) = setup.run(&["flows", "inspect", &id]);
            // Who runs it on: a resume, or by itself a serve or a worker (on PostgreSQL).
            let runs_on = format!(
                "decided: it is due; `taskflow flows resume {id}` runs it on (a running serve or \
                 worker does it by itself)"
            );
            assert!(table.contains(&runs_on), "{label}: {table}");
            assert!(!table.contains("taskflow flows approve"), "{label}: {table}");
        }

        let (code, stdout, stderr) = match child {
            Some(foreground) => cli::outcome(foreground.wait_with_output().unwrap()),
            None => setup.run(&["flows", "resume", &id]),
        };
        assert_eq!(code, 0, "{label}: {stderr}");
        assert!(stdout.contains(ANSWER), "{label}: {stdout}");
        assert_eq!(setup.runs(), case.runs, "{label}");
        let results = setup.model.tool_results();
        assert_eq!(results.len(), 1, "{label}: {results:?}");
        assert!(results[0].starts_with(case.result), "{label}: {results:?}");

        // Resumed again, the ended flow runs nothing; a decision after the end is refused.
        let (_, _, _) = setup.run(&["flows", "resume", &id]);
        assert_eq!(setup.runs(), case.runs, "{label}");
        let (code, _, stderr) = setup.run(&["flows", "approve", &id, CALL_ID]);
        assert_eq!(code, 1, "{label}: {stderr}");
        assert!(stderr.contains("already"), "{label}: {stderr}");
    }
}

/// Two calls of one turn under one id (as a model may write them) each wait for a decision of
/// their own and run once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_of_one_id_in_a_turn_are_each_decided_and_run_once() {
    let setup = setup().await;
    let prompt = "Run the command (twice) and tell me how it went.";
    let output = setup.agent_asked(&["--ask", "run_command", "--detach"], prompt).output();
    assert!(output.unwrap().status.success());
    let id = setup.until_waiting();
    // It waits for decisions, which no signal carries.
    let (code, _, stderr) = setup.run(&["flows", "signal", &id, "aprove"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is an agent run, which waits for no signal"), "{stderr}");
    assert!(
        stderr
            .contains("hint: a decision about a tool call it asks for is `taskflow flows approve"),
        "{stderr}"
    );
    for decided in 1..=2 {
        let (code, _, stderr) = setup.run(&["flows", "approve", &id]);
        assert_eq!(code, 0, "decision {decided}: {stderr}");
        let (code, _, stderr) = setup.run(&["flows", "resume", &id, "--detach"]);
        assert_eq!(code, 0, "resume {decided}: {stderr}");
    }
    assert_eq!(setup.inspect(&id)["flow"]["status"], "succeeded");
    assert_eq!(setup.runs(), 2, "each call ran once");
    let results = setup.model.tool_results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|result| result.starts_with("{\"exit_code\":0")), "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_denied_by_policy_never_runs_and_the_model_reads_why() {
    let setup = setup().await;
    let output = setup.agent(&["--deny", "run_command"]).output().unwrap();
    let (code, stdout, stderr) = cli::outcome(output);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(ANSWER), "{stdout}");
    assert_eq!(setup.runs(), 0);
    assert_eq!(setup.model.tool_results(), ["denied: denied by policy"]);
    // It never waited, and there is nothing to decide.
    let id = setup.flow_id();
    let (code, _, stderr) = setup.run(&["flows", "approve", &id]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("waits for no approval"), "{stderr}");
    // A policy that names no tool is refused before the model is asked.
    let (code, _, stderr) = cli::outcome(setup.agent(&["--ask", "run_comand"]).output().unwrap());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("`run_comand`, which is no agent tool"), "{stderr}");
}

/// `[approvals]` in the config file sets the policy; a flag replaces the file's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_files_approvals_apply_unless_a_flag_replaces_them() {
    let setup = setup().await;
    let config = setup.db.with_file_name("config.toml");
    std::fs::write(&config, "[approvals]\ndeny = [\"run_command\"]\n").unwrap();
    let output = setup.agent(&[]).env("TASKFLOW_CONFIG", &config).output().unwrap();
    let (code, _, stderr) = cli::outcome(output);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(setup.runs(), 0);
    let output = setup.agent(&["--deny", "fetch_url"]).env("TASKFLOW_CONFIG", &config).output();
    let (code, _, stderr) = cli::outcome(output.unwrap());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(setup.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_records_a_decision_once_and_runs_the_flow_on() {
    let setup = setup().await;
    let (code, _, stderr) =
        cli::outcome(setup.agent(&["--ask", "run_command", "--detach"]).output().unwrap());
    assert_eq!(code, 0, "{stderr}");
    let id = setup.flow_id();
    let serve = Serve::start(&setup.db, &[], &[]);
    let http = client();
    let decide = |call_id: &str, body: Value| {
        let path = format!("/v1/flows/{id}/approvals/{}", call_id.replace(':', "%3A"));
        http.post(serve.url(&path)).json(&body)
    };
    for (call_id, body, status, says) in [
        (CALL_ID, json!({"approve": true, "by": "bob"}), 400, "unknown field `by`"),
        (CALL_ID, json!({"reason": "fine"}), 400, "missing field `approve`"),
        (CALL_ID, json!({"approve": "yes"}), 400, "invalid type"),
        (
            "functions.read_file:0",
            json!({"approve": true}),
            422,
            "it waits for `functions.run_command:1`",
        ),
    ] {
        let (got, error) = call(decide(call_id, body.clone())).await;
        assert_eq!(got, status, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {error}");
    }
    assert_eq!(setup.runs(), 0, "no refused decision ran the call");

    let (status, decided) =
        call(decide(CALL_ID, json!({"approve": true, "reason": "looks safe"}))).await;
    assert_eq!(status, 201, "{decided}");
    assert_eq!(
        (
            &decided["approval"]["call_id"],
            &decided["approval"]["approved"],
            &decided["approval"]["reason"]
        ),
        (&json!(CALL_ID), &json!(true), &json!("looks safe"))
    );
    wait_until("serve to run the flow to its end", async || {
        status_of(&serve, &id).await == "succeeded"
    })
    .await;
    assert_eq!(setup.runs(), 1);
    assert!(setup.model.tool_results()[0].starts_with("{\"exit_code\":0"));

    let (status, error) = call(decide(CALL_ID, json!({"approve": false}))).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "conflict");
    let (status, _) =
        call(http.post(serve.url("/v1/flows/nobody/approvals/c1")).json(&json!({"approve": true})))
            .await;
    assert_eq!(status, 404);
    assert_eq!(setup.runs(), 1);
}

/// A pipeline whose agent step (policy `POLICY = ["run_command"]`) is followed by a step that
/// reads its answer.
fn write_pipeline(setup: &Setup, policy: &str) -> PathBuf {
    let pipeline = setup.db.with_file_name("pipeline.toml");
    let text = format!(
        "name = \"policy\"\n\n[[steps]]\nid = \"work\"\naction = \"agent\"\n\
         with = {{ prompt = \"Run the command.\", provider = \"vllm\", base_url = {:?}, \
         model = \"k2\", workspace = {:?}, tools = [\"run_command\"], \
         allow_commands = [\"sh\"], {policy} = [\"run_command\"] }}\n\n\
         [[steps]]\nid = \"report\"\naction = \"echo\"\n\
         with = {{ value = \"agent said: {{{{steps.work.output}}}}\" }}\n",
        setup.base,
        setup.workspace.display().to_string()
    );
    std::fs::write(&pipeline, text).unwrap();
    pipeline
}

/// A pipeline's agent step takes `deny`: the tool never runs and the step's answer follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_agent_step_denies_by_policy() {
    let setup = setup().await;
    let pipeline = write_pipeline(&setup, "deny");
    let (code, _, stderr) = setup.run(&["run", pipeline.to_str().unwrap(), "--id", "denies"]);
    assert_eq!(code, 0, "{stderr}");
    let state = setup.inspect("denies")["flow"]["state"].clone();
    assert_eq!(state["report"], format!("agent said: {ANSWER}"), "{state}");
    assert_eq!(setup.model.tool_results(), ["denied: denied by policy"]);
    assert_eq!(setup.runs(), 0);
    // A policy that names no agent tool is refused when the file is loaded.
    std::fs::write(
        &pipeline,
        std::fs::read_to_string(&pipeline)
            .unwrap()
            .replace("deny = [\"run_command\"]", "ask = [\"run_comand\"]"),
    )
    .unwrap();
    let (code, _, stderr) = setup.run(&["run", pipeline.to_str().unwrap(), "--id", "typo"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("`with.ask` names `run_comand`, which is no agent tool"), "{stderr}");
}

/// A pipeline's agent step with `ask`: its child agent flow waits for the decision without a
/// lease, and so does the pipeline (its step waits for the child). `flows approve` on the child
/// or on the pipeline records the decision; the `taskflow run` that waited runs on by itself,
/// or, killed, `flows resume PIPELINE` in a new process runs the child on and the pipeline to
/// its end: the command ran once when approved, never when denied (the model reads the
/// denial), and the next step has the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_agent_step_asks_and_runs_on_after_the_decision_and_a_restart() {
    // (killed, decided on the pipeline's id rather than the child's, `flows approve` arguments
    // after the id, times the command runs, how the model's tool result begins)
    for (killed, on_parent, decide, runs, result) in [
        (true, false, &[][..], 1, "{\"exit_code\":0"),
        (true, true, &["--deny", "--reason", "not in CI"][..], 0, "denied: not in CI"),
        (false, true, &[][..], 1, "{\"exit_code\":0"),
    ] {
        let setup = setup().await;
        let label = format!("killed {killed}, on the parent {on_parent}, {decide:?}");
        let pipeline = write_pipeline(&setup, "ask");
        let mut run = setup.taskflow();
        run.args(["run", pipeline.to_str().unwrap(), "--id", "pipe"]);
        let mut run = run.spawn().unwrap();
        let start = Instant::now();
        let status = || {
            let (_, stdout, _) = setup.run(&["--json", "flows", "inspect", "pipe"]);
            let inspection: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
            inspection["flow"]["status"].clone()
        };
        while status() != "waiting" {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{label}: the pipeline never waited"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut foreground = None;
        if killed {
            run.kill().unwrap();
            run.wait().unwrap();
        } else {
            foreground = Some(run);
        }

        let parent = setup.inspect("pipe");
        let child = parent["children"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(parent["flow"]["lease"], Value::Null, "{label}: {parent}");
        assert_eq!(parent["flow"]["wait"]["children"], json!([child]), "{label}: {parent}");
        let (_, table, _) = setup.run(&["flows", "inspect", "pipe"]);
        assert!(
            table.contains(&format!("child flow {child}, which waits for a decision")),
            "{label}: {table}"
        );
        assert!(table.contains("`taskflow flows approve pipe`"), "{label}: {table}");
        let waiting = setup.inspect(&child);
        assert_eq!(waiting["flow"]["status"], "waiting", "{label}: {waiting}");
        assert_eq!(waiting["flow"]["lease"], Value::Null, "{label}");
        assert_eq!(waiting["flow"]["wait"]["approval"]["call_id"], CALL_ID, "{label}");
        assert_eq!(setup.runs(), 0, "{label}");
        if killed {
            // Resumed before the decision, the pipeline waits again; nothing ran.
            let (code, _, stderr) = setup.run(&["flows", "resume", "pipe", "--detach"]);
            assert_eq!(code, 0, "{label}: {stderr}");
            assert_eq!(setup.inspect("pipe")["flow"]["status"], "waiting", "{label}");
            assert_eq!(setup.runs(), 0, "{label}");
        }

        let mut approve = vec!["flows", "approve", if on_parent { "pipe" } else { &child }];
        approve.extend(decide);
        let (code, stdout, stderr) = setup.run(&approve);
        assert_eq!(code, 0, "{label}: {stderr}");
        assert!(stdout.contains(&format!("call {CALL_ID} of flow {child}")), "{label}: {stdout}");

        let (code, stdout, stderr) = match foreground {
            // The `taskflow run` that waited runs on by itself.
            Some(run) => cli::outcome(run.wait_with_output().unwrap()),
            None => {
                // The decision makes the pipeline due, which runs its child on.
                let parent = setup.inspect("pipe");
                assert!(parent["flow"]["wake_at"].is_string(), "{label}: {parent}");
                setup.run(&["flows", "resume", "pipe"])
            }
        };
        assert_eq!(code, 0, "{label}: {stdout} {stderr}");
        let done = setup.inspect("pipe");
        assert_eq!(done["flow"]["status"], "succeeded", "{label}: {done}");
        assert_eq!(done["flow"]["state"]["report"], format!("agent said: {ANSWER}"), "{label}");
        assert_eq!(setup.inspect(&child)["flow"]["status"], "succeeded", "{label}");
        assert_eq!(setup.runs(), runs, "{label}");
        let results = setup.model.tool_results();
        assert_eq!(results.len(), 1, "{label}: {results:?}");
        assert!(results[0].starts_with(result), "{label}: {results:?}");
    }
}

/// Over HTTP, a decision posted on a pipeline that waits for its agent step's child is the
/// child's; serve runs the pipeline on to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_a_pipeline_on_once_its_agent_steps_call_is_decided() {
    let setup = setup().await;
    let pipeline = write_pipeline(&setup, "ask");
    let (code, _, stderr) =
        setup.run(&["run", pipeline.to_str().unwrap(), "--id", "pipe", "--detach"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("hint: `taskflow flows approve pipe`"), "{stderr}");
    assert_eq!(setup.inspect("pipe")["flow"]["status"], "waiting");
    let serve = Serve::start(&setup.db, &[], &[]);
    let path = format!("/v1/flows/pipe/approvals/{}", CALL_ID.replace(':', "%3A"));
    let (status, decided) =
        call(client().post(serve.url(&path)).json(&json!({"approve": true}))).await;
    assert_eq!(status, 201, "{decided}");
    wait_until("serve to run the pipeline to its end", async || {
        status_of(&serve, "pipe").await == "succeeded"
    })
    .await;
    assert_eq!(setup.runs(), 1);
    let state = setup.inspect("pipe")["flow"]["state"].clone();
    assert_eq!(state["report"], format!("agent said: {ANSWER}"), "{state}");
}

/// A pipeline whose two `agent` steps both ask: `flows approve PIPELINE` without a call lists
/// the calls its children wait for (flow, call, tool) and decides none; with a call it finds
/// the child that holds it; once one call is left, it is the one decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_pipeline_whose_children_both_wait_names_the_calls_or_finds_the_one() {
    let setup = setup().await;
    let pipeline = setup.db.with_file_name("pipeline.toml");
    let agent = |id: &str, prompt: &str| {
        format!(
            "[[steps]]\nid = \"{id}\"\naction = \"agent\"\n\
             with = {{ prompt = \"{prompt}\", provider = \"vllm\", base_url = {:?}, \
             model = \"k2\", workspace = {:?}, tools = [\"run_command\"], \
             allow_commands = [\"sh\"], ask = [\"run_command\"] }}\n\n",
            setup.base,
            setup.workspace.display().to_string()
        )
    };
    let text = format!(
        "name = \"two asks\"\n\n{}{}[[steps]]\nid = \"report\"\naction = \"echo\"\n\
         with = {{ value = \"{{{{steps.first.output}}}} / {{{{steps.second.output}}}}\" }}\n",
        agent("first", "Run the command (first)."),
        agent("second", "Run the command (second).")
    );
    std::fs::write(&pipeline, text).unwrap();
    let (code, _, stderr) =
        setup.run(&["run", pipeline.to_str().unwrap(), "--id", "pipe", "--detach"]);
    assert_eq!(code, 0, "{stderr}");
    let parent = setup.inspect("pipe");
    assert_eq!(parent["flow"]["status"], "waiting", "{parent}");
    let children: Vec<String> = parent["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|child| child["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(children.len(), 2, "{parent}");
    let holder = |call: &str| {
        children
            .iter()
            .find(|child| setup.inspect(child)["flow"]["wait"]["approval"]["call_id"] == call)
            .unwrap()
            .clone()
    };
    let (first, second) = (holder(CALL_ID), holder(SECOND_CALL_ID));

    let (code, stdout, stderr) = setup.run(&["flows", "approve", "pipe"]);
    assert_eq!(code, 2, "a usage error: {stdout} {stderr}");
    for expected in [
        "flow pipe waits for 2 approvals:".to_owned(),
        format!("{CALL_ID} (run_command) in flow {first}"),
        format!("{SECOND_CALL_ID} (run_command) in flow {second}"),
        "hint: name the call: `taskflow flows approve pipe CALL_ID`".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    }
    assert_eq!(setup.inspect(&first)["flow"]["status"], "waiting", "nothing was decided");
    assert_eq!(setup.inspect(&second)["flow"]["status"], "waiting");

    let (code, stdout, stderr) = setup.run(&["flows", "approve", "pipe", SECOND_CALL_ID]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("call {SECOND_CALL_ID} of flow {second} approved")),
        "{stdout}"
    );
    assert_eq!(setup.inspect(&first)["flow"]["status"], "waiting");
    // One call is left: the pipeline's id is enough.
    let (code, stdout, stderr) = setup.run(&["flows", "approve", "pipe", "--deny"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("call {CALL_ID} of flow {first} denied")), "{stdout}");
    let (code, _, stderr) = setup.run(&["flows", "approve", "pipe"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("decided already") && stderr.contains("flows resume pipe"), "{stderr}");

    let (code, stdout, stderr) = setup.run(&["flows", "resume", "pipe"]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    let done = setup.inspect("pipe");
    assert_eq!(done["flow"]["status"], "succeeded", "{done}");
    assert_eq!(done["flow"]["state"]["report"], format!("{ANSWER} / {ANSWER}"));
    // Its steps are the pipeline's three: the record of each agent step's child is not one.
    assert!(stdout.contains("flow pipe succeeded (3 steps done)"), "{stdout}");
    assert_eq!((&done["flow"]["steps_done"], &done["flow"]["steps_total"]), (&json!(3), &json!(3)));
    let (_, listed, _) = setup.run(&["--json", "flows", "list"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let pipe = listed["flows"].as_array().unwrap().iter().find(|flow| flow["id"] == "pipe");
    let pipe = pipe.unwrap();
    assert_eq!((&pipe["steps_done"], &pipe["steps_total"]), (&json!(3), &json!(3)), "{pipe}");
    assert_eq!(setup.runs(), 1, "the approved call ran, the denied one did not");
}
