//! Workers on several hosts sharing one PostgreSQL database (a scratch schema of the test
//! server), as separate `taskflow worker` processes with distinct host names (TASKFLOW_HOST):
//! one is killed with SIGKILL while flows run, and its flows move to the others once their
//! leases expire. Every flow succeeds, and no completed step ran twice: each step appends its
//! idempotency key to an effects log, and only the steps in flight at the kill appear twice.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use taskflow_store_postgres::scratch::Scratch;

const FLOWS: usize = 200;
const CONCURRENCY: usize = 8;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn taskflow(db: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command.current_dir(root()).args(["--db", db, "--owner", "alice"]).env_remove("TASKFLOW_DB");
    command
}

fn worker(db: &str, host: &str, effects: &Path) -> Child {
    taskflow(db)
        .args(["worker", "--concurrency", &CONCURRENCY.to_string()])
        .args(["--lease-ms", "2000", "--poll-ms", "200", "--grace-ms", "100"])
        .env("TASKFLOW_HOST", host)
        .env("EFFECTS_LOG", effects)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How many flows have each status.
fn statuses(db: &str) -> HashMap<String, usize> {
    let output =
        taskflow(db).args(["--json", "flows", "list", "--limit", "1000"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut counts = HashMap::new();
    for flow in list["flows"].as_array().unwrap() {
        *counts.entry(flow["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not done after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_worker_killed_mid_run_loses_no_flow_and_no_completed_step_runs_twice() {
    let scratch = Scratch::new();
    let db = scratch.url();
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("effects.log");
    let queued = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|part| {
                let db = &db;
                scope.spawn(move || {
                    for i in (part..FLOWS).step_by(4) {
                        let status = taskflow(db)
                            .args(["run", "fixtures/pipelines/workers/effects.toml", "--queue"])
                            .args(["--id", &format!("f-{i}")])
                            .stdout(Stdio::null())
                            .status()
                            .unwrap();
                        assert!(status.success());
                    }
                })
            })
            .collect();
        workers.into_iter().all(|worker| worker.join().is_ok())
    });
    assert!(queued);

    let mut workers: Vec<Child> =
        (0..3).map(|i| worker(&db, &format!("host-{i}"), &effects)).collect();
    wait_until(Duration::from_secs(120), || {
        statuses(&db).get("succeeded").copied().unwrap_or(0) >= FLOWS / 5
    });
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    wait_until(Duration::from_secs(300), || statuses(&db).get("succeeded") == Some(&FLOWS));
    for worker in &mut workers[1..] {
        worker.kill().unwrap();
        worker.wait().unwrap();
    }

    let log = std::fs::read_to_string(&effects).unwrap();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for key in log.lines() {
        *runs.entry(key).or_default() += 1;
    }
    assert_eq!(runs.len(), FLOWS * 2, "every step ran");
    let twice: Vec<_> = runs.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.iter().all(|(_, count)| **count == 2) && twice.len() <= CONCURRENCY,
        "only the steps in flight on the killed worker ran again: {twice:?}"
    );
}
