//! Which flow and which tool call a decision is about. A decision may name a pipeline whose
//! `agent` steps' children wait for decisions, or leave the call out: the calls waited for in
//! the flow's tree (the flow and its unended descendants) are looked up, and the one the caller
//! means is found, or an error lists the waiting calls (flow, call, tool) and says how to name
//! one.

use std::collections::VecDeque;

use taskflow_store::{
    ApprovalDecision, Flow, FlowId, FlowStatus, OwnerHandle, Signal, Timestamp, wait,
};

use crate::error::{ApiError, Result};

/// One tool call a flow of the tree waits for a decision about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCall {
    pub flow: FlowId,
    pub call_id: String,
    pub tool: String,
}

/// The calls waiting for a decision in the tree of flow `id`: its own, then its
/// descendants', in the order they were spawned. A call decided already (its flow has not run
/// on yet) waits no more. A child is looked at whether or not its parent has recorded that it
/// waits for it yet.
pub fn waiting_calls(handle: &OwnerHandle, id: &FlowId) -> Result<Vec<WaitingCall>> {
    Ok(asked_calls(handle, id)?
        .into_iter()
        .filter(|(_, decided)| !decided)
        .map(|(call, _)| call)
        .collect())
}

/// The calls the tree of flow `id` waits on, each with whether it was decided already (its flow
/// has not run on since).
fn asked_calls(handle: &OwnerHandle, id: &FlowId) -> Result<Vec<(WaitingCall, bool)>> {
    let mut found = Vec::new();
    for flow in tree(handle, id)? {
        let asked = match flow.status {
            FlowStatus::Waiting => wait::approvals(flow.wait.as_ref()),
            _ => Vec::new(),
        };
        if asked.is_empty() {
            continue;
        }
        let decisions = handle.signals(&flow.id)?;
        for (request, signal) in asked {
            let decided = decisions.iter().any(|decision| decision.name == signal);
            let (call_id, tool) = (request.call_id, request.tool);
            found.push((WaitingCall { flow: flow.id.clone(), call_id, tool }, decided));
        }
    }
    Ok(found)
}

/// Flow `id` and its descendants, breadth first, each parent's children in the order they
/// were spawned.
fn tree(handle: &OwnerHandle, id: &FlowId) -> Result<Vec<Flow>> {
    let mut flows = Vec::new();
    let mut next = VecDeque::from([id.clone()]);
    while let Some(id) = next.pop_front() {
        next.extend(handle.children(&id)?.into_iter().map(|child| child.id));
        flows.push(handle.flow_without_spec(&id)?);
    }
    Ok(flows)
}

/// The flow of the tree of `id` where call `call_id` was decided, if it was.
fn decided_in(handle: &OwnerHandle, id: &FlowId, call_id: &str) -> Result<Option<FlowId>> {
    for flow in tree(handle, id)? {
        let decided = handle.signals(&flow.id)?.into_iter().any(|signal| {
            signal.name.starts_with(wait::APPROVAL_PREFIX)
                && signal.payload.get("call_id").and_then(|call| call.as_str()) == Some(call_id)
        });
        if decided {
            return Ok(Some(flow.id));
        }
    }
    Ok(None)
}

/// The flow and the call a decision about flow `id` is for: the call `call_id` where the tree
/// waits for it (the flow's own, when it waits for it itself), or, with no call named, the one
/// call the tree waits for. A call the tree does not wait for (decided already, or never
/// asked) is left to the flow that asked it, so that the store says why.
pub fn deciding_call(
    handle: &OwnerHandle,
    id: &FlowId,
    call_id: Option<&str>,
) -> Result<(FlowId, String)> {
    let (decided, waiting): (Vec<_>, Vec<_>) =
        asked_calls(handle, id)?.into_iter().partition(|(_, decided)| *decided);
    let waiting: Vec<WaitingCall> = waiting.into_iter().map(|(call, _)| call).collect();
    let listed = |calls: &[&WaitingCall]| {
        let calls: Vec<String> = calls.iter().map(|call| call_text(call, id)).collect();
        calls.join(", ")
    };
    match call_id {
        Some(call_id) => {
            let holders: Vec<&WaitingCall> =
                waiting.iter().filter(|call| call.call_id == call_id).collect();
            // The flow named holds it itself: each agent's model numbers its own calls, so a
            // descendant may wait for a call of the same id, but naming the flow is the way to
            // say which one is meant.
            if holders.iter().any(|call| &call.flow == id) {
                return Ok((id.clone(), call_id.to_owned()));
            }
            match holders.as_slice() {
                [holder] => Ok((holder.flow.clone(), call_id.to_owned())),
                [] => {
                    let asked = match decided_in(handle, id, call_id)? {
                        Some(flow) => flow,
                        None => deciding_flow(handle, id)?,
                    };
                    Ok((asked, call_id.to_owned()))
                }
                several => Err(ApiError::Invalid {
                    message: format!(
                        "call `{call_id}` is waited for in {} flows of flow {id}: {}",
                        several.len(),
                        listed(several)
                    ),
                    hint: Some(format!(
                        "name the flow that holds it: `taskflow flows approve FLOW {call_id}`"
                    )),
                }),
            }
        }
        None => match waiting.as_slice() {
            [call] => Ok((call.flow.clone(), call.call_id.clone())),
            [] => {
                if !decided.is_empty() {
                    let calls: Vec<String> =
                        decided.iter().map(|(call, _)| call_text(call, id)).collect();
                    return Err(ApiError::Refused {
                        message: format!(
                            "flow {id} waits for no decision: {} decided already",
                            calls.join(", ")
                        ),
                        hint: Some(format!(
                            "`taskflow flows resume {id}` runs it on with the decision (a running \
                             `taskflow serve` or `taskflow worker` does so by itself)"
                        )),
                    });
                }
                let flow = handle.flow_without_spec(id)?;
                Err(ApiError::Refused {
                    message: format!("flow {id} is {} and waits for no approval", flow.status),
                    hint: Some(format!("`taskflow flows inspect {id}` shows what it does")),
                })
            }
            several => Err(ApiError::Invalid {
                message: format!(
                    "flow {id} waits for {} approvals: {}",
                    several.len(),
                    listed(&several.iter().collect::<Vec<_>>())
                ),
                hint: Some(name_the_call(id, several)),
            }),
        },
    }
}

