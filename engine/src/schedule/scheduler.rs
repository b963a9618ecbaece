//! One scheduler: passes over the store that decide every due slot of every owner's schedules
//! and every slot that waits, through [`policy`](super::policy), and write each schedule's
//! decisions with its new cursor in one transaction (refused, and left to the next pass, when
//! another scheduler moved the cursor meanwhile). A slot fires only by the creation of its flow;
//! the caller runs the flows a pass fired (serve starts them).
//!
//! A pass reads: the schedules due at `now`, the open slots (running, gated, buffered), and for
//! gated slots where the schedules they wait for stand. It is synchronous (store calls); serve
//! runs it on a blocking thread, with its clock, every time a slot comes due and at least every
//! few hundred milliseconds. Tests run it with the instants they choose.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use taskflow_store::error::{Error, Result};
use taskflow_store::schedule::slot_flow_id;
use taskflow_store::time::Timestamp;
use taskflow_store::{
    Decisions, FlowId, OwnerHandle, Schedule, Slot, SlotDecision, SlotStatus, TaskFlow,
};

use super::clock::SlotClock;
use super::jitter::fire_at;
use super::policy::{self, Gate, Turn};

/// The most due schedules one pass decides.
const DUE_LIMIT: u32 = 1000;

/// The most open slots one pass looks at.
const OPEN_LIMIT: u32 = 20_000;

/// What a pass did: the flows it fired (to be run), and what it could not do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// `(owner, flow)` of each slot fired.
    pub fired: Vec<(String, FlowId)>,
    /// Runs it asked to cancel (overlap `cancel-other`, a run past its schedule's timeout), each
    /// slot's record saying why.
    pub cancelled: Vec<FlowId>,
    /// Schedules it could not decide, and why (the next pass tries again).
    pub errors: Vec<(String, String)>,
}

/// A scheduler's memory between passes.
#[derive(Debug, Default)]
pub struct Scheduler {
    /// When the previous pass looked: slots after it (less the grace) are on time.
    previous: Option<Timestamp>,
    /// Runs this scheduler asked to cancel, not asked again.
    cancelled: HashSet<FlowId>,
}

