//! `taskflow doctor`: a database holding one flow of each kind of record that no longer tells
//! the truth (made with the library, then bent with SQL the way crashes and old builds leave
//! them) is audited without a write, then repaired through the rules as `doctor`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use rusqlite::Connection;
use serde_json::{Value, json};
use taskflow_engine::{
    FlowId, FlowStatus, LeaseHolder, NewFlow, NewStep, OwnerHandle, StepKind, StepOutcome,
};
use taskflow_store_sqlite::OpenOptions;

const HOUR: Duration = Duration::from_secs(3600);

fn taskflow(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command.arg("--db").arg(db).args(["--owner", "alice"]).env_remove("TASKFLOW_OWNER");
    command
}

fn doctor(db: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let output: Output = taskflow(db).arg("doctor").args(args).arg("--json").output().unwrap();
    let document = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)));
    (output.status.code(), document)
}

/// (code, flow) of every finding, sorted.
fn codes(document: &Value) -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            let flow = finding["flow"].as_str().unwrap_or("database").to_owned();
            (finding["code"].as_str().unwrap().to_owned(), flow)
        })
        .collect();
    codes.sort();
    codes
}

fn pair(code: &str, flow: &str) -> (String, String) {
    (code.to_owned(), flow.to_owned())
}

/// A runner on this host whose process no longer exists.
fn dead() -> LeaseHolder {
    LeaseHolder { pid: 4_194_304 + 7, ..LeaseHolder::current() }
}

fn managed(alice: &OwnerHandle, id: &str) -> FlowId {
    let mut new = NewFlow::managed(id);
    new.id = Some(id.parse().unwrap());
    alice.create(new).unwrap().id
}

/// The broken flows, and two healthy ones (a finished flow, a flow waiting on a timer).
fn database() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let taskflow = taskflow_store_sqlite::open(&path, &OpenOptions::default()).unwrap();
    let alice = taskflow.bind("alice").unwrap();

    // stale: its runner was killed mid-step.
    let stale = managed(&alice, "stale");
    let lease = alice.acquire_lease_as(&stale, dead(), HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.begin_step(&lease, NewStep::new("fetch", StepKind::Tool)).unwrap();

    // sleepy: waiting for nothing.
    let sleepy = managed(&alice, "sleepy");
    let lease = alice.acquire_lease(&sleepy, HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.set_status(&lease, FlowStatus::Waiting, None).unwrap();
    alice.release_lease(&lease).unwrap();

    // timer: waiting until a time; healthy.
    let timer = managed(&alice, "timer");
    let lease = alice.acquire_lease(&timer, HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.set_status(&lease, FlowStatus::Waiting, None).unwrap();
    alice.release_lease(&lease).unwrap();

    // stuck: cancelled an hour ago while its dead runner's step was running.
    let stuck = managed(&alice, "stuck");
    let lease = alice.acquire_lease_as(&stuck, dead(), HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.begin_step(&lease, NewStep::new("slow", StepKind::Tool)).unwrap();
    alice.request_cancel(&stuck, None).unwrap();

    // parent-gone: a child left queued by a parent that ended.
    let parent = managed(&alice, "parent-gone");
    let lease = alice.acquire_lease(&parent, HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let mut child = NewFlow::managed("left");
    child.id = Some("left".parse().unwrap());
    alice.spawn_child(&lease, child).unwrap();

    // waiting-parent: its child ended, its step for the child still runs.
    let waiting = managed(&alice, "waiting-parent");
    let lease = alice.acquire_lease(&waiting, HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let mut child = NewFlow::managed("done-child");
    child.id = Some("done-child".parse().unwrap());
    alice.spawn_child(&lease, child).unwrap();
    alice.release_lease(&lease).unwrap();

    // done: finished; healthy.
    let done = managed(&alice, "done");
    let lease = alice.acquire_lease(&done, HOUR).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let step = alice.begin_step(&lease, NewStep::new("only", StepKind::Tool)).unwrap();
    alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(1))).unwrap();
    alice.set_status(&lease, FlowStatus::Succeeded, None).unwrap();
    drop(taskflow);

    // What crashes and older builds leave, which the rules never would.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE flows SET wait = '{\"until\": \"2030-01-01T00:00:00Z\"}' WHERE id = 'timer';
         UPDATE flows SET cancel_requested_at = cancel_requested_at - 3600000 WHERE id = 'stuck';
         UPDATE flows SET status = 'failed', lease_token = NULL, lease_host = NULL,
             lease_pid = NULL, lease_process_start = NULL, lease_expires_at = NULL,
             ended_at = updated_at WHERE id = 'parent-gone';
         UPDATE flows SET status = 'succeeded', ended_at = updated_at WHERE id = 'done-child';",
    )
    .unwrap();
    (dir, path)
}

fn history(db: &Path, id: &str) -> Value {
    let output = taskflow(db).args(["--json", "flows", "history", id]).output().unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn doctor_lists_each_untruthful_record_with_its_code_and_writes_nothing() {
    let (_dir, db) = database();
    let ids = ["stale", "sleepy", "timer", "stuck", "parent-gone", "left", "waiting-parent"];
    let before: Vec<Value> = ids.iter().map(|id| history(&db, id)).collect();

    let (code, document) = doctor(&db, &[]);
    assert_eq!(code, Some(1), "{document}");
    assert_eq!(
        codes(&document),
        [
            pair("cancel_stuck", "stuck"),
            pair("orphan_child", "left"),
            pair("orphan_child", "waiting-parent"),
            pair("stale_running", "stale"),
            pair("waiting_without_wake", "sleepy"),
        ]
    );
    for finding in document["findings"].as_array().unwrap() {
        assert!(!finding["reason"].as_str().unwrap().is_empty(), "{finding}");
        assert_eq!(finding["fixed"], Value::Null);
        let repairable = finding["code"] != "waiting_without_wake";
        assert_eq!(finding["repair"].is_string(), repairable, "{finding}");
    }
    let after: Vec<Value> = ids.iter().map(|id| history(&db, id)).collect();
    assert_eq!(after, before, "an audit without --fix writes nothing");

    let text = taskflow(&db).arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("stale_running         stale  running, but its runner"), "{stdout}");
    assert!(stdout.contains("--fix would give the dead lease back"), "{stdout}");
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("error: 5 problem(s) found"), "{stderr}");
    assert!(stderr.contains("hint: `taskflow doctor --fix` repairs 4 of them"), "{stderr}");
}

#[test]
fn doctor_fix_repairs_through_the_rules_as_doctor_and_leaves_what_has_no_safe_repair() {
    let (_dir, db) = database();
    let (code, document) = doctor(&db, &["--fix"]);
    assert_eq!(code, Some(1), "the waiting flow has no safe repair: {document}");
    for finding in document["findings"].as_array().unwrap() {
        let fixed = &finding["fixed"];
        assert_eq!(fixed.is_string(), finding["code"] != "waiting_without_wake", "{finding}");
    }

    let inspect = |id: &str| -> Value {
        let output = taskflow(&db).args(["--json", "flows", "inspect", id]).output().unwrap();
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let last_actor = |id: &str| -> String {
        let revisions = history(&db, id)["revisions"].as_array().unwrap().clone();
        revisions.last().unwrap()["actor"].as_str().unwrap().to_owned()
    };
    let stale = inspect("stale");
    assert_eq!(stale["flow"]["lease"], Value::Null, "the dead lease is given back");
    assert_eq!(stale["flow"]["stall"]["reason"], "no_lease");
    assert_eq!(last_actor("stale"), "doctor");

    let stuck = inspect("stuck");
    assert_eq!(stuck["flow"]["status"], "cancelled", "the cancel settled");
    assert_eq!(stuck["steps"][0]["status"], "cancelled");
    assert_eq!(last_actor("stuck"), "doctor");

    assert_eq!(inspect("left")["flow"]["status"], "cancelled", "as its parent's end would have");
    let waiting = inspect("waiting-parent");
    assert_eq!(waiting["steps"][0]["status"], "succeeded", "the step ended as its child did");

    // Journals are never deleted, and a second audit finds only what has no safe repair.
    assert_eq!(inspect("stale")["steps"].as_array().unwrap().len(), 1);
    let (code, again) = doctor(&db, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&again), [pair("waiting_without_wake", "sleepy")]);
}

#[test]
fn an_old_schema_is_reported_untouched_and_migrated_by_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schema/v1.sql");
    Connection::open(&db)
        .unwrap()
        .execute_batch(&std::fs::read_to_string(fixture).unwrap())
        .unwrap();
    let version = |db: &Path| -> i64 {
        Connection::open(db)
            .unwrap()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    };

    let (code, document) = doctor(&db, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&document), [pair("schema", "database")]);
    assert!(document["note"].as_str().unwrap().contains("doctor --fix"), "{document}");
    assert_eq!(version(&db), 1, "nothing written, not even a migration");

    let (code, document) = doctor(&db, &["--fix"]);
    assert_eq!(code, Some(0), "{document}");
    assert_eq!(document["findings"][0]["code"], "schema");
    assert!(document["findings"][0]["fixed"].as_str().unwrap().starts_with("migrated"));
    assert_eq!(version(&db), taskflow_store_sqlite::SCHEMA_VERSION);
}

