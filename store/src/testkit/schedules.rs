//! The kit's tests of schedules: owner-scoped records with revisions, `apply` that changes
//! nothing the second time, gates on the owner's schedules without cycles, a slot that fires
//! once by the creation of its flow whatever two schedulers do, and slots that did not run
//! recorded with their reason.

use serde_json::json;

use super::{Harness, TTL};
use crate::{
    CatchUp, Decisions, Error, Flow, FlowId, FlowStatus, ListQuery, NewFlow, NewSchedule,
    Otherwise, Overlap, OwnerHandle, PruneQuery, ScheduleSpec, SlotDecision, SlotStatus, Timestamp,
    Timing,
};

/// 2026-12-05T07:00:00Z.
const SEVEN: i64 = 1_796_454_000_000;

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_millis(SEVEN + minutes * 60_000)
}

fn spec(after: &[&str]) -> ScheduleSpec {
    ScheduleSpec {
        timing: Timing::Cron("0 7 * * *".to_owned()),
        zone: "Europe/Paris".to_owned(),
        after: after.iter().map(|name| name.to_string()).collect(),
        within_ms: (!after.is_empty()).then_some(7_200_000),
        otherwise: Otherwise::Skip,
        overlap: Overlap::Skip,
        catch_up: CatchUp::Latest,
        catch_up_window_ms: 3_600_000,
        max_catch_up: 1,
        jitter_ms: 0,
        timeout_ms: None,
    }
}

/// Schedule `name`: every day at 07:00 in Paris, after the schedules `after`, running one `echo`
/// step; its first slot 2026-12-05T07:00:00Z.
pub fn schedule(name: &str, after: &[&str]) -> NewSchedule {
    NewSchedule {
        name: name.to_owned(),
        spec: spec(after),
        pipeline: json!({"name": name, "steps": [{"id": "a", "action": "echo", "with": {"value": 1}}]}),
        paused: false,
        next_slot: Some(at(0)),
        next_fire: Some(at(0)),
    }
}

/// The flow of schedule `name`'s slot `slot` minutes after the first, fired by the store as a
/// scheduler fires it (the schedule added at its first slot): ids of a slot's form are only
/// made so.
pub(super) fn fired(handle: &OwnerHandle, name: &str, slot: i64) -> Flow {
    if slot == 0 {
        handle.add_schedule(schedule(name, &[])).unwrap();
    }
    let fire = vec![SlotDecision::Fire { at: at(slot), reason: None }];
    let fired = handle.decide_slots(name, decisions(at(slot), fire, at(slot + 1440))).unwrap();
    handle.flow(fired[0].slot.flow_id.as_ref().unwrap()).unwrap()
}

fn decisions(expected: Timestamp, slots: Vec<SlotDecision>, next: Timestamp) -> Decisions {
    Decisions { expected: Some(expected), slots, next_slot: Some(next), next_fire: Some(next) }
}

fn record(at: Timestamp, status: SlotStatus, reason: &str) -> SlotDecision {
    SlotDecision::Record { at, status, reason: reason.to_owned(), last_at: None, count: 1 }
}

