//! Schedules as every front end changes them (`taskflow schedules …`, and a server): what needs
//! the scheduler's clock besides the store. Adding or applying one puts its cursor at its first
//! slot after now; resuming one records the slots it missed while paused; a trigger fires a
//! slot now and a backfill the slots of a past range, by hand, without moving the cursor (a
//! slot that fired already keeps its flow; one inside a recorded range of missed slots splits
//! the range, the others staying recorded).

use taskflow_engine::FlowSpec;
use taskflow_engine::schedule::jitter::fire_at;
use taskflow_engine::schedule::table::Declared;
use taskflow_engine::schedule::{ScheduleInput, SlotClock};
use taskflow_store::{
    Decided, Error, NewSchedule, OwnerHandle, Put, Schedule, ScheduleSpec, Slot, SlotDecision,
    SlotStatus, Timestamp,
};

use crate::error::{ApiError, Result};

/// The most slots one backfill fires.
pub const MAX_BACKFILL: usize = 1000;

/// The most slots a missed range is counted up to; more are "at least" that many.
const COUNT_LIMIT: usize = 100_000;

/// The clock of a stored or declared schedule.
pub fn clock(spec: &ScheduleSpec) -> Result<SlotClock> {
    SlotClock::new(&spec.timing, &spec.zone).map_err(|error| ApiError::invalid(error.to_string()))
}

/// The schedule's first slot after `now`, and when it fires.
pub fn cursor_after(
    name: &str,
    spec: &ScheduleSpec,
    now: Timestamp,
) -> Result<(Option<Timestamp>, Option<Timestamp>)> {
    let next = clock(spec)?.next_after(now);
    Ok((next, next.map(|slot| fire_at(name, slot, spec.jitter_ms))))
}

/// What `taskflow schedules add NAME …` and `apply` check: the options, and the pipeline
/// against the engine's actions (done by the caller that loaded it).
pub fn spec_of(input: &ScheduleInput) -> Result<ScheduleSpec> {
    input.spec().map_err(|error| {
        let option = match error.field {
            "zone" => "--tz".to_owned(),
            field => format!("--{}", field.replace('_', "-")),
        };
        ApiError::Invalid { message: format!("{option}: {}", error.message), hint: None }
    })
}

fn new_schedule(
    name: &str,
    spec: ScheduleSpec,
    pipeline: &FlowSpec,
    paused: bool,
    now: Timestamp,
) -> Result<NewSchedule> {
    let (next_slot, next_fire) = cursor_after(name, &spec, now)?;
    // Its slots' flows are made by the scheduler with the pipeline as stored: readied now.
    let mut pipeline = pipeline.clone();
    crate::prepare_model_steps(&mut pipeline)?;
    Ok(NewSchedule {
        name: name.to_owned(),
        spec,
        pipeline: pipeline.to_value(),
        paused,
        next_slot,
        next_fire,
    })
}

/// Adds schedule `name`, running `pipeline` (checked already).
pub fn add(
    handle: &OwnerHandle,
    name: &str,
    spec: ScheduleSpec,
    pipeline: &FlowSpec,
    paused: bool,
    now: Timestamp,
) -> Result<Schedule> {
    Ok(handle.add_schedule(new_schedule(name, spec, pipeline, paused, now)?)?)
}

/// Applies a pipeline file's schedule: created (paused if it says so), or brought up to date;
/// the same file again changes nothing. A `paused` that differs from the stored schedule
/// pauses or resumes it.
pub fn apply(
    handle: &OwnerHandle,
    declared: &Declared,
    pipeline: &FlowSpec,
    now: Timestamp,
) -> Result<Put> {
    let new = new_schedule(&declared.name, declared.spec.clone(), pipeline, declared.paused, now)?;
    record_retimed(handle, &declared.name, &declared.spec, now)?;
    let mut put = handle.apply_schedule(new)?;
    if !put.created && put.schedule.paused != declared.paused {
        put.schedule = if declared.paused {
            handle.pause_schedule(&declared.name)?
        } else {
            resume(handle, &declared.name, now)?
        };
        put.changed = true;
    }
    Ok(put)
}

