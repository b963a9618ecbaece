//! The kit's tests of durable timers and signals: a flow whose running steps all wait gives its
//! lease up and is due at its earliest timer; a signal is kept until a step takes it and wakes a
//! flow that waits for it, whichever of the two commits first; a cancel ends a waiting flow at
//! once; a decision about a tool call that waits for approval is recorded once, and only for
//! a call the flow waits for; a pipeline that waits for its child's decision is due once the
//! call is decided (the child is not: its parent runs it) or the child ends, also when the
//! decision came before the pipeline recorded its wait.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Harness, TTL, answered_step, begin, refusal, revisions, running, to_status};
use crate::wait::approval_signal;
use crate::{
    ApprovalDecision, ApprovalRequest, CheckpointDone, CheckpointOp, Error, Flow, FlowStatus,
    Lease, NewFlow, OwnerHandle, StepOutcome, StepStatus, Timestamp, WaitingStep,
};

pub(super) fn timer(seq: u32, step: &str, until: Timestamp) -> WaitingStep {
    WaitingStep {
        seq,
        step: step.to_owned(),
        until: Some(until),
        signal: None,
        approval: None,
        child: None,
    }
}

fn signal(seq: u32, step: &str, name: &str) -> WaitingStep {
    WaitingStep {
        seq,
        step: step.to_owned(),
        until: None,
        signal: Some(name.to_owned()),
        approval: None,
        child: None,
    }
}

pub(super) fn wait(lease: &Lease, steps: Vec<WaitingStep>) -> CheckpointOp {
    CheckpointOp::Wait { lease: lease.clone(), steps }
}

/// Begins steps called `names` on the leased flow; their seqs.
fn begun(handle: &OwnerHandle, lease: &Lease, names: &[&str]) -> Vec<u32> {
    let ops = names.iter().map(|name| begin(lease, name)).collect();
    handle.checkpoint(ops).unwrap().iter().map(|answer| answered_step(answer).seq).collect()
}

pub fn a_flow_whose_running_steps_all_wait_gives_its_lease_up_until_it_is_due(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (flow, lease) = running(&alice, "nightly");
    let seqs = begun(&alice, &lease, &["pause", "approval"]);
    let later = Timestamp::now().plus(Duration::from_secs(3600));
    let sooner = Timestamp::now().plus(Duration::from_secs(600));

    // Every running step must wait: one of two is refused, and changes nothing.
    let partial = refusal(&alice, wait(&lease, vec![timer(seqs[0], "pause", later)]));
    assert!(partial.to_string().contains("every running step waits"), "{partial}");

    let steps = vec![timer(seqs[0], "pause", later), signal(seqs[1], "approval", "approve")];
    let answers = alice.checkpoint(vec![wait(&lease, steps)]).unwrap();
    let Ok(CheckpointDone::Flow(waiting)) = &answers[0] else { panic!("{answers:?}") };
    assert_eq!(waiting.status, FlowStatus::Waiting);
    assert_eq!((waiting.wake_at, waiting.lease.clone()), (Some(later), None));
    let document = waiting.wait.clone().unwrap();
    assert_eq!(document["until"], json!(later.to_string()));
    assert_eq!(document["signals"], json!(["approve"]));
    assert_eq!(
        document["steps"][1],
        json!({"seq": seqs[1], "step": "approval",
        "until": null, "signal": "approve"})
    );
    let stored = fx.reopen().bind("alice").unwrap().flow(&flow.id).unwrap();
    assert_eq!(
        (stored.status, stored.wake_at, stored.lease),
        (FlowStatus::Waiting, Some(later), None)
    );
    let history = alice.history(&flow.id).unwrap();
    let fields: Vec<&str> =
        history.last().unwrap().change.iter().map(|change| change.field.as_str()).collect();
    assert_eq!(fields, ["status", "wait", "wake_at", "lease"]);
    // The runner gave its lease up: it writes nothing more.
    let fenced = refusal(&alice, to_status(&lease, FlowStatus::Running, None));
    assert!(matches!(fenced, Error::LeaseLost { .. }), "{fenced}");

    // Not due yet: not adoptable, but the next wake is known.
    assert!(fx.taskflow.adoptable(10).unwrap().is_empty());
    assert_eq!(fx.taskflow.next_wake().unwrap(), Some(later));

    // A runner that takes it back makes it run again: it waits for nothing any more.
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
    let back = alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    assert_eq!((back.wait.clone(), back.wake_at), (None, None));
    assert_eq!(fx.taskflow.next_wake().unwrap(), None);

    // A timer already past makes the flow due at once, and adoptable by any sweep.
    let past = Timestamp::now().minus(Duration::from_secs(1));
    let steps = vec![timer(seqs[0], "pause", past), timer(seqs[1], "approval", sooner)];
    alice.checkpoint(vec![wait(&lease, steps)]).unwrap().remove(0).unwrap();
    let adoptable = fx.taskflow.adoptable(10).unwrap();
    assert_eq!(adoptable.len(), 1);
    assert_eq!((&adoptable[0].id, adoptable[0].status), (&flow.id, FlowStatus::Waiting));
    assert_eq!(revisions(&alice, &flow.id).len() as u64, alice.flow(&flow.id).unwrap().revision);
}

