//! The PostgreSQL server restarts (`pg_ctl restart -m fast`, every connection cut) while two
//! `taskflow worker` processes run flows on it: the workers reconnect and carry on, every flow
//! succeeds, and no completed step runs twice; only steps in flight at the restart may run
//! again (same idempotency key). While the server is away each worker says so in one line, and
//! in one more when it is back, never repeated and never with the URL's password. The test
//! server is the one scripts/services/postgres.sh
//! starts; it exports how to restart it. This binary holds one test, so no other test of the
//! same run uses the server while it is down.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use taskflow_store_postgres::scratch::Scratch;

#[path = "support/workers.rs"]
mod workers;

use workers::{
    EFFECTS_PIPELINE, executions, kill, queue, statuses, succeeded, wait_until, worker_to,
};

const FLOWS: usize = 40;
const CONCURRENCY: usize = 4;
const WORKERS: usize = 2;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the PostgreSQL tests through scripts/test")
    })
}

/// Restarts the test server as the account that owns its cluster, as the script starts it.
fn restart_server() -> Duration {
    let ctl = var("TASKFLOW_TEST_POSTGRES_CTL");
    let data = var("TASKFLOW_TEST_POSTGRES_DATA");
    let owner = var("TASKFLOW_TEST_POSTGRES_OWNER");
    let log = Path::new(&data).parent().unwrap().join("server.log");
    let args =
        ["-D", &data, "-l", log.to_str().unwrap(), "-m", "fast", "-w", "-t", "60", "restart"];
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", &owner, "--", &ctl]);
        command
    } else {
        Command::new(&ctl)
    };
    let start = Instant::now();
    // No pipes: the server started by pg_ctl would hold them open.
    let status = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl restart failed: {status}");
    start.elapsed()
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

#[test]
fn workers_carry_on_after_the_server_restarts_and_no_completed_step_runs_twice() {
    let scratch = Scratch::new();
    let url = scratch.url();
    // The server trusts loopback connections: the password is there to be left out.
    let db = url.replacen("://taskflow@", "://taskflow:pg-s3cret@", 1);
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("effects.log");
    queue(&db, EFFECTS_PIPELINE, FLOWS);

    let stderr = |i: usize| dir.path().join(format!("worker-{i}.err"));
    let mut workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let log = std::fs::File::create(stderr(i)).unwrap();
            worker_to(&db, &format!("host-{i}"), &effects, CONCURRENCY, log)
        })
        .collect();
    wait_until(Duration::from_secs(120), || succeeded(&db) >= CONCURRENCY);
    let before = succeeded(&db);
    let took = restart_server();
    println!("restarted the server with {before} of {FLOWS} flows done, in {took:?}");
    let start = Instant::now();
    wait_until(Duration::from_secs(180), || succeeded(&db) == FLOWS);
    println!("all {FLOWS} flows done {:?} after the restart", start.elapsed());
    for worker in &mut workers {
        kill(worker);
    }
    assert_eq!(statuses(&db).get("succeeded"), Some(&FLOWS));

    for i in 0..WORKERS {
        let said = std::fs::read_to_string(stderr(i)).unwrap();
        let count = |text: &str| said.lines().filter(|line| line.contains(text)).count();
        let (away, back) = (count("cannot be reached"), count("reached again"));
        println!("worker {i} said the server was away {away} time(s), back {back} time(s)");
        assert!(away <= 1 && back == away, "one line as it goes, one as it is back: {said}");
        assert_eq!(said.lines().count(), away + back, "nothing else: {said}");
        assert!(!said.contains("pg-s3cret"), "{said}");
    }

    let runs = executions(&effects);
    assert_eq!(runs.len(), FLOWS * 2, "every step ran");
    let twice: Vec<_> = runs.iter().filter(|(_, count)| **count > 1).collect();
    println!("{} steps ran again", twice.len());
    assert!(
        twice.iter().all(|(_, count)| **count == 2) && twice.len() <= WORKERS * CONCURRENCY,
        "only the steps in flight at the restart ran again: {twice:?}"
    );
}
