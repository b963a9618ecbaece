//! A cancel reaches a flow running on another host: a long step runs on a `taskflow worker`
//! (TASKFLOW_HOST=host-a), `taskflow flows cancel` runs as another process on host-b, and the
//! flow ends `cancelled` within one second (the cancel is stored at once; the worker running
//! the flow sees it on its next check and stops the step). Its own binary, so the time measured
//! is not that of a machine busy with other tests.

use std::time::{Duration, Instant};

use taskflow_store_postgres::scratch::Scratch;

#[path = "support/workers.rs"]
mod workers;

use workers::{kill, taskflow, wait_until, worker};

fn status(db: &str, id: &str) -> String {
    let output = taskflow(db).args(["--json", "flows", "inspect", id]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let flow: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    flow["flow"]["status"].as_str().unwrap().to_owned()
}

#[test]
fn a_cancel_from_another_host_ends_a_flow_running_on_a_worker_within_one_second() {
    let scratch = Scratch::new();
    let db = scratch.url();
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("effects.log");
    let queued = taskflow(&db)
        .args(["run", "fixtures/pipelines/workers/long_step.toml", "--queue", "--id", "long"])
        .output()
        .unwrap();
    assert!(queued.status.success(), "{}", String::from_utf8_lossy(&queued.stderr));

    let mut running = worker(&db, "host-a", &effects, 4);
    wait_until(Duration::from_secs(60), || {
        std::fs::read_to_string(&effects).is_ok_and(|log| log.contains("started"))
    });
    assert_eq!(status(&db, "long"), "running");

    let start = Instant::now();
    let cancel = taskflow(&db)
        .args(["flows", "cancel", "long"])
        .env("TASKFLOW_HOST", "host-b")
        .output()
        .unwrap();
    let requested = start.elapsed();
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(10) {
        last = status(&db, "long");
        if last == "cancelled" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    println!(
        "cancel requested in {requested:?}; the flow was cancelled {took:?} after it was sent"
    );
    kill(&mut running);
    assert_eq!(last, "cancelled");
    assert!(took <= Duration::from_secs(1), "the cancel took {took:?}");
}
