//! Flows coming into being: a new flow, a child under a leased parent, a fork of an ended flow,
//! and a failed flow opened again for a resume.

use serde_json::{Value, json};

use super::steps::insert_step;
use super::{check_running, commit, journal_moved_to, load_flow, step_change};
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::lease::Lease;
use crate::model::{FieldChange, Flow, FlowId, NewFlow, NewStep, Step, StepKind, SyncMode};
use crate::rules;
use crate::status::{FlowStatus, StepStatus};
use crate::store::Caller;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// Creates a `queued` flow at revision 1 for `caller.owner`, under `parent` if given; its
/// creation revision lists its name, mode and status, its goal and state when it has them, its
/// parent, then `extra`.
pub fn create_flow<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    new: NewFlow,
    parent: Option<FlowId>,
    extra: Vec<FieldChange>,
    now: Timestamp,
) -> Result<Flow> {
    rules::check_text("owner", caller.owner)?;
    rules::check_text("flow name", &new.name)?;
    if new.sync_mode == SyncMode::Mirrored && new.controller.is_none() {
        return Err(Error::InvalidInput(
            "a mirrored flow names its controller (the owner process that drives it)".to_owned(),
        ));
    }
    if let Some(controller) = &new.controller {
        rules::check_text("controller", controller)?;
    }
    let id = new.id.unwrap_or_default();
    if tx.flow_exists(&id)? {
        return Err(Error::IdTaken { id: id.to_string() });
    }
    let flow = Flow {
        id,
        name: new.name,
        owner: caller.owner.to_owned(),
        sync_mode: new.sync_mode,
        controller: new.controller,
        status: FlowStatus::Queued,
        revision: 1,
        goal: new.goal.map(rules::free_text),
        current_step: None,
        state: new.state,
        wait: None,
        wake_at: None,
        spec: new.spec,
        parent_flow_id: parent,
        cancel_requested_at: None,
        lease: None,
        created_at: now,
        updated_at: now,
        ended_at: None,
        error: None,
    };
    tx.insert_flow(&flow)?;
    let mut created = vec![
        ("name", json!(flow.name)),
        ("sync_mode", json!(flow.sync_mode.as_str())),
        ("status", json!(flow.status.as_str())),
    ];
    if let Some(goal) = &flow.goal {
        created.push(("goal", json!(goal)));
    }
    if let Some(state) = &flow.state {
        created.push(("state", state.clone()));
    }
    if let Some(parent) = &flow.parent_flow_id {
        created.push(("parent_flow_id", json!(parent.to_string())));
    }
    let change = created
        .into_iter()
        .map(|(field, after)| FieldChange { field: field.to_owned(), before: Value::Null, after })
        .chain(extra)
        .collect::<Vec<_>>();
    tx.insert_revision(&flow.id, 1, now, caller.actor, &change)?;
    let fields = change.into_iter().map(|change| change.field).collect();
    tx.append_event(&NewEvent::flow(&flow, fields, now))?;
    Ok(flow)
}

/// Creates a `queued` child flow under the leased parent and a `child` step on the parent that
/// ends when the child ends. The parent is loaded (and so locked) before anything is written,
/// so a concurrent cancel either refuses the spawn or reaches the child.
pub fn spawn_child<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    parent: &Lease,
    new: NewFlow,
    now: Timestamp,
) -> Result<(Flow, Step)> {
    let (before, token) = load_flow(tx, Some(caller.owner), &parent.flow_id, false)?;
    rules::check_spawn(&before)?;
    rules::check_lease(&before, token.as_deref(), parent)?;
    check_running(&before)?;
    let owner = Caller { owner: &before.owner, actor: caller.actor };
    let child = create_flow(tx, owner, new, Some(before.id.clone()), Vec::new(), now)?;
    let seq = tx.last_seq(&before.id)?.unwrap_or(0) + 1;
    let step = NewStep::new(child.name.clone(), StepKind::Child);
    let step = insert_step(tx, &before, step, Some(child.id.clone()), seq, now)?;
    // Unlike a step the runner begins, a child is recorded in the parent's history (and bumps
    // its revision, which tells a backend's memory of the flow that the journal moved).
    let mut before = before;
    journal_moved_to(&step, [&mut before]);
    let change = step_change(&step, Value::Null, json!(format!("running (child {})", child.id)));
    commit(tx, &before, before.clone(), vec![change], caller.actor, now, None)?;
    Ok((child, step))
}

/// A new `queued` flow with the source's name, goal and spec, and a copy of its succeeded
/// steps before step `from_seq` (renumbered from 1, each with a new key). The source must have
/// ended.
pub fn fork<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    source: &FlowId,
    from_seq: u32,
    now: Timestamp,
) -> Result<Flow> {
    let (source, _) = load_flow(tx, Some(caller.owner), source, true)?;
    rules::check_fork(&source)?;
    let last = tx.last_seq(&source.id)?.unwrap_or(0);
    if from_seq == 0 || from_seq > last + 1 {
        return Err(Error::StepNotFound { id: source.id.to_string(), seq: from_seq });
    }
    let kept = tx.steps_to_fork(&source.id, from_seq)?;
    let new = NewFlow {
        id: None,
        name: source.name.clone(),
        sync_mode: SyncMode::Managed,
        controller: source.controller.clone(),
        goal: source.goal.clone(),
        spec: source.spec.clone(),
        state: None,
    };
    let origin = FieldChange {
        field: "forked_from".to_owned(),
        before: Value::Null,
        after: json!({"flow": source.id.to_string(), "from_step": from_seq,
                      "steps_copied": kept.len()}),
    };
    let mut flow = create_flow(tx, caller, new, None, vec![origin], now)?;
    flow.current_step = kept.last().map(|step| step.name.clone());
    for (index, step) in kept.into_iter().enumerate() {
        let seq = index as u32 + 1;
        tx.insert_step(&Step {
            flow_id: flow.id.clone(),
            seq,
            status: StepStatus::Succeeded,
            idempotency_key: format!("{}:{seq}", flow.id),
            error: None,
            child_flow_id: None,
            ..step
        })?;
    }
    Ok(flow)
}

/// Opens a `failed` managed flow again (back to `queued`) so that a resume retries it.
pub fn reopen<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    id: &FlowId,
    now: Timestamp,
) -> Result<Flow> {
    let (before, _) = load_flow(tx, Some(caller.owner), id, true)?;
    let after = rules::reopen(&before)?;
    if before.controller.as_deref() == Some(super::SLOT_CONTROLLER) {
        tx.slot_flow_settled(&before.id, false, now)?;
    }
    commit(tx, &before, after, Vec::new(), caller.actor, now, None)
}
