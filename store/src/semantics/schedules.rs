//! Schedules and their slots (DESIGN §9), written once for every backend. A schedule is
//! owner-scoped and has revisions like a flow: every accepted change of what it is (its spec,
//! its pipeline, paused or not) bumps its revision and appends a revision row. Its scheduler's
//! progress is its cursor (the first slot not decided yet) and the record of each slot decided,
//! written together in one transaction, so a slot is decided once: a scheduler whose cursor
//! another moved meanwhile is refused and decides again from what is stored.
//!
//! A slot fires only by the creation of its flow, `NAME@SLOT`: an id is taken once, so no
//! crash, clock set backwards or second scheduler fires one slot twice. A slot's record follows
//! its flow: it ends when the flow ends, and runs again when a failed flow is reopened.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::create::create_flow;
use super::tree::request_cancel;
use crate::error::{Error, Result};
use crate::model::{FieldChange, Flow, NewFlow, Revision, SyncMode};
use crate::rules;
use crate::schedule::{
    Decided, GateState, NewSchedule, Put, Schedule, ScheduleSummary, Slot, SlotDecision,
    SlotStatus, SlotTimes, check_name, slot_flow_id,
};
use crate::store::Caller;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// The controller of the flows slots run.
pub const SLOT_CONTROLLER: &str = "taskflow schedule";

fn load<T: StoreTx + ?Sized>(tx: &T, owner: &str, name: &str) -> Result<Schedule> {
    tx.load_schedule(Some(owner), name)?
        .ok_or_else(|| Error::ScheduleNotFound { name: name.to_owned() })
}

/// Adds schedule `new` (`replace` false: one that exists is refused) or applies it (`replace`
/// true: created, or brought up to date with one revision when it differs; the same again
/// changes nothing). Every schedule it runs after must be the owner's, and none may run after
/// it in turn: a cycle is refused, named. An update keeps the cursor unless the timing, zone
/// or jitter changed (then it starts again at `new.next_slot`); whether it is paused is
/// changed by [`set_paused`], not here, once it exists.
pub fn put_schedule<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    new: NewSchedule,
    replace: bool,
    now: Timestamp,
) -> Result<Put> {
    check_name(&new.name)?;
    rules::check_text("owner", caller.owner)?;
    check_gates(tx, caller.owner, &new.name, &new.spec.after)?;
    let existing = tx.load_schedule(None, &new.name)?;
    let before = match existing {
        Some(existing) if existing.owner != caller.owner => {
            return Err(Error::ScheduleNameTaken { name: new.name });
        }
        Some(existing) if replace => existing,
        Some(_) => return Err(Error::ScheduleExists { name: new.name }),
        None => {
            let schedule = Schedule {
                name: new.name,
                owner: caller.owner.to_owned(),
                revision: 1,
                spec: new.spec,
                pipeline: new.pipeline,
                paused: new.paused,
                next_slot: new.next_slot,
                next_fire: new.next_fire,
                created_at: now,
                updated_at: now,
            };
            tx.insert_schedule(&schedule)?;
            let created = vec![
                change("name", Value::Null, json!(schedule.name)),
                change("spec", Value::Null, spec_json(&schedule)),
                change("paused", Value::Null, json!(schedule.paused)),
            ];
            tx.insert_schedule_revision(&schedule.name, 1, now, caller.actor, &created)?;
            return Ok(Put { schedule, created: true, changed: true });
        }
    };
    let mut after = before.clone();
    let mut changes = Vec::new();
    if before.spec != new.spec {
        let timing_moved = before.spec.timing != new.spec.timing
            || before.spec.zone != new.spec.zone
            || before.spec.jitter_ms != new.spec.jitter_ms;
        after.spec = new.spec;
        changes.push(change("spec", spec_json(&before), spec_json(&after)));
        if timing_moved {
            after.next_slot = new.next_slot;
            after.next_fire = new.next_fire;
        }
    }
    if before.pipeline != new.pipeline {
        after.pipeline = new.pipeline;
        changes.push(change("pipeline", before.pipeline.clone(), after.pipeline.clone()));
    }
    if changes.is_empty() {
        return Ok(Put { schedule: before, created: false, changed: false });
    }
    let schedule = write(tx, &before, after, changes, caller.actor, now)?;
    Ok(Put { schedule, created: false, changed: true })
}