/// A schedule whose timing changes starts again at its first slot after now: the slots of the
/// old timing that came due and were not decided (no serve ran) are recorded missed first, so
/// none is dropped silently.
fn record_retimed(
    handle: &OwnerHandle,
    name: &str,
    spec: &ScheduleSpec,
    now: Timestamp,
) -> Result<()> {
    let stored = match handle.schedule(name, None, 0) {
        Ok((stored, _)) => stored,
        Err(Error::ScheduleNotFound { .. }) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let old = &stored.spec;
    let retimed =
        old.timing != spec.timing || old.zone != spec.zone || old.jitter_ms != spec.jitter_ms;
    let Some(first) = stored.next_slot.filter(|first| retimed && *first <= now) else {
        return Ok(());
    };
    let (slots, more) = clock(old)?.between(first, now, COUNT_LIMIT);
    let Some(last) = slots.last().copied() else { return Ok(()) };
    let counted = if more { format!("at least {}", slots.len()) } else { slots.len().to_string() };
    let missed = SlotDecision::Record {
        at: first,
        status: SlotStatus::Missed,
        reason: format!("not decided when the schedule's timing changed ({counted} slot(s))"),
        last_at: (last != first).then_some(last),
        count: slots.len() as u64,
    };
    by_hand(handle, name, vec![missed])?;
    Ok(())
}

/// Resumes schedule `name`: the slots that came while it was paused are one `missed` record,
/// and its cursor moves to its first slot after now.
pub fn resume(handle: &OwnerHandle, name: &str, now: Timestamp) -> Result<Schedule> {
    let (schedule, _) = handle.schedule(name, None, 0)?;
    if !schedule.paused {
        return Ok(schedule);
    }
    let clock = clock(&schedule.spec)?;
    let missed = schedule.next_slot.filter(|first| *first <= now).map(|first| {
        let (slots, more) = clock.between(first, now, COUNT_LIMIT);
        let last = slots.last().copied();
        let reason = if more {
            format!("the schedule was paused (at least {} slots)", slots.len())
        } else {
            "the schedule was paused".to_owned()
        };
        SlotDecision::Record {
            at: first,
            status: SlotStatus::Missed,
            reason,
            last_at: last.filter(|last| *last != first),
            count: slots.len().max(1) as u64,
        }
    });
    let (next_slot, next_fire) = cursor_after(name, &schedule.spec, now)?;
    Ok(handle.resume_schedule(name, (missed, next_slot, next_fire))?)
}

/// A slot fired by hand, and whether this trigger fired it: a second trigger within the same
/// second finds the slot of the first, which keeps its flow.
#[derive(Debug, Clone)]
pub struct Triggered {
    pub slot: Slot,
    pub fired: bool,
}

/// Fires a slot of schedule `name` now (to the second), whatever its timing and gates say.
/// Whether this trigger fired it is the store's answer, from the transaction that wrote it:
/// of triggers within one second, however close, at most one makes the flow and the others
/// find it (none does when another flow holds the slot's id: the slot is skipped, saying why).
pub fn trigger(handle: &OwnerHandle, name: &str, now: Timestamp) -> Result<Triggered> {
    let at = Timestamp::from_millis(now.as_millis().div_euclid(1000) * 1000);
    let decision = SlotDecision::Fire { at, reason: Some("triggered by hand".to_owned()) };
    let decided = by_hand(handle, name, vec![decision])?.pop();
    let decided = decided.ok_or_else(|| ApiError::invalid("the slot was not recorded"))?;
    Ok(Triggered { slot: decided.slot, fired: decided.made_flow })
}

/// Fires every slot of schedule `name` from `from` to `to` (both included, in the past), at
/// most [`MAX_BACKFILL`]. A slot that fired already keeps its flow.
pub fn backfill(
    handle: &OwnerHandle,
    name: &str,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<Vec<Slot>> {
    if from > to {
        return Err(ApiError::invalid(format!("--from {from} is after --to {to}")));
    }
    if to > now {
        return Err(ApiError::Invalid {
            message: format!("--to {to} is in the future"),
            hint: Some("the scheduler fires the slots to come; backfill the past".to_owned()),
        });
    }
    let (schedule, _) = handle.schedule(name, None, 0)?;
    let (slots, more) = clock(&schedule.spec)?.between(from, to, MAX_BACKFILL);
    if more {
        return Err(ApiError::Invalid {
            message: format!("more than {MAX_BACKFILL} slots from {from} to {to}"),
            hint: Some("backfill a shorter range at a time".to_owned()),
        });
    }
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let reason = Some("backfill".to_owned());
    let decisions =
        slots.into_iter().map(|at| SlotDecision::Fire { at, reason: reason.clone() }).collect();
    Ok(by_hand(handle, name, decisions)?.into_iter().map(|decided| decided.slot).collect())
}

/// Writes decisions made by hand, the cursor left where it is; the store asks the schedule's
/// clock ([`slots_between`]) to split a range of missed slots that holds one of them.
fn by_hand(handle: &OwnerHandle, name: &str, decisions: Vec<SlotDecision>) -> Result<Vec<Decided>> {
    Ok(handle.decide_by_hand(name, decisions, &slots_between)?)
}

/// The slots of a schedule of `spec` from `from` to `to`, as its clock gives them: the
/// store's [`taskflow_store::SlotTimes`].
fn slots_between(
    spec: &ScheduleSpec,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> taskflow_store::Result<(Vec<Timestamp>, bool)> {
    let clock = SlotClock::new(&spec.timing, &spec.zone)
        .map_err(|error| Error::InvalidInput(error.to_string()))?;
    Ok(clock.between(from, to, limit))
}
