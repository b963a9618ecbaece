//! The scheduler's passes over a real store, at instants the tests choose: a slot fires once
//! whatever two schedulers or a clock set back do; catch-up after a downtime; the overlap
//! policies; gates on other schedules with each `otherwise`; a run past its timeout cancelled;
//! each run the scheduler cancels says why on its slot's record.

use std::path::Path;

use serde_json::json;
use taskflow_engine::schedule::Scheduler;
use taskflow_engine::{
    CatchUp, FlowId, FlowStatus, NewSchedule, Otherwise, Overlap, OwnerHandle, ScheduleSpec, Slot,
    SlotStatus, TaskFlow, Timestamp, Timing,
};
use taskflow_store_sqlite::OpenOptions;

fn open(dir: &Path) -> TaskFlow {
    taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap()
}

/// Minute `n` after a whole minute near now.
fn minute(n: i64) -> Timestamp {
    let base = Timestamp::now().as_millis().div_euclid(3_600_000) * 3_600_000;
    Timestamp::from_millis(base + n * 60_000)
}

fn every_minute() -> ScheduleSpec {
    ScheduleSpec {
        timing: Timing::EveryMs(60_000),
        zone: "UTC".to_owned(),
        after: Vec::new(),
        within_ms: None,
        otherwise: Otherwise::Skip,
        overlap: Overlap::Allow,
        catch_up: CatchUp::Latest,
        catch_up_window_ms: 86_400_000,
        max_catch_up: 1,
        jitter_ms: 0,
        timeout_ms: None,
    }
}

fn add(handle: &OwnerHandle, name: &str, spec: ScheduleSpec, first: Timestamp) {
    handle
        .add_schedule(NewSchedule {
            name: name.to_owned(),
            spec,
            pipeline: json!({"name": name, "steps": [{"id": "a", "action": "echo", "with": {"value": 1}}]}),
            paused: false,
            next_slot: Some(first),
            next_fire: Some(first),
        })
        .unwrap();
}

/// A schedule's slots, oldest first: (minute, status, reason).
fn slots(handle: &OwnerHandle, name: &str) -> Vec<(i64, SlotStatus, String)> {
    let (_, mut slots) = handle.schedule(name, None, 1000).unwrap();
    slots.reverse();
    slots
        .iter()
        .map(|slot| (minute_of(slot), slot.status, slot.reason.clone().unwrap_or_default()))
        .collect()
}

fn minute_of(slot: &Slot) -> i64 {
    (slot.at.as_millis() - minute(0).as_millis()) / 60_000
}

/// Ends a slot's flow as a runner would.
fn end(handle: &OwnerHandle, name: &str, at: Timestamp, to: FlowStatus) {
    let id = taskflow_store::schedule::slot_flow_id(name, at).unwrap();
    let lease = handle.acquire_lease(&id, std::time::Duration::from_secs(30)).unwrap();
    handle.set_status(&lease, FlowStatus::Running, None).unwrap();
    handle.set_status(&lease, to, None).unwrap();
}

fn fired(outcome: &taskflow_engine::schedule::Outcome) -> Vec<String> {
    outcome.fired.iter().map(|(_, id)| id.to_string()).collect()
}

fn id(name: &str, at: Timestamp) -> String {
    taskflow_store::schedule::slot_flow_id(name, at).unwrap().to_string()
}

#[test]
fn a_slot_fires_once_whatever_two_schedulers_or_a_clock_set_back_do() {
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = taskflow.bind("alice").unwrap();
    add(&alice, "tick", every_minute(), minute(1));
    let (mut one, mut two) = (Scheduler::new(), Scheduler::new());
    let other = open(dir.path());

    assert!(one.pass(&taskflow, minute(0)).unwrap().fired.is_empty(), "not due yet");
    assert_eq!(fired(&one.pass(&taskflow, minute(1)).unwrap()), [id("tick", minute(1))]);
    assert!(two.pass(&other, minute(1)).unwrap().fired.is_empty(), "decided already");
    assert_eq!(fired(&two.pass(&other, minute(2)).unwrap()), [id("tick", minute(2))]);
    // The clock goes back: nothing is due again.
    assert!(one.pass(&taskflow, minute(1)).unwrap().fired.is_empty());
    let flows = alice.list(&Default::default()).unwrap();
    assert_eq!(flows.len(), 2);
    let (schedule, _) = alice.schedule("tick", None, 10).unwrap();
    assert_eq!(schedule.next_slot, Some(minute(3)));
}

