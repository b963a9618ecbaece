//! taskflow as an MCP server, driven by a real MCP client: the official Python SDK (`mcp` from
//! PyPI) runs `tests/python/mcp_checks.py` against `taskflow mcp serve` over stdio and against
//! the `/mcp` endpoint of `taskflow serve` over streamable HTTP, with the fixtures of
//! `fixtures/pipelines` and an agent run (recorded turns, offline; over stdio a pipeline's
//! `agent` step) whose `write_file` call waits for approval. The script checks each tool; this
//! file checks what it left behind through the CLI and the HTTP API: the same documents, the
//! approved call run once, and over stdio a flow given back when its session ended and
//! finished by `flows resume`.

#[path = "support/python.rs"]
mod python;
#[path = "support/serve.rs"]
mod serve_process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use serve_process::{BIN, Serve, call, client, folder};

const LIMIT: Duration = Duration::from_secs(120);

/// `taskflow --db DB --owner alice ARGS…`, with no config file but `config`.
fn taskflow(db: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice"])
        .args(args)
        .env("TASKFLOW_CONFIG", config)
        .env_remove("TASKFLOW_OWNER")
        .output()
        .unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// An agent run of alice's, detached while its `write_file` call waits for approval; its id.
fn waiting_for_approval(db: &Path, config: &Path, workspace: &Path) -> String {
    let script = python::repository("fixtures/agent/write_with_approval.turns.toml");
    let args = [
        "--json",
        "agent",
        "--provider",
        "replay",
        "--script",
        script.to_str().unwrap(),
        "--workspace",
        workspace.to_str().unwrap(),
        "--tools",
        "write_file",
        "--ask",
        "write_file",
        "--detach",
        "Write the file.",
    ];
    let flow = json_of(&taskflow(db, config, &args))["flow"].clone();
    assert_eq!(flow["status"], "waiting", "{flow}");
    flow["id"].as_str().unwrap().to_owned()
}

/// A pipeline of alice's, detached while its `agent` step's `write_file` call waits for
/// approval; its id. A decision about it makes the pipeline due, which the process that took
/// the decision runs on.
fn pipeline_waiting_for_approval(db: &Path, config: &Path, workspace: &Path) -> String {
    let script = python::repository("fixtures/agent/write_with_approval.turns.toml");
    let pipeline = workspace.with_file_name("approve.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"approve\"\n\n[[steps]]\nid = \"write\"\naction = \"agent\"\n\n\
             [steps.with]\nprovider = \"replay\"\nscript = {:?}\nworkspace = {:?}\n\
             tools = [\"write_file\"]\nask = [\"write_file\"]\nprompt = \"Write the file.\"\n",
            script.to_str().unwrap(),
            workspace.to_str().unwrap()
        ),
    )
    .unwrap();
    let output = taskflow(db, config, &["--json", "run", "--detach", pipeline.to_str().unwrap()]);
    let flow = json_of(&output)["flow"].clone();
    assert_eq!(flow["status"], "waiting", "{flow}");
    flow["id"].as_str().unwrap().to_owned()
}

/// Runs the checks; their summary.
fn checks(args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = python::finish(python::spawn("tests/python/mcp_checks.py", args, env), LIMIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().find_map(|line| line.strip_prefix("ok "));
    match (output.status.success(), summary) {
        (true, Some(summary)) => serde_json::from_str(summary).unwrap(),
        _ => {
            panic!("the MCP checks failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr))
        }
    }
}

/// What every run of the checks ends with, whichever the transport; `also` are flows of the
/// approval's tree that the checks list too (a pipeline's agent run).
fn assert_common(summary: &Value, approval: &str, also: &[&str], workspace: &Path) {
    let mut flows = json!({
        approval: "succeeded",
        "greeting-1": "succeeded",
        "sleepy": "cancelled",
        "waiter": "succeeded",
    });
    for flow in also {
        flows[flow] = json!("succeeded");
    }
    assert_eq!(summary["flows"], flows, "{summary}");
    let refused = ["cancel_flow", "decide_approval", "flow_history", "inspect_flow"]
        .into_iter()
        .chain(["resume_flow", "signal_flow"]);
    for tool in refused {
        assert_eq!(summary["bob"][tool], "not_found", "{tool}: {summary}");
    }
    // The approved call ran exactly once.
    let written = std::fs::read_to_string(workspace.join("approved.txt")).unwrap();
    assert_eq!(written, "written after approval\n");
}

fn fixtures() -> PathBuf {
    python::repository("fixtures/pipelines")
}

#[test]
fn over_stdio_an_agent_sees_its_owners_flows_as_tools_and_a_session_end_loses_nothing() {
    let (dir, db) = folder();
    let config = PathBuf::from("/dev/null");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let approval = pipeline_waiting_for_approval(&db, &config, &workspace);
    let fixtures = fixtures();
    let args = ["stdio", BIN, db.to_str().unwrap(), fixtures.to_str().unwrap(), &approval];
    let summary = checks(&args, &[("TASKFLOW_CONFIG", config.to_str().unwrap())]);
    // The pipeline the decision made due ran on in the session that took it.
    let pipeline = json_of(&taskflow(&db, &config, &["--json", "flows", "inspect", &approval]));
    let agent_run = pipeline["children"][0]["id"].as_str().unwrap();
    assert_common(&summary, &approval, &[agent_run], &workspace);

    // The tools answer with the CLI's documents.
    let inspected = json_of(&taskflow(&db, &config, &["--json", "flows", "inspect", "greeting-1"]));
    assert_eq!(summary["inspected"], inspected);

    // The session ended while `left-behind` ran: its running step reached its checkpoint and
    // the flow was given back; `flows resume` finishes it without running that step again.
    let left = json_of(&taskflow(&db, &config, &["--json", "flows", "inspect", "left-behind"]));
    assert_eq!(
        (&left["flow"]["status"], &left["flow"]["lease"]),
        (&json!("running"), &Value::Null)
    );
    let statuses: Vec<&Value> =
        left["steps"].as_array().unwrap().iter().map(|s| &s["status"]).collect();
    assert_eq!(statuses, [&json!("succeeded")], "{left}");
    let resumed = json_of(&taskflow(&db, &config, &["--json", "flows", "resume", "left-behind"]));
    assert_eq!(resumed["flow"]["status"], "succeeded", "{resumed}");
    let steps: Vec<(&str, u64)> = resumed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["name"].as_str().unwrap(), step["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(steps, [("pause", 1), ("after", 1)], "{resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_serves_mcp_endpoint_acts_for_the_tokens_owner_only() {
    let (dir, db) = folder();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[serve.tokens]\nalice = { owner = \"alice\", token_env = \"T_ALICE\", host = true }\n\
         bob = { owner = \"bob\", token_env = \"T_BOB\" }\n",
    )
    .unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let approval = waiting_for_approval(&db, &config, &workspace);
    let (alice, bob) = ("alice-token-0123456789", "bob-token-0123456789xx");
    let env = [("TASKFLOW_CONFIG", config.to_str().unwrap()), ("T_ALICE", alice), ("T_BOB", bob)];
    let serve = Serve::start(&db, &[], &env);
    let fixtures = fixtures();
    let args = ["http", &serve.url, alice, bob, fixtures.to_str().unwrap(), &approval];
    let summary = checks(&args, &[]);
    assert_common(&summary, &approval, &[], &workspace);

    // The tools answer with serve's documents.
    let (status, inspected) =
        call(client().get(serve.url("/v1/flows/greeting-1")).bearer_auth(alice)).await;
    assert_eq!(status, 200);
    assert_eq!(summary["inspected"], inspected);
}
