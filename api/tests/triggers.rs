//! Triggers of one schedule within one second, on a real database, each on a connection of its
//! own and all at once: one of them fires the slot and makes its flow, the others find it and
//! say so, whatever their order; on SQLite and on PostgreSQL. A slot whose flow id a run of an
//! earlier schedule of the name holds is skipped, and its trigger says it fired nothing.

use std::sync::Barrier;

use serde_json::json;
use taskflow_api::schedules::trigger;
use taskflow_store::testkit::schedule;
use taskflow_store::{ListQuery, SlotStatus, TaskFlow, Timestamp};
use taskflow_store_postgres::scratch::Scratch;

const TRIGGERS: usize = 8;

/// A quarter of a second into the kit's schedule's first slot, 2026-12-05T07:00:00Z.
const NOW: i64 = 1_796_454_000_250;

fn sqlite(dir: &tempfile::TempDir) -> impl Fn() -> TaskFlow + Sync + '_ {
    let path = dir.path().join("flows.db");
    move || {
        let options = taskflow_store_sqlite::OpenOptions::default();
        taskflow_store_sqlite::open(&path, &options).unwrap()
    }
}

fn postgres(scratch: &Scratch) -> impl Fn() -> TaskFlow + Sync + '_ {
    move || {
        let options = taskflow_store_postgres::OpenOptions::default();
        taskflow_store_postgres::open(&scratch.url(), &options).unwrap()
    }
}

/// `TRIGGERS` triggers at once, each a few milliseconds after the one before, all in one second,
/// each on a store that `open` opened for it.
fn check_triggers_at_once(open: impl Fn() -> TaskFlow + Sync) {
    let now = Timestamp::from_millis(NOW);
    open().bind("alice").unwrap().add_schedule(schedule("nightly", &[])).unwrap();
    let together = Barrier::new(TRIGGERS);
    let triggered: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..TRIGGERS)
            .map(|n| {
                let (together, store) = (&together, open());
                let at = now.plus(std::time::Duration::from_millis(n as u64 * 90));
                scope.spawn(move || {
                    let alice = store.bind("alice").unwrap();
                    together.wait();
                    trigger(&alice, "nightly", at).unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });

    let fired = triggered.iter().filter(|triggered| triggered.fired).count();
    assert_eq!(fired, 1, "one trigger fired the slot: {triggered:#?}");
    let flow = triggered[0].slot.flow_id.clone().expect("the slot has its flow");
    for triggered in &triggered {
        assert_eq!(triggered.slot.flow_id.as_ref(), Some(&flow), "one slot, one flow");
        assert_eq!(triggered.slot.status, SlotStatus::Running);
    }
    let flows = open().bind("alice").unwrap().list(&ListQuery::default()).unwrap();
    assert_eq!(flows.len(), 1, "one flow made: {flows:#?}");
}

#[test]
fn of_triggers_within_one_second_exactly_one_fires_the_slot_and_the_others_find_its_flow() {
    let dir = tempfile::tempdir().unwrap();
    check_triggers_at_once(sqlite(&dir));
}

#[test]
fn on_postgres_of_triggers_within_one_second_exactly_one_fires_the_slot() {
    let scratch = Scratch::new();
    check_triggers_at_once(postgres(&scratch));
}

#[test]
fn a_trigger_whose_slot_id_an_earlier_schedules_run_holds_fires_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let alice = sqlite(&dir)().bind("alice").unwrap();
    let now = Timestamp::from_millis(NOW);
    alice.add_schedule(schedule("nightly", &[])).unwrap();
    assert!(trigger(&alice, "nightly", now).unwrap().fired);
    // The schedule made again under the same name, with another pipeline.
    alice.remove_schedule("nightly").unwrap();
    let mut again = schedule("nightly", &[]);
    again.pipeline =
        json!({"name": "nightly", "steps": [{"id": "b", "action": "echo", "with": {"value": 2}}]});
    alice.add_schedule(again).unwrap();

    let triggered = trigger(&alice, "nightly", now).unwrap();
    assert!(!triggered.fired, "{triggered:#?}");
    assert_eq!((triggered.slot.status, triggered.slot.flow_id), (SlotStatus::Skipped, None));
    let reason = triggered.slot.reason.unwrap_or_default();
    assert!(reason.contains("is not a run of this schedule"), "{reason}");
}