impl Scheduler {
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Decides what is due at `now`, then what waits.
    pub fn pass(&mut self, taskflow: &TaskFlow, now: Timestamp) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let open = group(taskflow.open_slots(OPEN_LIMIT)?);
        for schedule in taskflow.due_schedules(now, DUE_LIMIT)? {
            let slots = open.get(&schedule.name).map_or(&[][..], |(_, slots)| slots.as_slice());
            if let Err(error) = self.decide_due(taskflow, &schedule, slots, now, &mut outcome) {
                outcome.errors.push((schedule.name.clone(), error.to_string()));
            }
        }
        for (schedule, slots) in group(taskflow.open_slots(OPEN_LIMIT)?).into_values() {
            if let Err(error) = self.decide_open(taskflow, &schedule, &slots, now, &mut outcome) {
                outcome.errors.push((schedule.name.clone(), error.to_string()));
            }
        }
        self.previous = Some(now);
        Ok(outcome)
    }

    /// The due slots of `schedule` (`open`: its slots not decided for good).
    fn decide_due(
        &mut self,
        taskflow: &TaskFlow,
        schedule: &Schedule,
        open: &[Slot],
        now: Timestamp,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let Some(cursor) = schedule.next_slot else { return Ok(()) };
        let spec = &schedule.spec;
        let clock = SlotClock::new(&spec.timing, &spec.zone)
            .map_err(|error| Error::InvalidInput(error.to_string()))?;
        let fire = |slot| fire_at(&schedule.name, slot, spec.jitter_ms);
        let due = policy::due(&clock, spec, cursor, now, fire);
        let handle = taskflow.bind(schedule.owner.clone())?.with_actor("taskflow scheduler");
        let mut decisions = Vec::new();
        if let Some((first, last, count, more)) = due.expired {
            decisions.push(policy::expired(spec, first, last, count, more));
        }
        let (run, missed) = policy::catch_up(spec, &due.recent, self.previous);
        let mut turns = Turns::of(open);
        // The late slot catch-up runs, as decided: the missed record says what became of it.
        let mut chosen = None;
        for (at, late) in run {
            let caught_up = late.is_some();
            let decision = turns.decide(&handle, schedule, at, late, now)?;
            if caught_up {
                chosen = Some(decision.clone());
            }
            decisions.push(decision);
        }
        decisions.extend(missed.into_iter().map(|missed| match &chosen {
            Some(chosen) => policy::missed_instead(spec, missed, chosen),
            None => missed,
        }));
        decisions.sort_by_key(SlotDecision::at);
        let written = Decisions {
            expected: Some(cursor),
            slots: decisions,
            next_slot: due.next,
            next_fire: due.next.map(fire),
        };
        match handle.decide_slots(&schedule.name, written) {
            Ok(decided) => {
                let slots: Vec<Slot> = decided.into_iter().map(|decided| decided.slot).collect();
                self.started(&handle, &schedule.name, &slots, turns.cancel, outcome)
            }
            // Another scheduler decided them: the next pass reads what it wrote.
            Err(Error::ScheduleMoved { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The open slots of `schedule`: gated ones whose gate opened or closed, buffered ones
    /// whose turn came, running ones past the schedule's timeout.
    fn decide_open(
        &mut self,
        taskflow: &TaskFlow,
        schedule: &Schedule,
        slots: &[Slot],
        now: Timestamp,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let handle = taskflow.bind(schedule.owner.clone())?.with_actor("taskflow scheduler");
        if let Some(timeout) = schedule.spec.timeout_ms {
            for slot in slots.iter().filter(|slot| slot.status == SlotStatus::Running) {
                let Some(flow) = &slot.flow_id else { continue };
                let late = slot.decided_at.plus(Duration::from_millis(timeout)) <= now;
                if late && !self.cancelled.contains(flow) {
                    let why = policy::timed_out(timeout);
                    self.cancel(&handle, &schedule.name, slot.at, &why, outcome);
                }
            }
        }
        if schedule.paused {
            return Ok(());
        }
        let mut turns = Turns::of(slots);
        for slot in slots {
            let decision = match slot.status {
                SlotStatus::Gated => match turns.gate(&handle, schedule, slot.at, now)? {
                    GateTurn::Decided(decision) => decision,
                    GateTurn::Run(why) => turns.overlap(schedule, slot.at, why),
                },
                SlotStatus::Buffered => {
                    if !turns.active.is_empty() || turns.first_buffered != Some(slot.at) {
                        continue;
                    }
                    turns.first_buffered = None;
                    turns.buffered = turns.buffered.saturating_sub(1);
                    turns.active.push((slot.at, slot_flow_id(&schedule.name, slot.at)?));
                    let reason = format!(
                        "waited for the runs before it (overlap {})",
                        schedule.spec.overlap
                    );
                    SlotDecision::Fire { at: slot.at, reason: Some(reason) }
                }
                _ => continue,
            };
            let unchanged = matches!(&decision, SlotDecision::Record { status, reason, .. }
                if *status == slot.status && Some(reason) == slot.reason.as_ref());
            if unchanged {
                continue;
            }
            let written = handle.resolve_slot(&schedule.name, decision)?;
            let written = std::slice::from_ref(&written);
            self.started(&handle, &schedule.name, written, Vec::new(), outcome)?;
        }
        self.cancel_all(&handle, &schedule.name, std::mem::take(&mut turns.cancel), outcome);
        Ok(())
    }

    /// Notes the flows of fired slots of schedule `name`, then asks for the cancels the
    /// decisions called for (each slot whose run to cancel, and why).
    fn started(
        &mut self,
        handle: &OwnerHandle,
        name: &str,
        slots: &[Slot],
        cancel: Vec<(Timestamp, String)>,
        outcome: &mut Outcome,
    ) -> Result<()> {
        for slot in slots {
            if let (SlotStatus::Running, Some(flow)) = (slot.status, &slot.flow_id) {
                outcome.fired.push((handle.owner().to_owned(), flow.clone()));
            }
        }
        self.cancel_all(handle, name, cancel, outcome);
        Ok(())
    }

    fn cancel_all(
        &mut self,
        handle: &OwnerHandle,
        name: &str,
        runs: Vec<(Timestamp, String)>,
        outcome: &mut Outcome,
    ) {
        for (at, why) in runs {
            let asked = slot_flow_id(name, at).is_ok_and(|flow| self.cancelled.contains(&flow));
            if !asked {
                self.cancel(handle, name, at, &why, outcome);
            }
        }
    }

    /// Asks for the cancel of the run of slot `at` of schedule `name`, its slot's record saying
    /// why (`why`) in the same transaction.
    fn cancel(
        &mut self,
        handle: &OwnerHandle,
        name: &str,
        at: Timestamp,
        why: &str,
        outcome: &mut Outcome,
    ) {
        let flow = match slot_flow_id(name, at) {
            Ok(flow) => flow,
            Err(error) => {
                outcome.errors.push((name.to_owned(), error.to_string()));
                return;
            }
        };
        match handle.cancel_slot_run(name, at, why) {
            Ok(_) | Err(Error::AlreadyEnded { .. }) => {
                self.cancelled.insert(flow.clone());
                outcome.cancelled.push(flow);
            }
            Err(error) => outcome.errors.push((flow.to_string(), error.to_string())),
        }
    }
}

/// Open slots by schedule, each schedule's oldest first.
fn group(open: Vec<(Schedule, Slot)>) -> BTreeMap<String, (Schedule, Vec<Slot>)> {
    let mut grouped: BTreeMap<String, (Schedule, Vec<Slot>)> = BTreeMap::new();
    for (schedule, slot) in open {
        grouped.entry(schedule.name.clone()).or_insert_with(|| (schedule, Vec::new())).1.push(slot);
    }
    for (_, slots) in grouped.values_mut() {
        slots.sort_by_key(|slot| slot.at);
    }
    grouped
}

/// What a gate makes of a slot.
enum GateTurn {
    /// It is decided for good (skipped, failed) or still gated (the reason says on what).
    Decided(SlotDecision),
    /// It may run (the reason, when it runs despite its gate), as the overlap policy allows.
    Run(Option<String>),
}

/// The runs of one schedule as a pass decides its slots in order: those that go on, the
/// slots that wait their turn, and the runs to cancel.
struct Turns {
    /// The runs that go on: each slot's instant and its flow.
    active: Vec<(Timestamp, FlowId)>,
    buffered: usize,
    first_buffered: Option<Timestamp>,
    /// The slots whose runs to cancel, and why.
    cancel: Vec<(Timestamp, String)>,
}

impl Turns {
    fn of(open: &[Slot]) -> Turns {
        let active = open
            .iter()
            .filter(|slot| slot.status == SlotStatus::Running)
            .filter_map(|slot| Some((slot.at, slot.flow_id.clone()?)))
            .collect();
        let buffered: Vec<&Slot> =
            open.iter().filter(|slot| slot.status == SlotStatus::Buffered).collect();
        Turns {
            active,
            buffered: buffered.len(),
            first_buffered: buffered.first().map(|slot| slot.at),
            cancel: Vec::new(),
        }
    }

    /// A due slot: its gate, then the overlap policy.
    fn decide(
        &mut self,
        handle: &OwnerHandle,
        schedule: &Schedule,
        at: Timestamp,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<SlotDecision> {
        match self.gate(handle, schedule, at, now)? {
            GateTurn::Decided(decision) => Ok(decision),
            GateTurn::Run(why) => Ok(self.overlap(schedule, at, why.or(reason))),
        }
    }

    fn gate(
        &mut self,
        handle: &OwnerHandle,
        schedule: &Schedule,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<GateTurn> {
        let spec = &schedule.spec;
        if spec.after.is_empty() {
            return Ok(GateTurn::Run(None));
        }
        let states = handle.gate_states(&spec.after, at)?;
        Ok(match policy::gate(spec, at, &states, now) {
            Gate::Open => GateTurn::Run(None),
            Gate::Waiting(why) => GateTurn::Decided(record(at, SlotStatus::Gated, why)),
            Gate::Closed(why) => match policy::otherwise(spec, at, &why) {
                Ok(ran_anyway) => GateTurn::Run(Some(ran_anyway)),
                Err(decision) => GateTurn::Decided(decision),
            },
        })
    }

    /// The overlap policy for slot `at`, given the slots decided before it.
    fn overlap(
        &mut self,
        schedule: &Schedule,
        at: Timestamp,
        reason: Option<String>,
    ) -> SlotDecision {
        match policy::overlap(&schedule.spec, &self.active, self.buffered) {
            Turn::Fire => {
                if let Ok(id) = slot_flow_id(&schedule.name, at) {
                    self.active.push((at, id));
                }
                SlotDecision::Fire { at, reason }
            }
            Turn::Skip(why) => record(at, SlotStatus::Skipped, why),
            Turn::Buffer { reason: why, cancel } => {
                self.buffered += 1;
                self.cancel.extend(cancel.into_iter().map(|run| (run, policy::cancelled_by(at))));
                record(at, SlotStatus::Buffered, why)
            }
        }
    }
}

fn record(at: Timestamp, status: SlotStatus, reason: String) -> SlotDecision {
    SlotDecision::Record { at, status, reason, last_at: None, count: 1 }
}
