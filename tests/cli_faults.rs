//! Truthful status after faults: a run killed with SIGKILL leaves its flow `running` under a
//! lease that has not expired, and every view says at once that no one runs it (stalled, why,
//! and what to do) without changing the flow by looking.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

fn taskflow(db: &Path, dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice"])
        .current_dir(dir)
        .env_remove("TASKFLOW_OWNER")
        .env("TASKFLOW_CONFIG", dir.join("no-config.toml"))
        .stdin(Stdio::null());
    command
}

fn stdout(db: &Path, dir: &Path, args: &[&str]) -> String {
    let output = taskflow(db, dir).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn json(db: &Path, dir: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&stdout(db, dir, &args)).unwrap()
}

/// `prepare` then `wait`, a step that sleeps until the file `go` exists (at most 30 s, so a
/// step orphaned by the kill ends on its own).
fn pipeline(dir: &Path) -> PathBuf {
    let path = dir.join("stuck.toml");
    std::fs::write(
        &path,
        r#"name = "stuck"

[[steps]]
id = "prepare"
action = "echo"
with = { value = "ready" }

[[steps]]
id = "wait"
action = "shell"
needs = ["prepare"]
with = { command = "for i in $(seq 600); do [ -f go ] && break; sleep 0.05; done; echo went" }
"#,
    )
    .unwrap();
    path
}

/// Starts `taskflow run` of flow `id` and kills it with SIGKILL once its step `wait` runs.
fn run_and_kill_mid_step(db: &Path, dir: &Path, id: &str) -> u32 {
    let file = pipeline(dir);
    let mut run = taskflow(db, dir)
        .args(["run", file.to_str().unwrap(), "--id", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the step `wait` never started");
        let inspected = taskflow(db, dir).args(["flows", "inspect", id, "--json"]).output();
        if let Ok(output) = inspected
            && output.status.success()
        {
            let document: Value = serde_json::from_slice(&output.stdout).unwrap();
            let steps = document["steps"].as_array().cloned().unwrap_or_default();
            if steps.iter().any(|step| step["name"] == "wait" && step["status"] == "running") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = run.id();
    run.kill().unwrap();
    run.wait().unwrap();
    pid
}

#[test]
fn a_killed_run_is_shown_stalled_at_once_with_its_holder_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let pid = run_and_kill_mid_step(&db, dir.path(), "stuck");
    let history_before = json(&db, dir.path(), &["flows", "history", "stuck"]);

    let listed = json(&db, dir.path(), &["flows", "list"]);
    let flow = &listed["flows"][0];
    assert_eq!(flow["id"], "stuck");
    assert_eq!(flow["status"], "running", "the record still says running");
    assert_eq!(flow["stalled"], true, "but no one runs it: {flow}");
    assert_eq!(flow["stall"]["reason"], "holder_gone");
    let holder = flow["stall"]["holder"].as_str().unwrap();
    assert!(holder.ends_with(&format!(":{pid}")), "{holder}");

    let stalled = json(&db, dir.path(), &["flows", "list", "--status", "stalled"]);
    let ids: Vec<&Value> = stalled["flows"].as_array().unwrap().iter().map(|f| &f["id"]).collect();
    assert_eq!(ids, ["stuck"]);
    let table = stdout(&db, dir.path(), &["flows", "list"]);
    assert!(table.contains("running (stalled)"), "{table}");

    let inspected = json(&db, dir.path(), &["flows", "inspect", "stuck"]);
    assert_eq!(inspected["flow"]["stall"], flow["stall"]);
    let text = stdout(&db, dir.path(), &["flows", "inspect", "stuck"]);
    let line = text.lines().find(|line| line.starts_with("stalled")).expect(&text);
    assert!(line.contains(&format!("its runner {holder} is gone")), "{line}");
    assert!(line.contains("`taskflow flows resume stuck` continues it"), "{line}");

    let history_after = json(&db, dir.path(), &["flows", "history", "stuck"]);
    assert_eq!(history_after, history_before, "looking changes nothing");

    // The fix works as told: resume takes the flow over and finishes it.
    std::fs::write(dir.path().join("go"), "").unwrap();
    let resumed = taskflow(&db, dir.path()).args(["flows", "resume", "stuck"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let done = json(&db, dir.path(), &["flows", "inspect", "stuck"]);
    assert_eq!(done["flow"]["status"], "succeeded");
    assert_eq!(done["flow"]["stalled"], false);
    assert_eq!(done["flow"]["stall"], Value::Null);
    let none = json(&db, dir.path(), &["flows", "list", "--status", "stalled"]);
    assert_eq!(none["flows"], serde_json::json!([]));
    let empty = stdout(&db, dir.path(), &["flows", "list", "--status", "stalled"]);
    assert!(empty.contains("no stalled flows"), "{empty}");
}