#[test]
fn after_a_downtime_the_catch_up_policy_decides_which_late_slots_run_and_records_the_rest() {
    // Down from minute 0 to minute 10 (a scheduler that just started has made no pass).
    struct Case {
        catch_up: CatchUp,
        max: u32,
        window_minutes: u64,
        fired: &'static [i64],
        missed: &'static [i64],
        expired: Option<(i64, u64)>,
    }
    let cases = [
        Case {
            catch_up: CatchUp::Latest,
            max: 1,
            window_minutes: 1440,
            fired: &[10],
            missed: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            expired: None,
        },
        Case {
            catch_up: CatchUp::Latest,
            max: 0,
            window_minutes: 1440,
            fired: &[],
            missed: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            expired: None,
        },
        Case {
            catch_up: CatchUp::None,
            max: 5,
            window_minutes: 1440,
            fired: &[],
            missed: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            expired: None,
        },
        Case {
            catch_up: CatchUp::All,
            max: 3,
            window_minutes: 1440,
            fired: &[8, 9, 10],
            missed: &[0, 1, 2, 3, 4, 5, 6, 7],
            expired: None,
        },
        Case {
            catch_up: CatchUp::All,
            max: 100,
            window_minutes: 5,
            fired: &[5, 6, 7, 8, 9, 10],
            missed: &[],
            expired: Some((0, 5)),
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let taskflow = open(dir.path());
        let alice = taskflow.bind("alice").unwrap();
        let spec = ScheduleSpec {
            catch_up: case.catch_up,
            max_catch_up: case.max,
            catch_up_window_ms: case.window_minutes * 60_000,
            ..every_minute()
        };
        add(&alice, "tick", spec, minute(0));
        let outcome = Scheduler::new().pass(&taskflow, minute(10)).unwrap();
        let expected: Vec<String> = case.fired.iter().map(|n| id("tick", minute(*n))).collect();
        assert_eq!(fired(&outcome), expected, "{:?} max {}", case.catch_up, case.max);
        let (_, shown) = alice.schedule("tick", None, 1000).unwrap();
        // Each missed minute, a range counting each of its minutes.
        let mut missed: Vec<i64> = shown
            .iter()
            .filter(|slot| slot.status == SlotStatus::Missed)
            .filter(|slot| !slot.reason.as_deref().unwrap_or_default().contains("window"))
            .flat_map(|slot| {
                let first = minute_of(slot);
                (first..first + slot.count as i64).collect::<Vec<_>>()
            })
            .collect();
        missed.sort();
        assert_eq!(missed, case.missed, "{:?}", case.catch_up);
        let recorded = slots(&alice, "tick");
        assert!(recorded.iter().all(|(_, _, reason)| !reason.is_empty()), "each says why");
        assert!(
            recorded
                .iter()
                .filter(|(_, status, _)| *status == SlotStatus::Running)
                .all(|(_, _, reason)| reason.starts_with("ran late")),
            "{recorded:?}"
        );
        let expired = shown
            .iter()
            .find(|slot| slot.reason.as_deref().is_some_and(|reason| reason.contains("window")))
            .map(|slot| (minute_of(slot), slot.count));
        assert_eq!(expired, case.expired, "{:?}", case.catch_up);
        // Every slot up to minute 10 is accounted for, once.
        let counted: u64 = shown.iter().map(|slot| slot.count).sum();
        assert_eq!(counted, 11);
    }
}

#[test]
fn a_pass_that_stalled_runs_the_slot_it_was_on_time_for_and_catches_up_the_latest_late_one() {
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = taskflow.bind("alice").unwrap();
    add(&alice, "tick", every_minute(), minute(0));
    let mut scheduler = Scheduler::new();
    // A pass a second before minute 0, then none until minute 3: minute 0 is on time, 1 to 3
    // are late.
    scheduler.pass(&taskflow, minute(0).minus(std::time::Duration::from_secs(1))).unwrap();
    let outcome = scheduler.pass(&taskflow, minute(3)).unwrap();
    assert_eq!(fired(&outcome), [id("tick", minute(0)), id("tick", minute(3))]);
    let late = "ran late: no scheduler ran at its time (catch-up latest)".to_owned();
    let missed =
        "no scheduler ran at its time; a later slot ran instead (catch-up latest)".to_owned();
    assert_eq!(
        slots(&alice, "tick"),
        [
            (0, SlotStatus::Running, String::new()),
            (1, SlotStatus::Missed, missed),
            (3, SlotStatus::Running, late),
        ]
    );
    let (_, shown) = alice.schedule("tick", None, 10).unwrap();
    assert_eq!((shown[1].count, shown[1].last_at), (2, Some(minute(2))), "minutes 1 and 2");
}

/// A scheduler started again while a slot's flow still runs (adopted after a crash): the late
/// slot catch-up latest chose is skipped by the overlap, so the late slots before it do not say
/// a later slot ran instead; they name the one chosen and why it did not run.
#[test]
fn late_slots_say_a_later_slot_ran_instead_only_when_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = taskflow.bind("alice").unwrap();
    let skip = ScheduleSpec { overlap: Overlap::Skip, ..every_minute() };
    add(&alice, "tick", skip, minute(0));
    Scheduler::new().pass(&taskflow, minute(0)).unwrap();
    // Killed; minute 0's flow still runs when a new scheduler passes at minute 3.
    let outcome = Scheduler::new().pass(&taskflow, minute(3)).unwrap();
    assert!(fired(&outcome).is_empty(), "{outcome:?}");
    let recorded = slots(&alice, "tick");
    let still_runs = format!("{} still runs (overlap skip)", id("tick", minute(0)));
    assert_eq!(
        (recorded[2].0, recorded[2].1, recorded[2].2.as_str()),
        (3, SlotStatus::Skipped, still_runs.as_str())
    );
    let missed = format!(
        "no scheduler ran at its time; the later slot {} that catch-up latest chose was skipped \
         ({still_runs})",
        minute(3)
    );
    assert_eq!((recorded[1].0, recorded[1].1, &recorded[1].2), (1, SlotStatus::Missed, &missed));
}

