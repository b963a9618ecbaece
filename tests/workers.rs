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

/// A `taskflow run` beside a worker runs its flow itself: the flow is created with the run's
/// lease in one transaction, so the worker, woken when the flow is queued, finds nothing to
/// take (the steps run in the run's environment, not the worker's). So do a fork and a resume
/// that raises a budget: the new flow, or the failed one opened again, is the command's at once.
#[test]
fn a_run_beside_a_worker_runs_its_own_flow_and_so_do_a_fork_and_a_budget_resume() {
    let scratch = Scratch::new();
    let db = scratch.url();
    let dir = tempfile::tempdir().unwrap();
    let mut running = worker(&db, "host-a", &dir.path().join("effects.log"), 4);
    // The step fails at its first run (one attempt), then says where it runs.
    let (marker, count) = (dir.path().join("failed once"), dir.path().join("count"));
    let pipeline = dir.path().join("where.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"where\"\n[[steps]]\nid = \"where\"\naction = \"shell\"\n\
             with = {{ command = \"echo x >> '{count}'; test -e '{marker}' || {{ touch \
             '{marker}'; exit 3; }}; echo on ${{TASKFLOW_HOST:-the caller}}\" }}\n\
             retry = {{ max_attempts = 1 }}\n",
            count = count.display(),
            marker = marker.display(),
        ),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut command = workers::taskflow(&db);
        command.env_remove("TASKFLOW_HOST").arg("--json").args(args);
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let document: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("{error}: {stdout}{stderr}"));
        (output.status.code(), document)
    };
    let path = pipeline.to_str().unwrap();
    let (code, failed) = command(&["run", path]);
    assert_eq!((code, &failed["flow"]["status"]), (Some(1), &serde_json::json!("failed")));
    let id = failed["flow"]["id"].as_str().unwrap().to_owned();
    let here = |document: &serde_json::Value| {
        assert_eq!(document["flow"]["status"], "succeeded", "{document:#}");
        assert_eq!(document["flow"]["state"]["where"], "on the caller", "{document:#}");
    };
    let (code, resumed) = command(&["flows", "resume", &id, "--max-tokens", "1000"]);
    assert_eq!(code, Some(0));
    here(&resumed);
    for _ in 0..5 {
        let (code, ran) = command(&["run", path]);
        assert_eq!(code, Some(0));
        here(&ran);
    }
    let (code, forked) = command(&["flows", "fork", &id, "--from-step", "1"]);
    assert_eq!(code, Some(0));
    here(&forked);
    let runs = std::fs::read_to_string(&count).unwrap();
    assert_eq!(runs.lines().count(), 8, "one run of the step for each run, resume and fork");
    kill(&mut running);
}
