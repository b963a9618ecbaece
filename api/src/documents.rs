//! The JSON documents of flows (DESIGN §6): what `flows list | inspect | history | cancel
//! --json` print, and what a server answers. One definition of each shape, so every front end
//! agrees on the keys.

use serde::Serialize;
use serde_json::{Map, Value, json};
use taskflow_engine::agent::{AgentSpec, Budget, Spent};
use taskflow_engine::costs::{self, Prices, tree_cost};
use taskflow_store::{
    CancelOutcome, ChildSummary, Flow, FlowId, FlowSummary, Inspection, Revision, Signal, Stall,
    Step, StepKind, StepStatus, Timestamp,
};

/// `{"flows": [...]}`, newest first.
pub fn flows_list(flows: &[FlowSummary], now: Timestamp) -> Value {
    json!({ "flows": flows.iter().map(|flow| summary(flow, now)).collect::<Vec<_>>() })
}

/// One row of `flows list`.
pub fn summary(flow: &FlowSummary, now: Timestamp) -> Value {
    let stall = flow.stall(now);
    json!({
        "id": flow.id,
        "name": flow.name,
        "status": flow.status.as_str(),
        "sync_mode": flow.sync_mode.as_str(),
        "owner": flow.owner,
        "revision": flow.revision,
        "steps_done": flow.steps_done,
        "steps_total": flow.steps_total,
        "created_at": flow.created_at,
        "updated_at": flow.updated_at,
        "cancel_requested_at": flow.cancel_requested_at,
        "stalled": stall.is_some(),
        "stall": stall.as_ref().map(stall_document),
    })
}

/// `{"flow", "steps", "usage", "children"}`.
pub fn inspection(inspection: &Inspection, now: Timestamp) -> Value {
    let Inspection { flow: record, steps, children, descendant_llm_steps, descendants } =
        inspection;
    json!({
        "flow": flow(record, Some(steps), now),
        "steps": steps.iter().map(step).collect::<Vec<_>>(),
        "usage": usage(record, steps, descendants, descendant_llm_steps),
        "children": children.iter().map(|child| child_document(child, now)).collect::<Vec<_>>(),
    })
}

/// One child of an inspected flow: `{"id", "name", "status", "stalled"}`, stalled as in its
/// own document (`running` with no live runner).
fn child_document(child: &ChildSummary, now: Timestamp) -> Value {
    let stalled = child.stall(now).is_some();
    json!({"id": child.id, "name": child.name, "status": child.status.as_str(), "stalled": stalled})
}

/// What a flow's model calls spent, summed from the succeeded `llm` steps of its journal and
/// of its descendants' (a pipeline's agent runs), with the cost at the prices the flows
/// started with (`taskflow_engine::costs`) and the budget in force (`null` where there is none): `{"input_tokens",
/// "output_tokens", "tokens", "cost_usd", "max_tokens", "max_cost_usd"}`.
pub fn usage(
    flow: &Flow,
    steps: &[Step],
    descendants: &[Flow],
    descendant_llm_steps: &[Step],
) -> Value {
    let spent = Spent::from_journal(steps.iter().chain(descendant_llm_steps));
    let cost = tree_cost(
        &Prices::of_spec(flow.spec.as_ref()),
        steps,
        costs::specs(descendants),
        descendant_llm_steps,
    );
    let agent = flow.spec.as_ref().and_then(AgentSpec::from_flow_spec).and_then(Result::ok);
    let started_with = match &agent {
        Some(agent) => agent.budget,
        None => Budget::of_pipeline(flow.spec.as_ref()),
    };
    let budget = Budget::in_force(started_with, flow.state.as_ref());
    json!({
        "input_tokens": spent.input_tokens,
        "output_tokens": spent.output_tokens,
        "tokens": spent.tokens(),
        "calls_without_usage": spent.unmeasured,
        "cost_usd": cost,
        "max_tokens": budget.max_tokens,
        "max_cost_usd": budget.max_cost,
    })
}

/// A flow record, with its step counts taken from `steps`, its journal; `None` when the caller
/// has not read it, and the counts are then `null` (an answer to a change gives the flow's row,
/// and counting its journal on each report would cost a read of it).
pub fn flow(flow: &Flow, steps: Option<&[Step]>, now: Timestamp) -> Value {
    serde_json::to_value(FlowDocument::new(flow, steps, now)).unwrap_or(Value::Null)
}