/// Pauses or resumes schedule `name`. Resuming records the slots that came while it was paused
/// (`missed`, when the scheduler gives them) and moves its cursor to `next_slot`.
pub fn set_paused<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    name: &str,
    paused: bool,
    resumed: Option<(Option<SlotDecision>, Option<Timestamp>, Option<Timestamp>)>,
    now: Timestamp,
) -> Result<Schedule> {
    let before = load(tx, caller.owner, name)?;
    if before.paused == paused {
        return Ok(before);
    }
    let mut after = before.clone();
    after.paused = paused;
    if let (false, Some((missed, next_slot, next_fire))) = (paused, resumed) {
        if let Some(missed) = missed {
            write_decision(tx, caller, &before, missed, now)?;
        }
        after.next_slot = next_slot;
        after.next_fire = next_fire;
    }
    let changes = vec![change("paused", json!(before.paused), json!(paused))];
    write(tx, &before, after, changes, caller.actor, now)
}

/// Removes schedule `name`, its history and its slot records; the flows its slots ran stay.
/// Refused while another schedule runs after it.
pub fn remove_schedule<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    name: &str,
) -> Result<Schedule> {
    let schedule = load(tx, caller.owner, name)?;
    let dependants: Vec<String> = tx
        .schedules(Some(caller.owner))?
        .into_iter()
        .filter(|other| other.spec.after.iter().any(|gate| gate == name))
        .map(|other| other.name)
        .collect();
    if !dependants.is_empty() {
        return Err(Error::InvalidInput(format!(
            "schedule `{}` runs after `{name}`: remove it first, or apply it without `{name}` in \
             its `after`",
            dependants.join("`, `")
        )));
    }
    tx.delete_schedule(name)?;
    Ok(schedule)
}

/// Writes the scheduler's decisions about schedule `name`'s slots and moves its cursor, if the
/// cursor is still `expected` (otherwise [`Error::ScheduleMoved`], nothing written). Returns
/// each slot as recorded, and whether its decision made its flow.
#[allow(clippy::too_many_arguments)]
pub fn decide<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    name: &str,
    expected: Option<Timestamp>,
    decisions: Vec<SlotDecision>,
    next_slot: Option<Timestamp>,
    next_fire: Option<Timestamp>,
    now: Timestamp,
) -> Result<Vec<Decided>> {
    let schedule = load(tx, caller.owner, name)?;
    if schedule.next_slot != expected {
        return Err(Error::ScheduleMoved { name: name.to_owned() });
    }
    let mut slots = Vec::with_capacity(decisions.len());
    for decision in decisions {
        slots.push(write_decision(tx, caller, &schedule, decision, now)?);
    }
    tx.move_cursor(name, next_slot, next_fire)?;
    Ok(slots)
}

/// Writes decisions made by hand about schedule `name`'s slots (a trigger, a backfill), its
/// cursor left where it is: a slot that fired already keeps its flow. Slots decided inside a
/// recorded range of missed slots split the range ([`split_ranges`]: `times` gives the
/// schedule's slots), so that every other slot of it stays recorded missed, with true counts.
pub fn decide_by_hand<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    name: &str,
    decisions: Vec<SlotDecision>,
    times: &dyn SlotTimes,
    now: Timestamp,
) -> Result<Vec<Decided>> {
    let schedule = load(tx, caller.owner, name)?;
    split_ranges(tx, &schedule, &decisions, times)?;
    decisions
        .into_iter()
        .map(|decision| write_decision(tx, caller, &schedule, decision, now))
        .collect()
}

/// Decides a slot that waited (gated, buffered): it fires or is recorded for good. Refused for
/// a slot that does not wait.
pub fn resolve<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    name: &str,
    decision: SlotDecision,
    now: Timestamp,
) -> Result<Slot> {
    let schedule = load(tx, caller.owner, name)?;
    let at = decision.at();
    let waiting = tx.slot(name, at)?.map(|slot| slot.status);
    if !matches!(waiting, Some(SlotStatus::Gated | SlotStatus::Buffered)) {
        return Err(Error::InvalidInput(format!(
            "slot {at} of schedule `{name}` does not wait ({})",
            waiting.map_or("no such slot", SlotStatus::as_str)
        )));
    }
    Ok(write_decision(tx, caller, &schedule, decision, now)?.slot)
}

