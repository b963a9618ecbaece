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
        .env("TASKFLOW_CONFIG", "/dev/null")
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

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts `size` of tmpfs at a new folder, or says why it cannot (mounting needs root).
    fn mount(parent: &Path, size: &str) -> Result<SmallDisk, String> {
        let path = parent.join("disk");
        std::fs::create_dir(&path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|error| format!("`mount` cannot run: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(SmallDisk { path })
    }

    /// A 600 KB disk, or `None` (said on stderr) where none can be mounted: the test is skipped.
    fn mount_or_skip(parent: &Path) -> Option<SmallDisk> {
        SmallDisk::mount(parent, "600k")
            .inspect_err(|why| {
                eprintln!("SKIPPED: a full-disk test needs a small filesystem it can mount: {why}");
            })
            .ok()
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "the disk cannot grow");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Four steps of 150 KB outputs each, more than a 600 KB disk holds.
fn big_outputs(dir: &Path) -> PathBuf {
    let mut text = String::from("name = \"big outputs\"\n");
    for (n, letter) in ["a", "b", "c", "d"].iter().enumerate() {
        let needs = if n == 0 { String::new() } else { format!("needs = [\"s{n}\"]\n") };
        text.push_str(&format!(
            "\n[[steps]]\nid = \"s{}\"\naction = \"shell\"\n{needs}\
             with = {{ command = \"head -c 150000 /dev/zero | tr '\\\\0' '{letter}'\" }}\n",
            n + 1
        ));
    }
    let path = dir.join("big.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_run_stopped_by_a_full_disk_says_so_records_it_and_resumes_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount_or_skip(dir.path()) else { return };
    let db = disk.path.join("flows.db");
    let file = big_outputs(dir.path());
    let run = taskflow(&db, dir.path())
        .args(["run", file.to_str().unwrap(), "--id", "big"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("error: the disk that holds the flow database"), "{stderr}");
    assert!(stderr.contains("is full"), "{stderr}");
    assert!(
        stderr.contains(
            "hint: free space on the disk that holds it, then `taskflow flows resume big` \
             continues from its last checkpoint"
        ),
        "{stderr}"
    );

    // The flow says what happened: blocked, the cause as its error, no lease held; the steps
    // that were reported done are in the journal, whole.
    let inspected = json(&db, dir.path(), &["flows", "inspect", "big"]);
    let flow = &inspected["flow"];
    assert_eq!(flow["status"], "blocked", "{flow}");
    assert!(flow["error"].as_str().unwrap().contains("is full"), "{flow}");
    assert_eq!(flow["lease"], Value::Null);
    let done: Vec<(String, usize)> = inspected["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["status"] == "succeeded")
        .map(|step| {
            (step["name"].as_str().unwrap().to_owned(), step["output"].as_str().unwrap().len())
        })
        .collect();
    assert!(!done.is_empty() && done.len() < 4, "{done:?}");
    for (_, length) in &done {
        assert_eq!(*length, 150_000, "a step reported done is whole");
    }

    disk.grow("8m");
    let resumed = taskflow(&db, dir.path()).args(["flows", "resume", "big"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let finished = json(&db, dir.path(), &["flows", "inspect", "big"]);
    assert_eq!(finished["flow"]["status"], "succeeded");
    let steps = finished["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    for step in steps {
        assert_eq!(step["output"].as_str().unwrap().len(), 150_000);
        let before = done.iter().any(|(name, _)| step["name"] == name.as_str());
        if before {
            assert_eq!(step["attempt"], 1, "a step done before the fault is not run again");
        }
    }
}

#[test]
fn a_run_that_waits_past_the_busy_timeout_for_the_database_names_the_flow_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = pipeline(dir.path());
    let run = taskflow(&db, dir.path())
        .args(["run", file.to_str().unwrap(), "--id", "held"])
        .env("TASKFLOW_BUSY_TIMEOUT_MS", "300")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let waits = || {
        let output = taskflow(&db, dir.path())
            .args(["flows", "inspect", "held", "--json"])
            .output()
            .unwrap();
        let document: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        document["steps"].as_array().is_some_and(|steps| steps.iter().any(|s| s["name"] == "wait"))
    };
    while !waits() {
        assert!(Instant::now() < deadline, "the step `wait` never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another process takes the database's write lock and keeps it past the run's wait.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(dir.path().join("go"), "").unwrap();
    let ended = run.wait_with_output().unwrap();
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    assert_eq!(ended.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(
            "hint: let the process that holds the database finish (the run waited for it \
             TASKFLOW_BUSY_TIMEOUT_MS), then `taskflow flows resume held` continues from its \
             last checkpoint"
        ),
        "{stderr}"
    );
    let resumed = taskflow(&db, dir.path()).args(["flows", "resume", "held"]).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let finished = json(&db, dir.path(), &["flows", "inspect", "held"]);
    assert_eq!(finished["flow"]["status"], "succeeded", "{finished}");
    assert_eq!(finished["steps"][0]["attempt"], 1, "the step done before is not run again");
}

#[test]
fn a_database_on_a_full_disk_says_the_disk_is_full_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount_or_skip(dir.path()) else { return };
    let db = disk.path.join("flows.db");
    let file = dir.path().join("one.toml");
    std::fs::write(
        &file,
        "name = \"one\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = 1 }\n",
    )
    .unwrap();
    stdout(&db, dir.path(), &["run", file.to_str().unwrap()]);
    // Closed cleanly: what SQLite keeps beside the file while it is open is not needed.
    for beside in ["flows.db-wal", "flows.db-shm"] {
        let _ = std::fs::remove_file(disk.path.join(beside));
    }
    let mut filler = std::fs::File::create(disk.path.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let listed = taskflow(&db, dir.path()).args(["flows", "list"]).output().unwrap();
    assert_eq!(listed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(stderr.starts_with("error: the disk that holds the flow database"), "{stderr}");
    assert!(stderr.contains("is full"), "{stderr}");
    assert!(stderr.contains("hint: free space on the disk that holds it"), "{stderr}");
}
