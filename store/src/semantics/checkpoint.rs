//! A runner's writes, applied in one transaction (group commit): steps begin, start their next
//! attempt and end, the flow changes status, the lease is renewed. Each op is checked against
//! the flow as the ops before it left it and refused on its own (every check comes before the op
//! writes anything); consecutive ops on one flow load it once and write its row once, with one
//! revision listing every change, and only if the ops changed the flow: a step that begins or
//! ends is a journal record and writes its step row only.
//!
//! A backend may remember what it committed of a flow ([`KnownFlow`]) and hand it back to the
//! next checkpoint of that flow through a [`CheckpointMemory`], which spares reading the flow
//! and the step it finishes again; it must only do so while nothing else can have written to
//! the flow since.

use std::collections::HashMap;

use serde_json::json;

use super::steps::{finish_step, insert_step};
use super::tree::flow_ended;
use super::waits::wait_for;
use super::{
    cancel_settles, check_running, check_ttl, commit, journal_moved_to, load_flow, not_running,
    step_change,
};
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::lease::Lease;
use crate::model::{CheckpointDone, CheckpointOp, FieldChange, Flow, FlowId, Step, StepKind};
use crate::rules;
use crate::status::{FlowStatus, StepStatus};
use crate::store::Caller;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// A flow as a committed checkpoint left it.
#[derive(Debug, Clone)]
pub struct KnownFlow {
    /// Without its spec.
    pub flow: Flow,
    pub lease_token: Option<String>,
    /// The seq the flow's next step gets, when known.
    pub next_seq: Option<u32>,
    /// Steps of the flow known to be running, as stored: those the checkpoint wrote, or every
    /// one a read of the whole journal found (a running step not here is read when needed).
    pub running: HashMap<u32, Step>,
    /// Whether `running` holds every running step of the flow, so that none need be counted:
    /// true from a read of the whole journal, kept by the checkpoints after it (a step starts
    /// running only as a new step, under a new seq).
    pub all_running: bool,
}

impl KnownFlow {
    /// Flow `flow` (without its spec), its lease token and its whole journal `steps`, all read
    /// in one read transaction, as a checkpoint may start from them.
    pub fn read_whole(flow: &Flow, lease_token: Option<&str>, steps: &[Step]) -> Self {
        let running = steps.iter().filter(|step| step.status == StepStatus::Running);
        KnownFlow {
            flow: flow.clone(),
            lease_token: lease_token.map(str::to_owned),
            next_seq: Some(steps.iter().map(|step| step.seq).max().unwrap_or(0) + 1),
            running: running.map(|step| (step.seq, step.clone())).collect(),
            all_running: true,
        }
    }
}

/// What a backend remembers of flows between checkpoints.
pub trait CheckpointMemory {
    /// Takes out what is known of flow `id` as `owner` sees it, if it is still true.
    fn recall(&mut self, owner: &str, id: &FlowId) -> Option<KnownFlow>;

    /// The ops on flow `id` were applied (not yet committed); `written` is the flow as they
    /// left it, `None` when it could not be loaded.
    fn applied(&mut self, id: FlowId, written: Option<KnownFlow>);
}

/// The memory of a backend that remembers nothing: every checkpoint reads its flows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forget;

impl CheckpointMemory for Forget {
    fn recall(&mut self, _owner: &str, _id: &FlowId) -> Option<KnownFlow> {
        None
    }

    fn applied(&mut self, _id: FlowId, _written: Option<KnownFlow>) {}
}

