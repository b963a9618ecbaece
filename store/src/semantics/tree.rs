//! What reaches other flows of a tree: a cancel request goes down to every active descendant,
//! and a flow that ends ends the `child` step its parent holds for it (which may settle the
//! parent's own cancel, and so on up).

use serde_json::{Value, json};

use super::steps::{finish_step, report_step};
use super::waits::end_waits;
use super::{SYSTEM_ACTOR, cancel_settles, commit, load_flow, step_change};
use crate::error::{Error, Result};
use crate::model::{CancelOutcome, ExpectedRevision, Flow, FlowId, StateReport, StepOutcome};
use crate::rules;
use crate::status::FlowStatus;
use crate::store::Caller;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// Sticky cancel: records `cancel_requested_at` (once) on the flow and its active descendants,
/// and cancels every managed flow of the tree that has no running step left.
pub fn request_cancel<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    id: &FlowId,
    expected: ExpectedRevision,
    now: Timestamp,
) -> Result<CancelOutcome> {
    let (flow, _) = load_flow(tx, Some(caller.owner), id, true)?;
    rules::check_expected(&flow, expected)?;
    rules::check_not_ended(&flow)?;
    let already_requested = flow.cancel_requested_at.is_some();
    if !already_requested {
        cancel_tree(tx, flow, caller.actor, now)?;
    }
    let (flow, _) = load_flow(tx, Some(caller.owner), id, true)?;
    let active_steps = if flow.status.is_terminal() { 0 } else { tx.running_steps(&flow.id)? };
    Ok(CancelOutcome { flow, already_requested, active_steps })
}

/// A mirrored flow's owner reports its state and its steps, in one revision.
pub fn report<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    id: &FlowId,
    report: StateReport,
    expected: ExpectedRevision,
    now: Timestamp,
) -> Result<Flow> {
    let (before, _) = load_flow(tx, Some(caller.owner), id, false)?;
    rules::check_expected(&before, expected)?;
    let mut after = rules::apply_report(&before, &report, now)?;
    let mut steps = Vec::new();
    for step in &report.steps {
        steps.extend(report_step(tx, &after, step, now)?);
    }
    if report.current_step.is_none()
        && let Some(last) = report.steps.last()
    {
        after.current_step = Some(last.name.clone());
    }
    if after.status.is_terminal() {
        let running = tx.running_steps(&after.id)?;
        if running > 0 {
            return Err(Error::InvalidInput(format!(
                "flow {} still has {running} running step(s): report them ended before it {}",
                after.id, after.status
            )));
        }
    }
    let after = commit(tx, &before, after, steps, caller.actor, now, None)?;
    if after.status.is_terminal() {
        flow_ended(tx, &after, now)?;
    }
    Ok(after)
}

/// Records a cancel request on `flow` and on its active descendants, then cancels each managed
/// flow of the tree whose running work has settled (deepest first, so a cancelled child ends its
/// parent's step before the parent is judged). Each flow is loaded before it is written.
pub(super) fn cancel_tree<T: StoreTx + ?Sized>(
    tx: &T,
    flow: Flow,
    actor: &str,
    now: Timestamp,
) -> Result<()> {
    let mut after = flow.clone();
    after.cancel_requested_at = Some(now);
    let flow = commit(tx, &flow, after, Vec::new(), actor, now, None)?;
    end_waits(tx, &flow, now)?;
    for child in tx.active_children(&flow.id)? {
        let (child, _) = load_flow(tx, None, &child, false)?;
        cancel_tree(tx, child, actor, now)?;
    }
    let (flow, _) = load_flow(tx, None, &flow.id, false)?;
    if cancel_settles(tx, &flow)? {
        let mut after = flow.clone();
        rules::set_status(&mut after, FlowStatus::Cancelled, now);
        let after = commit(tx, &flow, after, Vec::new(), actor, now, None)?;
        flow_ended(tx, &after, now)?;
    }
    Ok(())
}

/// A flow ended: the `child` step its parent holds for it ends the same way (a succeeded
/// child's step has the child's state as its output), and a slot's record that it ran.
pub(super) fn flow_ended<T: StoreTx + ?Sized>(tx: &T, flow: &Flow, now: Timestamp) -> Result<()> {
    if flow.controller.as_deref() == Some(super::SLOT_CONTROLLER) {
        tx.slot_flow_settled(&flow.id, true, now)?;
    }
    let Some(parent_id) = &flow.parent_flow_id else { return Ok(()) };
    let Some(seq) = tx.running_child_step(parent_id, &flow.id)? else { return Ok(()) };
    let (parent, _) = load_flow(tx, None, parent_id, false)?;
    let outcome = match rules::child_step_status(flow.status) {
        StepOutcome::Succeeded(_) => {
            StepOutcome::Succeeded(flow.state.clone().unwrap_or(Value::Null))
        }
        other => other,
    };
    let step = finish_step(tx, &parent, seq, outcome, now, None)?;
    let mut after = parent.clone();
    if cancel_settles(tx, &parent)? {
        rules::set_status(&mut after, FlowStatus::Cancelled, now);
    } else if parent.status == FlowStatus::Waiting
        && crate::wait::waited_children(parent.wait.as_ref()).contains(&flow.id.to_string())
    {
        // The parent's step waited for this child: it can end now.
        after.wake_at = Some(now);
    }
    let change = step_change(&step, json!("running"), json!(step.status.as_str()));
    let after = commit(tx, &parent, after, vec![change], SYSTEM_ACTOR, now, None)?;
    if after.status.is_terminal() {
        flow_ended(tx, &after, now)?;
    }
    Ok(())
}
