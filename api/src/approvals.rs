//! Which tool call a decision is about when the caller names none: the one call the flow waits
//! for. None, or several, is an error that says which calls there are and how to name one.
//! And which flow: a pipeline whose `agent` step waits for its child (which waits for a
//! decision) passes the decision on to that child ([`deciding_flow`]).

use taskflow_store::{FlowId, FlowStatus, OwnerHandle};

use crate::error::{ApiError, Result};

/// The flow a decision about a call of flow `id` is for: `id` itself, unless it waits for no
/// call of its own but for one child flow that waits (a pipeline's `agent` step whose agent
/// asks), then that child's deciding flow, down the tree.
pub fn deciding_flow(handle: &OwnerHandle, id: &FlowId) -> Result<FlowId> {
    let mut id = id.clone();
    loop {
        let flow = handle.flow_without_spec(&id)?;
        if flow.status != FlowStatus::Waiting
            || !taskflow_store::wait::approvals(flow.wait.as_ref()).is_empty()
        {
            return Ok(id);
        }
        let children = taskflow_store::wait::waited_children(flow.wait.as_ref());
        let [child] = children.as_slice() else { return Ok(id) };
        match child.parse::<FlowId>() {
            Ok(child) => id = child,
            Err(_) => return Ok(id),
        }
    }
}

/// The call id of the one approval flow `id` waits for.
pub fn pending_call(handle: &OwnerHandle, id: &FlowId) -> Result<String> {
    let flow = handle.flow_without_spec(id)?;
    let pending = match flow.status {
        FlowStatus::Waiting => taskflow_store::wait::approvals(flow.wait.as_ref()),
        _ => Vec::new(),
    };
    match pending.as_slice() {
        [(request, _)] => Ok(request.call_id.clone()),
        [] => Err(ApiError::Refused {
            message: format!("flow {id} is {} and waits for no approval", flow.status),
            hint: Some(format!("`taskflow flows inspect {id}` shows what it does")),
        }),
        several => {
            let calls: Vec<String> = several
                .iter()
                .map(|(request, _)| format!("{} ({})", request.call_id, request.tool))
                .collect();
            Err(ApiError::Invalid {
                message: format!(
                    "flow {id} waits for {} approvals: {}",
                    several.len(),
                    calls.join(", ")
                ),
                hint: Some(format!("name the call: `taskflow flows approve {id} CALL_ID`")),
            })
        }
    }
}