/// Asks for the cancel of the run of schedule `name`'s slot `at` (a scheduler's: the run went
/// past the schedule's timeout, or a later slot cancels it under overlap `cancel-other`) and,
/// in the same transaction, records why on the slot's record: `cancelled: WHY`, after the
/// reason the record had (`; cancelled: WHY`). Only the request that cancels the run records
/// it: a run whose cancel was requested already (by hand, by another scheduler) keeps its
/// record as it is, and an ended run is refused ([`Error::AlreadyEnded`]), nothing written. The
/// record keeps its time, so the timeout still counts from when the slot fired. Returns the
/// slot as recorded (ended already when the run was cancelled at once).
pub fn cancel_slot_run<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    name: &str,
    at: Timestamp,
    why: &str,
    now: Timestamp,
) -> Result<Slot> {
    load(tx, caller.owner, name)?;
    let no_run = || Error::InvalidInput(format!("slot {at} of schedule `{name}` has no run"));
    let flow = tx.slot(name, at)?.and_then(|slot| slot.flow_id).ok_or_else(no_run)?;
    let cancel = request_cancel(tx, caller, &flow, None, now)?;
    // Read again: a run cancelled at once ended its slot's record meanwhile.
    let slot = tx.slot(name, at)?.ok_or_else(no_run)?;
    if cancel.already_requested {
        return Ok(slot);
    }
    let why = rules::free_text(format!("cancelled: {why}"));
    let reason = match slot.reason {
        Some(before) if !before.is_empty() => format!("{before}; {why}"),
        _ => why,
    };
    let slot = Slot { reason: Some(reason), ..slot };
    tx.put_slot(&slot)?;
    Ok(slot)
}

/// `owner`'s schedules by name, each with its latest slot (without their pipelines).
pub fn summaries<T: StoreTx + ?Sized>(tx: &T, owner: &str) -> Result<Vec<ScheduleSummary>> {
    rules::check_text("owner", owner)?;
    tx.schedule_summaries(owner)
}

/// Schedule `name` and its slots, newest first (before `before`, at most `limit`).
pub fn show<T: StoreTx + ?Sized>(
    tx: &T,
    owner: &str,
    name: &str,
    before: Option<Timestamp>,
    limit: u32,
) -> Result<(Schedule, Vec<Slot>)> {
    let schedule = load(tx, owner, name)?;
    let slots = tx.slots(name, before, limit)?;
    Ok((schedule, slots))
}

/// Schedule `name`'s revisions, oldest first.
pub fn history<T: StoreTx + ?Sized>(tx: &T, owner: &str, name: &str) -> Result<Vec<Revision>> {
    load(tx, owner, name)?;
    tx.schedule_history(name)
}

/// Where each of `names` (schedules of `owner`) stands for a slot gated on them at `at`.
pub fn gate_states<T: StoreTx + ?Sized>(
    tx: &T,
    owner: &str,
    names: &[String],
    at: Timestamp,
) -> Result<Vec<GateState>> {
    names
        .iter()
        .map(|name| {
            let Some(schedule) = tx.load_schedule(Some(owner), name)? else {
                let schedule = name.clone();
                return Ok(GateState {
                    schedule,
                    exists: false,
                    decided: false,
                    paused: false,
                    latest: None,
                });
            };
            let latest = tx.slots(name, Some(at.plus(std::time::Duration::from_millis(1))), 1)?;
            Ok(GateState {
                schedule: name.clone(),
                exists: true,
                decided: schedule.next_slot.is_none_or(|cursor| cursor > at),
                paused: schedule.paused,
                latest: latest.into_iter().next(),
            })
        })
        .collect()
}

/// Whether the flow `NAME@SLOT` that exists already is a run of `schedule` (its owner's, made
/// by a slot, of the same pipeline): one made by a schedule of the name removed since, whose
/// pipeline or owner was another, is not (nothing else makes ids of that form).
fn is_slot_run<T: StoreTx + ?Sized>(tx: &T, schedule: &Schedule, flow: &Flow) -> Result<bool> {
    if flow.owner != schedule.owner || flow.controller.as_deref() != Some(SLOT_CONTROLLER) {
        return Ok(false);
    }
    let spec = tx.spec_text(&flow.id)?;
    Ok(spec.and_then(|text| serde_json::from_str::<Value>(&text).ok()).as_ref()
        == Some(&schedule.pipeline))
}

