//! Durable timers and signals. A managed flow whose running steps all wait (for an instant, for
//! a signal) becomes `waiting` and gives its lease up; its `wake_at` says when it is due to run
//! again. A signal is stored before it is acknowledged and kept until a step waiting for its
//! name takes it; one that arrives for a flow waiting for it makes the flow due at once, in the
//! same transaction, so no signal is ever missed between a runner giving the flow up and the
//! signal arriving: whichever commits second sees the other. A decision about a tool call
//! that waits for approval is such a signal, named after the call, and is recorded once.

use serde_json::{Value, json};

use super::steps::finish_step;
use super::{commit, load_flow, load_step};
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::model::{
    ApprovalDecision, FieldChange, Flow, FlowId, Signal, StepOutcome, SyncMode, WaitingStep,
};
use crate::rules;
use crate::status::{FlowStatus, StepStatus};
use crate::store::Caller;
use crate::time::Timestamp;
use crate::tx::StoreTx;
use crate::wait;

/// What a runner's `Wait` makes of `flow` (the checks first, then the flow as it leaves it): it
/// is not ended and has no cancel request, every running step is in `steps`, and it becomes
/// `waiting` with its `wait` document, due at the earliest timer or at once when a signal a
/// step waits for has already arrived, and without a lease.
pub(super) fn wait_for<T: StoreTx + ?Sized>(
    tx: &T,
    flow: &mut Flow,
    steps: &[WaitingStep],
    now: Timestamp,
) -> Result<()> {
    rules::check_can_schedule(flow)?;
    if steps.is_empty() {
        return Err(Error::InvalidInput(format!(
            "flow {} waits for nothing: name the steps that wait",
            flow.id
        )));
    }
    // A step that stands for a child the flow waits for is the store's (it ends with the
    // child), not a runner's: it runs on while the flow waits.
    let children: Vec<&FlowId> = steps.iter().filter_map(|step| step.child.as_ref()).collect();
    let mut running = tx.running_steps(&flow.id)?;
    if !children.is_empty() {
        let held = tx.steps(&flow.id)?.into_iter().filter(|step| {
            step.status == StepStatus::Running
                && step.child_flow_id.as_ref().is_some_and(|child| children.contains(&child))
        });
        running -= held.count() as u64;
    }
    if running != steps.len() as u64 {
        return Err(Error::InvalidInput(format!(
            "flow {} has {running} running step(s) and {} waiting: it waits only once every \
             running step waits",
            flow.id,
            steps.len()
        )));
    }
    if flow.status != FlowStatus::Waiting {
        rules::check_status_change(flow, FlowStatus::Waiting)?;
    }
    let mut wake_at = wait::earliest(steps);
    for name in steps.iter().filter_map(|step| step.signal.as_deref()) {
        if tx.pending_signal(&flow.id, name)? {
            wake_at = Some(now);
        }
    }
    // A child that runs, ended, or was decided about before its parent gave the lease up:
    // due at once. A decided child that was made due by itself (its parent did not wait for
    // it yet) is due no more: its parent's run runs it, which a run of its own would race.
    for child in children {
        let (child, _) = load_flow(tx, None, child, false)?;
        let mut decided = child.status != FlowStatus::Waiting;
        for (_, name) in wait::approvals(child.wait.as_ref()) {
            decided = decided || tx.pending_signal(&child.id, &name)?;
        }
        if decided {
            wake_at = Some(now);
        }
        if child.status == FlowStatus::Waiting && child.wake_at.is_some() && decided {
            let mut after = child.clone();
            after.wake_at = None;
            commit(tx, &child, after, Vec::new(), super::SYSTEM_ACTOR, now, None)?;
        }
    }
    rules::set_status(flow, FlowStatus::Waiting, now);
    flow.wait = Some(wait::document(steps));
    flow.wake_at = wake_at;
    flow.lease = None;
    Ok(())
}

/// Stores signal `name` for flow `id` (its payload is the sender's JSON) and records its
/// arrival as a change of the flow; a flow waiting for that name is due at once.
pub fn send_signal<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    id: &FlowId,
    name: &str,
    payload: Value,
    now: Timestamp,
) -> Result<(Signal, Flow)> {
    rules::check_signal_name(name)?;
    let (before, _) = load_flow(tx, Some(caller.owner), id, false)?;
    rules::check_managed(&before, "deliver a signal to")?;
    rules::check_not_ended(&before)?;
    deliver(tx, caller, before, name, payload, "signal", now)
}