pub fn a_signal_is_kept_until_a_step_takes_it_and_wakes_a_flow_waiting_for_it(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (flow, lease) = running(&alice, "review");

    // Sent before any step waits for it: stored, recorded in the history, kept.
    let (sent, after) = alice.send_signal(&flow.id, "approve", json!({"by": "bob"})).unwrap();
    assert_eq!((sent.name.as_str(), sent.taken_by), ("approve", None));
    let arrival = &alice.history(&flow.id).unwrap()[after.revision as usize - 1];
    assert_eq!(arrival.change[0].field, "signal");
    assert_eq!(arrival.change[0].after, json!({"name": "approve", "id": sent.id}));
    alice.send_signal(&flow.id, "approve", Value::Null).unwrap();

    // The first step to ask takes the oldest; asking again, it gets the same one.
    let seqs = begun(&alice, &lease, &["first", "second", "third"]);
    let taken = alice.take_signal(&lease, seqs[0], "approve").unwrap().unwrap();
    assert_eq!((taken.id, taken.payload.clone()), (sent.id, json!({"by": "bob"})));
    assert_eq!(alice.take_signal(&lease, seqs[0], "approve").unwrap().unwrap().id, sent.id);
    let second = alice.take_signal(&lease, seqs[1], "approve").unwrap().unwrap();
    assert_eq!((second.payload.clone(), second.taken_by), (Value::Null, Some(seqs[1])));
    assert!(alice.take_signal(&lease, seqs[2], "approve").unwrap().is_none());
    let kept: Vec<Option<u32>> =
        alice.signals(&flow.id).unwrap().iter().map(|signal| signal.taken_by).collect();
    assert_eq!(kept, [Some(seqs[0]), Some(seqs[1])]);

    // A flow waiting for a name: another name leaves it waiting, that name makes it due.
    for (seq, output) in [(seqs[0], taken.payload), (seqs[1], Value::Null)] {
        alice.finish_step(&lease, seq, StepOutcome::Succeeded(output)).unwrap();
    }
    let steps = vec![signal(seqs[2], "third", "approve")];
    alice.checkpoint(vec![wait(&lease, steps)]).unwrap().remove(0).unwrap();
    assert_eq!(alice.flow(&flow.id).unwrap().wake_at, None);
    alice.send_signal(&flow.id, "audit", Value::Null).unwrap();
    assert!(fx.taskflow.adoptable(10).unwrap().is_empty());
    let before = Timestamp::now();
    let (_, woken) = alice.send_signal(&flow.id, "approve", json!(1)).unwrap();
    assert!(woken.wake_at.is_some_and(|at| at >= before && at <= Timestamp::now()));
    assert_eq!(woken.status, FlowStatus::Waiting);
    assert_eq!(fx.taskflow.adoptable(10).unwrap()[0].id, flow.id);

    // A runner that gives a flow up while the signal it waits for is there finds it due.
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let steps = vec![signal(seqs[2], "third", "approve")];
    let answers = alice.checkpoint(vec![wait(&lease, steps)]).unwrap();
    let Ok(CheckpointDone::Flow(due)) = &answers[0] else { panic!("{answers:?}") };
    assert!(due.wake_at.is_some_and(|at| at <= Timestamp::now()), "{due:?}");

    // Signals go to managed flows that have not ended, of their owner only.
    let bob = fx.taskflow.bind("bob").unwrap();
    let hidden = bob.send_signal(&flow.id, "approve", Value::Null).unwrap_err();
    assert!(matches!(hidden, Error::NotFound { .. }), "{hidden}");
    let mirrored = alice.create(NewFlow::mirrored("plugin", "ci")).unwrap();
    let refused = alice.send_signal(&mirrored.id, "go", Value::Null).unwrap_err();
    assert!(matches!(refused, Error::Mirrored { .. }), "{refused}");
    let (done, done_lease) = running(&alice, "done");
    alice.set_status(&done_lease, FlowStatus::Succeeded, None).unwrap();
    let ended = alice.send_signal(&done.id, "go", Value::Null).unwrap_err();
    assert!(matches!(ended, Error::AlreadyEnded { .. }), "{ended}");
    let blank = alice.send_signal(&flow.id, " ", Value::Null).unwrap_err();
    assert!(matches!(blank, Error::InvalidInput(_)), "{blank}");
}

