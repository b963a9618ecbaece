//! Which flow and call a decision is for, on a real SQLite file: a decision that names a
//! pipeline finds the call in its child, also while the pipeline still runs and has not
//! recorded that it waits for the child (the decision is recorded on the child, not refused);
//! a call decided already is left to the flow where it was decided, which refuses it again.

use taskflow_api::approvals::{WaitingCall, deciding_call, waiting_calls};
use taskflow_store::testkit::{waiting_child, waiting_for_the_same_call_as_its_child};
use taskflow_store::{ApprovalDecision, Error, FlowStatus};
use taskflow_store_sqlite::OpenOptions;

#[test]
fn a_decision_named_by_the_pipeline_before_it_waits_is_the_childs() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        taskflow_store_sqlite::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
    let alice = store.bind("alice").unwrap();
    let (parent, _lease, _step, child, _call) = waiting_child(&alice, "pipeline");
    assert_eq!(alice.flow(&parent.id).unwrap().status, FlowStatus::Running);

    let waiting = waiting_calls(&alice, &parent.id).unwrap();
    let expected = WaitingCall {
        flow: child.id.clone(),
        call_id: "call_1".to_owned(),
        tool: "run_command".to_owned(),
    };
    assert_eq!(waiting, [expected]);
    for named in [None, Some("call_1")] {
        let found = deciding_call(&alice, &parent.id, named).unwrap();
        assert_eq!(found, (child.id.clone(), "call_1".to_owned()), "{named:?}");
    }

    let (flow, call_id) = deciding_call(&alice, &parent.id, None).unwrap();
    let approve = ApprovalDecision { approved: true, reason: None };
    alice.decide_approval(&flow, &call_id, &approve).unwrap();
    assert!(waiting_calls(&alice, &parent.id).unwrap().is_empty(), "decided, it waits no more");
    let (again, _) = deciding_call(&alice, &parent.id, Some("call_1")).unwrap();
    assert_eq!(again, child.id, "left to the flow where it was decided");
    let refused = alice.decide_approval(&again, "call_1", &approve).unwrap_err();
    assert!(matches!(refused, Error::AlreadyDecided { .. }), "{refused}");
    // Decided but not run on yet: said so, with the way on, not "waits for no approval".
    let error = deciding_call(&alice, &parent.id, None).unwrap_err();
    assert!(error.to_string().contains("call_1 (run_command) in flow"), "{error}");
    assert!(error.to_string().contains("decided already"), "{error}");
    assert!(
        matches!(&error, taskflow_api::ApiError::Refused { hint: Some(hint), .. } if hint.contains("flows resume"))
    );
}

#[test]
fn a_call_id_waited_for_in_a_flow_and_its_child_is_the_named_flows_own() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        taskflow_store_sqlite::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
    let alice = store.bind("alice").unwrap();
    let (parent, child) = waiting_for_the_same_call_as_its_child(&alice, "agent");
    let holders: Vec<_> =
        waiting_calls(&alice, &parent.id).unwrap().into_iter().map(|call| call.flow).collect();
    assert_eq!(holders, [parent.id.clone(), child.id.clone()]);
    // Named, each flow decides its own call: the hint to name the flow leads somewhere.
    assert_eq!(deciding_call(&alice, &parent.id, Some("call_1")).unwrap().0, parent.id);
    assert_eq!(deciding_call(&alice, &child.id, Some("call_1")).unwrap().0, child.id);
    let error = deciding_call(&alice, &parent.id, None).unwrap_err().to_string();
    assert!(error.contains("waits for 2 approvals"), "{error}");
}
