//! Which slots run: the catch-up, gate and overlap policies as pure functions of what the
//! scheduler read (DESIGN §9; the policies carry Temporal's names).
//!
//! - **Late or on time.** A slot is on time when the scheduler made a pass at most
//!   [`ON_TIME_GRACE`] before its instant: it was running then. Every slot that came due while
//!   no scheduler ran (serve down, the machine asleep) is late.
//! - **Catch-up.** Late slots older than the catch-up window are one `missed` record. Of the
//!   others, `none` runs none, `latest` the newest, `all` the newest `max_catch_up`
//!   (`max_catch_up` bounds `latest` too); each that runs says it ran late. The rest are one
//!   `missed` record with the reason (a day of a one-second schedule is one row, not 86,400). On-time slots always run (they are older than any late
//!   one: a slot is late only if no pass came within the grace before it).
//! - **Gates.** A slot at T of a schedule `after` others runs once each of them has decided its
//!   slots up to T and its latest slot at or before T succeeded; until then it is `gated`. Past
//!   `T + within`, or as soon as such a slot failed, was cancelled or did not run, `otherwise`
//!   decides: `skip`, `run` (recorded) or `fail` (a failed slot).
//! - **Overlap.** A slot due while a run of the same schedule goes on: `skip` skips it,
//!   `buffer-one` holds one (later ones are skipped), `buffer-all` holds each, `cancel-other`
//!   cancels the run and holds the slot, `allow` runs it beside.

use std::time::Duration;

use taskflow_store::time::Timestamp;
use taskflow_store::{
    CatchUp, FlowId, FlowStatus, GateState, Otherwise, Overlap, ScheduleSpec, SlotDecision,
    SlotStatus,
};

use super::clock::SlotClock;
use crate::pipeline::spec::duration_text;

/// A slot is on time when the scheduler looked at most this long before its instant.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(5);

/// The most slots counted into one missed range; a longer range says "at least".
pub const COUNT_LIMIT: usize = 100_000;

/// The slots of a schedule that are due now, from its cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// Slots older than the catch-up window: one record (first, last, count, whether there were
    /// more than counted).
    pub expired: Option<(Timestamp, Timestamp, u64, bool)>,
    /// The others, oldest first.
    pub recent: Vec<Timestamp>,
    /// The cursor after them: the first slot not due yet.
    pub next: Option<Timestamp>,
}

/// The slots from `cursor` whose fire time (`fire`) is at or before `now`.
pub fn due(
    clock: &SlotClock,
    spec: &ScheduleSpec,
    cursor: Timestamp,
    now: Timestamp,
    fire: impl Fn(Timestamp) -> Timestamp,
) -> Due {
    let window_start = now.minus(Duration::from_millis(spec.catch_up_window_ms));
    let mut expired = None;
    let mut next = Some(cursor);
    if cursor < window_start {
        let (old, more) =
            clock.between(cursor, window_start.minus(Duration::from_millis(1)), COUNT_LIMIT);
        if let (Some(first), Some(last)) = (old.first(), old.last()) {
            expired = Some((*first, *last, old.len() as u64, more));
        }
        next = clock.first_from(window_start);
    }
    let mut recent = Vec::new();
    while let Some(slot) = next.filter(|slot| fire(*slot) <= now) {
        recent.push(slot);
        next = clock.next_after(slot);
    }
    Due { expired, recent, next }
}

/// Whether slot `slot` is on time, given the scheduler's previous pass.
pub fn on_time(slot: Timestamp, previous_pass: Option<Timestamp>) -> bool {
    previous_pass.is_some_and(|pass| pass.plus(ON_TIME_GRACE) >= slot)
}