/// Writes one decision about a slot of `schedule`: a slot that fires gets its flow (unless its
/// id is taken already: then it fired before, and its record points at that flow; a flow under
/// that id that is not a run of this schedule is not taken for one, and the slot is skipped).
/// A slot whose record says it fired, its flow pruned since, keeps that record: it ran once; one
/// whose flow is there keeps its record's reason and time, the status of its flow brought up to
/// date (a trigger or a backfill that names it again did not fire it).
fn write_decision<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    schedule: &Schedule,
    decision: SlotDecision,
    now: Timestamp,
) -> Result<Decided> {
    // The flow of a slot that fires, when its id is taken already, read once.
    let mut existing = None;
    let decision = match decision {
        SlotDecision::Fire { at, reason } => {
            let id = slot_flow_id(&schedule.name, at)?;
            match tx.load_flow(None, &id, false)? {
                Some((flow, _)) if !is_slot_run(tx, schedule, &flow)? => SlotDecision::Record {
                    at,
                    status: SlotStatus::Skipped,
                    reason: format!(
                        "flow {id} exists and is not a run of this schedule (one of an earlier \
                         schedule of the name, with another pipeline or owner)"
                    ),
                    last_at: None,
                    count: 1,
                },
                Some((flow, _)) => {
                    existing = Some(flow);
                    SlotDecision::Fire { at, reason }
                }
                None => match tx.slot(&schedule.name, at)? {
                    // It fired before and its flow was pruned since: it ran; it does not again.
                    Some(fired)
                        if matches!(fired.status, SlotStatus::Running | SlotStatus::Ended) =>
                    {
                        return Ok(Decided { slot: fired, made_flow: false });
                    }
                    _ => SlotDecision::Fire { at, reason },
                },
            }
        }
        record => record,
    };
    let made_flow = matches!(decision, SlotDecision::Fire { .. }) && existing.is_none();
    let slot = match decision {
        SlotDecision::Fire { at, reason } => {
            let id = slot_flow_id(&schedule.name, at)?;
            let flow = match existing {
                Some(flow) => flow,
                None => {
                    let new = NewFlow {
                        id: Some(id.clone()),
                        name: schedule.name.clone(),
                        sync_mode: SyncMode::Managed,
                        controller: Some(SLOT_CONTROLLER.to_owned()),
                        goal: None,
                        spec: Some(schedule.pipeline.clone()),
                        state: None,
                    };
                    let origin = change(
                        "slot",
                        Value::Null,
                        json!({"schedule": schedule.name, "at": at.to_string()}),
                    );
                    let owner = Caller { owner: &schedule.owner, actor: caller.actor };
                    create_flow(tx, owner, new, None, vec![origin], now)?
                }
            };
            let status =
                if flow.status.is_terminal() { SlotStatus::Ended } else { SlotStatus::Running };
            let fired = Slot {
                schedule: schedule.name.clone(),
                at,
                status,
                flow_id: Some(id),
                flow_status: Some(flow.status),
                reason,
                last_at: None,
                count: 1,
                decided_at: now,
            };
            match tx.slot(&schedule.name, at)? {
                Some(before) if !made_flow && before.flow_id == fired.flow_id => {
                    Slot { reason: before.reason, decided_at: before.decided_at, ..fired }
                }
                _ => fired,
            }
        }
        SlotDecision::Record { at, status, reason, last_at, count } => {
            if matches!(status, SlotStatus::Running | SlotStatus::Ended) {
                return Err(Error::InvalidInput(
                    "a slot runs only by the creation of its flow".to_owned(),
                ));
            }
            Slot {
                schedule: schedule.name.clone(),
                at,
                status,
                flow_id: None,
                flow_status: None,
                reason: Some(reason),
                last_at,
                count: count.max(1),
                decided_at: now,
            }
        }
    };
    tx.put_slot(&slot)?;
    Ok(Decided { slot, made_flow })
}

