//! Triggers of one schedule within one second, on a real SQLite file, each on a connection of
//! its own and all at once: one of them fires the slot and makes its flow, the others find it
//! and say so, whatever their order.

use std::sync::Barrier;

use taskflow_api::schedules::trigger;
use taskflow_store::testkit::schedule;
use taskflow_store::{ListQuery, SlotStatus, Timestamp};
use taskflow_store_sqlite::OpenOptions;

const TRIGGERS: usize = 8;

#[test]
fn of_triggers_within_one_second_exactly_one_fires_the_slot_and_the_others_find_its_flow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let open = || taskflow_store_sqlite::open(&path, &OpenOptions::default()).unwrap();
    // A quarter of a second into the schedule's first slot, 2026-12-05T07:00:00Z.
    let now = Timestamp::from_millis(1_796_454_000_250);
    open().bind("alice").unwrap().add_schedule(schedule("nightly", &[])).unwrap();

    let together = Barrier::new(TRIGGERS);
    let triggered: Vec<_> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..TRIGGERS)
            .map(|n| {
                let (together, store) = (&together, open());
                // Each a few milliseconds later than the one before, all in the same second.
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
