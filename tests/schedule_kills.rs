//! The scheduler's reliability with real processes: a schedule fires every 2 s for a minute
//! while the test kills `taskflow serve` with SIGKILL at random moments and starts it again.
//! Every slot from the first to the last is then fired exactly once (its flow `NAME@SLOT`,
//! which succeeded) or recorded missed or skipped with its reason, and none is both or twice.
//! Then serve stays down longer than the catch-up window, and exactly `--max-catch-up` of the
//! slots that came meanwhile run. `TASKFLOW_CRASH_SEED` replays a run's kill times;
//! `TASKFLOW_SCHEDULE_SOAK_SECS` runs longer than a minute.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/serve.rs"]
mod support;

use support::Serve;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");
const PERIOD_MS: i64 = 2000;

fn taskflow(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice", "--json"])
        .args(args)
        .env_remove("TASKFLOW_OWNER")
        .output()
        .unwrap()
}

fn json_of(db: &Path, args: &[&str]) -> Value {
    let out = taskflow(db, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn millis(text: &Value) -> i64 {
    let text = text.as_str().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(text).unwrap();
    at.timestamp_millis()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The schedule's slot records, oldest first.
fn slots(db: &Path, name: &str) -> Vec<Value> {
    let shown = json_of(db, &["schedules", "show", name, "--limit", "10000"]);
    let mut slots = shown["slots"].as_array().unwrap().clone();
    slots.reverse();
    slots
}

/// Each slot instant a record covers, with the record's status: a missed range covers each of
/// its slots. Panics if two records cover one instant.
fn coverage(slots: &[Value]) -> BTreeMap<i64, String> {
    let mut covered = BTreeMap::new();
    for slot in slots {
        let first = millis(&slot["at"]);
        let last = if slot["last_at"].is_null() { first } else { millis(&slot["last_at"]) };
        let mut at = first;
        while at <= last {
            let status = slot["status"].as_str().unwrap().to_owned();
            assert!(covered.insert(at, status).is_none(), "slot {at} recorded twice: {slots:?}");
            at += PERIOD_MS;
        }
        assert_eq!((last - first) / PERIOD_MS + 1, slot["count"].as_i64().unwrap(), "{slot}");
    }
    covered
}

fn pipeline(dir: &Path) -> String {
    let path = dir.join("tick.toml");
    std::fs::write(
        &path,
        "name = \"tick\"\n\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = 1 }\n",
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn killed_at_random_serve_fires_every_slot_once_or_records_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let pipeline = pipeline(dir.path());
    json_of(
        &db,
        &[
            "schedules",
            "add",
            "tick",
            "--pipeline",
            &pipeline,
            "--every",
            "2s",
            "--overlap",
            "allow",
        ],
    );
    let seed = std::env::var("TASKFLOW_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let soak: u64 = std::env::var("TASKFLOW_SCHEDULE_SOAK_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(60);
    eprintln!("TASKFLOW_CRASH_SEED={seed}");
    let mut random = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let first_possible = now_ms();
    let mut kills = 0;
    while started.elapsed() < Duration::from_secs(soak) {
        let serve = Serve::start(&db, &[], &[]);
        std::thread::sleep(Duration::from_millis(random.u64(300..4000)));
        serve.kill();
        kills += 1;
        std::thread::sleep(Duration::from_millis(random.u64(0..5000)));
    }
    // A last serve, left running, finishes what was fired and decides what is due.
    let serve = Serve::start(&db, &[], &[]);
    let end = now_ms();
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let slots = slots(&db, "tick");
        let open = slots.iter().any(|slot| {
            slot["status"] == "running"
                && slot["at"].as_str().is_some_and(|at| millis(&Value::from(at)) <= end)
        });
        let decided = slots.last().is_some_and(|slot| millis(&slot["at"]) >= end);
        if !open && decided {
            break slots;
        }
        assert!(Instant::now() < deadline, "serve never settled: {slots:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(serve);
    assert!(kills >= 8, "only {kills} kills");

    let covered = coverage(&settled);
    let first = *covered.keys().next().unwrap();
    assert!(
        first >= first_possible - PERIOD_MS && first <= first_possible + 2 * PERIOD_MS,
        "the first slot after the schedule was added"
    );
    let last = *covered.keys().last().unwrap();
    let expected: Vec<i64> =
        (0..).map(|n| first + n * PERIOD_MS).take_while(|at| *at <= last).collect();
    assert_eq!(
        covered.keys().copied().collect::<Vec<_>>(),
        expected,
        "every slot accounted for, once"
    );
    let mut fired = 0;
    for slot in &settled {
        match slot["status"].as_str().unwrap() {
            "ended" => {
                fired += 1;
                assert_eq!(slot["flow_status"], "succeeded", "{slot}");
                let id = slot["flow_id"].as_str().unwrap();
                assert!(id.starts_with("tick@") && id.ends_with('Z'), "{id}");
            }
            "missed" | "skipped" => {
                assert!(!slot["reason"].as_str().unwrap_or_default().is_empty(), "{slot}")
            }
            other if millis(&slot["at"]) > end => assert!(["running", "ended"].contains(&other)),
            other => panic!("slot left {other}: {slot}"),
        }
    }
    let flows = json_of(&db, &["flows", "list", "--limit", "100000"]);
    let ids: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["id"].as_str().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len());
    assert!(fired > 0, "no slot ran ({kills} kills)");
    eprintln!("{} slots, {fired} ran, {kills} kills", expected.len());
}

#[test]
fn after_a_downtime_longer_than_the_catch_up_window_exactly_max_catch_up_slots_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let pipeline = pipeline(dir.path());
    json_of(
        &db,
        &[
            "schedules",
            "add",
            "tick",
            "--pipeline",
            &pipeline,
            "--every",
            "2s",
            "--overlap",
            "allow",
            "--catch-up",
            "all",
            "--catch-up-window",
            "7s",
            "--max-catch-up",
            "2",
        ],
    );
    let up_from = now_ms();
    let serve = Serve::start(&db, &[], &[]);
    std::thread::sleep(Duration::from_millis(3000));
    serve.kill();
    let down_from = now_ms();
    std::thread::sleep(Duration::from_millis(15_000));
    let down_to = now_ms();
    let serve = Serve::start(&db, &[], &[]);
    std::thread::sleep(Duration::from_millis(3000));
    drop(serve);
    let slots = slots(&db, "tick");
    coverage(&slots);
    let during: Vec<&Value> = slots
        .iter()
        .filter(|slot| {
            let at = millis(&slot["at"]);
            at > down_from && at <= down_to
        })
        .collect();
    // The slots that came while it was down and ran say so; the first pass after the restart
    // found them all late (one may fall between the end of the sleep and that pass). So may
    // the slot that fell due while the first serve was starting, before its first pass.
    let late: Vec<&Value> = slots
        .iter()
        .filter(|slot| slot["reason"].as_str().unwrap_or_default().starts_with("ran late"))
        .filter(|slot| millis(&slot["at"]) > up_from + 2_000)
        .collect();
    assert_eq!(late.len(), 2, "{slots:?}");
    assert!(late.iter().all(|slot| millis(&slot["at"]) > down_from), "{late:?}");
    let missed: i64 = during
        .iter()
        .filter(|slot| slot["status"] == "missed")
        .map(|slot| slot["count"].as_i64().unwrap())
        .sum();
    assert!(missed >= 4, "{during:?}");
    assert!(
        during.iter().any(|slot| slot["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("older than the catch-up window")),
        "{during:?}"
    );
}