pub fn a_cancel_ends_a_waiting_flow_and_its_waiting_steps_at_once(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (flow, lease) = running(&alice, "nightly");
    let seqs = begun(&alice, &lease, &["pause"]);
    let until = Timestamp::now().plus(Duration::from_secs(3600));
    alice.checkpoint(vec![wait(&lease, vec![timer(seqs[0], "pause", until)])]).unwrap();
    let outcome = alice.request_cancel(&flow.id, None).unwrap();
    assert_eq!((outcome.flow.status, outcome.active_steps), (FlowStatus::Cancelled, 0));
    assert_eq!((outcome.flow.wait.clone(), outcome.flow.wake_at), (None, None));
    let steps = alice.steps(&flow.id).unwrap();
    assert_eq!(steps[0].status, StepStatus::Cancelled);
    assert_eq!(fx.taskflow.next_wake().unwrap(), None);

    // A running flow with a cancel request does not go waiting: its runner ends its steps.
    let (other, lease) = running(&alice, "other");
    let seqs = begun(&alice, &lease, &["pause"]);
    alice.request_cancel(&other.id, None).unwrap();
    let refused = refusal(&alice, wait(&lease, vec![timer(seqs[0], "pause", until)]));
    assert!(matches!(refused, Error::CancelRequested { .. }), "{refused}");
}

pub fn an_approval_is_decided_once_and_only_for_a_call_the_flow_waits_for(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (flow, lease) = running(&alice, "agent");
    let seq = begun(&alice, &lease, &["tool 1/call_1"])[0];
    let deny = ApprovalDecision { approved: false, reason: Some("not on Fridays".into()) };

    // Running, not waiting for the call yet: refused, nothing stored.
    let early = alice.decide_approval(&flow.id, "call_1", &deny).unwrap_err();
    assert!(matches!(&early, Error::NoApproval { pending, .. } if pending.is_empty()), "{early}");
    assert!(alice.signals(&flow.id).unwrap().is_empty());
    // The decision's signal cannot be sent as a plain signal.
    let forged =
        alice.send_signal(&flow.id, &approval_signal("1/call_1"), json!(true)).unwrap_err();
    assert!(matches!(forged, Error::InvalidInput(_)), "{forged}");

    let request = ApprovalRequest {
        call_id: "call_1".into(),
        tool: "run_command".into(),
        arguments: json!({"command": "rm -rf build"}),
    };
    let asking = WaitingStep {
        approval: Some(request),
        ..signal(seq, "tool 1/call_1", &approval_signal("1/call_1"))
    };
    alice.checkpoint(vec![wait(&lease, vec![asking])]).unwrap().remove(0).unwrap();
    let waiting = alice.flow(&flow.id).unwrap();
    assert_eq!((waiting.status, waiting.wake_at), (FlowStatus::Waiting, None));
    assert_eq!(waiting.wait.as_ref().unwrap()["approval"]["tool"], "run_command");

    // Another call: refused, naming the one it waits for.
    let other = alice.decide_approval(&flow.id, "call_2", &deny).unwrap_err();
    assert!(other.to_string().contains("it waits for `call_1`"), "{other}");

    // The decision: stored as the call's signal, in the history, and the flow is due at once.
    let before = Timestamp::now();
    let (decided, due) = alice.decide_approval(&flow.id, "call_1", &deny).unwrap();
    assert_eq!(decided.name, "approval:1/call_1");
    assert_eq!(decided.payload["call_id"], "call_1");
    assert_eq!(ApprovalDecision::from_value(&decided.payload), Some(deny.clone()));
    assert!(due.wake_at.is_some_and(|at| at >= before), "{due:?}");
    let changes = &alice.history(&flow.id).unwrap()[due.revision as usize - 1].change;
    let change = changes.iter().find(|change| change.field == "approval").unwrap();
    assert_eq!(
        change.after["decision"],
        json!({"approved": false, "reason": "not on Fridays", "call_id": "call_1"})
    );
    assert_eq!(fx.taskflow.adoptable(10).unwrap()[0].id, flow.id);

    // A second decision is refused, before and after the step took the first.
    let approve = ApprovalDecision { approved: true, reason: None };
    for taken in [false, true] {
        if taken {
            let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
            alice.set_status(&lease, FlowStatus::Running, None).unwrap();
            let took = alice.take_signal(&lease, seq, "approval:1/call_1").unwrap().unwrap();
            assert_eq!(took.id, decided.id);
        }
        let again = fx.reopen().bind("alice").unwrap();
        let twice = again.decide_approval(&flow.id, "call_1", &approve).unwrap_err();
        assert!(
            matches!(&twice, Error::AlreadyDecided { decision: "denied", .. }),
            "{taken}: {twice}"
        );
    }
    assert_eq!(alice.signals(&flow.id).unwrap().len(), 1);

    // Another owner's flow is not found.
    let bob = fx.taskflow.bind("bob").unwrap();
    let hidden = bob.decide_approval(&flow.id, "call_1", &approve).unwrap_err();
    assert!(matches!(hidden, Error::NotFound { .. }), "{hidden}");
}