/// Which of the recent due slots run (oldest first, a late one with the reason it runs late),
/// and the records of those that do not.
pub fn catch_up(
    spec: &ScheduleSpec,
    recent: &[Timestamp],
    previous_pass: Option<Timestamp>,
) -> (Vec<(Timestamp, Option<String>)>, Vec<SlotDecision>) {
    let (on_time, late): (Vec<Timestamp>, Vec<Timestamp>) =
        recent.iter().partition(|slot| on_time(**slot, previous_pass));
    let keep = match spec.catch_up {
        CatchUp::None => 0,
        CatchUp::Latest => spec.max_catch_up.min(1) as usize,
        CatchUp::All => spec.max_catch_up as usize,
    };
    let split = late.len().saturating_sub(keep);
    let reason = match (spec.catch_up, keep) {
        (CatchUp::None, _) => "no scheduler ran at its time (catch-up none)".to_owned(),
        (_, 0) => "no scheduler ran at its time (--max-catch-up 0)".to_owned(),
        (CatchUp::Latest, _) => {
            "no scheduler ran at its time; a later slot ran instead (catch-up latest)".to_owned()
        }
        (CatchUp::All, keep) => format!(
            "no scheduler ran at its time; catch-up all runs only the latest {keep} \
             (--max-catch-up {keep})"
        ),
    };
    // The late slots not run are consecutive: one record for all of them.
    let missed = match late[..split] {
        [] => Vec::new(),
        [first, .., last] => vec![SlotDecision::Record {
            at: first,
            status: SlotStatus::Missed,
            reason,
            last_at: Some(last),
            count: split as u64,
        }],
        [only] => vec![SlotDecision::Record {
            at: only,
            status: SlotStatus::Missed,
            reason,
            last_at: None,
            count: 1,
        }],
    };
    let caught_up = format!("ran late: no scheduler ran at its time (catch-up {})", spec.catch_up);
    let mut run: Vec<(Timestamp, Option<String>)> =
        late[split..].iter().map(|at| (*at, Some(caught_up.clone()))).collect();
    run.extend(on_time.into_iter().map(|at| (at, None)));
    run.sort();
    (run, missed)
}

/// The record of the late slots catch-up latest did not run (`missed`, from [`catch_up`]), once
/// the later slot it chose is decided (`chosen`): a later slot ran instead only if that one
/// fired; if an overlap skipped it, its gate closed or it waits, the record says so, naming it.
pub fn missed_instead(
    spec: &ScheduleSpec,
    missed: SlotDecision,
    chosen: &SlotDecision,
) -> SlotDecision {
    let SlotDecision::Record { at: chosen_at, status: chosen_status, reason: why, .. } = chosen
    else {
        return missed;
    };
    match (spec.catch_up, missed) {
        (CatchUp::Latest, SlotDecision::Record { at, status, last_at, count, .. }) => {
            let became = match chosen_status {
                SlotStatus::Skipped => "was skipped",
                SlotStatus::Failed => "failed",
                SlotStatus::Gated | SlotStatus::Buffered => "waits",
                _ => "did not run",
            };
            SlotDecision::Record {
                at,
                status,
                reason: format!(
                    "no scheduler ran at its time; the later slot {chosen_at} that catch-up latest \
                     chose {became} ({why})"
                ),
                last_at,
                count,
            }
        }
        (_, missed) => missed,
    }
}

/// The record of slots older than the catch-up window.
pub fn expired(
    spec: &ScheduleSpec,
    first: Timestamp,
    last: Timestamp,
    count: u64,
    more: bool,
) -> SlotDecision {
    let window = Duration::from_millis(spec.catch_up_window_ms);
    let counted = if more { format!("at least {count}") } else { count.to_string() };
    SlotDecision::Record {
        at: first,
        status: SlotStatus::Missed,
        reason: format!(
            "no scheduler ran at its time, and it is older than the catch-up window ({}; \
             {counted} slot(s))",
            duration_text::human(window)
        ),
        last_at: (last != first).then_some(last),
        count,
    }
}

/// Where a slot's gate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Every schedule it runs after succeeded its slot.
    Open,
    /// Not yet: the reason says on what it waits.
    Waiting(String),
    /// It cannot open any more: `otherwise` decides.
    Closed(String),
}

/// The gate of slot `at` of a schedule with `spec`, given where the schedules it runs after
/// stand (`states`, one per name of `spec.after`).
pub fn gate(spec: &ScheduleSpec, at: Timestamp, states: &[GateState], now: Timestamp) -> Gate {
    let mut waiting = Vec::new();
    for state in states {
        let name = &state.schedule;
        if !state.exists {
            return Gate::Closed(format!("schedule `{name}` does not exist"));
        }
        let latest = state.latest.as_ref();
        match latest.map(|slot| (slot.status, slot.flow_status)) {
            Some((SlotStatus::Ended, Some(FlowStatus::Succeeded))) if state.decided => {}
            Some((SlotStatus::Ended, Some(status))) if state.decided => {
                let slot = latest.map(|slot| slot.at.to_string()).unwrap_or_default();
                return Gate::Closed(format!("{name}'s slot {slot} {status}"));
            }
            Some((SlotStatus::Skipped | SlotStatus::Missed | SlotStatus::Failed, _))
                if state.decided =>
            {
                let slot = latest.map(|slot| slot.at.to_string()).unwrap_or_default();
                let status = latest.map(|slot| slot.status.as_str()).unwrap_or_default();
                return Gate::Closed(format!("{name}'s slot {slot} was {status}"));
            }
            None if state.decided => {
                return Gate::Closed(format!("{name} has no slot at or before {at}"));
            }
            _ => waiting.push(name.clone()),
        }
    }
    if waiting.is_empty() {
        return Gate::Open;
    }
    let within = Duration::from_millis(spec.within_ms.unwrap_or(0));
    if now >= at.plus(within) {
        return Gate::Closed(format!(
            "{} did not succeed within {} of the slot",
            waiting.join(", "),
            duration_text::human(within)
        ));
    }
    Gate::Waiting(format!("waiting on {}", waiting.join(", ")))
}

