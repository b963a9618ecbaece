//! Crash and resume with real processes: a 20-step pipeline of shell steps, each appending its
//! idempotency key to a log, run by `taskflow run` / `taskflow flows resume`, which the test
//! kills with SIGKILL at random moments (at least 50 kills; `TASKFLOW_SOAK_KILLS=1000` for a
//! soak) and resumes until the flow ends. For every flow it checks that the flow succeeded,
//! every step's output is in the journal, the keys in the log are exactly the steps' keys, each
//! repeated key belongs to a step whose `attempt` is above 1 and there are no more repeats than
//! kills, and the outputs equal those of a run nobody killed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use taskflow_engine::{FlowId, FlowStatus, StepStatus};
use taskflow_store_sqlite::OpenOptions;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");
const STEPS: usize = 20;
const CI_KILLS: usize = 50;
/// A flow is given up on (a test failure) after this many kills.
const KILLS_PER_FLOW_LIMIT: usize = 400;

/// 20 shell steps in a chain, each appending its key to `log` and printing an output built
/// on the step before it. One step at a time is in flight, so a kill interrupts at most one.
fn pipeline(dir: &Path) -> PathBuf {
    let mut text = String::from("name = \"crash test\"\n");
    for n in 1..=STEPS {
        let (needs, previous) = match n {
            1 => (String::new(), "start".to_owned()),
            _ => {
                (format!("needs = [\"s{}\"]\n", n - 1), format!("{{{{steps.s{}.output}}}}", n - 1))
            }
        };
        text.push_str(&format!(
            "\n[[steps]]\nid = \"s{n}\"\naction = \"shell\"\n{needs}\
             with = {{ command = \"echo $TASKFLOW_IDEMPOTENCY_KEY >> log; sleep 0.01; echo {previous}-s{n}\" }}\n"
        ));
    }
    let path = dir.join("crash.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn flow_exists(db: &Path, id: &str) -> bool {
    db.exists() && journal(db, id).is_some()
}

/// One row of a flow's journal, as the checks need it.
#[derive(Debug)]
struct Row {
    name: String,
    status: StepStatus,
    attempt: u32,
    key: String,
    output: Option<Value>,
}

/// The flow's status and its journal, if it exists.
fn journal(db: &Path, id: &str) -> Option<(FlowStatus, Vec<Row>)> {
    let options = OpenOptions { create: false, ..OpenOptions::default() };
    let alice = taskflow_store_sqlite::open(db, &options).ok()?.bind("alice").unwrap();
    let id: FlowId = id.parse().unwrap();
    let flow = alice.flow(&id).ok()?;
    let steps = alice.steps(&id).unwrap();
    let steps = steps
        .into_iter()
        .map(|s| Row {
            name: s.name,
            status: s.status,
            attempt: s.attempt,
            key: s.idempotency_key,
            output: s.output,
        })
        .collect();
    Some((flow.status, steps))
}

fn command(db: &Path, dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice"])
        .current_dir(dir)
        .env_remove("TASKFLOW_OWNER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs flow `id` of `file` to its end, killing its runner after random delays; returns the
/// number of kills. A kill may land after the flow's last commit: then the flow is done.
fn run_with_kills(
    db: &Path,
    dir: &Path,
    file: &Path,
    id: &str,
    max_kills: usize,
    rng: &mut fastrand::Rng,
) -> usize {
    let mut kills = 0;
    for round in 0.. {
        if journal(db, id).is_some_and(|(status, _)| status == FlowStatus::Succeeded) {
            return kills;
        }
        let mut runner = command(db, dir);
        if round % 2 == 1 && flow_exists(db, id) {
            runner.args(["flows", "resume", id]);
        } else {
            runner.arg("run").arg(file).args(["--id", id]);
        }
        let mut child = runner.spawn().unwrap();
        if kills < max_kills {
            // Early kills land in start-up, later ones anywhere in the run; the window grows so
            // that every flow ends.
            let window = 40 + 15 * (round as u64).min(60);
            std::thread::sleep(Duration::from_millis(rng.u64(0..window)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                assert!(kills < KILLS_PER_FLOW_LIMIT, "flow {id} never finished");
                continue;
            }
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the last run of {id} failed: {stderr}");
        return kills;
    }
    unreachable!()
}

fn check_flow(db: &Path, log: &str, id: &str, kills: usize, reference: &BTreeMap<String, Value>) {
    let (status, steps) = journal(db, id).expect("the flow exists");
    assert_eq!(status, FlowStatus::Succeeded, "flow {id}");
    // Every step's output is in the journal (a step ends once: one succeeded row per step).
    let outputs: BTreeMap<String, Value> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Succeeded)
        .map(|s| (s.name.clone(), s.output.clone().expect("a succeeded step has an output")))
        .collect();
    assert_eq!(outputs.len(), STEPS, "flow {id}: {steps:?}");
    assert_eq!(steps.len(), STEPS, "no step failed or was cancelled: {steps:?}");
    assert_eq!(&outputs, reference, "flow {id}: the outputs of an uninterrupted run");
    // The log holds exactly the steps' keys; repeats only for steps tried again, at most one
    // per kill.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for key in log.lines().filter(|key| key.starts_with(id)) {
        *seen.entry(key).or_default() += 1;
    }
    let keys: BTreeSet<&str> = steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), keys, "flow {id}");
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= kills, "flow {id}: {repeats} repeats for {kills} kills");
    for (key, times) in &seen {
        let attempt = steps.iter().find(|s| s.key == *key).unwrap().attempt;
        assert!(
            *times == 1 || attempt as usize >= *times,
            "flow {id}: {key} ran {times} times but its journal says attempt {attempt}"
        );
    }
}

