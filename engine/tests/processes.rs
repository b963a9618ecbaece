//! Real processes racing on one flow in one database file: two runners for one lease, two
//! writers with the same expected revision, and a runner killed with SIGKILL whose lease the
//! next runner takes over at once.
//!
//! Each test starts copies of this test binary as workers (`TASKFLOW_TEST_WORKER` set, running
//! the same test by exact name); a worker opens the store, waits for the go signal, does one
//! operation and writes what happened to a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use taskflow_engine::{Error, FlowId, FlowStatus, NewFlow, StateReport, Takeover, TaskFlow};
use taskflow_store_sqlite::OpenOptions;

const WORKER: &str = "TASKFLOW_TEST_WORKER";
const TTL: Duration = Duration::from_secs(60);
const PATIENCE: Duration = Duration::from_secs(30);

/// What a worker is told through its environment.
struct Job {
    role: String,
    db: PathBuf,
    flow: FlowId,
    dir: PathBuf,
    name: String,
}

impl Job {
    fn from_env() -> Option<Job> {
        let role = std::env::var(WORKER).ok()?;
        let var = |name: &str| std::env::var(name).expect(name);
        Some(Job {
            role,
            db: var("TASKFLOW_TEST_DB").into(),
            flow: var("TASKFLOW_TEST_FLOW").parse().unwrap(),
            dir: var("TASKFLOW_TEST_DIR").into(),
            name: var("TASKFLOW_TEST_NAME"),
        })
    }

    fn file(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{}.{what}", self.name))
    }
}

/// Runs the worker side when this process is a worker; returns whether it was.
fn worker() -> bool {
    let Some(job) = Job::from_env() else { return false };
    let taskflow = taskflow_store_sqlite::open(&job.db, &OpenOptions::default()).unwrap();
    let alice = taskflow.bind("alice").unwrap().with_actor(job.name.clone());
    std::fs::write(job.file("ready"), b"").unwrap();
    wait_for_file(&job.dir.join("go"));
    let outcome = match job.role.as_str() {
        "lease" => match alice.acquire_lease(&job.flow, TTL) {
            Ok(lease) => format!("granted {}", lease.holder.pid),
            Err(Error::LeaseHeld { holder, .. }) => format!("held {holder}"),
            Err(other) => format!("error {other}"),
        },
        "report" => {
            let report = StateReport {
                status: Some(FlowStatus::Running),
                current_step: Some(job.name.clone()),
                ..StateReport::default()
            };
            match alice.report(&job.flow, report, Some(1)) {
                Ok(flow) => format!("ok {}", flow.revision),
                Err(Error::RevisionConflict { current, .. }) => format!("conflict {current}"),
                Err(other) => format!("error {other}"),
            }
        }
        other => panic!("unknown worker role {other}"),
    };
    std::fs::write(job.file("out.tmp"), outcome).unwrap();
    std::fs::rename(job.file("out.tmp"), job.file("out")).unwrap();
    // Stay alive (holding whatever was won) until the test has looked.
    wait_for_file(&job.dir.join("done"));
    true
}

fn wait_for_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {}", path.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Race {
    dir: tempfile::TempDir,
    db: PathBuf,
    taskflow: TaskFlow,
}

impl Race {
    fn new() -> Race {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("flows.db");
        let taskflow = taskflow_store_sqlite::open(&db, &OpenOptions::default()).unwrap();
        Race { dir, db, taskflow }
    }

    /// Starts one worker per name, all running `test`, waits until each has opened the store,
    /// then lets them go at once.
    fn run(&self, test: &str, role: &str, flow: &FlowId, names: &[&str]) -> Vec<(Child, String)> {
        let exe = std::env::current_exe().unwrap();
        let workers: Vec<(Child, String)> = names
            .iter()
            .map(|name| {
                let child = Command::new(&exe)
                    .args(["--exact", test, "--nocapture", "--test-threads=1"])
                    .env(WORKER, role)
                    .env("TASKFLOW_TEST_DB", &self.db)
                    .env("TASKFLOW_TEST_FLOW", flow.to_string())
                    .env("TASKFLOW_TEST_DIR", self.dir.path())
                    .env("TASKFLOW_TEST_NAME", name)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                (child, (*name).to_owned())
            })
            .collect();
        for name in names {
            wait_for_file(&self.dir.path().join(format!("{name}.ready")));
        }
        std::fs::write(self.dir.path().join("go"), b"").unwrap();
        workers
    }

    fn outcome(&self, name: &str) -> String {
        let path = self.dir.path().join(format!("{name}.out"));
        wait_for_file(&path);
        std::fs::read_to_string(path).unwrap()
    }

    fn finish(&self, workers: Vec<(Child, String)>) {
        std::fs::write(self.dir.path().join("done"), b"").unwrap();
        for (mut child, name) in workers {
            let status = child.wait().unwrap();
            assert!(status.success() || status.code().is_none(), "worker {name}: {status}");
        }
    }
}

#[test]
fn two_runner_processes_race_for_one_lease_and_a_killed_holder_is_taken_over() {
    if worker() {
        return;
    }
    let race = Race::new();
    let alice = race.taskflow.bind("alice").unwrap();
    let flow = alice.create(NewFlow::managed("contended")).unwrap();
    let mut workers = race.run(
        "two_runner_processes_race_for_one_lease_and_a_killed_holder_is_taken_over",
        "lease",
        &flow.id,
        &["a", "b"],
    );
    let outcomes: Vec<String> = ["a", "b"].iter().map(|name| race.outcome(name)).collect();
    let winner = outcomes.iter().position(|o| o.starts_with("granted ")).expect("one runner won");
    let loser = 1 - winner;
    let winner_pid: u32 = outcomes[winner]["granted ".len()..].parse().unwrap();
    assert_eq!(winner_pid, workers[winner].0.id());
    assert!(
        outcomes[loser].starts_with("held ")
            && outcomes[loser].ends_with(&format!(":{winner_pid}")),
        "the second runner is refused and told who holds it: {outcomes:?}"
    );
    let stored = alice.flow(&flow.id).unwrap().lease.unwrap();
    assert_eq!(stored.holder.pid, winner_pid);
    assert!(matches!(alice.acquire_lease(&flow.id, TTL), Err(Error::LeaseHeld { .. })));

    // kill -9 the holder: its lease (60 s left) is taken over at once.
    let (mut killed, _) = workers.remove(winner);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
    assert_eq!(lease.took_over, Some(Takeover::HolderGone));
    assert_eq!(lease.holder.pid, std::process::id());
    race.finish(workers);
}

#[test]
fn two_writer_processes_with_the_same_expected_revision_one_wins_one_conflicts() {
    if worker() {
        return;
    }
    let race = Race::new();
    let alice = race.taskflow.bind("alice").unwrap();
    let flow = alice.create(NewFlow::mirrored("reported", "ci")).unwrap();
    assert_eq!(flow.revision, 1);
    let workers = race.run(
        "two_writer_processes_with_the_same_expected_revision_one_wins_one_conflicts",
        "report",
        &flow.id,
        &["x", "y"],
    );
    let mut outcomes: Vec<String> = ["x", "y"].iter().map(|name| race.outcome(name)).collect();
    race.finish(workers);
    outcomes.sort();
    assert_eq!(outcomes, ["conflict 2", "ok 2"]);
    let history = alice.history(&flow.id).unwrap();
    assert_eq!(history.len(), 2, "exactly one change was accepted");
    let flow = alice.flow(&flow.id).unwrap();
    assert_eq!(flow.current_step.as_deref(), Some(history[1].actor.as_str()));
}
