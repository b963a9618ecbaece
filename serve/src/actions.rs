//! What a caller may ask of a flow or a schedule, once: the JSON API's routes and the
//! dashboard's forms both call these, so a cancel from a browser is the same cancel as one from
//! a script (the same checks, the same store call, the same run started afterwards).

use serde_json::Value;
use taskflow_api::schedules::Triggered;
use taskflow_api::{approvals, control, schedules};
use taskflow_store::{ApprovalDecision, CancelOutcome, Flow, FlowId, Schedule, Signal, Timestamp};

use crate::blocking::blocking;
use crate::error::HttpError;
use crate::state::AppState;

/// Where a fork starts: a step's seq, or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromStep {
    Seq(u32),
    Name(String),
}

/// Sticky cancel: recorded at once; the flow ends `cancelled` once its active work settled.
pub async fn cancel(state: &AppState, owner: &str, id: FlowId) -> Result<CancelOutcome, HttpError> {
    let handle = state.handle(owner)?;
    blocking(move || handle.request_cancel(&id, None)).await
}

/// Runs a managed flow on from its last checkpoint (a failed one from the step that failed);
/// the flow as it was when the run was asked for.
pub async fn resume(state: &AppState, owner: &str, id: FlowId) -> Result<Flow, HttpError> {
    let handle = state.handle(owner)?;
    let flow = blocking(move || control::check_resumable(&handle, &id)).await?;
    state.runs().start(owner, &flow.id);
    Ok(flow)
}

/// A new flow with the steps of `id` before `from` done; serve runs it from there.
pub async fn fork(
    state: &AppState,
    owner: &str,
    id: FlowId,
    from: FromStep,
) -> Result<Flow, HttpError> {
    let handle = state.handle(owner)?;
    let from = match from {
        FromStep::Seq(seq) => seq,
        FromStep::Name(name) => {
            let (flow, named) = (id.clone(), name.clone());
            blocking(move || control::fork_step_named(&handle, &flow, &named))
                .await?
                .ok_or_else(|| HttpError::refused(format!("flow {id} has no step `{name}`")))?
        }
    };
    let forked = state.engine(owner)?.fork(&id, from).await?;
    state.runs().start(owner, &forked.id);
    Ok(forked)
}

/// Delivers signal `name` with `payload`; a flow it makes due runs at once.
pub async fn signal(
    state: &AppState,
    owner: &str,
    id: FlowId,
    name: String,
    payload: Value,
) -> Result<(Signal, Flow), HttpError> {
    let handle = state.handle(owner)?;
    let (signal, flow) =
        blocking(move || control::send_signal(&handle, &id, &name, payload)).await?;
    run_if_due(state, owner, &flow);
    Ok((signal, flow))
}

/// Decides tool call `call_id`, which the flow waits for; the flow runs on at once.
pub async fn decide(
    state: &AppState,
    owner: &str,
    id: FlowId,
    call_id: String,
    decision: ApprovalDecision,
) -> Result<(Signal, Flow), HttpError> {
    let handle = state.handle(owner)?;
    let decided =
        blocking(move || approvals::decide(&handle, &id, Some(&call_id), &decision)).await?;
    for due in &decided.due {
        state.runs().start(owner, due);
    }
    Ok((decided.signal, decided.flow))
}

fn run_if_due(state: &AppState, owner: &str, flow: &Flow) {
    if flow.is_due(Timestamp::now()) {
        state.runs().start(owner, &flow.id);
    }
}

/// Pauses schedule `name`: its slots are not fired until it is resumed.
pub async fn pause_schedule(
    state: &AppState,
    owner: &str,
    name: String,
) -> Result<Schedule, HttpError> {
    let handle = state.handle(owner)?;
    blocking(move || handle.pause_schedule(&name)).await
}

/// Resumes schedule `name`; the slots it missed while paused are recorded as one `missed`.
pub async fn resume_schedule(
    state: &AppState,
    owner: &str,
    name: String,
) -> Result<Schedule, HttpError> {
    let handle = state.handle(owner)?;
    blocking(move || schedules::resume(&handle, &name, Timestamp::now())).await
}

/// Fires a slot of schedule `name` now; serve runs its flow.
pub async fn trigger_schedule(
    state: &AppState,
    owner: &str,
    name: String,
) -> Result<Triggered, HttpError> {
    let handle = state.handle(owner)?;
    let triggered = blocking(move || schedules::trigger(&handle, &name, Timestamp::now())).await?;
    if let Some(flow) = &triggered.slot.flow_id {
        state.runs().start(owner, flow);
    }
    Ok(triggered)
}