pub fn schedules_are_owner_scoped_with_revisions_and_apply_twice_changes_nothing(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let added = alice.add_schedule(schedule("digest", &[])).unwrap();
    assert_eq!((added.revision, added.owner.as_str(), added.next_slot), (1, "alice", Some(at(0))));
    let again = alice.add_schedule(schedule("digest", &[])).unwrap_err();
    assert!(matches!(again, Error::ScheduleExists { .. }), "{again}");
    // Another owner neither sees it nor takes its name.
    let hidden = bob.schedule("digest", None, 10).unwrap_err();
    assert!(matches!(hidden, Error::ScheduleNotFound { .. }), "{hidden}");
    let taken = [
        bob.apply_schedule(schedule("digest", &[])).map(drop).unwrap_err(),
        bob.add_schedule(schedule("digest", &[])).map(drop).unwrap_err(),
    ];
    for taken in taken {
        assert!(matches!(taken, Error::ScheduleNameTaken { .. }), "{taken}");
    }
    assert!(bob.schedules().unwrap().is_empty());
    let bad = alice.add_schedule(schedule("has space", &[])).unwrap_err();
    assert!(bad.to_string().contains("not a schedule name"), "{bad}");

    // Applying what is stored changes nothing; a new pipeline is one revision, the cursor kept.
    let same = alice.apply_schedule(schedule("digest", &[])).unwrap();
    assert_eq!((same.created, same.changed, same.schedule.revision), (false, false, 1));
    let mut changed = schedule("digest", &[]);
    changed.pipeline["steps"][0]["with"]["value"] = json!(2);
    changed.next_slot = Some(at(60));
    let applied = alice.apply_schedule(changed.clone()).unwrap();
    assert_eq!((applied.changed, applied.schedule.revision), (true, 2));
    assert_eq!(applied.schedule.next_slot, Some(at(0)), "the timing did not change");
    // A new timing starts the cursor again.
    changed.spec.timing = Timing::Cron("30 7 * * *".to_owned());
    let retimed = alice.apply_schedule(changed).unwrap().schedule;
    assert_eq!((retimed.revision, retimed.next_slot), (3, Some(at(60))));

    let paused = alice.pause_schedule("digest").unwrap();
    assert_eq!((paused.paused, paused.revision), (true, 4));
    assert_eq!(alice.pause_schedule("digest").unwrap().revision, 4, "no change");
    assert!(fx.taskflow.due_schedules(at(120), 10).unwrap().is_empty(), "paused is never due");
    let missed = SlotDecision::Record {
        at: at(60),
        status: SlotStatus::Missed,
        reason: "the schedule was paused".to_owned(),
        last_at: Some(at(60 + 1440)),
        count: 2,
    };
    let resumed =
        alice.resume_schedule("digest", (Some(missed), Some(at(2940)), Some(at(2940)))).unwrap();
    assert_eq!((resumed.paused, resumed.revision, resumed.next_slot), (false, 5, Some(at(2940))));
    let (_, slots) = alice.schedule("digest", None, 10).unwrap();
    assert_eq!(
        (slots[0].status, slots[0].count, slots[0].last_at),
        (SlotStatus::Missed, 2, Some(at(1500)))
    );

    let history = alice.schedule_history("digest").unwrap();
    let fields: Vec<Vec<&str>> = history
        .iter()
        .map(|revision| revision.change.iter().map(|change| change.field.as_str()).collect())
        .collect();
    assert_eq!(
        fields,
        [
            vec!["name", "spec", "paused"],
            vec!["pipeline"],
            vec!["spec"],
            vec!["paused"],
            vec!["paused"]
        ]
    );
    let listed = alice.schedules().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_slot.as_ref().map(|slot| slot.status), Some(SlotStatus::Missed));

    alice.remove_schedule("digest").unwrap();
    assert!(alice.schedules().unwrap().is_empty());
    assert!(matches!(alice.remove_schedule("digest"), Err(Error::ScheduleNotFound { .. })));
}

pub fn gates_name_the_owners_schedules_and_cycles_are_refused(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let unknown = alice.add_schedule(schedule("draft", &["scrape"])).unwrap_err();
    assert!(
        unknown.to_string().contains("`scrape`, which is not one of your schedules"),
        "{unknown}"
    );
    alice.add_schedule(schedule("scrape", &[])).unwrap();
    alice.add_schedule(schedule("draft", &["scrape"])).unwrap();
    alice.add_schedule(schedule("send", &["draft", "scrape"])).unwrap();
    let cycle = alice.apply_schedule(schedule("scrape", &["send"])).unwrap_err();
    assert!(
        cycle.to_string().contains("would wait for itself: scrape → send → draft → scrape"),
        "{cycle}"
    );
    let itself = alice.add_schedule(schedule("loop", &["loop"])).unwrap_err();
    assert!(itself.to_string().contains("loop → loop"), "{itself}");
    // Another owner's schedule is not a gate.
    let bob = fx.taskflow.bind("bob").unwrap();
    assert!(bob.add_schedule(schedule("theirs", &["scrape"])).is_err());
    let busy = alice.remove_schedule("scrape").unwrap_err();
    assert!(busy.to_string().contains("runs after `scrape`"), "{busy}");
    alice.remove_schedule("send").unwrap();
    alice.remove_schedule("draft").unwrap();
    alice.remove_schedule("scrape").unwrap();
}