/// A flow's document as [`flow`] gives it, written straight to JSON text without building a
/// [`Value`] first (a server answering each report with its flow). The fields are in the order
/// of their keys, the order in which a [`Value`]'s object writes them, so both texts are one.
#[derive(Debug, Serialize)]
pub struct FlowDocument<'a> {
    cancel_requested_at: Option<Timestamp>,
    controller: &'a Option<String>,
    created_at: Timestamp,
    current_step: &'a Option<String>,
    ended_at: Option<Timestamp>,
    error: &'a Option<String>,
    goal: &'a Option<String>,
    id: &'a FlowId,
    lease: Option<Value>,
    name: &'a str,
    owner: &'a str,
    parent_flow_id: &'a Option<FlowId>,
    revision: u64,
    spec: &'a Option<Value>,
    stall: Option<Value>,
    stalled: bool,
    state: &'a Option<Value>,
    status: &'static str,
    steps_done: Option<usize>,
    steps_total: Option<usize>,
    sync_mode: &'static str,
    updated_at: Timestamp,
    wait: &'a Option<Value>,
    wake_at: Option<Timestamp>,
}

impl<'a> FlowDocument<'a> {
    pub fn new(flow: &'a Flow, steps: Option<&[Step]>, now: Timestamp) -> Self {
        let counts = steps.map(|steps| step_counts(flow, steps));
        let (steps_done, steps_total) = (counts.map(|(done, _)| done), counts.map(|(_, all)| all));
        let stall = flow.stall(now);
        FlowDocument {
            cancel_requested_at: flow.cancel_requested_at,
            controller: &flow.controller,
            created_at: flow.created_at,
            current_step: &flow.current_step,
            ended_at: flow.ended_at,
            error: &flow.error,
            goal: &flow.goal,
            id: &flow.id,
            lease: flow.lease.as_ref().map(|lease| {
                json!({
                    "holder": lease.holder.to_string(),
                    "expires_at": lease.expires_at,
                })
            }),
            name: &flow.name,
            owner: &flow.owner,
            parent_flow_id: &flow.parent_flow_id,
            revision: flow.revision,
            spec: &flow.spec,
            stalled: stall.is_some(),
            stall: stall.as_ref().map(stall_document),
            state: &flow.state,
            status: flow.status.as_str(),
            steps_done,
            steps_total,
            sync_mode: flow.sync_mode.as_str(),
            updated_at: flow.updated_at,
            wait: &flow.wait,
            wake_at: flow.wake_at,
        }
    }
}

/// `{"flow"}`: a server's answer about one flow.
#[derive(Debug, Serialize)]
pub struct FlowAnswer<'a> {
    pub flow: FlowDocument<'a>,
}

/// Why a running flow has no live runner: `{"reason", "holder", "since"}` (`reason` one of
/// `holder_gone`, `lease_expired`, `no_lease`; `since` the lease's expiry when it expired).
pub fn stall_document(stall: &Stall) -> Value {
    json!({
        "reason": stall.reason.as_str(),
        "holder": stall.holder.as_ref().map(ToString::to_string),
        "since": stall.since,
    })
}

/// One step of a journal.
pub fn step(step: &Step) -> Value {
    json!({
        "seq": step.seq,
        "name": step.name,
        "kind": step.kind.as_str(),
        "status": step.status.as_str(),
        "attempt": step.attempt,
        "idempotency_key": step.idempotency_key,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "child_flow_id": step.child_flow_id,
    })
}

/// `{"revisions": [...]}`, oldest first; each change is `{FIELD: {"before", "after"}}`.
pub fn history(revisions: &[Revision]) -> Value {
    let revisions: Vec<Value> = revisions
        .iter()
        .map(|revision| {
            let change: Map<String, Value> = revision
                .change
                .iter()
                .map(|c| (c.field.clone(), json!({"before": c.before, "after": c.after})))
                .collect();
            json!({
                "revision": revision.revision,
                "at": revision.at,
                "actor": revision.actor,
                "change": change,
            })
        })
        .collect();
    json!({ "revisions": revisions })
}

/// What a cancel request did: the flow, whether it already had one, and the steps still
/// running.
pub fn cancel(outcome: &CancelOutcome, now: Timestamp) -> Value {
    json!({
        "flow": flow(&outcome.flow, None, now),
        "already_requested": outcome.already_requested,
        "active_steps": outcome.active_steps,
    })
}

/// A signal delivered: `{"signal": {...}, "flow": {...}}`, the flow as the signal left it.
pub fn signal_sent(signal: &Signal, flow: &Flow, now: Timestamp) -> Value {
    json!({ "signal": self::signal(signal), "flow": self::flow(flow, None, now) })
}

/// A decision about a tool call (`flows approve`, `POST /v1/flows/{id}/approvals/{call_id}`):
/// the decision as recorded, and the flow, due at once.
pub fn approval_decided(call_id: &str, signal: &Signal, flow: &Flow, now: Timestamp) -> Value {
    json!({
        "approval": {
            "call_id": call_id,
            "approved": signal.payload.get("approved").cloned().unwrap_or(Value::Bool(false)),
            "reason": signal.payload.get("reason").cloned().unwrap_or(Value::Null),
            "signal": signal.name,
            "decided_at": signal.sent_at,
        },
        "flow": self::flow(flow, None, now),
    })
}