/// Before decisions by hand are written: each recorded range of missed slots of `schedule` that
/// holds slots they decide gives way to the records of its other slots, each run of them
/// between decided ones (or the range's ends) one record with its count and the range's reason
/// and time, as `times` gives the range's slots; so backfilling or triggering slots of a range
/// drops none of the others, and the counts stay true. A range that the schedule's timing does
/// not give (one recorded under an earlier timing) is left whole beside the slots decided,
/// unless one of them would take the range's own record: that is refused, as it would drop the
/// others.
///
/// Only decisions by hand need it: the scheduler decides slots from its cursor on, after every
/// range it recorded.
fn split_ranges<T: StoreTx + ?Sized>(
    tx: &T,
    schedule: &Schedule,
    decisions: &[SlotDecision],
    times: &dyn SlotTimes,
) -> Result<()> {
    let mut decided: Vec<(Timestamp, Timestamp)> = decisions
        .iter()
        .map(|decision| match decision {
            SlotDecision::Fire { at, .. } => (*at, *at),
            SlotDecision::Record { at, last_at, .. } => (*at, last_at.unwrap_or(*at)),
        })
        .collect();
    decided.sort();
    // The ranges that hold a decided slot, each once.
    let mut ranges = BTreeMap::new();
    for (at, _) in &decided {
        let newest = tx.slots(&schedule.name, Some(at.plus(Duration::from_millis(1))), 1)?;
        if let Some(range) = newest.into_iter().next()
            && range.status == SlotStatus::Missed
            && range.last_at.is_some_and(|last| last >= *at)
        {
            ranges.insert(range.at, range);
        }
    }
    for range in ranges.into_values() {
        let last = range.last_at.unwrap_or(range.at);
        let count = usize::try_from(range.count).unwrap_or(usize::MAX);
        let (slots, more) = times.between(&schedule.spec, range.at, last, count)?;
        let given = !more
            && slots.len() == count
            && slots.first() == Some(&range.at)
            && slots.last() == Some(&last);
        if !given {
            if decided.iter().any(|(from, to)| *from <= range.at && range.at <= *to) {
                return Err(Error::InvalidInput(format!(
                    "slot {} of schedule `{}` is the first of {} missed slots recorded up to \
                     {last} under an earlier timing of the schedule: deciding it would drop the \
                     record of the others; decide slots after {last}",
                    range.at, schedule.name, range.count
                )));
            }
            continue;
        }
        for part in undecided_runs(&slots, &decided) {
            let (Some(&first), Some(&end)) = (part.first(), part.last()) else { continue };
            let rest = Slot {
                at: first,
                last_at: (end != first).then_some(end),
                count: part.len() as u64,
                ..range.clone()
            };
            tx.put_slot(&rest)?;
        }
    }
    Ok(())
}

/// The runs of `slots` (oldest first) that no span of `decided` (sorted) covers or falls
/// between.
fn undecided_runs(slots: &[Timestamp], decided: &[(Timestamp, Timestamp)]) -> Vec<Vec<Timestamp>> {
    let mut runs = Vec::new();
    let mut run = Vec::new();
    let mut spans = decided.iter().peekable();
    for &slot in slots {
        // A span that ended before this slot ends the run before it.
        while spans.next_if(|(_, to)| *to < slot).is_some() {
            runs.push(std::mem::take(&mut run));
        }
        if spans.peek().is_some_and(|(from, _)| *from <= slot) {
            runs.push(std::mem::take(&mut run));
        } else {
            run.push(slot);
        }
    }
    runs.push(run);
    runs.retain(|run| !run.is_empty());
    runs
}