#[test]
fn killed_runs_resume_to_the_same_result_without_repeating_completed_steps() {
    let kills_wanted: usize =
        std::env::var("TASKFLOW_SOAK_KILLS").ok().and_then(|n| n.parse().ok()).unwrap_or(CI_KILLS);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = pipeline(dir.path());
    let seed = std::env::var("TASKFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test seed {seed} (TASKFLOW_CRASH_SEED repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);

    // The reference: a run nobody kills.
    let reference_id = FlowId::new().to_string();
    let started = Instant::now();
    assert_eq!(run_with_kills(&db, dir.path(), &file, &reference_id, 0, &mut rng), 0);
    eprintln!("an uninterrupted run takes {:?}", started.elapsed());
    let (_, steps) = journal(&db, &reference_id).unwrap();
    let reference: BTreeMap<String, Value> =
        steps.iter().map(|s| (s.name.clone(), s.output.clone().unwrap())).collect();
    assert_eq!(
        reference["s20"],
        Value::String(
            "start-s1-s2-s3-s4-s5-s6-s7-s8-s9-s10-s11-s12-s13-s14-s15-s16-s17-s18-s19-s20"
                .to_owned()
        )
    );

    let mut total = 0;
    let mut flows = Vec::new();
    while total < kills_wanted {
        let id = FlowId::new().to_string();
        let kills = run_with_kills(&db, dir.path(), &file, &id, kills_wanted - total, &mut rng);
        total += kills;
        flows.push((id, kills));
    }
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    check_flow(&db, &log, &reference_id, 0, &reference);
    for (id, kills) in &flows {
        check_flow(&db, &log, id, *kills, &reference);
    }
    let repeats = log.lines().count() - STEPS * (flows.len() + 1);
    eprintln!("{total} kills over {} flows, {repeats} steps repeated", flows.len());
    assert!(total >= kills_wanted);
}

/// A step's command that started a process of its own (here `sleep`, in the background): a
/// runner killed mid-step takes the step's shell with it, not that process. The run that takes
/// the flow over ends it before it runs the step again, so the two never run side by side.
/// What an earlier step of the dead run left on purpose (a server) stays, and so does a process
/// of another run (another database's flow of the same id and step).
#[test]
fn a_resumed_step_first_ends_what_its_killed_attempt_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = dir.path().join("leftover.toml");
    std::fs::write(
        &file,
        "name = \"leftover\"\n\
         [[steps]]\nid = \"server\"\naction = \"shell\"\n\
         with = { command = \"sleep 300 >/dev/null 2>&1 & echo $! > server\" }\n\
         [[steps]]\nid = \"work\"\naction = \"shell\"\nneeds = [\"server\"]\n\
         with = { command = \"sleep 300 >/dev/null 2>&1 & echo $! >> pids; \
         test $TASKFLOW_ATTEMPT -gt 1 || wait\" }\n",
    )
    .unwrap();
    let pids = || pids_in(&dir.path().join("pids"));
    let mut reap = Reap::files(dir.path(), &["pids", "server"]);
    let mut runner = command(&db, dir.path());
    runner.arg("run").arg(&file).args(["--id", "leftover"]);
    let child = reap.child(runner.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids().is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    reap.kill(child);
    let first = pids()[0];
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(first), "the step's own process outlives its killed runner");
    let other = Command::new("sleep")
        .arg("300")
        .env("TASKFLOW_IDEMPOTENCY_KEY", "leftover:2")
        .env("TASKFLOW_RUN_TOKEN", "01ANOTHERRUNSLEASETOKEN000")
        .spawn()
        .unwrap();
    let other = reap.child(other);

    let resumed = command(&db, dir.path()).args(["flows", "resume", "leftover"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(!alive(first), "the second attempt ended the first one's process");
    assert!(reap.running(other), "another run's process is not this run's");
    let server = pids_in(&dir.path().join("server"))[0];
    assert!(alive(server), "a finished step's server is left as it was");
    let pids = pids();
    assert_eq!(pids.len(), 2, "{pids:?}");
}

/// A step that failed leaving a process of its own (`sleep`, in the background) and is tried
/// again by the same run: the earlier attempt's process ends before the next attempt starts.
#[test]
fn a_step_tried_again_first_ends_what_its_failed_attempt_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = dir.path().join("retried.toml");
    std::fs::write(
        &file,
        "name = \"retried\"\n[[steps]]\nid = \"work\"\naction = \"shell\"\n\
         retry = { max_attempts = 2, backoff_ms = 100 }\n\
         with = { command = \"sleep 300 >/dev/null 2>&1 & echo $! >> pids; \
         test $TASKFLOW_ATTEMPT -gt 1\" }\n",
    )
    .unwrap();
    let _reap = Reap::files(dir.path(), &["pids"]);
    let ran = command(&db, dir.path()).arg("run").arg(&file).output().unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let pids = pids_in(&dir.path().join("pids"));
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(!alive(pids[0]), "the failed attempt's process ended before the retry");
    assert!(alive(pids[1]), "the attempt that succeeded leaves its own");
}

/// The process ids a test's steps wrote to `file`, one a line (none while it is missing; a
/// line still being written is not one yet).
fn pids_in(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// What a test started, directly (its children) or through its steps (the `sleep 300`s whose
/// ids they wrote to its files), ended when the test ends, passed or failed: what steps leave
/// running on purpose is theirs to leave, and a failed assertion must not leave it behind
/// either. A written id whose process has gone may be another's by then: only a `sleep 300` is
/// ended.
struct Reap {
    files: Vec<PathBuf>,
    children: Vec<std::process::Child>,
}

impl Reap {
    fn files(dir: &Path, names: &[&str]) -> Reap {
        Reap { files: names.iter().map(|name| dir.join(name)).collect(), children: Vec::new() }
    }

    /// Keeps `child` to end with the rest; its place, for [`Reap::running`] and to kill it.
    fn child(&mut self, child: std::process::Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    fn kill(&mut self, child: usize) {
        self.children[child].kill().unwrap();
        self.children[child].wait().unwrap();
    }

    fn running(&mut self, child: usize) -> bool {
        self.children[child].try_wait().unwrap().is_none()
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.files.iter().flat_map(|file| pids_in(file)) {
            if std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line == b"sleep\x00300\x00")
            {
                kill_pid(pid);
            }
        }
    }
}

/// Whether process `pid` runs. A zombie has no command line: it is gone but for its parent's
/// wait.
fn alive(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| !line.is_empty())
}

fn kill_pid(pid: i32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}