#[test]
fn overlap_policies_skip_buffer_cancel_or_allow_a_slot_while_the_last_run_goes_on() {
    // Slots at minutes 0, 1 and 2 while the flow of minute 0 runs; then it ends and a pass at
    // minute 3 (its own slot included) runs what waited.
    struct Case {
        overlap: Overlap,
        while_running: [SlotStatus; 2],
        after: &'static [(i64, SlotStatus)],
    }
    use SlotStatus::*;
    let cases = [
        Case { overlap: Overlap::Allow, while_running: [Running, Running], after: &[(3, Running)] },
        Case { overlap: Overlap::Skip, while_running: [Skipped, Skipped], after: &[(3, Running)] },
        Case {
            overlap: Overlap::BufferOne,
            while_running: [Buffered, Skipped],
            after: &[(1, Running), (3, Skipped)],
        },
        Case {
            overlap: Overlap::BufferAll,
            while_running: [Buffered, Buffered],
            after: &[(1, Running), (2, Buffered), (3, Buffered)],
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let taskflow = open(dir.path());
        let alice = taskflow.bind("alice").unwrap();
        add(&alice, "tick", ScheduleSpec { overlap: case.overlap, ..every_minute() }, minute(0));
        let mut scheduler = Scheduler::new();
        scheduler.pass(&taskflow, minute(0).minus(std::time::Duration::from_secs(1))).unwrap();
        scheduler.pass(&taskflow, minute(0)).unwrap();
        scheduler.pass(&taskflow, minute(1)).unwrap();
        scheduler.pass(&taskflow, minute(2)).unwrap();
        let seen: Vec<SlotStatus> =
            slots(&alice, "tick")[1..].iter().map(|(_, status, _)| *status).collect();
        assert_eq!(seen, case.while_running, "{:?}", case.overlap);
        end(&alice, "tick", minute(0), FlowStatus::Succeeded);
        scheduler.pass(&taskflow, minute(3)).unwrap();
        let after = slots(&alice, "tick");
        for (n, status) in case.after {
            let slot = after.iter().find(|(at, _, _)| at == n).unwrap();
            assert_eq!(slot.1, *status, "{:?} minute {n}: {after:?}", case.overlap);
        }
    }

    // cancel-other: the running flow gets a cancel request, its slot's record saying which
    // slot cancelled it, and the slot runs once it ended.
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = taskflow.bind("alice").unwrap();
    add(
        &alice,
        "tick",
        ScheduleSpec { overlap: Overlap::CancelOther, ..every_minute() },
        minute(0),
    );
    let mut scheduler = Scheduler::new();
    scheduler.pass(&taskflow, minute(0).minus(std::time::Duration::from_secs(1))).unwrap();
    scheduler.pass(&taskflow, minute(0)).unwrap();
    let outcome = scheduler.pass(&taskflow, minute(1)).unwrap();
    let first = FlowId::parse(&id("tick", minute(0))).unwrap();
    assert_eq!(outcome.cancelled, std::slice::from_ref(&first));
    // A queued flow with a cancel request is cancelled at once, so the same pass runs the slot.
    assert_eq!(alice.flow(&first).unwrap().status, FlowStatus::Cancelled);
    assert_eq!(fired(&outcome), [id("tick", minute(1))]);
    let recorded = slots(&alice, "tick");
    let by =
        |n| format!("the later slot {} came due while it ran (overlap cancel-other)", minute(n));
    assert_eq!(recorded[0], (0, SlotStatus::Ended, format!("cancelled: {}", by(1))));
    let waited = "waited for the runs before it (overlap cancel-other)";
    assert_eq!(recorded[1], (1, SlotStatus::Running, waited.to_owned()));
    // The slot that waited is cancelled in turn by the next: its record keeps why it waited.
    let outcome = scheduler.pass(&taskflow, minute(2)).unwrap();
    assert_eq!(outcome.cancelled, [FlowId::parse(&id("tick", minute(1))).unwrap()]);
    let recorded = slots(&alice, "tick");
    assert_eq!(recorded[1], (1, SlotStatus::Ended, format!("{waited}; cancelled: {}", by(2))));
}

#[test]
fn a_gated_slot_waits_for_the_schedules_it_runs_after_and_otherwise_decides_when_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = taskflow.bind("alice").unwrap();
    // Slots every 10 minutes, so that each case has its own slot.
    let every_ten = ScheduleSpec { timing: Timing::EveryMs(600_000), ..every_minute() };
    let gated = |otherwise| ScheduleSpec {
        after: vec!["scrape".to_owned()],
        within_ms: Some(120_000),
        otherwise,
        ..every_ten.clone()
    };
    add(&alice, "scrape", every_ten.clone(), minute(0));
    add(&alice, "draft", gated(Otherwise::Skip), minute(0));
    add(
        &alice,
        "send",
        ScheduleSpec { after: vec!["draft".to_owned()], ..gated(Otherwise::Skip) },
        minute(0),
    );
    add(&alice, "anyway", gated(Otherwise::Run), minute(0));
    add(&alice, "strict", gated(Otherwise::Fail), minute(0));
    let mut scheduler = Scheduler::new();
    scheduler.pass(&taskflow, minute(0).minus(std::time::Duration::from_secs(1))).unwrap();

    // Minute 0: scrape fires; the others wait on it (send on draft).
    scheduler.pass(&taskflow, minute(0)).unwrap();
    assert_eq!(slots(&alice, "scrape")[0].1, SlotStatus::Running);
    assert_eq!(slots(&alice, "draft")[0], (0, SlotStatus::Gated, "waiting on scrape".to_owned()));
    assert_eq!(slots(&alice, "send")[0], (0, SlotStatus::Gated, "waiting on draft".to_owned()));
    // scrape succeeds: draft runs, then send once draft succeeded (a chain).
    end(&alice, "scrape", minute(0), FlowStatus::Succeeded);
    let outcome =
        scheduler.pass(&taskflow, minute(0).plus(std::time::Duration::from_secs(5))).unwrap();
    let mut ran = fired(&outcome);
    ran.sort();
    assert_eq!(ran, [id("anyway", minute(0)), id("draft", minute(0)), id("strict", minute(0))]);
    assert_eq!(slots(&alice, "send")[0].1, SlotStatus::Gated);
    end(&alice, "draft", minute(0), FlowStatus::Succeeded);
    let outcome =
        scheduler.pass(&taskflow, minute(0).plus(std::time::Duration::from_secs(10))).unwrap();
    assert_eq!(fired(&outcome), [id("send", minute(0))]);

    // Minute 10: scrape fails; each gated slot does what its `otherwise` says, at once.
    scheduler.pass(&taskflow, minute(10)).unwrap();
    end(&alice, "scrape", minute(10), FlowStatus::Failed);
    scheduler.pass(&taskflow, minute(10).plus(std::time::Duration::from_secs(5))).unwrap();
    let last = |name: &str| slots(&alice, name).last().cloned().unwrap();
    let draft = last("draft");
    assert_eq!(draft.1, SlotStatus::Skipped);
    assert!(
        draft.2.contains("scrape's slot") && draft.2.contains("failed (otherwise skip)"),
        "{draft:?}"
    );
    let anyway = last("anyway");
    assert_eq!(anyway.1, SlotStatus::Running);
    assert!(anyway.2.starts_with("ran although scrape's slot"), "{anyway:?}");
    let strict = last("strict");
    assert_eq!(strict.1, SlotStatus::Failed);
    assert!(strict.2.contains("(otherwise fail)"), "{strict:?}");
    // send after draft: draft's slot was skipped, so send is skipped too.
    let send = last("send");
    assert_eq!(send.1, SlotStatus::Skipped);
    assert!(send.2.contains("draft's slot") && send.2.contains("was skipped"), "{send:?}");

    // Minute 20: scrape never ends; past the window the gate closes.
    scheduler.pass(&taskflow, minute(20)).unwrap();
    scheduler.pass(&taskflow, minute(21)).unwrap();
    assert_eq!(last("draft").1, SlotStatus::Gated);
    scheduler.pass(&taskflow, minute(22)).unwrap();
    let draft = last("draft");
    assert_eq!(draft.1, SlotStatus::Skipped);
    assert!(draft.2.contains("scrape did not succeed within 2m of the slot"), "{draft:?}");
}