#[test]
fn a_healthy_or_missing_database_has_nothing_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let (code, document) = doctor(&missing, &[]);
    assert_eq!((code, document["findings"].clone()), (Some(0), json!([])));
    assert!(!missing.exists(), "doctor creates no database");

    let healthy = dir.path().join("healthy.db");
    taskflow_store_sqlite::open(&healthy, &OpenOptions::default()).unwrap();
    let output = taskflow(&healthy).arg("doctor").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("nothing wrong found"));
}

#[test]
fn a_damaged_file_is_reported_by_its_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("damaged.db");
    let taskflow = taskflow_store_sqlite::open(&db, &OpenOptions::default()).unwrap();
    let alice = taskflow.bind("alice").unwrap();
    for n in 0..60 {
        managed(&alice, &format!("flow-{n}"));
    }
    drop(taskflow);
    let conn = Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let root: i64 = conn
        .query_row("SELECT rootpage FROM sqlite_master WHERE name = 'flows_by_age'", [], |row| {
            row.get(0)
        })
        .unwrap();
    drop(conn);
    // Overwrite part of the index page's cell pointers.
    let mut bytes = std::fs::read(&db).unwrap();
    let at = (root as usize - 1) * 4096 + 8 + 40;
    bytes[at..at + 40].fill(0xff);
    std::fs::write(&db, bytes).unwrap();

    let (code, document) = doctor(&db, &[]);
    assert_eq!(code, Some(1), "{document}");
    let findings = document["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    for finding in findings {
        assert_eq!(finding["code"], "integrity", "{finding}");
        assert!(finding["reason"].as_str().unwrap().contains(&format!("page {root}")), "{finding}");
        assert_eq!(finding["repair"], Value::Null);
    }
}
