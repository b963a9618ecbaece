//! Whether a flow can be resumed now, asked before a front end hands it to a background run
//! (serve's `POST /v1/flows/{id}/resume`, the MCP server's `resume_flow`), so that the caller
//! hears a refusal at once instead of the run ending silently: a mirrored flow, an ended one
//! (other than failed), or one another live runner holds. And where a fork given a step's
//! name starts.

use taskflow_store::{Flow, FlowId, FlowStatus, OwnerHandle, rules};

use crate::error::Result;

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