/// Every schedule `name` would wait for must be `owner`'s, and none may wait for `name` in
/// turn (through any chain). Only the schedules reachable from `after` are read, so a schedule
/// without gates costs nothing here however many schedules there are.
fn check_gates<T: StoreTx + ?Sized>(
    tx: &T,
    owner: &str,
    name: &str,
    after: &[String],
) -> Result<()> {
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    graph.insert(name.to_owned(), after.to_vec());
    let mut pending: Vec<String> = after.to_vec();
    while let Some(next) = pending.pop() {
        if graph.contains_key(&next) {
            continue;
        }
        check_name(&next)?;
        let Some(schedule) = tx.load_schedule(Some(owner), &next)? else {
            let named_here = after.contains(&next);
            return Err(Error::InvalidInput(if named_here {
                format!(
                    "schedule `{name}` runs after `{next}`, which is not one of your schedules \
                     (add it first)"
                )
            } else {
                format!("schedule `{next}`, which `{name}` waits for through others, is missing")
            }));
        };
        pending.extend(schedule.spec.after.iter().cloned());
        graph.insert(next, schedule.spec.after);
    }
    if let Some(cycle) = cycle_through(&graph, name) {
        return Err(Error::InvalidInput(format!(
            "schedule `{name}` would wait for itself: {}",
            cycle.join(" → ")
        )));
    }
    Ok(())
}

/// A path of `after` edges from `start` back to it, if there is one: `[start, …, start]`.
fn cycle_through(graph: &BTreeMap<String, Vec<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, Vec<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            path.push(next.clone());
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) && walk(graph, start, next, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

/// Writes `after` over `before` with one more revision listing `changes`.
fn write<T: StoreTx + ?Sized>(
    tx: &T,
    before: &Schedule,
    mut after: Schedule,
    changes: Vec<FieldChange>,
    actor: &str,
    now: Timestamp,
) -> Result<Schedule> {
    after.revision = before.revision + 1;
    after.updated_at = now;
    if !tx.update_schedule(&after, before.revision)? {
        return Err(Error::ScheduleMoved { name: before.name.clone() });
    }
    tx.insert_schedule_revision(&after.name, after.revision, now, actor, &changes)?;
    Ok(after)
}

fn change(field: &str, before: Value, after: Value) -> FieldChange {
    FieldChange { field: field.to_owned(), before, after }
}

fn spec_json(schedule: &Schedule) -> Value {
    serde_json::to_value(&schedule.spec).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::{cycle_through, undecided_runs};
    use crate::time::Timestamp;
    use std::collections::BTreeMap;

    #[test]
    fn the_slots_of_a_range_left_undecided_are_the_runs_between_those_decided() {
        let t = |n: i64| Timestamp::from_millis(n);
        let slots: Vec<Timestamp> = (0..6).map(t).collect();
        let runs = |decided: &[(i64, i64)]| -> Vec<Vec<i64>> {
            let decided: Vec<_> = decided.iter().map(|(from, to)| (t(*from), t(*to))).collect();
            let runs = undecided_runs(&slots, &decided);
            runs.iter().map(|run| run.iter().map(|at| at.as_millis()).collect()).collect()
        };
        assert_eq!(runs(&[]), [vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(runs(&[(0, 0)]), [vec![1, 2, 3, 4, 5]]);
        assert_eq!(runs(&[(2, 2), (5, 5)]), [vec![0, 1], vec![3, 4]]);
        assert_eq!(runs(&[(1, 3)]), [vec![0], vec![4, 5]]);
        assert_eq!(runs(&[(-3, -1), (7, 9)]), [vec![0, 1, 2, 3, 4, 5]], "outside the range");
        let between = |n: i64| vec![(t(n), t(n))];
        let halves = undecided_runs(&[t(0), t(10), t(20)], &between(15));
        assert_eq!(halves, [vec![t(0), t(10)], vec![t(20)]], "between two slots");
    }

    #[test]
    fn a_cycle_is_found_through_any_chain_and_named_in_order() {
        fn check(edges: &[(&str, &[&str])], start: &str, expected: Option<&[&str]>) {
            let graph: BTreeMap<String, Vec<String>> = edges
                .iter()
                .map(|(name, after)| {
                    (name.to_string(), after.iter().map(|gate| gate.to_string()).collect())
                })
                .collect();
            let found = cycle_through(&graph, start);
            let expected = expected.map(|path| path.iter().map(|n| n.to_string()).collect());
            assert_eq!(found, expected, "{edges:?} from {start}");
        }
        check(&[("a", &[]), ("b", &["a"]), ("c", &["b"])], "c", None);
        check(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"])], "c", Some(&["c", "b", "a", "c"]));
        check(&[("a", &["a"])], "a", Some(&["a", "a"]));
        check(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])], "c", None);
        check(&[("x", &["y"]), ("y", &["x"]), ("c", &["x"])], "c", None);
    }
}
