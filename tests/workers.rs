//! Workers on several hosts sharing one PostgreSQL database (a scratch schema of the test
//! server), as separate `taskflow worker` processes with distinct host names (TASKFLOW_HOST):
//! one is killed with SIGKILL while flows run, and its flows move to the others once their
//! leases expire. Every flow succeeds, and no completed step ran twice: each step appends its
//! idempotency key to an effects log, and only the steps in flight at the kill appear twice.

use std::time::Duration;

use taskflow_store_postgres::scratch::Scratch;

#[path = "support/workers.rs"]
mod workers;

use workers::{EFFECTS_PIPELINE, executions, kill, queue, succeeded, wait_until, worker};

const FLOWS: usize = 200;
const CONCURRENCY: usize = 8;

#[test]
fn a_worker_killed_mid_run_loses_no_flow_and_no_completed_step_runs_twice() {
    let scratch = Scratch::new();
    let db = scratch.url();
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("effects.log");
    queue(&db, EFFECTS_PIPELINE, FLOWS);

    let mut workers: Vec<_> =
        (0..3).map(|i| worker(&db, &format!("host-{i}"), &effects, CONCURRENCY)).collect();
    wait_until(Duration::from_secs(120), || succeeded(&db) >= FLOWS / 5);
    kill(&mut workers[0]);
    wait_until(Duration::from_secs(300), || succeeded(&db) == FLOWS);
    for worker in &mut workers[1..] {
        kill(worker);
    }

    let runs = executions(&effects);
    assert_eq!(runs.len(), FLOWS * 2, "every step ran");
    let twice: Vec<_> = runs.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.iter().all(|(_, count)| **count == 2) && twice.len() <= CONCURRENCY,
        "only the steps in flight on the killed worker ran again: {twice:?}"
    );
}

/// A `taskflow run` beside a worker: the worker, woken when the new flow is queued, may take it
/// before the run does; the run then follows it and ends with its result all the same.
#[test]
fn a_run_beside_a_worker_ends_with_the_flows_result_whoever_runs_it() {
    let scratch = Scratch::new();
    let db = scratch.url();
    let dir = tempfile::tempdir().unwrap();
    let mut running = worker(&db, "host-a", &dir.path().join("effects.log"), 4);
    for _ in 0..5 {
        let run = workers::taskflow(&db)
            .args(["run", "fixtures/pipelines/greeting.toml"])
            .output()
            .unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert!(run.status.success(), "{stderr}");
        assert!(stdout.contains("succeeded"), "{stdout}");
    }
    // A flow that fails is reported failed, whoever ran it, and its step ran once: the run
    // does not take a flow the worker failed for one to resume.
    let count = dir.path().join("count");
    let pipeline = dir.path().join("fails.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"fails\"\n[[steps]]\nid = \"count\"\naction = \"shell\"\n\
             with = {{ command = \"echo x >> '{}'; exit 3\" }}\nretry = {{ max_attempts = 1 }}\n",
            count.display()
        ),
    )
    .unwrap();
    for _ in 0..5 {
        let run = workers::taskflow(&db).arg("run").arg(&pipeline).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
    }
    let runs = std::fs::read_to_string(&count).unwrap();
    assert_eq!(runs.lines().count(), 5, "one run of the step for each flow");
    kill(&mut running);
}
