//! What a waiting managed flow waits for: the `wait` document its runner's waiting steps make
//! when the flow becomes `waiting`, the instant it is due again, and the reading of that
//! document back (by a signal that may wake the flow, by the runner that resumes it). One
//! definition, so the store, the engine and every front end agree on its keys:
//!
//! ```json
//! {"until": "2026-12-05T07:00:00.000Z", "signals": ["approve"],
//!  "steps": [{"seq": 2, "step": "pause", "until": "2026-12-05T07:00:00.000Z", "signal": null},
//!            {"seq": 3, "step": "approval", "until": null, "signal": "approve"}]}
//! ```
//!
//! `until` is the earliest timer of the steps (`null` when they wait for signals only) and
//! `signals` the names they wait for.
//!
//! A step that is a tool call waiting for a person's decision (an agent's `ask` tool) waits
//! for the signal [`approval_signal`] names after its call (and its turn), and its entry carries
//! `"approval": {"call_id", "tool", "arguments"}`; the document repeats the first such request
//! as its own `approval`, the one an agent run waits for (it runs one call at a time):
//!
//! ```json
//! {"until": null, "signals": ["approval:1/call_1"],
//!  "approval": {"call_id": "call_1", "tool": "run_command", "arguments": {"command": "ls"}},
//!  "steps": [{"seq": 2, "step": "tool 1/call_1", "until": null, "signal": "approval:1/call_1",
//!             "approval": {"call_id": "call_1", "tool": "run_command", "arguments": {…}}}]}
//! ```
//!
//! A step whose child flow waits (a pipeline's `agent` step, whose agent waits for a decision)
//! names the child in its entry (`"child": ID`), and the document lists such children as
//! `children`; the flow is due again once a child it waits for is decided about or ends.

use serde_json::{Value, json};

use crate::model::{ApprovalRequest, WaitingStep};
use crate::time::Timestamp;

/// The `wait` document of a flow whose running steps are `steps`.
pub fn document(steps: &[WaitingStep]) -> Value {
    let mut signals: Vec<&str> = steps.iter().filter_map(|step| step.signal.as_deref()).collect();
    signals.sort_unstable();
    signals.dedup();
    let mut document = json!({
        "until": earliest(steps),
        "signals": signals,
        "steps": steps
            .iter()
            .map(|step| {
                let mut entry = json!({
                    "seq": step.seq,
                    "step": step.step,
                    "until": step.until,
                    "signal": step.signal,
                });
                if let Some(approval) = &step.approval {
                    entry["approval"] = approval_value(approval);
                }
                if let Some(child) = &step.child {
                    entry["child"] = json!(child.to_string());
                }
                entry
            })
            .collect::<Vec<_>>(),
    });
    if let Some(approval) = steps.iter().find_map(|step| step.approval.as_ref()) {
        document["approval"] = approval_value(approval);
    }
    let children: Vec<String> =
        steps.iter().filter_map(|step| step.child.as_ref()).map(ToString::to_string).collect();
    if !children.is_empty() {
        document["children"] = json!(children);
    }
    document
}

/// The child flows (their ids) a `wait` document's steps wait for: children that wait
/// themselves, for a person's decision about a tool call.
pub fn waited_children(wait: Option<&Value>) -> Vec<String> {
    let children = wait.and_then(|wait| wait.get("children")).and_then(Value::as_array);
    children.into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// How the names of approval signals begin; no other signal's name does.
pub const APPROVAL_PREFIX: &str = "approval:";

/// The name of the signal that carries the decision about the call its runner calls `key`
/// (unique in its flow: models number calls by position, so an id may come back in a later
/// turn).
pub fn approval_signal(key: &str) -> String {
    format!("{APPROVAL_PREFIX}{key}")
}

fn approval_value(approval: &ApprovalRequest) -> Value {
    json!({"call_id": approval.call_id, "tool": approval.tool, "arguments": approval.arguments})
}

/// The approval requests a `wait` document lists, in the order of its steps, each with the
/// name of the signal its step waits for.
pub fn approvals(wait: Option<&Value>) -> Vec<(ApprovalRequest, String)> {
    let steps = wait.and_then(|wait| wait.get("steps")).and_then(Value::as_array);
    steps
        .into_iter()
        .flatten()
        .filter_map(|step| {
            let approval = step.get("approval")?;
            let request = ApprovalRequest {
                call_id: approval.get("call_id")?.as_str()?.to_owned(),
                tool: approval.get("tool")?.as_str()?.to_owned(),
                arguments: approval.get("arguments").cloned().unwrap_or(Value::Null),
            };
            Some((request, step.get("signal")?.as_str()?.to_owned()))
        })
        .collect()
}

/// The earliest instant one of `steps` can end at by itself.
pub fn earliest(steps: &[WaitingStep]) -> Option<Timestamp> {
    steps.iter().filter_map(|step| step.until).min()
}

/// The seqs of the steps a `wait` document lists: the steps that were waiting, not
/// interrupted, when their runner gave the flow up.
pub fn waiting_seqs(wait: Option<&Value>) -> Vec<u32> {
    let steps = wait.and_then(|wait| wait.get("steps")).and_then(Value::as_array);
    steps
        .into_iter()
        .flatten()
        .filter_map(|step| step.get("seq").and_then(Value::as_u64))
        .filter_map(|seq| u32::try_from(seq).ok())
        .collect()
}

/// Whether something could wake a flow waiting on this `wait` document: a timer, a signal, an
/// approval, or a child that waits for one.
pub fn can_wake(wait: Option<&Value>) -> bool {
    let Some(wait) = wait.and_then(Value::as_object) else { return false };
    let named = |key: &str| match wait.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    };
    ["until", "signals", "signal", "approval", "children"].into_iter().any(named)
}