#[test]
fn a_run_still_going_past_its_schedules_timeout_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = taskflow.bind("alice").unwrap();
    let spec = ScheduleSpec { timeout_ms: Some(120_000), overlap: Overlap::Skip, ..every_minute() };
    let now = Timestamp::now();
    add(
        &alice,
        "tick",
        ScheduleSpec { timing: Timing::EveryMs(3_600_000), ..spec },
        Timestamp::from_millis(now.as_millis().div_euclid(1000) * 1000),
    );
    let mut scheduler = Scheduler::new();
    let outcome = scheduler.pass(&taskflow, now).unwrap();
    let flow = FlowId::parse(&outcome.fired[0].1.to_string()).unwrap();
    let lease = alice.acquire_lease(&flow, std::time::Duration::from_secs(30)).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let outcome = scheduler.pass(&taskflow, now.plus(std::time::Duration::from_secs(60))).unwrap();
    assert!(outcome.cancelled.is_empty(), "within its timeout");
    let outcome = scheduler.pass(&taskflow, now.plus(std::time::Duration::from_secs(180))).unwrap();
    assert_eq!(outcome.cancelled, std::slice::from_ref(&flow));
    assert!(alice.flow(&flow).unwrap().cancel_requested_at.is_some());
    // Its slot's record says why, from the transaction that asked for the cancel, after why it
    // ran late (the run, between steps, ended at once).
    let (_, recorded) = alice.schedule("tick", None, 1).unwrap();
    let why = "ran late: no scheduler ran at its time (catch-up latest); cancelled: ran past the \
               schedule's timeout (2m)";
    assert_eq!(
        (recorded[0].status, recorded[0].flow_status, recorded[0].reason.as_deref()),
        (SlotStatus::Ended, Some(FlowStatus::Cancelled), Some(why))
    );
    let again = scheduler.pass(&taskflow, now.plus(std::time::Duration::from_secs(181))).unwrap();
    assert!(again.cancelled.is_empty(), "asked once");
}