pub fn a_slot_fires_once_by_the_creation_of_its_flow_and_its_record_follows_the_flow(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    alice.add_schedule(schedule("digest", &[])).unwrap();
    assert_eq!(fx.taskflow.next_fire().unwrap(), Some(at(0)));
    assert_eq!(fx.taskflow.due_schedules(at(0), 10).unwrap().len(), 1);
    assert!(fx.taskflow.due_schedules(at(-1), 10).unwrap().is_empty());

    let fire = SlotDecision::Fire { at: at(0), reason: None };
    let fired =
        alice.decide_slots("digest", decisions(at(0), vec![fire.clone()], at(1440))).unwrap();
    assert!(fired[0].made_flow, "the first decision to fire the slot makes its flow");
    let fired = &fired[0].slot;
    let id = fired.flow_id.clone().unwrap();
    assert_eq!(id.as_str(), "digest@2026-12-05T07:00:00Z");
    assert_eq!((fired.status, fired.flow_status), (SlotStatus::Running, Some(FlowStatus::Queued)));
    let flow = alice.flow(&id).unwrap();
    assert_eq!((flow.name.as_str(), flow.status), ("digest", FlowStatus::Queued));
    assert_eq!(flow.spec.unwrap()["steps"][0]["id"], "a");
    let created = &alice.history(&id).unwrap()[0];
    assert!(created.change.iter().any(|change| change.field == "slot"), "{created:?}");

    // A second scheduler that read the old cursor is refused and writes nothing; one that read
    // the new cursor but decides the same slot finds its flow, and makes no second one.
    let other = fx.reopen().bind("alice").unwrap();
    let stale = other.decide_slots("digest", decisions(at(0), vec![fire.clone()], at(1440)));
    assert!(matches!(stale, Err(Error::ScheduleMoved { .. })), "{stale:?}");
    let twice = other.decide_slots("digest", decisions(at(1440), vec![fire], at(2880))).unwrap();
    assert_eq!(twice[0].slot.flow_id.as_ref(), Some(&id));
    assert!(!twice[0].made_flow, "a decision that finds the slot's flow says it made none");
    let flows = alice.list(&ListQuery::default()).unwrap();
    assert_eq!(flows.len(), 1, "one slot, one flow");

    // The slot's record follows its flow: ended with it, open again when it is reopened.
    let lease = alice.acquire_lease(&id, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.set_status(&lease, FlowStatus::Failed, Some("boom".into())).unwrap();
    let (_, slots) = alice.schedule("digest", None, 10).unwrap();
    assert_eq!(
        (slots[0].status, slots[0].flow_status),
        (SlotStatus::Ended, Some(FlowStatus::Failed))
    );
    assert!(fx.taskflow.open_slots(10).unwrap().is_empty());
    let (reopened, lease) = alice.reopen(&id, TTL).unwrap();
    assert_eq!(reopened.status, FlowStatus::Queued);
    // Its lease is taken in the same transaction: no claimer takes it first.
    assert_eq!(alice.flow(&id).unwrap().lease.map(|held| held.expires_at), Some(lease.expires_at));
    assert!(fx.taskflow.claim_as(&crate::LeaseHolder::current(), TTL, 10, &[]).unwrap().is_empty());
    let open = fx.taskflow.open_slots(10).unwrap();
    assert_eq!((open.len(), open[0].1.status), (1, SlotStatus::Running));
    assert_eq!(open[0].0.name, "digest");
}

pub fn a_pruned_slot_flow_takes_its_signals_and_leaves_the_slot_record(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    alice.add_schedule(schedule("digest", &[])).unwrap();
    let fire = SlotDecision::Fire { at: at(0), reason: None };
    let fired = alice.decide_slots("digest", decisions(at(0), vec![fire], at(1440))).unwrap();
    let id = fired[0].slot.flow_id.clone().unwrap();
    alice.send_signal(&id, "go", json!({"ok": true})).unwrap();
    let lease = alice.acquire_lease(&id, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.set_status(&lease, FlowStatus::Succeeded, None).unwrap();

    let query = PruneQuery {
        ended_before: Timestamp::now().plus(std::time::Duration::from_secs(1)),
        status: None,
        after: None,
        limit: 10,
        all_owners: false,
    };
    assert_eq!(alice.prune(&query).unwrap().removed, 1);
    assert!(matches!(alice.flow(&id), Err(Error::NotFound { .. })));
    assert!(matches!(alice.signals(&id), Err(Error::NotFound { .. })));
    let (_, slots) = alice.schedule("digest", None, 10).unwrap();
    assert_eq!(
        (slots[0].status, slots[0].flow_id.as_ref(), slots[0].flow_status),
        (SlotStatus::Ended, Some(&id), None),
        "the slot still says it fired, and which flow it was"
    );
    // Fired again (a backfill, a trigger), it keeps its record: it ran, and does not again.
    let fire = SlotDecision::Fire { at: at(0), reason: None };
    let again = alice.decide_slots("digest", decisions(at(1440), vec![fire], at(2880))).unwrap();
    assert!(!again[0].made_flow, "a pruned slot's flow is not made again");
    assert_eq!(
        (again[0].slot.status, again[0].slot.flow_id.as_ref()),
        (SlotStatus::Ended, Some(&id))
    );
    assert!(matches!(alice.flow(&id), Err(Error::NotFound { .. })));
}

/// A slot fired again while its flow is there (a second trigger within its second, a backfill
/// over it) keeps its record's reason and time: the record says what fired it, once; only the
/// status of its flow is brought up to date.
pub fn a_slot_fired_again_keeps_the_reason_and_time_it_fired_with(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    alice.add_schedule(schedule("digest", &[])).unwrap();
    let late = SlotDecision::Fire { at: at(0), reason: Some("ran late".to_owned()) };
    let first = alice.decide_slots("digest", decisions(at(0), vec![late], at(1440))).unwrap();
    let id = first[0].slot.flow_id.clone().unwrap();
    let lease = alice.acquire_lease(&id, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.set_status(&lease, FlowStatus::Succeeded, None).unwrap();
    let (_, before) = alice.schedule("digest", None, 10).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));

    let backfill = SlotDecision::Fire { at: at(0), reason: Some("backfill".to_owned()) };
    let again =
        alice.decide_slots("digest", decisions(at(1440), vec![backfill], at(2880))).unwrap();
    assert!(!again[0].made_flow);
    let (_, slots) = alice.schedule("digest", None, 10).unwrap();
    assert_eq!(slots, before, "the record is as it was");
    assert_eq!(
        (slots[0].reason.as_deref(), slots[0].status, slots[0].flow_status),
        (Some("ran late"), SlotStatus::Ended, Some(FlowStatus::Succeeded))
    );
    assert_eq!(again[0].slot, slots[0], "the answer is the record");
}

pub fn slots_not_run_are_recorded_with_their_reason_and_waiting_ones_are_resolved(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    alice.add_schedule(schedule("scrape", &[])).unwrap();
    alice.add_schedule(schedule("draft", &["scrape"])).unwrap();
    let missed = SlotDecision::Record {
        at: at(-2880),
        status: SlotStatus::Missed,
        reason: "serve was not running".to_owned(),
        last_at: Some(at(-1440)),
        count: 2,
    };
    let slots = vec![missed, SlotDecision::Fire { at: at(0), reason: None }];
    alice.decide_slots("scrape", decisions(at(0), slots, at(1440))).unwrap();
    let gated = record(at(0), SlotStatus::Gated, "waiting for scrape");
    alice.decide_slots("draft", decisions(at(0), vec![gated], at(1440))).unwrap();

    let (_, slots) = alice.schedule("scrape", None, 10).unwrap();
    let seen: Vec<(Timestamp, SlotStatus, u64)> =
        slots.iter().map(|slot| (slot.at, slot.status, slot.count)).collect();
    assert_eq!(seen, [(at(0), SlotStatus::Running, 1), (at(-2880), SlotStatus::Missed, 2)]);
    assert_eq!(slots[1].reason.as_deref(), Some("serve was not running"));
    let paged = alice.schedule("scrape", Some(at(0)), 10).unwrap().1;
    assert_eq!(paged.len(), 1, "before the newest");

    // Where draft's gate stands at 07:00: scrape decided its 07:00 slot, which runs.
    let gate = alice.gate_states(&["scrape".to_owned(), "nothing".to_owned()], at(0)).unwrap();
    assert!(gate[0].exists && gate[0].decided && !gate[0].paused);
    assert_eq!(gate[0].latest.as_ref().map(|slot| slot.at), Some(at(0)));
    assert!(!gate[1].exists);
    let early = alice.gate_states(&["scrape".to_owned()], at(1440)).unwrap();
    assert!(!early[0].decided, "its next slot is not decided yet");

    let open: Vec<(String, SlotStatus)> = fx
        .taskflow
        .open_slots(10)
        .unwrap()
        .into_iter()
        .map(|(schedule, slot)| (schedule.name, slot.status))
        .collect();
    assert_eq!(open.len(), 2);
    assert!(open.contains(&("draft".to_owned(), SlotStatus::Gated)), "{open:?}");

    // A waiting slot is decided once; one that does not wait is refused.
    let skipped = record(at(0), SlotStatus::Skipped, "scrape failed");
    let resolved = alice.resolve_slot("draft", skipped.clone()).unwrap();
    assert_eq!(
        (resolved.status, resolved.reason.as_deref()),
        (SlotStatus::Skipped, Some("scrape failed"))
    );
    let again = alice.resolve_slot("draft", skipped).unwrap_err();
    assert!(again.to_string().contains("does not wait (skipped)"), "{again}");
    let fired = record(at(0), SlotStatus::Ended, "no");
    assert!(alice.resolve_slot("scrape", fired).is_err());
}

/// Ids and schedule names compare by their bytes on every backend, whatever the collation of a
/// database: the flows of schedule `a` are its slots' (`a@SLOT`, the ids in `[a@, aA)`), not
/// `a1`, `A2` or `a3`, which a locale's collation puts in that range, nor the slots of `ab`; and
/// schedules come in the order of their names' bytes (upper case, then `_`, then lower case).
pub fn a_schedules_flows_are_its_slots_and_schedules_come_in_the_order_of_their_names_bytes(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let slot = fired(&alice, "a", 0);
    let other = fired(&alice, "ab", 0);
    for id in ["a1", "A2", "a3"] {
        let by_hand = NewFlow::managed("by hand").with_id(FlowId::parse(id).unwrap());
        alice.create(by_hand).unwrap();
    }
    let flows_of = |name: &str| -> Vec<FlowId> {
        let query = ListQuery { schedule: Some(name.to_owned()), ..ListQuery::default() };
        alice.list(&query).unwrap().into_iter().map(|flow| flow.id).collect()
    };
    assert_eq!(flows_of("a"), [slot.id]);
    assert_eq!(flows_of("ab"), [other.id]);
    assert_eq!(flows_of("A"), Vec::<FlowId>::new(), "there is no schedule `A`");

    for name in ["Z", "_x", "B"] {
        alice.add_schedule(schedule(name, &[])).unwrap();
    }
    let names: Vec<String> =
        alice.schedules().unwrap().into_iter().map(|summary| summary.schedule.name).collect();
    assert_eq!(names, ["B", "Z", "_x", "a", "ab"]);
}