/// Records a person's decision about tool call `call_id` of flow `id`: stored as the call's
/// approval signal (its payload the decision), recorded as a change of the flow, and the
/// flow, which waits for it, is due at once. A call is decided once: a second decision is
/// [`Error::AlreadyDecided`]; a call the flow does not wait for is [`Error::NoApproval`].
pub fn decide_approval<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    id: &FlowId,
    call_id: &str,
    decision: &ApprovalDecision,
    now: Timestamp,
) -> Result<(Signal, Flow)> {
    rules::check_text("call id", call_id)?;
    let (before, _) = load_flow(tx, Some(caller.owner), id, false)?;
    rules::check_managed(&before, "decide an approval of")?;
    let pending = if before.status == FlowStatus::Waiting {
        wait::approvals(before.wait.as_ref())
    } else {
        Vec::new()
    };
    let signals = tx.signals(id)?;
    let asked = pending.iter().find(|(request, _)| request.call_id == call_id);
    // The decision about this call, if one was made: the one its waiting step's signal
    // carries, else any decision about a call of that id (the flow no longer waits for it).
    let decided = signals.iter().find(|signal| match asked {
        Some((_, name)) => &signal.name == name,
        None => {
            signal.name.starts_with(wait::APPROVAL_PREFIX)
                && signal.payload.get("call_id").and_then(Value::as_str) == Some(call_id)
        }
    });
    if let Some(decided) = decided {
        let approved = ApprovalDecision::from_value(&decided.payload).is_some_and(|d| d.approved);
        return Err(Error::AlreadyDecided {
            id: id.to_string(),
            call_id: call_id.to_owned(),
            decision: if approved { "approved" } else { "denied" },
        });
    }
    rules::check_not_ended(&before)?;
    let Some((_, name)) = asked else {
        return Err(Error::NoApproval {
            id: id.to_string(),
            call_id: call_id.to_owned(),
            pending: pending.into_iter().map(|(request, _)| request.call_id).collect(),
        });
    };
    let mut payload = decision.to_value();
    payload["call_id"] = json!(call_id);
    let name = name.clone();
    deliver(tx, caller, before, &name, payload, "approval", now)
}

/// Stores signal `name` for the managed flow `before`, which has not ended, and records its
/// arrival as a change of `field`; a flow waiting for that name is due at once.
fn deliver<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    before: Flow,
    name: &str,
    payload: Value,
    field: &str,
    now: Timestamp,
) -> Result<(Signal, Flow)> {
    let id = before.id.clone();
    let signal_id = tx.insert_signal(&id, name, &payload, now)?;
    let mut after = before.clone();
    let waited =
        before.status == FlowStatus::Waiting && wait::waits_for_signal(before.wait.as_ref(), name);
    // A child whose parent waits for it is run by its parent's run: the parent is due, the
    // child is not (it would run twice over).
    let parent_woken = waited && wake_waiting_parent(tx, &before, now)?;
    if waited && !parent_woken && before.wake_at.is_none_or(|at| at > now) {
        after.wake_at = Some(now);
    }
    let mut arrival = json!({"name": name, "id": signal_id});
    if field == "approval" {
        arrival["decision"] = payload.clone();
    }
    let arrival = FieldChange { field: field.to_owned(), before: Value::Null, after: arrival };
    let flow = commit(tx, &before, after, vec![arrival], caller.actor, now, None)?;
    let signal = Signal {
        id: signal_id,
        flow_id: id,
        name: name.to_owned(),
        payload,
        sent_at: now,
        taken_by: None,
        taken_at: None,
    };
    Ok((signal, flow))
}

/// Makes the parent of `child` due at once when it waits for `child` (a pipeline's `agent`
/// step whose agent waits for a decision); whether it does.
pub(super) fn wake_waiting_parent<T: StoreTx + ?Sized>(
    tx: &T,
    child: &Flow,
    now: Timestamp,
) -> Result<bool> {
    let Some(parent_id) = &child.parent_flow_id else { return Ok(false) };
    let (parent, _) = load_flow(tx, None, parent_id, false)?;
    let waits = parent.status == FlowStatus::Waiting
        && parent.lease.is_none()
        && wait::waited_children(parent.wait.as_ref()).contains(&child.id.to_string());
    if !waits {
        return Ok(false);
    }
    if parent.wake_at.is_none_or(|at| at > now) {
        let mut after = parent.clone();
        after.wake_at = Some(now);
        commit(tx, &parent, after, Vec::new(), super::SYSTEM_ACTOR, now, None)?;
    }
    Ok(true)
}

/// The running step `seq` of the leased flow takes the oldest signal called `name` no step has
/// taken; a step that took one already gets it again (its runner may have stopped before the
/// step ended). `None`: no such signal yet.
pub fn take_signal<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    lease: &Lease,
    seq: u32,
    name: &str,
    now: Timestamp,
) -> Result<Option<Signal>> {
    let (flow, token) = load_flow(tx, Some(caller.owner), &lease.flow_id, false)?;
    rules::check_lease(&flow, token.as_deref(), lease)?;
    let step = load_step(tx, &flow, seq)?;
    rules::check_step_running(&flow, seq, step.status)?;
    if let Some(taken) = tx.signal_taken_by(&flow.id, seq)? {
        return Ok(Some(taken));
    }
    tx.take_signal(&flow.id, name, seq, now)
}

/// A flow's signals, in the order they arrived.
pub fn signals<T: StoreTx + ?Sized>(tx: &T, owner: &str, id: &FlowId) -> Result<Vec<Signal>> {
    load_flow(tx, Some(owner), id, false)?;
    tx.signals(id)
}

/// A waiting managed flow holds no runner: on a cancel request its waiting steps end
/// `cancelled` at once (each an event of the feed), so the cancel can settle.
pub(super) fn end_waits<T: StoreTx + ?Sized>(tx: &T, flow: &Flow, now: Timestamp) -> Result<()> {
    if flow.sync_mode != SyncMode::Managed
        || flow.status != FlowStatus::Waiting
        || flow.lease.is_some()
    {
        return Ok(());
    }
    let waiting = tx.steps(&flow.id)?.into_iter().filter(|step| step.status == StepStatus::Running);
    for step in waiting {
        finish_step(tx, flow, step.seq, StepOutcome::Cancelled, now, Some(step))?;
    }
    Ok(())
}
