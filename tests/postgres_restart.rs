//! The PostgreSQL server stops (`pg_ctl stop -m fast`, every connection cut) and starts again
//! three seconds later while two `taskflow worker` processes run flows on it: the workers carry
//! on, every flow
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

/// Stops the test server (every connection cut), leaves it down for `away`, and starts it
/// again, as the account that owns its cluster, as the script starts it.
fn restart_server(away: Duration) -> Duration {
    // The server's own options (its address, port and socket folder), which `restart` would
    // keep and `start` does not: what it was started with after its data folder.
    let data = var("TASKFLOW_TEST_POSTGRES_DATA");
    let started_with = std::fs::read_to_string(Path::new(&data).join("postmaster.opts")).unwrap();
    let data_arg = format!("\"-D\" \"{data}\"");
    let (_, options) = started_with.trim().split_once(&data_arg).unwrap();
    let start = Instant::now();
    pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
    std::thread::sleep(away);
    pg_ctl(&["-w", "-t", "60", "-o", options.trim(), "start"]);
    start.elapsed()
}

fn pg_ctl(args: &[&str]) {
    let ctl = var("TASKFLOW_TEST_POSTGRES_CTL");
    let data = var("TASKFLOW_TEST_POSTGRES_DATA");
    let owner = var("TASKFLOW_TEST_POSTGRES_OWNER");
    let log = Path::new(&data).parent().unwrap().join("server.log");
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", &owner, "--", &ctl]);
        command
    } else {
        Command::new(&ctl)
    };
    // No pipes: the server started by pg_ctl would hold them open.
    let status = command
        .args(["-D", &data, "-l", log.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {args:?} failed: {status}");
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
    // Down for seconds, as a restart of a real server is: the steps that end meanwhile keep
    // their outcome (their checkpoints wait for the server); only a run whose transaction the
    // stop cut off fails, and is run again.
    let took = restart_server(Duration::from_secs(3));
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
        let cut = count("could not run");
        println!(
            "worker {i} said the server was away {away} time(s), back {back} time(s), and \
             {cut} run(s) cut off"
        );
        assert!(away <= 1 && back == away, "one line as it goes, one as it is back: {said}");
        assert!(cut <= CONCURRENCY, "only runs under way at the stop: {said}");
        assert_eq!(said.lines().count(), away + back + cut, "nothing else: {said}");
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