/// One signal of a flow.
pub fn signal(signal: &Signal) -> Value {
    json!({
        "id": signal.id,
        "flow_id": signal.flow_id,
        "name": signal.name,
        "payload": signal.payload,
        "sent_at": signal.sent_at,
        "taken_by": signal.taken_by,
        "taken_at": signal.taken_at,
    })
}

/// How many of `flow`'s steps are done, and how many there are: steps by name in its journal,
/// however many attempts (rows) each took, done when the latest attempt succeeded; of all, the
/// steps its pipeline lists when the journal has not reached them all yet. A `child` row is the
/// record of the child flow a step runs, not a step of its own (as `flows list` counts).
pub fn step_counts(flow: &Flow, steps: &[Step]) -> (usize, usize) {
    let mut latest = std::collections::HashMap::new();
    for step in steps.iter().filter(|step| step.kind != StepKind::Child) {
        let kept = latest.entry(step.name.as_str()).or_insert(step);
        if step.seq > kept.seq {
            *kept = step;
        }
    }
    let done = latest.values().filter(|step| step.status == StepStatus::Succeeded).count();
    (done, latest.len().max(flow.listed_steps().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use taskflow_store::{FlowStatus, LeaseHolder, LeaseInfo, SyncMode};

    use super::*;

    /// A flow's document written straight has the text its `Value` has (an object writes its
    /// keys in order), with every field set and with none; an empty journal has no step done,
    /// out of the steps its pipeline lists.
    #[test]
    fn a_flow_written_straight_is_the_text_of_its_value() {
        fn check(record: &Flow) {
            let now = Timestamp::from_millis(10_000);
            let listed = json!(record.listed_steps().unwrap_or(0));
            for (steps, counts) in
                [(None, (json!(null), json!(null))), (Some(&[][..]), (json!(0), listed))]
            {
                let straight = serde_json::to_string(&FlowDocument::new(record, steps, now));
                let document = flow(record, steps, now);
                assert_eq!(straight.unwrap(), document.to_string());
                assert_eq!(
                    (&document["steps_done"], &document["steps_total"]),
                    (&counts.0, &counts.1)
                );
            }
        }
        let bare = Flow {
            id: "f-1".parse().unwrap(),
            name: "bare".to_owned(),
            owner: "alice".to_owned(),
            sync_mode: SyncMode::Mirrored,
            controller: None,
            status: FlowStatus::Running,
            revision: 1,
            goal: None,
            current_step: None,
            state: None,
            wait: None,
            wake_at: None,
            spec: None,
            parent_flow_id: None,
            cancel_requested_at: None,
            lease: None,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
            ended_at: None,
            error: None,
        };
        check(&bare);
        let full = Flow {
            sync_mode: SyncMode::Managed,
            controller: Some("pipeline".to_owned()),
            revision: 7,
            goal: Some("a goal".to_owned()),
            current_step: Some("fetch".to_owned()),
            state: Some(json!({"z": 1, "a": [true, null]})),
            wait: Some(json!({"signal": "go"})),
            wake_at: Some(Timestamp::from_millis(20_000)),
            spec: Some(json!({"steps": [{"name": "fetch"}]})),
            parent_flow_id: Some("p-1".parse().unwrap()),
            cancel_requested_at: Some(Timestamp::from_millis(3)),
            lease: Some(LeaseInfo {
                holder: LeaseHolder { host: "h".to_owned(), pid: 42, process_start: Some(9) },
                expires_at: Timestamp::from_millis(5),
            }),
            ended_at: Some(Timestamp::from_millis(4)),
            error: Some("\"quoted\"\n".to_owned()),
            ..bare.clone()
        };
        check(&full);
        assert!(flow(&full, None, Timestamp::from_millis(10_000))["stalled"] == json!(true));
    }

    /// A child listed under its parent says it is stalled as its own document would.
    #[test]
    fn a_child_is_listed_stalled_when_its_lease_has_expired() {
        let lease = |expires_at| LeaseInfo {
            holder: LeaseHolder::current(),
            expires_at: Timestamp::from_millis(expires_at),
        };
        let child = |status, lease| ChildSummary {
            id: "c-1".parse().unwrap(),
            name: "fetch".to_owned(),
            sync_mode: SyncMode::Managed,
            status,
            lease,
        };
        let now = Timestamp::from_millis(10_000);
        for (listed, stalled) in [
            (child(FlowStatus::Running, Some(lease(20_000))), false),
            (child(FlowStatus::Running, Some(lease(5_000))), true),
            (child(FlowStatus::Running, None), true),
            (child(FlowStatus::Succeeded, Some(lease(5_000))), false),
        ] {
            let document = child_document(&listed, now);
            let expected = json!({"id": "c-1", "name": "fetch", "status": listed.status.as_str(), "stalled": stalled});
            assert_eq!(document, expected, "{listed:?}");
        }
    }
}