/// A parent flow whose step `work` spawned a child that waits for a decision about `call_1`;
/// the parent's lease, its step's seq, the child and the seq of the child's waiting step.
pub fn waiting_child(alice: &OwnerHandle, name: &str) -> (Flow, Lease, u32, Flow, u32) {
    let (parent, parent_lease) = running(alice, name);
    let step = begun(alice, &parent_lease, &["work"])[0];
    let (child, _) = alice.spawn_child(&parent_lease, NewFlow::managed("work (agent)")).unwrap();
    let child_lease = alice.acquire_lease(&child.id, TTL).unwrap();
    alice.set_status(&child_lease, FlowStatus::Running, None).unwrap();
    let call = begun(alice, &child_lease, &["tool 1/call_1"])[0];
    alice.checkpoint(vec![wait(&child_lease, vec![asking(call)])]).unwrap().remove(0).unwrap();
    (parent, parent_lease, step, child, call)
}

/// Step `seq`, `tool 1/call_1`, waiting for a decision about `call_1`.
fn asking(seq: u32) -> WaitingStep {
    let request = ApprovalRequest {
        call_id: "call_1".into(),
        tool: "run_command".into(),
        arguments: json!({"command": "ls"}),
    };
    WaitingStep {
        approval: Some(request),
        ..signal(seq, "tool 1/call_1", &approval_signal("1/call_1"))
    }
}

/// As [`waiting_child`], and the parent, an agent too, waits for a decision about a call of
/// its own with the same id `call_1` (each agent's model numbers its calls) beside its child:
/// the parent and the child.
pub fn waiting_for_the_same_call_as_its_child(alice: &OwnerHandle, name: &str) -> (Flow, Flow) {
    let (parent, lease, step, child, _) = waiting_child(alice, name);
    let call = begun(alice, &lease, &["tool 1/call_1"])[0];
    let steps = vec![for_child(step, &child), asking(call)];
    alice.checkpoint(vec![wait(&lease, steps)]).unwrap().remove(0).unwrap();
    (parent, child)
}

/// The parent's step `seq`, waiting for `child`.
fn for_child(seq: u32, child: &Flow) -> WaitingStep {
    WaitingStep { child: Some(child.id.clone()), signal: None, ..signal(seq, "work", "unused") }
}

fn due_now(handle: &OwnerHandle, id: &crate::FlowId) -> bool {
    handle.flow(id).unwrap().is_due(Timestamp::now())
}