/// How to name one of the calls `waiting` in the tree of flow `id`: by its id alone while no
/// two of them share it, else with the flow that holds it.
fn name_the_call(id: &FlowId, waiting: &[WaitingCall]) -> String {
    let shared = waiting
        .iter()
        .any(|call| waiting.iter().filter(|other| other.call_id == call.call_id).count() > 1);
    if !shared {
        return format!("name the call: `taskflow flows approve {id} CALL_ID`");
    }
    let commands: Vec<String> = waiting
        .iter()
        .map(|call| format!("`taskflow flows approve {} {}`", call.flow, call.call_id))
        .collect();
    format!("name the flow that holds the call: {}", commands.join(", "))
}

/// A decision recorded.
#[derive(Debug, Clone)]
pub struct Decided {
    pub call_id: String,
    pub signal: Signal,
    /// The flow that waited for the call, as the decision left it.
    pub flow: Flow,
    /// The flows the decision made due, for a front end that runs flows to start now: the flow
    /// that waited, and the pipeline whose `agent` step waits for it (a child runs in its
    /// pipeline's run, so the pipeline is the one to start).
    pub due: Vec<FlowId>,
}

/// Records `decision` about call `call_id` of flow `id`'s tree (the one call it waits for when
/// `None`), as [`deciding_call`] finds it.
pub fn decide(
    handle: &OwnerHandle,
    id: &FlowId,
    call_id: Option<&str>,
    decision: &ApprovalDecision,
) -> Result<Decided> {
    let (id, call_id) = deciding_call(handle, id, call_id)?;
    let (signal, flow) = handle.decide_approval(&id, &call_id, decision)?;
    let now = Timestamp::now();
    let mut due = Vec::new();
    if flow.is_due(now) {
        due.push(flow.id.clone());
    }
    if let Some(parent) = &flow.parent_flow_id {
        let parent = handle.flow_without_spec(parent)?;
        if parent.is_due(now) {
            due.push(parent.id);
        }
    }
    Ok(Decided { call_id, signal, flow, due })
}

/// `c1 (run_command)`, with the flow that holds it when that is not `asked`.
fn call_text(call: &WaitingCall, asked: &FlowId) -> String {
    let text = format!("{} ({})", call.call_id, call.tool);
    if &call.flow == asked { text } else { format!("{text} in flow {}", call.flow) }
}

/// The flow a call of flow `id` was asked in: `id` itself, unless it waits for no call of its
/// own but for one child flow, then that child's, down the tree.
fn deciding_flow(handle: &OwnerHandle, id: &FlowId) -> Result<FlowId> {
    let mut id = id.clone();
    loop {
        let flow = handle.flow_without_spec(&id)?;
        if flow.status != FlowStatus::Waiting || !wait::approvals(flow.wait.as_ref()).is_empty() {
            return Ok(id);
        }
        let children = wait::waited_children(flow.wait.as_ref());
        let [child] = children.as_slice() else { return Ok(id) };
        match child.parse::<FlowId>() {
            Ok(child) => id = child,
            Err(_) => return Ok(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(flow: &str, call_id: &str) -> WaitingCall {
        WaitingCall {
            flow: FlowId::parse(flow).unwrap(),
            call_id: call_id.to_owned(),
            tool: "run_command".to_owned(),
        }
    }

    #[test]
    fn a_call_is_named_by_its_id_unless_two_flows_wait_for_calls_of_that_id() {
        let pipe = FlowId::parse("pipe").unwrap();
        let unique = [call("a", "c1"), call("b", "c2")];
        assert_eq!(
            name_the_call(&pipe, &unique),
            "name the call: `taskflow flows approve pipe CALL_ID`"
        );
        let shared = [call("a", "c1"), call("b", "c1")];
        assert_eq!(
            name_the_call(&pipe, &shared),
            "name the flow that holds the call: `taskflow flows approve a c1`, \
             `taskflow flows approve b c1`"
        );
    }
}