/// Whether a `wait` document waits for a signal called `name`.
pub fn waits_for_signal(wait: Option<&Value>, name: &str) -> bool {
    let signals = wait.and_then(|wait| wait.get("signals")).and_then(Value::as_array);
    signals.into_iter().flatten().any(|signal| signal.as_str() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(seq: u32, until: Option<i64>, signal: Option<&str>) -> WaitingStep {
        WaitingStep {
            seq,
            step: format!("s{seq}"),
            until: until.map(Timestamp::from_millis),
            signal: signal.map(str::to_owned),
            approval: None,
            child: None,
        }
    }

    #[test]
    fn a_call_that_waits_for_a_decision_is_named_in_its_step_and_in_the_document() {
        let request = ApprovalRequest {
            call_id: "call_1".into(),
            tool: "run_command".into(),
            arguments: json!({"command": "ls"}),
        };
        let asking = WaitingStep {
            approval: Some(request.clone()),
            ..step(3, None, Some(&approval_signal("1/call_1")))
        };
        let wait = document(&[asking]);
        let expected = json!({"call_id": "call_1", "tool": "run_command",
                              "arguments": {"command": "ls"}});
        assert_eq!(wait["approval"], expected);
        assert_eq!(wait["steps"][0]["approval"], expected);
        assert_eq!(wait["signals"], json!(["approval:1/call_1"]));
        assert!(can_wake(Some(&wait)));
        assert_eq!(approvals(Some(&wait)), [(request, "approval:1/call_1".to_owned())]);
        assert_eq!(approvals(Some(&document(&[step(2, None, Some("go"))]))), []);
        assert_eq!(approvals(None), []);
    }

    #[test]
    fn a_wait_can_wake_when_it_names_a_timer_a_signal_or_an_approval() {
        assert!(can_wake(Some(&document(&[step(2, Some(5_000), None)]))));
        assert!(can_wake(Some(&document(&[step(2, None, Some("go"))]))));
        assert!(can_wake(Some(&json!({"approval": {"call_id": "c1"}}))));
        assert!(!can_wake(Some(&document(&[]))));
        assert!(!can_wake(Some(&json!({"until": null, "signals": []}))));
        assert!(!can_wake(Some(&json!("later"))));
        assert!(!can_wake(None));
    }

    #[test]
    fn the_document_names_the_earliest_timer_and_each_signal_once() {
        let steps = [
            step(2, Some(5_000), None),
            step(3, Some(2_000), Some("approve")),
            step(4, None, Some("approve")),
            step(5, None, Some("audit")),
        ];
        let wait = document(&steps);
        assert_eq!(wait["until"], "1970-01-01T00:00:02.000Z");
        assert_eq!(wait["signals"], json!(["approve", "audit"]));
        assert_eq!(
            wait["steps"][0],
            json!({"seq": 2, "step": "s2",
            "until": "1970-01-01T00:00:05.000Z", "signal": null})
        );
        assert_eq!(waiting_seqs(Some(&wait)), [2, 3, 4, 5]);
        assert!(waits_for_signal(Some(&wait), "audit"));
        assert!(!waits_for_signal(Some(&wait), "other"));
    }

    #[test]
    fn signals_only_have_no_until_and_no_document_waits_for_nothing() {
        let wait = document(&[step(1, None, Some("go"))]);
        assert_eq!(wait["until"], Value::Null);
        assert_eq!(earliest(&[step(1, None, Some("go"))]), None);
        assert_eq!(waiting_seqs(None), Vec::<u32>::new());
        assert!(!waits_for_signal(None, "go"));
        assert!(!waits_for_signal(Some(&json!({"until": "approval"})), "approval"));
    }
}
