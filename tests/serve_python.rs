//! A client in another language, for real: the standard-library Python client
//! (`clients/python/taskflow_client.py`) and the mirrored-flow plugin built on it
//! (`examples/mirrored/plugin.py`), run with the Python of `scripts/test` against the real
//! `taskflow serve`. The flow's journal, revisions and end are checked through the API; a second
//! writer between the plugin's reads makes it meet a real 409; the client's paging, errors and
//! event stream (across a restart of serve) are checked by `tests/python/client_checks.py`.

#[path = "support/python.rs"]
mod python;
#[path = "support/serve.rs"]
mod serve_process;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use serve_process::{BIN, Serve, folder};

const PLUGIN: &str = "examples/mirrored/plugin.py";
const LIMIT: Duration = Duration::from_secs(90);

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A GET of serve's API, as JSON (with the bearer token, when given).
async fn get(serve: &Serve, path: &str, token: Option<&str>) -> Value {
    let mut request = client().get(serve.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "GET {path}: {}", response.status());
    response.json().await.unwrap()
}

async fn post(serve: &Serve, path: &str, body: &Value) -> (u16, Value) {
    let response = client().post(serve.url(path)).json(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The plugin's `--json` lines.
fn lines(output: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn succeeded(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "the plugin failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    lines(output)
}

/// The flow, or None while there is no such flow yet.
async fn flow_if_any(serve: &Serve, id: &str) -> Option<Value> {
    let response = client().get(serve.url(&format!("/v1/flows/{id}"))).send().await.unwrap();
    if response.status() == 404 {
        return None;
    }
    assert!(response.status().is_success(), "GET /v1/flows/{id}: {}", response.status());
    Some(response.json::<Value>().await.unwrap()["flow"].clone())
}

/// A flow's revisions, oldest first.
async fn history(serve: &Serve, id: &str, token: Option<&str>) -> Vec<Value> {
    let history = get(serve, &format!("/v1/flows/{id}/history"), token).await;
    history["revisions"].as_array().unwrap().clone()
}

fn assert_consecutive(revisions: &[Value]) {
    let numbers: Vec<u64> = revisions.iter().map(|r| r["revision"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, expected, "every accepted report is the next revision");
}

/// The revision that changed the status from `from` to `to`.
fn transition<'a>(revisions: &'a [Value], from: &str, to: &str) -> &'a Value {
    revisions
        .iter()
        .find(|r| r["change"]["status"] == json!({"before": from, "after": to}))
        .unwrap_or_else(|| panic!("no revision from {from} to {to}: {revisions:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_reports_its_mirrored_flow_step_by_step_to_its_end_with_expected_revisions() {
    let (dir, db) = folder();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[serve.tokens]\ncarol = { owner = \"carol\", token_env = \"T_CAROL\" }\n",
    )
    .unwrap();
    let token = "carol-token-0123456789";
    let env = [("TASKFLOW_CONFIG", config.to_str().unwrap()), ("T_CAROL", token)];
    let serve = Serve::start(&db, &[], &env);
    let published = dir.path().join("digest.json");
    let args = [
        "--server",
        &serve.url,
        "--id",
        "digest-1",
        "--wait-seconds",
        "0.2",
        "--output",
        published.to_str().unwrap(),
        "--json",
    ];
    // The token from the environment, where the client looks for it.
    let run = || python::finish(python::spawn(PLUGIN, &args, &[("TASKFLOW_TOKEN", token)]), LIMIT);
    let said = succeeded(&run());
    let steps: Vec<&str> = said
        .iter()
        .filter(|line| line["event"] == "step")
        .map(|line| line["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["fetch", "transform", "publish"]);
    let end = said.last().unwrap();
    assert_eq!((end["status"].clone(), end["conflicts"].clone()), (json!("succeeded"), json!(0)));

    let token = Some(token);
    let inspected = get(&serve, "/v1/flows/digest-1", token).await;
    let flow = &inspected["flow"];
    assert_eq!(
        (&flow["status"], &flow["owner"], &flow["sync_mode"], &flow["revision"]),
        (&json!("succeeded"), &json!("carol"), &json!("mirrored"), &end["revision"])
    );
    assert_eq!(
        flow["state"],
        json!({"phase": "publish", "done": ["fetch", "transform", "publish"]})
    );
    assert_eq!((&flow["wait"], &flow["current_step"]), (&Value::Null, &json!("publish")));
    let journal = inspected["steps"].as_array().unwrap();
    let names: Vec<(&str, &str, u64)> = journal
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
                s["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("fetch", "succeeded", 1), ("transform", "succeeded", 1), ("publish", "succeeded", 1)]
    );
    assert_eq!(journal[0]["output"]["items"], 5);
    assert_eq!(journal[2]["output"]["path"], published.to_str().unwrap());
    let digest: Value =
        serde_json::from_str(&std::fs::read_to_string(&published).unwrap()).unwrap();
    assert_eq!(digest["top"], journal[1]["output"]["top"]);

    let revisions = history(&serve, "digest-1", token).await;
    assert_consecutive(&revisions);
    assert_eq!(revisions.len() as u64, end["revision"].as_u64().unwrap());
    let waiting = transition(&revisions, "running", "waiting");
    assert_eq!(
        waiting["change"]["wait"]["after"],
        json!({"for": "publish window", "seconds": 0.2})
    );
    let back = transition(&revisions, "waiting", "running");
    assert_eq!(
        back["change"]["wait"],
        json!({"before": {"for": "publish window", "seconds": 0.2}, "after": null})
    );
    assert!(back["revision"].as_u64() > waiting["revision"].as_u64());
    transition(&revisions, "running", "succeeded");

    // Run again with the same id, it finds the ended flow and changes nothing.
    let again = succeeded(&run());
    assert_eq!((again.len(), again[0]["created"].clone()), (1, json!(false)));
    assert_eq!(history(&serve, "digest-1", token).await.len(), revisions.len());
}

/// Starts the plugin with `--approve-file`, and waits until its flow is `waiting` for it.
async fn plugin_waiting_for_approval(serve: &Serve, dir: &Path, id: &str) -> (Child, Value) {
    let approval = dir.join(format!("{id}.approved"));
    let args = ["--server", &serve.url, "--id", id, "--json"];
    let mut plugin = python::spawn(
        PLUGIN,
        &[&args[..], &["--approve-file", approval.to_str().unwrap()]].concat(),
        &[],
    );
    let started = Instant::now();
    let flow = loop {
        let flow = flow_if_any(serve, id).await;
        if let Some(flow) = flow.filter(|flow| flow["status"] == "waiting") {
            break flow;
        }
        if plugin.try_wait().unwrap().is_some() {
            let output = plugin.wait_with_output().unwrap();
            panic!("the plugin ended before waiting: {}", String::from_utf8_lossy(&output.stderr));
        }
        assert!(started.elapsed() < LIMIT, "flow {id} never became waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        flow["wait"],
        json!({"for": "approval", "file": approval.to_str().unwrap(), "timeout_s": 600.0})
    );
    (plugin, flow)
}

fn approve(dir: &Path, id: &str) {
    std::fs::write(dir.join(format!("{id}.approved")), "yes\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_between_the_plugins_reads_makes_it_read_again_and_keep_what_it_wrote() {
    let (dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let (plugin, waiting) = plugin_waiting_for_approval(&serve, dir.path(), "digest-2").await;
    let seen = waiting["revision"].as_u64().unwrap();
    // While the plugin waits (it reads nothing meanwhile), someone else changes the flow.
    let mut state = waiting["state"].clone();
    state["reviewer"] = json!("bob");
    let (status, changed) = post(
        &serve,
        "/v1/flows/digest-2/report",
        &json!({"expected_revision": seen, "goal": "publish the reviewed digest", "state": state}),
    )
    .await;
    assert_eq!((status, changed["flow"]["revision"].clone()), (200, json!(seen + 1)));
    approve(dir.path(), "digest-2");

    let said = succeeded(&python::finish(plugin, LIMIT));
    let conflicts: Vec<&Value> = said.iter().filter(|line| line["event"] == "conflict").collect();
    assert_eq!(conflicts.len(), 1, "{said:?}");
    assert_eq!(
        (&conflicts[0]["expected"], &conflicts[0]["current"], &conflicts[0]["read"]),
        (&json!(seen), &json!(seen + 1), &json!(seen + 1))
    );
    let end = said.last().unwrap();
    assert_eq!((end["status"].clone(), end["conflicts"].clone()), (json!("succeeded"), json!(1)));

    let flow = get(&serve, "/v1/flows/digest-2", None).await["flow"].clone();
    assert_eq!(flow["goal"], "publish the reviewed digest", "the other writer's goal stays");
    assert_eq!(flow["state"]["reviewer"], "bob", "and what it added to the state");
    assert_eq!(flow["state"]["done"], json!(["fetch", "transform", "publish"]));
    let revisions = history(&serve, "digest-2", None).await;
    assert_consecutive(&revisions);
    assert_eq!(revisions[seen as usize]["change"]["goal"]["after"], "publish the reviewed digest");
    let resumed = transition(&revisions, "waiting", "running");
    assert_eq!(resumed["revision"], json!(seen + 2), "reported again at the current revision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_killed_half_way_and_run_again_does_not_do_its_finished_steps_again() {
    let (dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let (mut plugin, waiting) = plugin_waiting_for_approval(&serve, dir.path(), "digest-4").await;
    plugin.kill().unwrap();
    plugin.wait().unwrap();
    approve(dir.path(), "digest-4");
    let approval = dir.path().join("digest-4.approved");
    let args = ["--server", &serve.url, "--id", "digest-4", "--json", "--approve-file"];
    let said = succeeded(&python::finish(
        python::spawn(PLUGIN, &[&args[..], &[approval.to_str().unwrap()]].concat(), &[]),
        LIMIT,
    ));
    assert_eq!((&said[0]["created"], &said[0]["revision"]), (&json!(false), &waiting["revision"]));
    let steps: Vec<(&str, bool)> = said
        .iter()
        .filter(|line| line["event"] == "step")
        .map(|line| (line["step"].as_str().unwrap(), line.get("again").is_none()))
        .collect();
    assert_eq!(steps, [("fetch", false), ("transform", false), ("publish", true)]);
    assert_eq!(said.last().unwrap()["status"], "succeeded");

    let inspected = get(&serve, "/v1/flows/digest-4", None).await;
    let journal: Vec<(&str, u64)> = inspected["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(journal, [("fetch", 1), ("transform", 1), ("publish", 1)], "each step once");
    assert_eq!(inspected["flow"]["state"]["done"], json!(["fetch", "transform", "publish"]));
    assert_consecutive(&history(&serve, "digest-4", None).await);
}

#[test]
fn a_plugin_that_cannot_reach_serve_says_so_in_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = format!("http://{closed}");
    let output = python::finish(python::spawn(PLUGIN, &["--server", &server], &[]), LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("error: cannot reach serve at {server}")), "{stderr}");
    assert!(!stderr.contains("Traceback") && stderr.lines().count() == 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_plugin_waits_ends_its_flow_cancelled() {
    let (dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let (plugin, _) = plugin_waiting_for_approval(&serve, dir.path(), "digest-3").await;
    let (status, _) = post(&serve, "/v1/flows/digest-3/cancel", &json!({})).await;
    assert_eq!(status, 200);
    approve(dir.path(), "digest-3");
    let output = python::finish(plugin, LIMIT);
    assert_eq!(output.status.code(), Some(1));
    let said = lines(&output);
    assert_eq!(said.last().unwrap()["status"], "cancelled", "{said:?}");
    let inspected = get(&serve, "/v1/flows/digest-3", None).await;
    assert_eq!(inspected["flow"]["status"], "cancelled");
    let steps: Vec<&str> = inspected["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["fetch", "transform"], "nothing published after the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_pages_maps_every_error_and_follows_events_across_a_restart_of_serve() {
    let (dir, db) = folder();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[serve.tokens]\nalice = { owner = \"alice\", token_env = \"T_ALICE\" }\n\
         bob = { owner = \"bob\", token_env = \"T_BOB\" }\n",
    )
    .unwrap();
    let (alice, bob) = ("alice-token-0123456789", "bob-token-0123456789xx");
    let env = [("TASKFLOW_CONFIG", config.to_str().unwrap()), ("T_ALICE", alice), ("T_BOB", bob)];
    let mut serve = Serve::start(&db, &[], &env);
    let mut checks = python::spawn("tests/python/client_checks.py", &[&serve.url, alice, bob], &[]);
    let (sender, said) = mpsc::channel();
    let stdout = checks.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = sender.send(line.unwrap());
        }
    });
    let mut summary = None;
    while let Ok(line) = said.recv_timeout(LIMIT) {
        if line == "restart" {
            let address = serve.address().to_owned();
            serve.kill();
            let cancel = Command::new(BIN)
                .arg("--db")
                .arg(&db)
                .args(["--owner", "alice", "flows", "cancel", "watched"])
                .output()
                .unwrap();
            assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
            serve = Serve::start_on(&db, &address, &[], &env);
        } else if let Some(json) = line.strip_prefix("ok ") {
            summary = Some(serde_json::from_str::<Value>(json).unwrap());
        }
    }
    let output = python::finish(checks, LIMIT);
    assert!(
        output.status.success() && summary.is_some(),
        "the client checks failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary.unwrap();
    assert_eq!(summary["paged"], 7);
    assert!(summary["reconnects"].as_u64().unwrap() >= 1, "{summary}");
    let watched = get(&serve, "/v1/flows/watched", Some(alice)).await["flow"].clone();
    assert_eq!(watched["status"], "cancelled");
    assert!(watched["cancel_requested_at"].is_string(), "the cancel made while serve was down");
}