/// Applies `ops` in order, each answered on its own. The outer error is a failure of the
/// storage, after which the transaction must not be committed.
pub fn checkpoint<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    ops: Vec<CheckpointOp>,
    now: Timestamp,
    memory: &mut impl CheckpointMemory,
) -> Result<Vec<Result<CheckpointDone>>> {
    let mut answers = Vec::with_capacity(ops.len());
    let mut ops = ops.into_iter().peekable();
    while let Some(first) = ops.next() {
        let flow_id = first.flow_id().clone();
        let mut group = vec![first];
        while let Some(next) = ops.next_if(|op| *op.flow_id() == flow_id) {
            group.push(next);
        }
        let known = memory.recall(caller.owner, &flow_id);
        let (group_answers, written) = apply_group(tx, caller, flow_id.clone(), group, now, known)?;
        answers.extend(group_answers);
        memory.applied(flow_id, written);
    }
    Ok(answers)
}

/// Applies a runner's consecutive ops on one flow: the flow is loaded once (without its spec)
/// unless `known` holds it, each op is checked against the flow as the ops before it left it,
/// and the flow row is written once if the ops changed the flow. Also returns the flow as
/// written. The outer error is a failure of the storage.
pub fn apply_group<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    flow_id: FlowId,
    ops: Vec<CheckpointOp>,
    now: Timestamp,
    known: Option<KnownFlow>,
) -> Result<(Vec<Result<CheckpointDone>>, Option<KnownFlow>)> {
    let known = match known {
        Some(known) => known,
        None => match load_flow(tx, Some(caller.owner), &flow_id, false) {
            Ok((flow, lease_token)) => {
                let running = HashMap::new();
                KnownFlow { flow, lease_token, next_seq: None, running, all_running: false }
            }
            Err(Error::NotFound { id }) => {
                let answers = ops.iter().map(|_| Err(Error::NotFound { id: id.clone() }));
                return Ok((answers.collect(), None));
            }
            Err(other) => return Err(other),
        },
    };
    let KnownFlow { flow: mut before, lease_token, next_seq, running, all_running } = known;
    let mut group = FlowWrites {
        tx,
        token: lease_token,
        working: before.clone(),
        extra: Vec::new(),
        next_seq,
        running,
        all_running,
        now,
    };
    let mut answers = Vec::with_capacity(ops.len());
    for op in ops {
        match group.apply(op, &mut before) {
            Err(error @ Error::Storage(_)) => return Err(error),
            answer => answers.push(answer),
        }
    }
    let FlowWrites { working, extra, token, next_seq, running, all_running, .. } = group;
    // What follows can only fail with the storage itself (no rule is checked after a write).
    let after = commit(tx, &before, working, extra, caller.actor, now, None)?;
    if after.status.is_terminal() && !before.status.is_terminal() {
        flow_ended(tx, &after, now)?;
    }
    for answer in &mut answers {
        if let Ok(CheckpointDone::Flow(flow)) = answer {
            *flow = after.clone();
        }
    }
    let written = KnownFlow { flow: after, lease_token: token, next_seq, running, all_running };
    Ok((answers, Some(written)))
}

/// The flow a group of runner ops works on, as the ops so far have changed it.
struct FlowWrites<'a, T: ?Sized> {
    tx: &'a T,
    token: Option<String>,
    working: Flow,
    /// Changes outside the flow row that its history records: why a step's attempt ended.
    extra: Vec<FieldChange>,
    /// The seq the next new step gets, once known.
    next_seq: Option<u32>,
    /// Running steps as written, where known.
    running: HashMap<u32, Step>,
    /// Whether `running` holds them all ([`KnownFlow::all_running`]).
    all_running: bool,
    now: Timestamp,
}