/// What a closed gate makes of slot `at`: a record, or `None` to run it anyway (with the
/// reason for its record).
pub fn otherwise(spec: &ScheduleSpec, at: Timestamp, why: &str) -> Result<String, SlotDecision> {
    let record = |status, reason: String| SlotDecision::Record {
        at,
        status,
        reason,
        last_at: None,
        count: 1,
    };
    match spec.otherwise {
        Otherwise::Skip => Err(record(SlotStatus::Skipped, format!("{why} (otherwise skip)"))),
        Otherwise::Fail => Err(record(SlotStatus::Failed, format!("{why} (otherwise fail)"))),
        Otherwise::Run => Ok(format!("ran although {why} (otherwise run)")),
    }
}

/// What the overlap policy makes of a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    Fire,
    /// Not run: recorded `skipped` with the reason.
    Skip(String),
    /// Waits (recorded `buffered`) for the runs to end; `cancel` lists the slots whose runs to
    /// cancel.
    Buffer {
        reason: String,
        cancel: Vec<Timestamp>,
    },
}

/// The overlap policy for a slot, given the schedule's runs that have not ended (`active`: each
/// slot's instant and its flow) and how many slots wait already (`buffered`).
pub fn overlap(spec: &ScheduleSpec, active: &[(Timestamp, FlowId)], buffered: usize) -> Turn {
    if active.is_empty() && buffered == 0 {
        return Turn::Fire;
    }
    let running = match active.first() {
        Some((_, flow)) => format!("{flow} still runs"),
        None => "earlier slots wait their turn".to_owned(),
    };
    match spec.overlap {
        Overlap::Allow => Turn::Fire,
        Overlap::Skip => Turn::Skip(format!("{running} (overlap skip)")),
        Overlap::BufferOne if buffered > 0 => {
            Turn::Skip(format!("{running}, and a slot waits already (overlap buffer-one)"))
        }
        Overlap::BufferOne => {
            Turn::Buffer { reason: format!("{running} (overlap buffer-one)"), cancel: Vec::new() }
        }
        Overlap::BufferAll => {
            Turn::Buffer { reason: format!("{running} (overlap buffer-all)"), cancel: Vec::new() }
        }
        Overlap::CancelOther => Turn::Buffer {
            reason: format!(
                "{running}; cancelled, this slot runs once it ended (overlap cancel-other)"
            ),
            cancel: active.iter().map(|(at, _)| *at).collect(),
        },
    }
}

/// Why a run is cancelled for going on past its schedule's timeout (`timeout_ms`), for its
/// slot's record.
pub fn timed_out(timeout_ms: u64) -> String {
    let timeout = duration_text::human(Duration::from_millis(timeout_ms));
    format!("ran past the schedule's timeout ({timeout})")
}

