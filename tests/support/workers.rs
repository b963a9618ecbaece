//! `taskflow worker` processes on a PostgreSQL database (a scratch schema of the test server),
//! the flows they run, and the effects log their steps append to: each step of
//! `fixtures/pipelines/workers/effects.toml` writes its idempotency key to the file named by
//! EFFECTS_LOG once per execution, so a test counts how often each step ran.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The pipeline whose steps log their executions.
pub const EFFECTS_PIPELINE: &str = "fixtures/pipelines/workers/effects.toml";

pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The binary on `db`, as alice.
pub fn taskflow(db: &str) -> Command {
    let mut command = on(db);
    command.args(["--owner", "alice"]);
    command
}

/// The binary on database `db`, as no owner: a worker runs every owner's flows.
fn on(db: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command.current_dir(root()).args(["--db", db]).env_remove("TASKFLOW_DB");
    command
}

/// A running `taskflow worker`, killed (SIGKILL) and reaped when dropped: a test or a bench
/// that fails half-way leaves no worker polling the database behind it.
pub struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        // After [`kill`] the process is reaped already, and std sends it nothing more.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A worker on `db` calling itself `host`, running at most `concurrency` flows at once, with
/// 2 s leases, polling every 200 ms.
pub fn worker(db: &str, host: &str, effects: &Path, concurrency: usize) -> Worker {
    worker_to(db, host, effects, concurrency, Stdio::null())
}

/// [`worker`], its stderr going to `stderr`.
pub fn worker_to(
    db: &str,
    host: &str,
    effects: &Path,
    concurrency: usize,
    stderr: impl Into<Stdio>,
) -> Worker {
    let child = on(db)
        .args(["worker", "--concurrency", &concurrency.to_string()])
        .args(["--lease-ms", "2000", "--poll-ms", "200", "--grace-ms", "100"])
        .env("TASKFLOW_HOST", host)
        .env("EFFECTS_LOG", effects)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Worker(child)
}

/// Queues `count` runs of `pipeline`, ids `f-0` …, from four processes at once.
pub fn queue(db: &str, pipeline: &str, count: usize) {
    let queued = std::thread::scope(|scope| {
        let queuers: Vec<_> = (0..4)
            .map(|part| {
                scope.spawn(move || {
                    for i in (part..count).step_by(4) {
                        let status = taskflow(db)
                            .args(["run", pipeline, "--queue"])
                            .args(["--id", &format!("f-{i}")])
                            .stdout(Stdio::null())
                            .status()
                            .unwrap();
                        assert!(status.success());
                    }
                })
            })
            .collect();
        queuers.into_iter().all(|queuer| queuer.join().is_ok())
    });
    assert!(queued);
}

/// How many flows have each status; `None` while the database cannot be read.
pub fn try_statuses(db: &str) -> Option<HashMap<String, usize>> {
    let output =
        taskflow(db).args(["--json", "flows", "list", "--limit", "1000"]).output().unwrap();
    if !output.status.success() {
        return None;
    }
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut counts = HashMap::new();
    for flow in list["flows"].as_array().unwrap() {
        *counts.entry(flow["status"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    Some(counts)
}

/// How many flows have each status.
pub fn statuses(db: &str) -> HashMap<String, usize> {
    try_statuses(db).expect("flows list failed")
}

/// How many flows succeeded (0 while the database cannot be read).
pub fn succeeded(db: &str) -> usize {
    try_statuses(db).and_then(|counts| counts.get("succeeded").copied()).unwrap_or(0)
}

/// Polls `done` every 200 ms; fails after `limit`.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not done after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How many times each idempotency key appears in the effects log.
pub fn executions(effects: &Path) -> HashMap<String, usize> {
    let log = std::fs::read_to_string(effects).unwrap();
    let mut runs = HashMap::new();
    for key in log.lines() {
        *runs.entry(key.to_owned()).or_default() += 1;
    }
    runs
}

/// Kills `worker` with SIGKILL and reaps it.
pub fn kill(worker: &mut Worker) {
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
}