impl<T: StoreTx + ?Sized> FlowWrites<'_, T> {
    /// One op. `before` is the flow as loaded; a lease renewal moves its expiry there too, so
    /// that it is not mistaken for a change.
    fn apply(&mut self, op: CheckpointOp, before: &mut Flow) -> Result<CheckpointDone> {
        let (tx, now) = (self.tx, self.now);
        match op {
            CheckpointOp::Begin { lease, step } => {
                self.check_lease(&lease)?;
                if step.kind == StepKind::Child {
                    return Err(Error::InvalidInput(
                        "a child step is created by spawning a child flow".to_owned(),
                    ));
                }
                rules::check_can_schedule(&self.working)?;
                check_running(&self.working)?;
                let seq = match self.next_seq {
                    Some(seq) => seq,
                    None => tx.last_seq(&self.working.id)?.unwrap_or(0) + 1,
                };
                let step = insert_step(tx, &self.working, step, None, seq, now)?;
                self.next_seq = Some(seq + 1);
                journal_moved_to(&step, [&mut self.working, before]);
                self.running.insert(seq, step.clone());
                Ok(CheckpointDone::Step(step))
            }
            CheckpointOp::NextAttempt { lease, seq, reason } => {
                self.check_lease(&lease)?;
                rules::check_can_schedule(&self.working)?;
                let Some(step) = tx.next_attempt(&self.working.id, seq)? else {
                    return Err(not_running(tx, &self.working, seq));
                };
                tx.append_event(&NewEvent::step(&self.working, &step, now))?;
                self.extra.push(step_change(
                    &step,
                    json!({"attempt": step.attempt - 1, "ended": reason}),
                    json!({"attempt": step.attempt}),
                ));
                self.running.insert(seq, step.clone());
                Ok(CheckpointDone::Step(step))
            }
            CheckpointOp::Finish { lease, seq, outcome } => {
                self.check_lease(&lease)?;
                rules::check_not_ended(&self.working)?;
                let known = self.running.remove(&seq);
                let step = finish_step(tx, &self.working, seq, outcome, now, known)?;
                if cancel_settles(tx, &self.working)? {
                    rules::set_status(&mut self.working, FlowStatus::Cancelled, now);
                }
                Ok(CheckpointDone::Step(step))
            }
            CheckpointOp::Status { lease, to, error, state } => {
                self.check_lease(&lease)?;
                rules::check_not_ended(&self.working)?;
                if to != self.working.status {
                    rules::check_status_change(&self.working, to)?;
                    if to.is_terminal() {
                        let running = if self.all_running {
                            self.running.len() as u64
                        } else {
                            tx.running_steps(&self.working.id)?
                        };
                        if running > 0 {
                            return Err(Error::InvalidInput(format!(
                                "flow {} still has {running} running step(s): end them before \
                                 it {to}",
                                self.working.id
                            )));
                        }
                    }
                    // A blocked flow that runs again is no longer blocked by its cause (the
                    // revision keeps it).
                    if self.working.status == FlowStatus::Blocked && to == FlowStatus::Running {
                        self.working.error = None;
                    }
                    rules::set_status(&mut self.working, to, now);
                }
                if error.is_some() {
                    self.working.error = error.map(rules::free_text);
                }
                if state.is_some() {
                    self.working.state = state;
                }
                // Filled in with the flow as written once the group is committed.
                Ok(CheckpointDone::Flow(self.working.clone()))
            }
            CheckpointOp::Renew { lease, ttl } => {
                check_ttl(ttl)?;
                self.check_lease(&lease)?;
                rules::check_not_ended(&self.working)?;
                let expires_at = now.plus(ttl);
                tx.renew_lease(&self.working.id, &lease.token, expires_at)?;
                for flow in [&mut self.working, before] {
                    if let Some(stored) = &mut flow.lease {
                        stored.expires_at = expires_at;
                    }
                }
                Ok(CheckpointDone::Lease(Lease { expires_at, ..lease }))
            }
            CheckpointOp::Wait { lease, steps } => {
                self.check_lease(&lease)?;
                let mut working = self.working.clone();
                wait_for(tx, &mut working, &steps, now)?;
                self.working = working;
                // The lease is given up: no later op of this group holds it.
                self.token = None;
                // Filled in with the flow as written once the group is committed.
                Ok(CheckpointDone::Flow(self.working.clone()))
            }
        }
    }

    fn check_lease(&self, lease: &Lease) -> Result<()> {
        rules::check_lease(&self.working, self.token.as_deref(), lease)
    }
}