/// A pipeline's step waits for its child, which waits for a decision: the child's step is the
/// store's and runs on while the parent waits; the decision makes the parent due, not the
/// child (its parent's run runs it), and so does the child's end.
pub fn a_parent_waiting_for_its_childs_decision_is_due_once_it_is_decided_or_ends(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (parent, parent_lease, step, child, _) = waiting_child(&alice, "pipeline");

    // Without naming the child, the parent's step is one of two running steps: refused.
    let plain = WaitingStep { child: None, ..for_child(step, &child) };
    let refused = refusal(&alice, wait(&parent_lease, vec![plain]));
    assert!(matches!(refused, Error::InvalidInput(_)), "{refused}");
    alice.checkpoint(vec![wait(&parent_lease, vec![for_child(step, &child)])]).unwrap();
    let waiting = alice.flow(&parent.id).unwrap();
    assert_eq!((waiting.status, waiting.wake_at), (FlowStatus::Waiting, None));
    assert_eq!(waiting.lease, None);
    let document = waiting.wait.clone().unwrap();
    assert_eq!(document["children"], json!([child.id.to_string()]));
    assert_eq!(document["steps"][0]["child"], child.id.to_string());
    assert!(crate::wait::can_wake(Some(&document)));

    let approve = ApprovalDecision { approved: true, reason: None };
    let (_, decided) = alice.decide_approval(&child.id, "call_1", &approve).unwrap();
    assert_eq!((decided.status, decided.wake_at), (FlowStatus::Waiting, None));
    assert!(due_now(&alice, &parent.id));
    let adoptable: Vec<_> =
        fx.taskflow.adoptable(10).unwrap().into_iter().map(|flow| flow.id).collect();
    assert_eq!(adoptable, std::slice::from_ref(&parent.id));

    // The parent waits again before its child took the decision: due at once.
    let parent_lease = alice.acquire_lease(&parent.id, TTL).unwrap();
    alice.set_status(&parent_lease, FlowStatus::Running, None).unwrap();
    alice.checkpoint(vec![wait(&parent_lease, vec![for_child(step, &child)])]).unwrap();
    assert!(due_now(&alice, &parent.id));

    // A child that ends (here run by itself) makes the parent waiting for it due.
    let (parent, parent_lease, step, child, call) = waiting_child(&alice, "second");
    alice.checkpoint(vec![wait(&parent_lease, vec![for_child(step, &child)])]).unwrap();
    assert!(!due_now(&alice, &parent.id));
    let child_lease = alice.acquire_lease(&child.id, TTL).unwrap();
    alice.set_status(&child_lease, FlowStatus::Running, None).unwrap();
    let finish = CheckpointOp::Finish {
        lease: child_lease.clone(),
        seq: call,
        outcome: StepOutcome::Succeeded(json!("ok")),
    };
    alice.checkpoint(vec![finish]).unwrap().remove(0).unwrap();
    alice.set_status(&child_lease, FlowStatus::Succeeded, None).unwrap();
    assert!(due_now(&alice, &parent.id));
    let steps = alice.steps(&parent.id).unwrap();
    let running: Vec<_> = steps.iter().filter(|step| step.status == StepStatus::Running).collect();
    assert_eq!(running.len(), 1, "the child's step ended with the child: {steps:?}");
}

/// The race: the child waits for a decision, the decision is recorded while its pipeline
/// still runs (it has not recorded that it waits for the child), then the pipeline waits for
/// the child. The decision is kept for the child's step, the pipeline is due at once, and the
/// child, due by itself until then, is no more: only its parent's run runs it.
pub fn a_decision_recorded_before_the_parent_waits_for_its_child_is_not_lost(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (parent, parent_lease, step, child, call) = waiting_child(&alice, "pipeline");
    let approve = ApprovalDecision { approved: true, reason: Some("fine".into()) };
    let (decision, decided) = alice.decide_approval(&child.id, "call_1", &approve).unwrap();
    assert_eq!(decided.status, FlowStatus::Waiting);
    assert!(due_now(&alice, &child.id), "no parent waits for it yet: the child is due");
    assert_eq!(alice.flow(&parent.id).unwrap().status, FlowStatus::Running);

    alice.checkpoint(vec![wait(&parent_lease, vec![for_child(step, &child)])]).unwrap();
    assert!(due_now(&alice, &parent.id), "the parent is due at once");
    assert!(!due_now(&alice, &child.id), "the parent runs its child");
    let adoptable: Vec<_> =
        fx.taskflow.adoptable(10).unwrap().into_iter().map(|flow| flow.id).collect();
    assert_eq!(adoptable, std::slice::from_ref(&parent.id));

    // The parent's run runs the child on: its waiting step takes the decision.
    let child_lease = alice.acquire_lease(&child.id, TTL).unwrap();
    alice.set_status(&child_lease, FlowStatus::Running, None).unwrap();
    let took = alice.take_signal(&child_lease, call, &approval_signal("1/call_1")).unwrap();
    let took = took.expect("the decision is still there for the child's step");
    assert_eq!(took.id, decision.id);
    assert_eq!(ApprovalDecision::from_value(&took.payload), Some(approve));
    let again = alice.decide_approval(
        &child.id,
        "call_1",
        &ApprovalDecision { approved: false, reason: None },
    );
    assert!(matches!(again, Err(Error::AlreadyDecided { .. })), "{again:?}");
}
