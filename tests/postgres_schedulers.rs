//! Several `taskflow serve` on one PostgreSQL database schedule one at a time: the active one
//! holds the scheduler's role (an advisory lock on a connection of its own), the others ask
//! again every 200 ms. Two serves run a schedule firing every second; the first, which took the
//! role, is killed with SIGKILL; the server lets go of its lock, the other serve takes the role
//! and fires the next slots, and no slot is recorded twice.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use taskflow_store_postgres::scratch::Scratch;

#[path = "support/serve.rs"]
mod support;
#[path = "support/workers.rs"]
mod workers;

use support::Serve;
use workers::{taskflow, wait_until};

fn json_of(db: &str, args: &[&str]) -> Value {
    let output = taskflow(db).arg("--json").args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn millis(text: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap()).unwrap().timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The slot records of schedule `tick`.
fn slots(db: &str) -> Vec<Value> {
    json_of(db, &["schedules", "show", "tick", "--limit", "1000"])["slots"]
        .as_array()
        .unwrap()
        .clone()
}

/// Whether a slot at or after `after` (ms) has run to its end.
fn fired_after(db: &str, after: i64) -> bool {
    slots(db).iter().any(|slot| millis(&slot["at"]) >= after && slot["flow_status"] == "succeeded")
}

#[test]
fn when_the_active_scheduler_dies_another_serve_fires_the_next_slot_and_none_fires_twice() {
    let scratch = Scratch::new();
    let db = scratch.url();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("tick.toml");
    std::fs::write(
        &pipeline,
        "name = \"tick\"\n\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = 1 }\n",
    )
    .unwrap();
    json_of(
        &db,
        &[
            "schedules",
            "add",
            "tick",
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--every",
            "1s",
            "--overlap",
            "allow",
        ],
    );

    let first = Serve::start(Path::new(&db), &[], &[("TASKFLOW_HOST", "host-a")]);
    let start = now_ms();
    wait_until(Duration::from_secs(30), || fired_after(&db, start));
    assert!(scratch.role_held("scheduler"), "the first serve holds the scheduler's role");
    let second = Serve::start(Path::new(&db), &[], &[("TASKFLOW_HOST", "host-b")]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(scratch.role_held("scheduler"));

    first.kill();
    let killed = now_ms();
    let clock = Instant::now();
    wait_until(Duration::from_secs(30), || fired_after(&db, killed));
    println!("the second serve fired a slot {:?} after the first was killed", clock.elapsed());
    assert!(scratch.role_held("scheduler"), "the second serve holds the scheduler's role");
    std::thread::sleep(Duration::from_secs(2));
    let end = now_ms();
    wait_until(Duration::from_secs(30), || {
        slots(&db).iter().all(|slot| slot["status"] != "running" || millis(&slot["at"]) > end)
    });
    drop(second);

    let slots = slots(&db);
    let mut seen = HashSet::new();
    for slot in &slots {
        assert!(seen.insert(millis(&slot["at"])), "slot recorded twice: {slots:?}");
        if slot["status"] == "ended" {
            assert_eq!(slot["flow_status"], "succeeded", "{slot}");
        }
    }
    let after_kill = slots.iter().filter(|slot| millis(&slot["at"]) > killed).count();
    println!("{} slot records, {after_kill} after the kill", slots.len());
    assert!(after_kill >= 2, "{slots:?}");
}
