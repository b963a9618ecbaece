//! The kit's tests of schedules: owner-scoped records with revisions, `apply` that changes
//! nothing the second time, gates on the owner's schedules without cycles, a slot that fires
//! once by the creation of its flow whatever two schedulers do, slots that did not run
//! recorded with their reason, a range of them split, not dropped, by a slot decided by hand
//! inside it, and a run its schedule cancels saying why on its slot's record.

use serde_json::json;

use super::{Harness, TTL};
use crate::{
    CatchUp, Decisions, Error, Flow, FlowId, FlowStatus, ListQuery, NewFlow, NewSchedule, NewStep,
    Otherwise, Overlap, OwnerHandle, PruneQuery, ScheduleSpec, Slot, SlotDecision, SlotStatus,
    StepKind, StepOutcome, Timestamp, Timing,
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

/// The kit's schedules' slots as their clock gives them: every day at 07:00Z from [`SEVEN`].
fn daily(
    _: &ScheduleSpec,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> crate::Result<(Vec<Timestamp>, bool)> {
    let mut day = (from.as_millis() - SEVEN).div_euclid(86_400_000);
    let mut slots = Vec::new();
    while at(day * 1440) <= to {
        if at(day * 1440) >= from {
            if slots.len() == limit {
                return Ok((slots, true));
            }
            slots.push(at(day * 1440));
        }
        day += 1;
    }
    Ok((slots, false))
}

/// Day `day` of the kit's schedules: its slot.
fn day(day: i64) -> Timestamp {
    at(day * 1440)
}

fn fire(at: Timestamp, reason: &str) -> SlotDecision {
    SlotDecision::Fire { at, reason: Some(reason.to_owned()) }
}

/// A schedule's records newest first: instant, status, last instant of a range, count.
fn records(
    handle: &OwnerHandle,
    name: &str,
) -> Vec<(Timestamp, SlotStatus, Option<Timestamp>, u64)> {
    let (_, slots) = handle.schedule(name, None, 100).unwrap();
    slots.iter().map(|slot| (slot.at, slot.status, slot.last_at, slot.count)).collect()
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
/// database: the flows of schedule `a` are its slots' (`a@SLOT`, the ids in `[a@0, a@:)`), not
/// `a1`, `A2` or `a3`, which a locale's collation puts near that range, nor the slots of `ab`,
/// nor ids of one's choosing such as `a@example` or `a@2026-12-05`; and every id the schedule's
/// list would take is refused to anyone but its slots (with milliseconds too). Schedules come in
/// the order of their names' bytes (upper case, then `_`, then lower case).
pub fn a_schedules_flows_are_its_slots_and_schedules_come_in_the_order_of_their_names_bytes(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let slot = fired(&alice, "a", 0);
    let other = fired(&alice, "ab", 0);
    for id in ["a1", "A2", "a3", "a@example", "a@2026-12-05", "a@2026-12-05T07:00:00"] {
        let by_hand = NewFlow::managed("by hand").with_id(FlowId::parse(id).unwrap());
        alice.create(by_hand).unwrap();
    }
    for id in ["a@2026-12-05T07:00:00.000Z", "a@2026-12-06T07:00:00.250Z", "a@2026-12-07T07:00:00Z"]
    {
        let by_hand = NewFlow::managed("by hand").with_id(FlowId::parse(id).unwrap());
        let refused = alice.create(by_hand).unwrap_err();
        assert!(
            matches!(&refused, Error::InvalidInput(m) if m.contains("slot")),
            "{id}: {refused}"
        );
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

/// A slot decided by hand (a backfill, a trigger) inside a recorded range of missed slots splits
/// the range: the slots before and after it stay recorded missed, each part with its count and
/// the range's reason and time, whether the slot is the range's first, one in its middle, its
/// last, or an instant between two of its slots, one at a time or several at once; so every
/// slot keeps exactly one record. A range the schedule's timing does not give (an earlier
/// timing's) is never dropped: its first slot is refused.
pub fn a_slot_decided_by_hand_inside_a_range_of_missed_slots_splits_it_keeping_the_others(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    alice.add_schedule(schedule("digest", &[])).unwrap();
    let paused = "the schedule was paused";
    let missed = SlotDecision::Record {
        at: day(0),
        status: SlotStatus::Missed,
        reason: paused.to_owned(),
        last_at: Some(day(4)),
        count: 5,
    };
    alice.decide_slots("digest", decisions(at(0), vec![missed], day(5))).unwrap();
    let (_, before) = alice.schedule("digest", None, 1).unwrap();
    // Decided later: the parts keep the range's time, not this one.
    std::thread::sleep(std::time::Duration::from_millis(5));
    use SlotStatus::{Missed, Running};

    // Its first slot: the other four stay one range, from the day after.
    let first = alice.decide_by_hand("digest", vec![fire(day(0), "backfill")], &daily).unwrap();
    assert!(first[0].made_flow);
    assert_eq!(
        records(&alice, "digest"),
        [(day(1), Missed, Some(day(4)), 4), (day(0), Running, None, 1)]
    );
    // One in the middle: a slot before it, two after.
    alice.decide_by_hand("digest", vec![fire(day(2), "backfill")], &daily).unwrap();
    assert_eq!(
        records(&alice, "digest"),
        [
            (day(3), Missed, Some(day(4)), 2),
            (day(2), Running, None, 1),
            (day(1), Missed, None, 1),
            (day(0), Running, None, 1),
        ]
    );
    // Its last: the slot before it stays.
    alice.decide_by_hand("digest", vec![fire(day(4), "backfill")], &daily).unwrap();
    let (_, slots) = alice.schedule("digest", None, 100).unwrap();
    let kept: Vec<&Slot> = slots.iter().filter(|slot| slot.status == Missed).collect();
    assert_eq!(kept.iter().map(|slot| slot.at).collect::<Vec<_>>(), [day(3), day(1)]);
    for slot in kept {
        assert_eq!(
            (slot.reason.as_deref(), slot.decided_at, slot.count),
            (Some(paused), before[0].decided_at, 1),
            "the range's reason and time"
        );
    }
    assert_eq!(slots.iter().map(|slot| slot.count).sum::<u64>(), 5, "one record per slot");

    // Several slots decided at once, one of them an instant between two slots (a trigger):
    // each run of slots between them stays one record.
    alice.add_schedule(schedule("tick", &[])).unwrap();
    let missed = SlotDecision::Record {
        at: day(0),
        status: Missed,
        reason: paused.to_owned(),
        last_at: Some(day(4)),
        count: 5,
    };
    alice.decide_slots("tick", decisions(at(0), vec![missed], day(5))).unwrap();
    let both = vec![fire(at(720), "triggered by hand"), fire(day(2), "backfill")];
    alice.decide_by_hand("tick", both, &daily).unwrap();
    assert_eq!(
        records(&alice, "tick"),
        [
            (day(3), Missed, Some(day(4)), 2),
            (day(2), Running, None, 1),
            (day(1), Missed, None, 1),
            (at(720), Running, None, 1),
            (day(0), Missed, None, 1),
        ]
    );

    // A range of another timing than the schedule's: its first slot is refused, nothing written.
    let hourly = |_: &ScheduleSpec, from: Timestamp, to: Timestamp, limit: usize| {
        let hours = (from.as_millis()..=to.as_millis()).step_by(3_600_000);
        let slots: Vec<Timestamp> = hours.map(Timestamp::from_millis).collect();
        Ok((slots.iter().copied().take(limit).collect(), slots.len() > limit))
    };
    let other = alice.decide_by_hand("tick", vec![fire(day(3), "backfill")], &hourly).unwrap_err();
    assert!(
        matches!(&other, Error::InvalidInput(m) if m.contains("under an earlier timing")),
        "{other}"
    );
    assert_eq!(records(&alice, "tick")[0], (day(3), Missed, Some(day(4)), 2));
}

/// A scheduler's cancel of a slot's run (past the schedule's timeout, or under overlap
/// `cancel-other`) says why on the slot's record, written in the transaction that asks for the
/// cancel: `cancelled: WHY`, after the reason the record had. The record keeps its time (a
/// timeout counts from when the slot fired) and, once its run ended cancelled, the reason; the
/// same cancel asked again, a run cancelled by hand first, or one that ended adds nothing.
pub fn a_slots_run_cancelled_by_its_schedule_says_why_on_the_slots_record(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let reason = |at| {
        let (_, slots) = alice.schedule("digest", None, 100).unwrap();
        let slot = slots.into_iter().find(|slot| slot.at == at).unwrap();
        (slot.status, slot.flow_status, slot.reason)
    };
    use FlowStatus::{Cancelled, Running};
    use SlotStatus::Ended;

    // A run that goes on: its step still runs when the cancel is asked.
    let slow = fired(&alice, "digest", 0);
    let (_, before) = alice.schedule("digest", None, 1).unwrap();
    let lease = alice.acquire_lease(&slow.id, TTL).unwrap();
    alice.set_status(&lease, Running, None).unwrap();
    let step = alice.begin_step(&lease, NewStep::new("sleep", StepKind::Action)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let timeout = "ran past the schedule's timeout (2s)";
    let slot = alice.cancel_slot_run("digest", at(0), timeout).unwrap();
    let said = "cancelled: ran past the schedule's timeout (2s)";
    assert_eq!((slot.status, slot.reason.as_deref()), (SlotStatus::Running, Some(said)));
    assert_eq!(slot.decided_at, before[0].decided_at, "the timeout still counts from the slot");
    assert!(alice.flow(&slow.id).unwrap().cancel_requested_at.is_some());
    let again = alice.cancel_slot_run("digest", at(0), timeout).unwrap();
    assert_eq!(again.reason.as_deref(), Some(said), "asked again, said once");
    alice.finish_step(&lease, step.seq, StepOutcome::Cancelled).unwrap();
    assert_eq!(alice.flow(&slow.id).unwrap().status, Cancelled);
    assert_eq!(reason(at(0)), (Ended, Some(Cancelled), Some(said.to_owned())));
    let ended = alice.cancel_slot_run("digest", at(0), "again").unwrap_err();
    assert!(matches!(ended, Error::AlreadyEnded { .. }), "{ended}");
    assert_eq!(reason(at(0)).2.as_deref(), Some(said));

    // A slot that fired with a reason keeps it; its queued run is cancelled at once.
    let waited = "waited for the runs before it (overlap cancel-other)";
    alice.decide_slots("digest", decisions(day(1), vec![fire(day(1), waited)], day(2))).unwrap();
    let by = "the later slot 2026-12-07T07:00:00Z came due while it ran (overlap cancel-other)";
    let slot = alice.cancel_slot_run("digest", day(1), by).unwrap();
    let both = format!("{waited}; cancelled: {by}");
    assert_eq!(
        (slot.status, slot.flow_status, slot.reason.as_deref()),
        (Ended, Some(Cancelled), Some(both.as_str()))
    );
    assert_eq!(reason(day(1)), (Ended, Some(Cancelled), Some(both.clone())));

    // A run cancelled by hand first: the schedule did not cancel it, and does not say so.
    let manual = fired(&alice, "digest", 2 * 1440);
    let lease = alice.acquire_lease(&manual.id, TTL).unwrap();
    alice.set_status(&lease, Running, None).unwrap();
    alice.begin_step(&lease, NewStep::new("sleep", StepKind::Action)).unwrap();
    alice.request_cancel(&manual.id, None).unwrap();
    let slot = alice.cancel_slot_run("digest", day(2), timeout).unwrap();
    assert_eq!((slot.status, slot.reason), (SlotStatus::Running, None));

    // A slot without a run, another owner's schedule, a slot not recorded: refused, nothing
    // written.
    let skipped = record(day(3), SlotStatus::Skipped, "a run still goes (overlap skip)");
    alice.decide_slots("digest", decisions(day(3), vec![skipped], day(4))).unwrap();
    let none = alice.cancel_slot_run("digest", day(3), timeout).unwrap_err();
    assert!(matches!(&none, Error::InvalidInput(m) if m.contains("has no run")), "{none}");
    let unknown = alice.cancel_slot_run("digest", day(9), timeout).unwrap_err();
    assert!(matches!(&unknown, Error::InvalidInput(m) if m.contains("has no run")), "{unknown}");
    let bob = fx.taskflow.bind("bob").unwrap();
    let theirs = bob.cancel_slot_run("digest", day(1), timeout).unwrap_err();
    assert!(matches!(theirs, Error::ScheduleNotFound { .. }), "{theirs}");
    assert_eq!(reason(day(3)).2.as_deref(), Some("a run still goes (overlap skip)"));
}
