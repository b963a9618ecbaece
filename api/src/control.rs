//! Whether a flow can be resumed now, asked before a front end hands it to a background run
//! (serve's `POST /v1/flows/{id}/resume`, the MCP server's `resume_flow`), so that the caller
//! hears a refusal at once instead of the run ending silently: a mirrored flow, an ended one
//! (other than failed), or one another live runner holds.

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