/// Why a run is cancelled under overlap `cancel-other` by the slot at `later`, for its slot's
/// record.
pub fn cancelled_by(later: Timestamp) -> String {
    format!("the later slot {later} came due while it ran (overlap cancel-other)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_store::{Slot, Timing};

    fn spec(overlap: Overlap) -> ScheduleSpec {
        ScheduleSpec {
            timing: Timing::EveryMs(60_000),
            zone: "UTC".to_owned(),
            after: vec!["scrape".to_owned()],
            within_ms: Some(7_200_000),
            otherwise: Otherwise::Skip,
            overlap,
            catch_up: CatchUp::Latest,
            catch_up_window_ms: 86_400_000,
            max_catch_up: 1,
            jitter_ms: 0,
            timeout_ms: None,
        }
    }

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_millis(1_796_454_000_000 + minutes * 60_000)
    }

    #[test]
    fn a_slot_is_on_time_when_a_pass_came_at_most_the_grace_before_it() {
        for (previous, slot, expected) in [
            (None, at(0), false),
            (Some(at(0)), at(0), true),
            (Some(at(0).minus(ON_TIME_GRACE)), at(0), true),
            (Some(at(0).minus(ON_TIME_GRACE).minus(Duration::from_millis(1))), at(0), false),
        ] {
            assert_eq!(on_time(slot, previous), expected, "{previous:?} {slot}");
        }
    }

    #[test]
    fn the_overlap_policy_of_a_slot_due_while_a_run_goes_on() {
        let running = [(at(0), FlowId::parse("tick@2026-12-05T07:00:00Z").unwrap())];
        let kind = |turn: Turn| match turn {
            Turn::Fire => "fire",
            Turn::Skip(_) => "skip",
            Turn::Buffer { cancel, .. } if cancel.is_empty() => "buffer",
            Turn::Buffer { .. } => "cancel and buffer",
        };
        for (overlap, active, buffered, expected) in [
            (Overlap::Skip, &[][..], 0, "fire"),
            (Overlap::Skip, &running[..], 0, "skip"),
            (Overlap::Allow, &running[..], 3, "fire"),
            (Overlap::BufferOne, &running[..], 0, "buffer"),
            (Overlap::BufferOne, &running[..], 1, "skip"),
            (Overlap::BufferOne, &[][..], 1, "skip"),
            (Overlap::BufferAll, &running[..], 5, "buffer"),
            (Overlap::CancelOther, &running[..], 0, "cancel and buffer"),
        ] {
            let turn = overlap_of(overlap, active, buffered);
            assert_eq!(kind(turn), expected, "{overlap:?} {active:?} {buffered}");
        }
    }

    #[test]
    fn a_run_cancelled_by_its_schedule_is_told_why_with_the_slot_that_cancels_it() {
        let running = [(at(0), FlowId::parse("tick@2026-12-05T07:00:00Z").unwrap())];
        let Turn::Buffer { cancel, .. } = overlap_of(Overlap::CancelOther, &running, 0) else {
            panic!("cancel-other holds the slot");
        };
        assert_eq!(cancel, [at(0)], "the slots whose runs it cancels");
        assert_eq!(
            cancelled_by(at(1)),
            "the later slot 2026-12-05T07:01:00.000Z came due while it ran (overlap cancel-other)"
        );
        assert_eq!(timed_out(2_000), "ran past the schedule's timeout (2s)");
    }

    fn overlap_of(overlap: Overlap, active: &[(Timestamp, FlowId)], buffered: usize) -> Turn {
        super::overlap(&spec(overlap), active, buffered)
    }

    #[test]
    fn a_gate_opens_waits_or_closes_on_the_slot_it_waits_for() {
        fn state(decided: bool, latest: Option<(SlotStatus, Option<FlowStatus>)>) -> GateState {
            GateState {
                schedule: "scrape".to_owned(),
                exists: true,
                decided,
                paused: false,
                latest: latest.map(|(status, flow_status)| Slot {
                    schedule: "scrape".to_owned(),
                    at: at(0),
                    status,
                    flow_id: None,
                    flow_status,
                    reason: None,
                    last_at: None,
                    count: 1,
                    decided_at: at(0),
                }),
            }
        }
        let kind = |gate: Gate| match gate {
            Gate::Open => "open".to_owned(),
            Gate::Waiting(why) => format!("waiting: {why}"),
            Gate::Closed(why) => format!("closed: {why}"),
        };
        let ended = |status| Some((SlotStatus::Ended, Some(status)));
        for (state, now, expected) in [
            (state(true, ended(FlowStatus::Succeeded)), at(1), "open"),
            (state(false, ended(FlowStatus::Succeeded)), at(1), "waiting: waiting on scrape"),
            (state(true, Some((SlotStatus::Running, Some(FlowStatus::Running)))), at(1), "waiting"),
            (state(true, Some((SlotStatus::Gated, None))), at(1), "waiting"),
            (state(true, ended(FlowStatus::Failed)), at(1), "closed: scrape's slot"),
            (state(true, Some((SlotStatus::Missed, None))), at(1), "was missed"),
            (state(true, None), at(1), "closed: scrape has no slot at or before"),
            (state(false, None), at(120), "closed: scrape did not succeed within 2h of the slot"),
            (GateState { exists: false, ..state(true, None) }, at(1), "does not exist"),
        ] {
            let gate = kind(gate(&spec(Overlap::Skip), at(0), &[state], now));
            assert!(gate.contains(expected), "{gate} (expected {expected})");
        }
    }
}
