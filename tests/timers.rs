//! Durable timers and signals through the `taskflow` binary: `taskflow run` waits in the
//! foreground for a `sleep` and for a signal sent by `taskflow flows signal` from another
//! process; a waiting flow holds no lease and says what it waits for; serve wakes a flow whose
//! timer is due and one whose signal arrives over HTTP, and continues one whose foreground run
//! was killed while it waited.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod support;

use support::{Serve, call, client, folder, status_of, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

fn taskflow(db: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.arg("--db").arg(db).args(["--owner", "alice"]).env_remove("TASKFLOW_OWNER");
    command
}

fn output(db: &Path, args: &[&str]) -> Output {
    taskflow(db).args(args).output().unwrap()
}

/// `--json` output of a command that succeeds.
fn json_of(db: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = output(db, &all);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn spawn_run(db: &Path, args: &[&str]) -> Child {
    taskflow(db)
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes a pipeline file into `dir`.
fn pipeline(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const REVIEW: &str = r#"
name = "review"

[[steps]]
id = "draft"
action = "echo"
with = { value = "the draft" }

[[steps]]
id = "approval"
action = "wait_signal"
needs = ["draft"]
with = { name = "approve", timeout = "1h" }

[[steps]]
id = "publish"
action = "echo"
with = { value = "{{steps.approval.output}}" }
"#;

const PAUSE: &str = r#"
name = "pause"

[[steps]]
id = "pause"
action = "sleep"
with = { for = "1500ms" }

[[steps]]
id = "after"
action = "echo"
needs = ["pause"]
with = { value = "woke" }
"#;

/// Polls `flows inspect --json ID` until `ready` holds.
fn inspect_until(db: &Path, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let out = output(db, &["--json", "flows", "inspect", id]);
        if out.status.success() {
            let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
            if ready(&inspected) {
                return inspected;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_exit(mut child: Child) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the run never ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn run_waits_in_the_foreground_for_a_timer_and_for_a_signal_from_another_process() {
    let (dir, db) = folder();
    let pause = pipeline(dir.path(), "pause.toml", PAUSE);
    let started = Instant::now();
    let out = output(&db, &["run", &pause, "--id", "pause-1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "flow pause-1 succeeded (2 steps done)"
    );

    let review = pipeline(dir.path(), "review.toml", REVIEW);
    let run = spawn_run(&db, &[&review, "--id", "review-1"]);
    let waiting = inspect_until(&db, "review-1", "the flow to wait", |inspected| {
        inspected["flow"]["status"] == "waiting"
    });
    let flow = &waiting["flow"];
    assert_eq!(flow["lease"], Value::Null, "a waiting flow holds no lease");
    assert_eq!(flow["wait"]["signals"], json!(["approve"]));
    assert_eq!(flow["wait"]["steps"][0]["step"], "approval");
    let timeout = flow["wait"]["until"].as_str().unwrap();
    assert!(timeout > flow["updated_at"].as_str().unwrap(), "the timeout is a timer: {timeout}");
    assert_eq!(flow["wake_at"], json!(timeout));

    // A payload that is not JSON is refused where it goes wrong, and nothing is sent.
    let bad = output(&db, &["flows", "signal", "review-1", "approve", "--data", "{\"ok\": }"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--data is not JSON (line 1, column 8)"), "{stderr}");
    let missing = output(&db, &["flows", "signal", "nobody", "approve"]);
    assert_eq!(missing.status.code(), Some(1));

    // A name no step of its pipeline waits for is refused, naming those it waits for.
    let misspelt = output(&db, &["flows", "signal", "review-1", "aprove"]);
    assert_eq!(misspelt.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&misspelt.stderr).lines().next(),
        Some("error: flow review-1 waits for no signal `aprove`: its pipeline waits for `approve`")
    );

    // Sent, the flow is due; who runs it on is not known to the sender, so it names each that may.
    let sent = output(&db, &["flows", "signal", "review-1", "approve", "--data", "{\"ok\": true}"]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let said = String::from_utf8_lossy(&sent.stdout);
    assert!(said.starts_with("signal approve (#"), "{said}");
    assert!(
        said.trim_end().ends_with(
            "sent to flow review-1 (waiting, due now: the run that waits for it, or a running \
             serve or worker, runs it on, else `taskflow flows resume review-1`)"
        ),
        "{said}"
    );
    let out = wait_for_exit(run);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inspected = json_of(&db, &["flows", "inspect", "review-1"]);
    assert_eq!(inspected["flow"]["state"], json!({"publish": {"ok": true}}));
    let approval = &inspected["steps"][1];
    assert_eq!(
        (approval["attempt"].clone(), approval["output"].clone()),
        (json!(1), json!({"ok": true}))
    );

    // An ended flow takes no signal.
    let late = output(&db, &["flows", "signal", "review-1", "approve"]);
    assert_eq!(late.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&late.stderr).contains("already ended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_wakes_flows_whose_timer_is_due_or_whose_signal_arrives() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let spec = json!({"steps": [
        {"id": "pause", "action": "sleep", "with": {"for": "1s"}},
        {"id": "approval", "action": "wait_signal", "needs": ["pause"], "with": {"name": "approve"}},
        {"id": "publish", "action": "echo", "with": {"value": "{{steps.approval.output}}"}},
    ]});
    let body = json!({"id": "digest-1", "name": "digest", "spec": spec});
    let (status, created) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    // The timer fires by itself; then the flow waits for its signal, holding nothing.
    wait_until("the flow to wait for its signal", async || {
        let (_, inspected) = call(http.get(serve.url("/v1/flows/digest-1"))).await;
        inspected["flow"]["wait"]["signals"] == json!(["approve"])
    })
    .await;
    let (_, inspected) = call(http.get(serve.url("/v1/flows/digest-1"))).await;
    assert_eq!(inspected["steps"][0]["status"], "succeeded");
    assert_eq!(inspected["flow"]["lease"], Value::Null);

    let signal = |name: &str, body: &str| {
        http.post(serve.url(&format!("/v1/flows/digest-1/signals/{name}")))
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let (status, error) = call(signal("approve", "{\"by\": ")).await;
    assert_eq!(status, 400, "{error}");
    let (status, sent) = call(signal("approve", "{\"by\": \"bob\"}")).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["signal"]["payload"], json!({"by": "bob"}));
    wait_until("the flow to succeed", async || status_of(&serve, "digest-1").await == "succeeded")
        .await;
    let (_, inspected) = call(http.get(serve.url("/v1/flows/digest-1"))).await;
    assert_eq!(inspected["flow"]["state"], json!({"publish": {"by": "bob"}}));
    let (status, _) = call(signal("approve", "")).await;
    assert_eq!(status, 422, "an ended flow takes no signal");
    let (status, _) = call(http.post(serve.url("/v1/flows/nobody/signals/approve"))).await;
    assert_eq!(status, 404);
}

#[test]
fn a_run_killed_while_it_waits_is_continued_by_serve() {
    let (dir, db) = folder();
    let pause = pipeline(dir.path(), "pause.toml", PAUSE);
    let mut run = spawn_run(&db, &[&pause, "--id", "pause-2"]);
    inspect_until(&db, "pause-2", "the flow to wait", |inspected| {
        inspected["flow"]["status"] == "waiting"
    });
    run.kill().unwrap();
    run.wait().unwrap();
    let _serve = Serve::start(&db, &[], &[]);
    let ended = inspect_until(&db, "pause-2", "serve to finish it", |inspected| {
        inspected["flow"]["status"] == "succeeded"
    });
    let attempts: Vec<Value> =
        ended["steps"].as_array().unwrap().iter().map(|step| step["attempt"].clone()).collect();
    assert_eq!(attempts, [json!(1), json!(1)], "the timer was not started again");
}
