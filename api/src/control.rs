//! Whether a flow can be resumed now, asked before a front end hands it to a background run
//! (serve's `POST /v1/flows/{id}/resume`, the MCP server's `resume_flow`), so that the caller
//! hears a refusal at once instead of the run ending silently: a mirrored flow, an ended one
//! (other than failed), or one another live runner holds. Where a fork given a step's name
//! starts. And a signal sent, refused when the flow's pipeline waits for no signal of its name.

use serde_json::Value;
use taskflow_engine::FlowSpec;
use taskflow_engine::agent::AgentSpec;
use taskflow_store::{Flow, FlowId, FlowStatus, OwnerHandle, Signal, rules};

use crate::error::{ApiError, Result};

/// Sends signal `name` with `payload` to flow `id`. A managed pipeline none of whose
/// `wait_signal` steps waits for `name` is refused, naming those it waits for (a misspelt
/// name would otherwise be kept for ever and the step wait on), and so is an agent run, which
/// waits for none (a decision about a tool call is an approval); a pipeline whose names are not
/// known before its steps begin (a name from a template) takes any.
pub fn send_signal(
    handle: &OwnerHandle,
    id: &FlowId,
    name: &str,
    payload: Value,
) -> Result<(Signal, Flow)> {
    rules::check_signal_name(name)?;
    let flow = handle.flow(id)?;
    if flow.spec.as_ref().and_then(AgentSpec::from_flow_spec).is_some() {
        return Err(ApiError::Refused {
            message: format!("flow {id} is an agent run, which waits for no signal"),
            hint: Some(format!(
                "a decision about a tool call it asks for is `taskflow flows approve {id}`"
            )),
        });
    }
    let spec = flow.spec.as_ref().and_then(|spec| FlowSpec::from_value(spec).ok());
    if let Some(awaited) = spec.as_ref().and_then(FlowSpec::awaited_signals)
        && !awaited.contains(&name)
    {
        let why = match awaited.as_slice() {
            [] => "its pipeline has no `wait_signal` step".to_owned(),
            names => {
                let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
                format!("its pipeline waits for {}", names.join(", "))
            }
        };
        return Err(ApiError::Refused {
            message: format!("flow {id} waits for no signal `{name}`: {why}"),
            hint: None,
        });
    }
    Ok(handle.send_signal(id, name, payload)?)
}

/// Flow `id` (without its spec) if a run may take it now: a failed managed flow is reopened
/// by the run itself.
pub fn check_resumable(handle: &OwnerHandle, id: &FlowId) -> Result<Flow> {
    let flow = handle.flow_without_spec(id)?;
    if flow.status == FlowStatus::Failed {
        rules::check_managed(&flow, "resume")?;
    } else {
        handle.check_resume(id)?;
    }
    Ok(flow)
}

/// The seq of the step named `name` in flow `id`, where a fork of it would start; `None` when
/// it has no such step. A flow that cannot be forked (one still running, whose step may not
/// have begun yet) is refused first, for what it is.
pub fn fork_step_named(handle: &OwnerHandle, id: &FlowId, name: &str) -> Result<Option<u32>> {
    rules::check_fork(&handle.flow_without_spec(id)?)?;
    let steps = handle.steps(id)?;
    Ok(steps.iter().find(|step| step.name == name).map(|step| step.seq))
}
