//! The conformance kit: the store's semantics through the owner-bound handle, as every backend
//! must keep them. Revisions, owner isolation, optimistic concurrency, mirrored flows, children,
//! sticky cancel and its races, checkpoints that see what other stores changed between them,
//! leases, listing.
//!
//! A backend runs the whole kit with [`conformance_tests!`](crate::conformance_tests), given a
//! [`Harness`] that makes fresh databases:
//!
//! ```text
//! taskflow_store::conformance_tests!(MyHarness);
//! ```
//!
//! Each kit test takes the harness, so it starts from an empty database of its own, and may open
//! the same database again (another process's view of it) with [`Database::reopen`].
//!
//! Tests of one area live in a module of their own: [`waits`] (durable timers and signals),
//! [`schedules`] and [`claims`] (workers picking up work).

pub mod claims;
pub mod schedules;
pub mod waits;

pub use claims::*;
pub use schedules::*;
pub use waits::*;

use std::any::Any;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use serde_json::json;

use crate::{
    Change, CheckpointDone, CheckpointOp, Error, EventQuery, ExpectedRevision, Flow, FlowId,
    FlowStatus, FlowSummary, Lease, LeaseHolder, ListQuery, NewFlow, NewStep, OwnerHandle,
    PruneQuery, ResumePlan, SpawnRefusal, Stall, StallReason, StateReport, Step, StepKind,
    StepOutcome, StepReport, StepStatus, SyncMode, Takeover, TaskFlow, Timestamp,
};

const TTL: Duration = Duration::from_secs(30);
const MIN_TTL: Duration = crate::lease::MIN_TTL;

/// What a backend gives the kit.
pub trait Harness {
    /// A new, empty database, and a store on it.
    fn fresh(&self) -> Database;
}

/// One database of a kit test: a store on it, and the way to open another.
pub struct Database {
    pub taskflow: TaskFlow,
    open_again: Box<dyn Fn() -> TaskFlow>,
    _keep: Box<dyn Any>,
}

impl Database {
    /// `taskflow` is a store on the new database; `open_again` opens another store on it (a
    /// separate connection, as another process would); `keep` lives as long as the database
    /// is used (a temporary folder, say).
    pub fn new(
        taskflow: TaskFlow,
        open_again: impl Fn() -> TaskFlow + 'static,
        keep: impl Any,
    ) -> Self {
        Database { taskflow, open_again: Box::new(open_again), _keep: Box::new(keep) }
    }

    /// Another store on the same database.
    pub fn reopen(&self) -> TaskFlow {
        (self.open_again)()
    }

    pub fn alice(&self) -> OwnerHandle {
        self.taskflow.bind("alice").unwrap()
    }

    /// Alice through another store on the same database, as another process sees her flows.
    pub fn alice_elsewhere(&self) -> OwnerHandle {
        self.reopen().bind("alice").unwrap()
    }
}

/// A managed flow, leased and running.
fn running(handle: &OwnerHandle, name: &str) -> (Flow, Lease) {
    let flow = handle.create(NewFlow::managed(name)).unwrap();
    let lease = handle.acquire_lease(&flow.id, TTL).unwrap();
    let flow = handle.set_status(&lease, FlowStatus::Running, None).unwrap();
    (flow, lease)
}

fn revisions(handle: &OwnerHandle, id: &FlowId) -> Vec<u64> {
    handle.history(id).unwrap().iter().map(|revision| revision.revision).collect()
}

pub fn every_change_to_the_flow_record_bumps_the_revision_and_appends_one_row(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::managed("digest").with_goal("summarize")).unwrap();
    assert_eq!((flow.revision, flow.status), (1, FlowStatus::Queued));
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let step = alice.begin_step(&lease, NewStep::new("fetch", StepKind::Action)).unwrap();
    assert_eq!(step.idempotency_key, format!("{}:1", flow.id));
    alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!("page"))).unwrap();
    alice.renew_lease(&lease, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let done = alice.set_status(&lease, FlowStatus::Succeeded, None).unwrap();

    let history = alice.history(&flow.id).unwrap();
    assert_eq!(revisions(&alice, &flow.id), [1, 2, 3, 4], "steps, renewal and no-op add nothing");
    assert_eq!(done.revision, 4);
    let fields: Vec<Vec<&str>> = history
        .iter()
        .map(|revision| revision.change.iter().map(|change| change.field.as_str()).collect())
        .collect();
    assert_eq!(fields[0], ["name", "sync_mode", "status", "goal"], "a creation lists its goal");
    assert_eq!(fields[1], ["lease"]);
    assert_eq!(fields[2], ["status"]);
    assert_eq!(fields[3], ["status", "ended_at", "lease"]);
    let status = &history[3].change[0];
    assert_eq!(
        (status.before.clone(), status.after.clone()),
        (json!("running"), json!("succeeded"))
    );
    assert!(history.iter().all(|revision| revision.actor == "alice"));
    assert!(history.windows(2).all(|pair| pair[0].at <= pair[1].at));

    let terminal = alice.set_status(&lease, FlowStatus::Running, None).unwrap_err();
    assert!(matches!(terminal, Error::LeaseLost { .. } | Error::AlreadyEnded { .. }), "{terminal}");
    assert_eq!(alice.flow(&flow.id).unwrap().revision, 4);
}

pub fn a_step_is_a_journal_record_and_the_flow_reads_its_current_step_from_the_journal(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (flow, lease) = running(&alice, "digest");
    for name in ["fetch", "filter"] {
        let step = alice.begin_step(&lease, NewStep::new(name, StepKind::Action)).unwrap();
        let seen = alice.flow(&flow.id).unwrap();
        assert_eq!((seen.revision, seen.current_step.as_deref()), (flow.revision, Some(name)));
        alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(name))).unwrap();
    }
    let stored = fx.reopen().bind("alice").unwrap().flow(&flow.id).unwrap();
    assert_eq!((stored.revision, stored.current_step.as_deref()), (flow.revision, Some("filter")));
    assert_eq!(alice.history(&flow.id).unwrap().len() as u64, flow.revision);
    let steps = alice.steps(&flow.id).unwrap();
    let journal: Vec<_> = steps.iter().map(|step| (step.name.as_str(), step.status)).collect();
    assert_eq!(journal, [("fetch", StepStatus::Succeeded), ("filter", StepStatus::Succeeded)]);
}

pub fn a_step_tried_again_records_why_its_attempt_ended_in_the_history(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (flow, lease) = running(&alice, "digest");
    let step = alice.begin_step(&lease, NewStep::new("fetch", StepKind::Action)).unwrap();
    let op = CheckpointOp::NextAttempt {
        lease: lease.clone(),
        seq: step.seq,
        reason: "timed out after 50 ms".to_owned(),
    };
    alice.checkpoint(vec![op]).unwrap().pop().unwrap().unwrap();

    let last = alice.history(&flow.id).unwrap().pop().unwrap();
    assert_eq!(last.revision, flow.revision + 1);
    assert_eq!(last.change.len(), 1);
    let change = &last.change[0];
    assert_eq!(change.field, "step 1 (fetch)");
    assert_eq!(change.before, json!({"attempt": 1, "ended": "timed out after 50 ms"}));
    assert_eq!(change.after, json!({"attempt": 2}));
}

pub fn another_owners_flow_is_not_found_exactly_like_a_missing_one(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let flow = alice.create(NewFlow::managed("private")).unwrap();
    let missing = FlowId::new();
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap();

    fn message<T: std::fmt::Debug>(result: Result<T, Error>, id: &FlowId) -> String {
        match result {
            Err(Error::NotFound { id: reported }) => {
                assert_eq!(reported, id.to_string());
                "not found".to_owned()
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    for id in [&flow.id, &missing] {
        message(bob.flow(id), id);
        message(bob.steps(id), id);
        message(bob.children(id), id);
        message(bob.history(id), id);
        message(bob.inspect(id), id);
        message(bob.request_cancel(id, None), id);
        message(bob.report(id, StateReport::default(), None), id);
        message(bob.check_resume(id), id);
        message(bob.acquire_lease(id, TTL), id);
    }
    let stolen = Lease { flow_id: flow.id.clone(), ..lease.clone() };
    message(bob.set_status(&stolen, FlowStatus::Running, None), &flow.id);
    message(bob.begin_step(&stolen, NewStep::new("x", StepKind::Tool)), &flow.id);
    message(bob.release_lease(&stolen), &flow.id);
    assert!(bob.list(&ListQuery::default()).unwrap().is_empty());
    assert_eq!(alice.flow(&flow.id).unwrap().revision, 2, "bob changed nothing");
    assert!(fx.taskflow.bind("  ").is_err());
}

pub fn expected_revision_mismatch_is_a_conflict_and_changes_nothing(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let mirrored = alice.create(NewFlow::mirrored("ci job", "ci")).unwrap();
    let to_running = StateReport { status: Some(FlowStatus::Running), ..Default::default() };

    fn check(result: Result<impl std::fmt::Debug, Error>, current: u64) {
        match result {
            Err(Error::RevisionConflict { current: reported, .. }) => assert_eq!(reported, current),
            other => panic!("expected a conflict at {current}, got {other:?}"),
        }
    }
    let stale: ExpectedRevision = Some(0);
    check(alice.report(&mirrored.id, to_running.clone(), stale), 1);
    check(alice.request_cancel(&mirrored.id, Some(7)), 1);
    let reported = alice.report(&mirrored.id, to_running.clone(), Some(1)).unwrap();
    assert_eq!(reported.revision, 2);
    check(alice.report(&mirrored.id, to_running, Some(1)), 2);
    check(alice.request_cancel(&mirrored.id, Some(1)), 2);
    assert_eq!(revisions(&alice, &mirrored.id), [1, 2]);
}

pub fn concurrent_writers_with_the_same_expected_revision_one_wins(harness: &dyn Harness) {
    let fx = harness.fresh();
    let flow = fx.alice().create(NewFlow::mirrored("race", "ci")).unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let results: Vec<_> = (0..4)
        .map(|i| {
            let store = fx.reopen();
            let barrier = Arc::clone(&barrier);
            let id = flow.id.clone();
            std::thread::spawn(move || {
                let alice = store.bind("alice").unwrap().with_actor(format!("writer {i}"));
                let report = StateReport {
                    status: Some(FlowStatus::Running),
                    current_step: Some(format!("by {i}")),
                    ..Default::default()
                };
                barrier.wait();
                alice.report(&id, report, Some(1))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1, "{results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(matches!(error, Error::RevisionConflict { current: 2, .. }), "{error}");
        }
    }
    assert_eq!(revisions(&fx.alice(), &flow.id), [1, 2]);
}

pub fn mirrored_flows_take_reports_are_never_run_and_are_validated(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::mirrored("deploy", "ci-runner-7")).unwrap();
    assert_eq!(flow.sync_mode, SyncMode::Mirrored);

    let report = |status, expected| {
        alice.report(
            &flow.id,
            StateReport {
                status: Some(status),
                state: Some(json!({"at": status.as_str()})),
                ..Default::default()
            },
            expected,
        )
    };
    report(FlowStatus::Running, None).unwrap();
    report(FlowStatus::Waiting, None).unwrap();
    let illegal = report(FlowStatus::Queued, None).unwrap_err().to_string();
    assert_eq!(illegal, "illegal transition from waiting to queued");

    let resume = alice.check_resume(&flow.id).unwrap_err().to_string();
    assert!(resume.contains("is mirrored") && resume.contains("does not resume it"), "{resume}");
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap_err().to_string();
    assert!(lease.contains("does not run it"), "{lease}");

    report(FlowStatus::Running, None).unwrap();
    let done = report(FlowStatus::Succeeded, None).unwrap();
    assert_eq!((done.status, done.revision), (FlowStatus::Succeeded, 5));
    assert_eq!(done.state, Some(json!({"at": "succeeded"})));
    assert!(done.ended_at.is_some());
    assert!(matches!(
        report(FlowStatus::Running, None),
        Err(Error::IllegalTransition { from: FlowStatus::Succeeded, to: FlowStatus::Running })
    ));
    assert!(matches!(report(FlowStatus::Succeeded, None), Err(Error::AlreadyEnded { .. })));

    let (managed, _) = running(&alice, "managed");
    let refused = alice.report(&managed.id, StateReport::default(), None).unwrap_err();
    assert!(matches!(refused, Error::NotMirrored { .. }), "{refused}");

    // A controller is named as a flow is: printable text, at most 200 characters. A refusal
    // quotes only the start of what it refused.
    for controller in ["", "a\nb", &"c".repeat(100_000), &"é".repeat(201)] {
        let refused = alice.create(NewFlow::mirrored("deploy", controller)).unwrap_err();
        assert!(matches!(refused, Error::InvalidInput(_)), "{refused}");
        assert!(refused.to_string().len() < 300, "{refused}");
    }
    // Characters, not bytes: 200 of `é` (400 bytes) or of an emoji (800) are a name.
    for name in ["é".repeat(200), "😀".repeat(200)] {
        alice.create(NewFlow::mirrored(&name, "ci")).unwrap();
    }
}

pub fn a_mirrored_flow_with_a_cancel_request_waits_for_its_owner_to_report_it(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::mirrored("external", "cron")).unwrap();
    let running = |name: &str| StepReport {
        name: name.into(),
        status: StepStatus::Running,
        output: None,
        error: None,
    };
    let ended = |name: &str| StepReport { status: StepStatus::Succeeded, ..running(name) };
    let first = StateReport {
        status: Some(FlowStatus::Running),
        steps: vec![running("a")],
        ..Default::default()
    };
    alice.report(&flow.id, first, None).unwrap();
    let outcome = alice.request_cancel(&flow.id, None).unwrap();
    assert_eq!(outcome.flow.status, FlowStatus::Running);
    assert!(outcome.flow.cancel_requested_at.is_some());
    // Nothing new begins, and the flow does not end as if nothing was asked.
    let begun =
        StepReport { name: "b".into(), status: StepStatus::Running, output: None, error: None };
    let begun = StateReport { steps: vec![begun], ..Default::default() };
    assert!(matches!(alice.report(&flow.id, begun, None), Err(Error::CancelRequested { .. })));
    // A step that ran before the request still ends, and one reported ended at once records
    // work done (an owner may report its steps only as they end): neither begins anything.
    alice
        .report(&flow.id, StateReport { steps: vec![ended("a")], ..Default::default() }, None)
        .unwrap();
    let at_once = StateReport { steps: vec![ended("c")], ..Default::default() };
    alice.report(&flow.id, at_once, None).unwrap();
    let names: Vec<String> =
        alice.steps(&flow.id).unwrap().into_iter().map(|step| step.name).collect();
    assert_eq!(names, ["a", "c"]);
    let done = StateReport { status: Some(FlowStatus::Succeeded), ..Default::default() };
    let refused = alice.report(&flow.id, done, None).unwrap_err();
    assert!(matches!(&refused, Error::InvalidInput(m) if m.contains("`cancelled`")), "{refused}");
    let gone = StateReport { status: Some(FlowStatus::Lost), ..Default::default() };
    let refused = alice.report(&flow.id, gone, None).unwrap_err();
    assert!(matches!(&refused, Error::InvalidInput(m) if m.contains("not `lost`")), "{refused}");
    let back = StateReport { status: Some(FlowStatus::Waiting), ..Default::default() };
    alice.report(&flow.id, back, None).unwrap();
    let restart = StateReport { status: Some(FlowStatus::Running), ..Default::default() };
    assert!(matches!(alice.report(&flow.id, restart, None), Err(Error::CancelRequested { .. })));
    let stopped = StateReport { status: Some(FlowStatus::Cancelled), ..Default::default() };
    assert_eq!(alice.report(&flow.id, stopped, None).unwrap().status, FlowStatus::Cancelled);
}

pub fn child_flows_and_when_spawning_is_refused(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (parent, lease) = running(&alice, "parent");
    let (child, step) = alice.spawn_child(&lease, NewFlow::managed("child")).unwrap();
    assert_eq!(child.parent_flow_id, Some(parent.id.clone()));
    assert_eq!(child.owner, "alice");
    assert_eq!(
        (step.kind, step.status, step.child_flow_id),
        (StepKind::Child, StepStatus::Running, Some(child.id.clone()))
    );
    let children = alice.children(&parent.id).unwrap();
    assert_eq!(
        children.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&child.id)
    );

    // The child ends: the parent's child step ends the same way, in the same transaction.
    let child_lease = alice.acquire_lease(&child.id, TTL).unwrap();
    alice.set_status(&child_lease, FlowStatus::Running, None).unwrap();
    // Listed under its parent, the running child is stalled exactly when its own record says.
    let listed = alice.children(&parent.id).unwrap().remove(0);
    let own = alice.flow(&child.id).unwrap();
    let expired = child_lease.expires_at.plus(Duration::from_millis(1));
    assert_eq!(listed.stall(Timestamp::now()), None, "its runner holds it");
    assert_eq!(listed.stall(expired), own.stall(expired));
    assert_eq!(listed.stall(expired).map(|stall| stall.reason), Some(StallReason::LeaseExpired));
    alice.set_status(&child_lease, FlowStatus::Failed, Some("tool crashed".into())).unwrap();
    let steps = alice.steps(&parent.id).unwrap();
    assert_eq!(steps[0].status, StepStatus::Failed);

    let refusal = |result: Result<_, Error>| match result {
        Err(Error::SpawnRefused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    // A cancel request (the parent stays alive while its step runs).
    let (busy, busy_lease) = running(&alice, "busy");
    alice.begin_step(&busy_lease, NewStep::new("work", StepKind::Tool)).unwrap();
    alice.request_cancel(&busy.id, None).unwrap();
    assert_eq!(
        refusal(alice.spawn_child(&busy_lease, NewFlow::managed("late"))),
        SpawnRefusal::ParentCancelRequested
    );
    // Terminal.
    let (done, done_lease) = running(&alice, "done");
    alice.set_status(&done_lease, FlowStatus::Succeeded, None).unwrap();
    assert_eq!(
        refusal(alice.spawn_child(&done_lease, NewFlow::managed("late"))),
        SpawnRefusal::ParentTerminal(FlowStatus::Succeeded)
    );
    assert!(alice.children(&done.id).unwrap().is_empty());
    // Mirrored.
    let mirrored = alice.create(NewFlow::mirrored("outside", "cron")).unwrap();
    let fake = Lease { flow_id: mirrored.id, ..lease };
    assert_eq!(
        refusal(alice.spawn_child(&fake, NewFlow::managed("late"))),
        SpawnRefusal::ParentMirrored
    );
    let message = alice.spawn_child(&fake, NewFlow::managed("late")).unwrap_err().to_string();
    assert!(message.contains("the parent flow is mirrored"), "{message}");
    assert_eq!(alice.children(&busy.id).unwrap().len(), 0);
}

pub fn spawn_and_cancel_racing_never_leave_a_live_child_under_a_cancelled_request(
    harness: &dyn Harness,
) {
    for _ in 0..20 {
        let fx = harness.fresh();
        let (parent, lease) = running(&fx.alice(), "parent");
        // A step in flight keeps the parent alive (cancel-requested, not cancelled) after the cancel.
        fx.alice().begin_step(&lease, NewStep::new("in flight", StepKind::Tool)).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let spawner = {
            let (store, barrier, lease) = (fx.reopen(), Arc::clone(&barrier), lease.clone());
            std::thread::spawn(move || {
                let alice = store.bind("alice").unwrap();
                barrier.wait();
                alice.spawn_child(&lease, NewFlow::managed("child"))
            })
        };
        let canceller = {
            let (store, barrier, parent) = (fx.reopen(), Arc::clone(&barrier), parent.clone());
            std::thread::spawn(move || {
                let alice = store.bind("alice").unwrap();
                barrier.wait();
                alice.request_cancel(&parent.id, None)
            })
        };
        let spawned = spawner.join().unwrap();
        canceller.join().unwrap().unwrap();
        let alice = fx.alice();
        match spawned {
            Ok((child, _)) => {
                // The spawn came first: the cancel reached the child and settled the tree.
                let child = alice.flow(&child.id).unwrap();
                assert!(child.cancel_requested_at.is_some());
                assert_eq!(child.status, FlowStatus::Cancelled);
            }
            Err(Error::SpawnRefused { reason, .. }) => {
                assert_eq!(reason, SpawnRefusal::ParentCancelRequested);
                assert!(alice.children(&parent.id).unwrap().is_empty());
            }
            Err(other) => panic!("{other}"),
        }
        let parent = alice.flow(&parent.id).unwrap();
        assert_eq!(parent.status, FlowStatus::Running);
        assert!(parent.cancel_requested_at.is_some());
        let late = alice.spawn_child(&lease, NewFlow::managed("later"));
        assert!(matches!(late, Err(Error::SpawnRefused { .. })));
    }
}

pub fn sticky_cancel_waits_for_running_work_then_cancels(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();

    let queued = alice.create(NewFlow::managed("never started")).unwrap();
    let outcome = alice.request_cancel(&queued.id, Some(1)).unwrap();
    assert_eq!((outcome.flow.status, outcome.active_steps), (FlowStatus::Cancelled, 0));

    let (flow, lease) = running(&alice, "long");
    let step = alice.begin_step(&lease, NewStep::new("slow tool", StepKind::Tool)).unwrap();
    let (child, _) = alice.spawn_child(&lease, NewFlow::managed("sub")).unwrap();
    let child_lease = alice.acquire_lease(&child.id, TTL).unwrap();
    alice.set_status(&child_lease, FlowStatus::Running, None).unwrap();
    let child_step = alice.begin_step(&child_lease, NewStep::new("llm", StepKind::Llm)).unwrap();

    let outcome = alice.request_cancel(&flow.id, None).unwrap();
    assert!(!outcome.already_requested);
    assert_eq!((outcome.flow.status, outcome.active_steps), (FlowStatus::Running, 2));
    let requested_at = outcome.flow.cancel_requested_at.unwrap();
    assert!(alice.flow(&child.id).unwrap().cancel_requested_at.is_some(), "children are signalled");

    // Nothing new is scheduled.
    let late = alice.begin_step(&lease, NewStep::new("next", StepKind::Tool)).unwrap_err();
    assert!(matches!(late, Error::CancelRequested { .. }), "{late}");
    assert!(alice.begin_step(&child_lease, NewStep::new("next", StepKind::Tool)).is_err());
    // Asking again changes nothing.
    let again = alice.request_cancel(&flow.id, None).unwrap();
    assert!(again.already_requested);
    assert_eq!(again.flow.cancel_requested_at, Some(requested_at));
    assert_eq!(again.flow.revision, outcome.flow.revision);

    alice.finish_step(&lease, step.seq, StepOutcome::Cancelled).unwrap();
    assert_eq!(
        alice.flow(&flow.id).unwrap().status,
        FlowStatus::Running,
        "the child is still active"
    );
    alice
        .finish_step(&child_lease, child_step.seq, StepOutcome::Succeeded(json!("late answer")))
        .unwrap();
    assert_eq!(alice.flow(&child.id).unwrap().status, FlowStatus::Cancelled);
    let parent = alice.flow(&flow.id).unwrap();
    assert_eq!(parent.status, FlowStatus::Cancelled);
    assert!(parent.ended_at.is_some() && parent.lease.is_none());
    let cancel = alice.request_cancel(&flow.id, None).unwrap_err();
    assert!(matches!(cancel, Error::AlreadyEnded { status: FlowStatus::Cancelled, .. }));
}

/// The step a checkpoint answered with.
fn answered_step(answer: &Result<CheckpointDone, Error>) -> Step {
    match answer {
        Ok(CheckpointDone::Step(step)) => step.clone(),
        other => panic!("expected a step, got {other:?}"),
    }
}

fn to_status(lease: &Lease, to: FlowStatus, state: Option<serde_json::Value>) -> CheckpointOp {
    CheckpointOp::Status { lease: lease.clone(), to, error: None, state }
}

fn begin(lease: &Lease, name: &str) -> CheckpointOp {
    CheckpointOp::Begin {
        lease: lease.clone(),
        step: NewStep::new(name, StepKind::Action).with_input(json!({"n": name})),
    }
}

fn finish(lease: &Lease, seq: u32, outcome: StepOutcome) -> CheckpointOp {
    CheckpointOp::Finish { lease: lease.clone(), seq, outcome }
}

/// A new flow of `handle`'s, leased, then running with its first step begun, through one
/// checkpoint as a runner starts it.
fn checkpointed(handle: &OwnerHandle, name: &str) -> (FlowId, Lease) {
    let flow = handle.create(NewFlow::managed(name)).unwrap();
    let lease = handle.acquire_lease(&flow.id, TTL).unwrap();
    let status = to_status(&lease, FlowStatus::Running, None);
    let answers = handle.checkpoint(vec![status, begin(&lease, "first")]).unwrap();
    assert_eq!(answered_step(&answers[1]).seq, 1);
    (flow.id, lease)
}

/// A child flow of the flow of `parent`, spawned, leased and made running through a
/// checkpoint; the parent's step for it and the child's lease.
fn running_child(handle: &OwnerHandle, parent: &Lease, name: &str) -> (Step, Lease) {
    let (child, step) = handle.spawn_child(parent, NewFlow::managed(name)).unwrap();
    let lease = handle.acquire_lease(&child.id, TTL).unwrap();
    handle.checkpoint(vec![to_status(&lease, FlowStatus::Running, None)]).unwrap();
    (step, lease)
}

/// The refusal of a checkpoint of the one op `op`.
fn refusal(handle: &OwnerHandle, op: CheckpointOp) -> Error {
    handle.checkpoint(vec![op]).unwrap().remove(0).unwrap_err()
}

pub fn checkpoints_see_what_other_connections_changed_between_them(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let other = fx.alice_elsewhere();
    let (id, lease) = checkpointed(&runner, "watched");
    let answers = runner
        .checkpoint(vec![
            finish(&lease, 1, StepOutcome::Succeeded(json!([1.5, "x"]))),
            begin(&lease, "second"),
        ])
        .unwrap();
    // Answers are the rows as stored.
    let stored = runner.steps(&id).unwrap();
    assert_eq!(answered_step(&answers[0]), stored[0]);
    assert_eq!(answered_step(&answers[1]), stored[1]);

    // Another process renews the lease (it has the token) and asks for a cancel.
    let renewed = other.renew_lease(&lease, TTL * 2).unwrap();
    assert!(renewed.expires_at > lease.expires_at);
    other.request_cancel(&id, None).unwrap();

    let refused = refusal(&runner, begin(&lease, "third"));
    assert!(matches!(refused, Error::CancelRequested { .. }), "{refused}");
    let answers = runner.checkpoint(vec![finish(&lease, 2, StepOutcome::Cancelled)]).unwrap();
    assert_eq!(answered_step(&answers[0]).status, StepStatus::Cancelled);
    assert_eq!(other.flow(&id).unwrap().status, FlowStatus::Cancelled, "the last step settled it");
    assert_eq!(runner.steps(&id).unwrap().len(), 2);

    // A renewal elsewhere is not undone by the runner's next checkpoint.
    let (id, lease) = checkpointed(&runner, "renewed");
    let renewed = other.renew_lease(&lease, TTL * 2).unwrap();
    let answers = runner
        .checkpoint(vec![finish(&lease, 1, StepOutcome::Cancelled), begin(&lease, "second")])
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let stored = other.flow(&id).unwrap();
    assert_eq!(stored.lease.unwrap().expires_at, renewed.expires_at);
    assert_eq!(stored.current_step.as_deref(), Some("second"));
}

pub fn a_change_elsewhere_is_seen_even_after_checkpoints_of_other_flows(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let other = fx.alice_elsewhere();
    let (first, first_lease) = checkpointed(&runner, "first");
    let (_, second_lease) = checkpointed(&runner, "second");

    other.request_cancel(&first, None).unwrap();
    // A checkpoint of the second flow comes first and commits.
    let answers = runner
        .checkpoint(vec![
            finish(&second_lease, 1, StepOutcome::Succeeded(json!(1))),
            begin(&second_lease, "next"),
        ])
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");

    let refused = refusal(&runner, begin(&first_lease, "next"));
    assert!(matches!(refused, Error::CancelRequested { .. }), "{refused}");
}

pub fn single_op_writes_and_checkpoints_agree_on_a_flows_journal(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let (id, lease) = checkpointed(&runner, "mixed");
    let second = runner.begin_step(&lease, NewStep::new("second", StepKind::Action)).unwrap();
    assert_eq!(second.seq, 2);
    let answers = runner.checkpoint(vec![begin(&lease, "third")]).unwrap();
    assert_eq!(answered_step(&answers[0]).seq, 3);
    assert_eq!(runner.flow(&id).unwrap().current_step.as_deref(), Some("third"));
}

pub fn a_step_begun_through_another_store_is_seen_by_the_next_checkpoint(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let other = fx.alice_elsewhere();
    let (id, lease) = checkpointed(&runner, "shared lease");
    // Another process with the same lease begins a step: no revision, only a journal row.
    let elsewhere = other.begin_step(&lease, NewStep::new("elsewhere", StepKind::Action)).unwrap();
    assert_eq!(elsewhere.seq, 2);

    let answers = runner.checkpoint(vec![to_status(&lease, FlowStatus::Running, None)]).unwrap();
    let Ok(CheckpointDone::Flow(answered)) = &answers[0] else { panic!("{answers:?}") };
    assert_eq!(answered.current_step.as_deref(), Some("elsewhere"));
    let answers = runner.checkpoint(vec![begin(&lease, "third")]).unwrap();
    assert_eq!(answered_step(&answers[0]).seq, 3);
    assert_eq!(runner.flow(&id).unwrap().current_step.as_deref(), Some("third"));
}

pub fn a_step_ended_or_retried_through_another_store_is_seen_by_the_next_checkpoint(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let other = fx.alice_elsewhere();

    // Another process with the same lease ends the running step: a journal row only.
    let (id, lease) = checkpointed(&runner, "ended elsewhere");
    let ended = other.checkpoint(vec![finish(&lease, 1, StepOutcome::Succeeded(json!("there")))]);
    assert!(ended.unwrap()[0].is_ok());
    let refused = refusal(&runner, finish(&lease, 1, StepOutcome::Succeeded(json!("here"))));
    assert!(refused.to_string().contains("step 1"), "{refused}");
    assert_eq!(runner.steps(&id).unwrap()[0].output, Some(json!("there")));

    // Another process with the same lease starts the running step's next attempt.
    let (id, lease) = checkpointed(&runner, "retried elsewhere");
    let retry = CheckpointOp::NextAttempt { lease: lease.clone(), seq: 1, reason: "lost".into() };
    assert_eq!(answered_step(&other.checkpoint(vec![retry]).unwrap()[0]).attempt, 2);
    let answers =
        runner.checkpoint(vec![finish(&lease, 1, StepOutcome::Succeeded(json!(1)))]).unwrap();
    assert_eq!(answered_step(&answers[0]).attempt, 2);
    assert_eq!(answered_step(&answers[0]), runner.steps(&id).unwrap()[0]);
}

pub fn a_flow_ends_only_once_no_step_runs_whatever_its_run_read_at_its_start(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let other = fx.alice_elsewhere();
    let still_running = |answers: Vec<Result<CheckpointDone, Error>>, count: usize| {
        let refused = answers.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(refused.contains(&format!("{count} running step")), "{refused}");
    };

    // A step that was running when the run started, begun through another store.
    let (id, lease) = checkpointed(&other, "resumed");
    assert_eq!(runner.run_start(&id).unwrap().steps.len(), 1);
    let done = to_status(&lease, FlowStatus::Succeeded, None);
    still_running(runner.checkpoint(vec![done]).unwrap(), 1);

    // A step begun through another store with the same lease after the run started.
    let flow = runner.create(NewFlow::managed("begun elsewhere")).unwrap();
    let lease = runner.acquire_lease(&flow.id, TTL).unwrap();
    assert!(runner.run_start(&flow.id).unwrap().steps.is_empty());
    let first = vec![to_status(&lease, FlowStatus::Running, None), begin(&lease, "here")];
    assert!(runner.checkpoint(first).unwrap().iter().all(Result::is_ok));
    assert!(other.checkpoint(vec![begin(&lease, "there")]).unwrap()[0].is_ok());
    let ops = vec![
        finish(&lease, 1, StepOutcome::Succeeded(json!(1))),
        to_status(&lease, FlowStatus::Succeeded, None),
    ];
    let answers = runner.checkpoint(ops).unwrap();
    assert!(answers[0].is_ok(), "{answers:?}");
    still_running(answers, 1);
    assert_eq!(runner.flow(&flow.id).unwrap().status, FlowStatus::Running);
}

pub fn the_flow_a_checkpoint_answers_is_the_flow_as_stored(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let (id, lease) = checkpointed(&runner, "answered");
    runner.run_start(&id).unwrap();
    let next = vec![finish(&lease, 1, StepOutcome::Succeeded(json!(1))), begin(&lease, "last")];
    assert!(runner.checkpoint(next).unwrap().iter().all(Result::is_ok));
    let state = Some(json!({"result": [1, 2.5, "three"]}));
    let ops = vec![
        finish(&lease, 2, StepOutcome::Succeeded(json!(2))),
        to_status(&lease, FlowStatus::Succeeded, state),
    ];
    let answers = runner.checkpoint(ops).unwrap();
    let Ok(CheckpointDone::Flow(answered)) = &answers[1] else { panic!("{answers:?}") };
    assert_eq!(*answered, runner.flow_without_spec(&id).unwrap());
    assert_eq!((answered.status, answered.lease.as_ref()), (FlowStatus::Succeeded, None));
}

pub fn a_state_sent_again_unchanged_is_no_change_whatever_its_numbers(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let other = fx.alice_elsewhere();
    let (id, lease) = checkpointed(&runner, "fractions");
    let state = json!({"progress": 1.0_f64 / 11.0, "rate": 0.1 + 0.2, "tiny": 5e-324});
    let op = || CheckpointOp::Status {
        lease: lease.clone(),
        to: FlowStatus::Running,
        error: None,
        state: Some(state.clone()),
    };
    runner.checkpoint(vec![op()]).unwrap().remove(0).unwrap();
    let changed = runner.flow(&id).unwrap();
    assert_eq!(changed.state, Some(state.clone()), "the numbers come back as written");
    // Again through the same store (which may remember the flow), then through another.
    runner.checkpoint(vec![op()]).unwrap().remove(0).unwrap();
    other.checkpoint(vec![op()]).unwrap().remove(0).unwrap();
    assert_eq!(runner.flow(&id).unwrap().revision, changed.revision);
}

pub fn a_change_through_the_same_store_is_seen_by_the_next_checkpoint(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let (id, lease) = checkpointed(&runner, "same store");
    runner.request_cancel(&id, None).unwrap();
    let refused = refusal(&runner, begin(&lease, "next"));
    assert!(matches!(refused, Error::CancelRequested { .. }), "{refused}");
}

pub fn a_child_ending_in_its_own_checkpoint_is_seen_by_the_parents_next_one(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let (parent, parent_lease) = checkpointed(&runner, "parent");
    let (child_step, child_lease) = running_child(&runner, &parent_lease, "child");
    runner.checkpoint(vec![begin(&child_lease, "work")]).unwrap();
    // The parent checkpoints again after all of that, then the child ends (which ends the
    // parent's child step and bumps the parent's revision, in the child's checkpoint).
    runner.checkpoint(vec![begin(&parent_lease, "sibling")]).unwrap();
    let done = to_status(&child_lease, FlowStatus::Succeeded, Some(json!("child result")));
    let answers = runner
        .checkpoint(vec![finish(&child_lease, 1, StepOutcome::Succeeded(json!(1))), done])
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let steps = runner.steps(&parent).unwrap();
    assert_eq!(steps[child_step.seq as usize - 1].status, StepStatus::Succeeded);

    let sibling = steps.last().unwrap().seq;
    let answers = runner
        .checkpoint(vec![finish(&parent_lease, sibling, StepOutcome::Succeeded(json!(2)))])
        .unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    // One batch holding both flows' ops, the child's first: the parent's group sees the child's
    // end too.
    let (parent, parent_lease) = checkpointed(&runner, "second parent");
    let (_, child_lease) = running_child(&runner, &parent_lease, "second child");
    runner.checkpoint(vec![begin(&parent_lease, "sibling")]).unwrap();
    let done = to_status(&child_lease, FlowStatus::Succeeded, None);
    let answers = runner.checkpoint(vec![done, begin(&parent_lease, "after")]).unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(runner.flow(&parent).unwrap().current_step.as_deref(), Some("after"));
}

pub fn a_null_state_is_no_change_from_no_state(harness: &dyn Harness) {
    let fx = harness.fresh();
    let runner = fx.alice();
    let (id, lease) = checkpointed(&runner, "stateless");
    let before = revisions(&runner, &id);
    let status = to_status(&lease, FlowStatus::Running, Some(json!(null)));
    assert!(runner.checkpoint(vec![status]).unwrap()[0].is_ok());
    assert_eq!(revisions(&runner, &id), before);
}

/// A runner on this host whose process no longer exists (no pid goes above 2^22 on Linux).
fn dead_runner() -> LeaseHolder {
    LeaseHolder { pid: 4_194_304 + 99, ..LeaseHolder::current() }
}

pub fn a_cancel_request_survives_a_restart(harness: &dyn Harness) {
    let fx = harness.fresh();
    let (id, step_seq) = {
        let taskflow = fx.reopen();
        let alice = taskflow.bind("alice").unwrap();
        let flow = alice.create(NewFlow::managed("crashy")).unwrap();
        let lease = alice.acquire_lease_as(&flow.id, dead_runner(), TTL).unwrap();
        alice.set_status(&lease, FlowStatus::Running, None).unwrap();
        let step = alice.begin_step(&lease, NewStep::new("tool", StepKind::Tool)).unwrap();
        alice.request_cancel(&flow.id, None).unwrap();
        (flow.id, step.seq)
        // Dropped here with the step in flight and the lease held, as by a kill -9.
    };
    let taskflow = fx.reopen();
    let alice = taskflow.bind("alice").unwrap();
    let flow = alice.flow(&id).unwrap();
    assert!(flow.cancel_requested_at.is_some());
    assert_eq!(flow.status, FlowStatus::Running);
    assert_eq!(alice.check_resume(&id).unwrap(), ResumePlan::FinishCancel);
    // The dead runner's lease is taken over at once; the new runner may not schedule work, and
    // settling the step in flight finishes the cancel.
    let lease = alice.acquire_lease(&id, TTL).unwrap();
    assert_eq!(lease.took_over, Some(Takeover::HolderGone));
    let refused = alice.begin_step(&lease, NewStep::new("more", StepKind::Tool)).unwrap_err();
    assert!(matches!(refused, Error::CancelRequested { .. }), "{refused}");
    alice.finish_step(&lease, step_seq, StepOutcome::Cancelled).unwrap();
    assert_eq!(alice.flow(&id).unwrap().status, FlowStatus::Cancelled);
}

pub fn leases_asked_together_are_granted_or_refused_each_on_its_own(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let free = alice.create(NewFlow::managed("free")).unwrap();
    let held = alice.create(NewFlow::managed("held")).unwrap();
    let ended = alice.create(NewFlow::managed("ended")).unwrap();
    alice.request_cancel(&ended.id, None).unwrap();
    alice.acquire_lease(&held.id, TTL).unwrap();
    let missing: FlowId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let before = revisions(&alice, &held.id);

    let answers = alice
        .acquire_leases(&[
            (free.id.clone(), TTL),
            (held.id.clone(), TTL),
            (ended.id.clone(), TTL),
            (missing, TTL),
        ])
        .unwrap();
    assert_eq!(answers[0].as_ref().unwrap().flow_id, free.id);
    assert!(matches!(answers[1], Err(Error::LeaseHeld { .. })), "{:?}", answers[1]);
    assert!(matches!(answers[2], Err(Error::AlreadyEnded { .. })), "{:?}", answers[2]);
    assert!(matches!(answers[3], Err(Error::NotFound { .. })), "{:?}", answers[3]);
    assert_eq!(revisions(&alice, &free.id), [1, 2], "the granted lease is one revision");
    assert_eq!(revisions(&alice, &held.id), before, "a refusal writes nothing");
    assert!(alice.flow(&free.id).unwrap().lease.is_some());
}

pub fn leases_refuse_a_second_runner_expire_and_fence_the_old_one(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::managed("leased")).unwrap();
    // Long enough for a renewal and a write on a server busy with other tests' commits.
    let short = Duration::from_millis(600);
    let first = alice.acquire_lease(&flow.id, short).unwrap();
    assert_eq!(first.took_over, None);
    assert_eq!(first.holder, LeaseHolder::current());

    // A second runner, even in this live process, is refused while the lease is live.
    match alice.acquire_lease(&flow.id, TTL) {
        Err(Error::LeaseHeld { holder, .. }) => {
            assert_eq!(holder, LeaseHolder::current().to_string())
        }
        other => panic!("expected LeaseHeld, got {other:?}"),
    }
    assert!(matches!(alice.check_resume(&flow.id), Err(Error::LeaseHeld { .. })));
    let renewed = alice.renew_lease(&first, short).unwrap();
    assert!(renewed.expires_at >= first.expires_at);
    alice.set_status(&first, FlowStatus::Running, None).unwrap();
    assert!(!alice.flow(&flow.id).unwrap().is_stalled(Timestamp::now()));

    std::thread::sleep(short + Duration::from_millis(50));
    // Expired while running: stalled, resumable, and taken over.
    let now = Timestamp::now();
    assert!(alice.flow(&flow.id).unwrap().is_stalled(now));
    assert!(alice.list(&ListQuery::default()).unwrap()[0].is_stalled(now));
    assert_eq!(alice.check_resume(&flow.id).unwrap(), ResumePlan::Run { stalled: true });
    let second = alice.acquire_lease(&flow.id, TTL).unwrap();
    assert_eq!(second.took_over, Some(Takeover::Expired));

    // The old runner is fenced off: none of its writes land.
    let fenced = [
        alice.renew_lease(&first, TTL).map(drop),
        alice.set_status(&first, FlowStatus::Succeeded, None).map(drop),
        alice.begin_step(&first, NewStep::new("x", StepKind::Tool)).map(drop),
        alice.release_lease(&first).map(drop),
    ];
    for result in fenced {
        assert!(matches!(result, Err(Error::LeaseLost { .. })), "{result:?}");
    }
    let history = alice.history(&flow.id).unwrap();
    let last = history.last().unwrap();
    assert!(last.change.iter().any(|c| c.field == "lease_takeover"), "{last:?}");

    let released = alice.release_lease(&second).unwrap();
    assert!(released.lease.is_none());
    let third = alice.acquire_lease(&flow.id, TTL).unwrap();
    assert_eq!(third.took_over, None);
    assert!(alice.acquire_lease(&flow.id, Duration::from_millis(1)).is_err(), "too short a ttl");
}

pub fn a_lease_held_by_a_dead_process_on_this_host_is_taken_over_at_once(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::managed("orphan")).unwrap();
    let dead = alice.acquire_lease_as(&flow.id, dead_runner(), Duration::from_secs(3600)).unwrap();
    assert_eq!(dead.replaced, None, "a lease granted replaces none");
    let taken = alice.acquire_lease(&flow.id, TTL).unwrap();
    assert_eq!(taken.took_over, Some(Takeover::HolderGone));
    // The new runner learns the dead run's token, which that run's processes carry.
    assert_eq!(taken.replaced, Some(dead.token));

    // A live holder on another host is only given up on at expiry.
    let other = alice.create(NewFlow::managed("remote")).unwrap();
    let remote = LeaseHolder { host: "elsewhere.invalid".into(), ..dead_runner() };
    alice.acquire_lease_as(&other.id, remote, Duration::from_secs(3600)).unwrap();
    assert!(matches!(alice.acquire_lease(&other.id, TTL), Err(Error::LeaseHeld { .. })));
}

pub fn a_flow_cannot_end_with_steps_running_and_steps_run_only_while_it_runs(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::managed("strict")).unwrap();
    let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
    let early = alice.begin_step(&lease, NewStep::new("early", StepKind::Tool)).unwrap_err();
    assert!(early.to_string().contains("is queued"), "{early}");
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let step = alice.begin_step(&lease, NewStep::new("a", StepKind::Action)).unwrap();
    let refused = alice.set_status(&lease, FlowStatus::Succeeded, None).unwrap_err();
    assert!(refused.to_string().contains("1 running step"), "{refused}");
    alice.finish_step(&lease, step.seq, StepOutcome::Failed("boom".into())).unwrap();
    let twice = alice.finish_step(&lease, step.seq, StepOutcome::Cancelled).unwrap_err();
    assert!(matches!(twice, Error::StepEnded { .. }), "{twice}");
    assert!(matches!(
        alice.finish_step(&lease, 9, StepOutcome::Cancelled),
        Err(Error::StepNotFound { .. })
    ));
    let illegal = alice.set_status(&lease, FlowStatus::Queued, None).unwrap_err();
    assert_eq!(illegal.to_string(), "illegal transition from running to queued");
    let failed =
        alice.set_status(&lease, FlowStatus::Failed, Some("step a failed".into())).unwrap();
    assert_eq!(failed.error.as_deref(), Some("step a failed"));
    let steps = alice.steps(&flow.id).unwrap();
    assert_eq!((steps[0].status, steps[0].error.as_deref()), (StepStatus::Failed, Some("boom")));
}

pub fn a_chosen_id_is_kept_as_given_and_one_taken_is_refused(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let key = FlowId::parse("nightly@2026-12-03").unwrap();
    let flow = alice.create(NewFlow::managed("nightly").with_id(key.clone())).unwrap();
    assert_eq!(flow.id.as_str(), "nightly@2026-12-03");
    assert_eq!(alice.flow(&key).unwrap().id, key);
    let upper = FlowId::parse("NIGHTLY@2026-12-03").unwrap();
    assert!(matches!(alice.flow(&upper), Err(Error::NotFound { .. })), "ids are case-sensitive");
    alice.create(NewFlow::managed("other case").with_id(upper)).unwrap();
    for handle in [&alice, &bob] {
        let taken = handle.create(NewFlow::managed("again").with_id(key.clone())).unwrap_err();
        assert!(matches!(taken, Error::IdTaken { .. }), "{taken}");
    }
    assert_eq!(revisions(&alice, &key), [1], "a refused create changes nothing");
    // A slot's id is the scheduler's: made by anyone else, it would keep the slot from firing.
    let slot = FlowId::parse("nightly@2026-12-03T07:00:00Z").unwrap();
    let reserved = alice.create(NewFlow::managed("by hand").with_id(slot.clone())).unwrap_err();
    assert!(matches!(reserved, Error::InvalidInput(_)), "{reserved}");
    assert!(matches!(alice.flow(&slot), Err(Error::NotFound { .. })));
    for dots in [".", ".."] {
        let id = FlowId::parse(dots).unwrap();
        let refused = alice.create(NewFlow::managed("dots").with_id(id)).unwrap_err();
        assert!(matches!(&refused, Error::InvalidInput(m) if m.contains("no URL")), "{refused}");
    }
    assert!(FlowId::parse("...").is_ok() && FlowId::parse(".hidden").is_ok());
    let longest = FlowId::parse(&"k".repeat(128)).unwrap();
    let child_parent = alice.create(NewFlow::managed("long").with_id(longest)).unwrap();
    let lease = alice.acquire_lease(&child_parent.id, TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let step = alice.begin_step(&lease, NewStep::new("s", StepKind::Action)).unwrap();
    assert_eq!(step.idempotency_key, format!("{}:1", "k".repeat(128)));
    let child = NewFlow::managed("child").with_id(slot);
    let reserved = alice.spawn_child(&lease, child).unwrap_err();
    assert!(matches!(reserved, Error::InvalidInput(_)), "a child neither: {reserved}");
}

pub fn every_accepted_change_is_one_event_of_its_owner_in_commit_order(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let (flow, lease) = running(&alice, "watched");
    let step = alice.begin_step(&lease, NewStep::new("fetch", StepKind::Action)).unwrap();
    alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(1))).unwrap();
    let refused = alice.set_status(&lease, FlowStatus::Queued, None);
    assert!(refused.is_err(), "a refused change is no event");
    let mirrored = bob.create(NewFlow::mirrored("elsewhere", "ci")).unwrap();

    let all = alice.events(&EventQuery::default()).unwrap();
    let seen: Vec<(String, String)> = all
        .iter()
        .map(|event| match &event.change {
            Change::Flow { revision, status, .. } => {
                (format!("flow r{revision}"), status.to_string())
            }
            Change::Step { seq, status, .. } => (format!("step {seq}"), status.to_string()),
        })
        .collect();
    let expected = [
        ("flow r1", "queued"),
        ("flow r2", "queued"),
        ("flow r3", "running"),
        ("step 1", "running"),
        ("step 1", "succeeded"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
    assert_eq!(seen, expected);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id), "ids increase");
    assert!(all.iter().all(|event| event.flow_id == flow.id && event.owner == "alice"));
    let Change::Flow { fields, .. } = &all[1].change else { panic!() };
    assert_eq!(fields, &["lease"], "the revision's fields");

    // Another owner's events are not seen; a reader asks for what came after what it saw.
    let bobs = bob.events(&EventQuery::default()).unwrap();
    assert_eq!(bobs.iter().map(|event| &event.flow_id).collect::<Vec<_>>(), [&mirrored.id]);
    let after = EventQuery { after: all[2].id, ..EventQuery::default() };
    assert_eq!(alice.events(&after).unwrap(), all[3..]);
    let limited = EventQuery { limit: 2, ..EventQuery::default() };
    assert_eq!(alice.events(&limited).unwrap(), all[..2]);
    let other = alice.create(NewFlow::managed("other")).unwrap();
    let one_flow = EventQuery { flow: Some(other.id.clone()), ..EventQuery::default() };
    let others = alice.events(&one_flow).unwrap();
    assert_eq!((others.len(), &others[0].flow_id), (1, &other.id));

    // Pruning everything keeps the newest event, so ids go on increasing.
    let newest = others[0].id;
    let later = Timestamp::from_millis(Timestamp::now().as_millis() + 60_000);
    fx.taskflow.prune_events(later).unwrap();
    let left = alice.events(&EventQuery::default()).unwrap();
    assert_eq!(left.iter().map(|event| event.id).collect::<Vec<_>>(), [newest]);
    let third = alice.create(NewFlow::managed("third")).unwrap();
    let fresh = alice.events(&EventQuery { after: newest, ..EventQuery::default() }).unwrap();
    assert_eq!((fresh.len(), &fresh[0].flow_id), (1, &third.id));
    assert!(fresh[0].id > newest);
}

pub fn flows_no_live_runner_holds_are_adoptable_for_every_owner(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let queued = alice.create(NewFlow::managed("queued")).unwrap();
    let theirs = bob.create(NewFlow::managed("bob's")).unwrap();
    let (live, _) = running(&alice, "live");
    let dead = alice.create(NewFlow::managed("dead")).unwrap();
    let lease = alice.acquire_lease_as(&dead.id, dead_runner(), TTL).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let expiring = alice.create(NewFlow::managed("expiring")).unwrap();
    alice.acquire_lease(&expiring.id, Duration::from_millis(100)).unwrap();
    let (ended, _) = running(&alice, "ended");
    alice.request_cancel(&ended.id, None).unwrap();
    alice.create(NewFlow::mirrored("mirrored", "ci")).unwrap();
    std::thread::sleep(Duration::from_millis(150));

    let adoptable = fx.taskflow.adoptable(100).unwrap();
    let found: Vec<(&FlowId, &str, FlowStatus)> =
        adoptable.iter().map(|a| (&a.id, a.owner.as_str(), a.status)).collect();
    assert_eq!(
        found,
        [
            (&queued.id, "alice", FlowStatus::Queued),
            (&theirs.id, "bob", FlowStatus::Queued),
            (&dead.id, "alice", FlowStatus::Running),
            (&expiring.id, "alice", FlowStatus::Queued),
        ],
        "oldest first; a live lease ({}), an ended and a mirrored flow are not adoptable",
        live.id
    );
    assert_eq!(fx.taskflow.adoptable(1).unwrap().len(), 1);
}

pub fn a_mirrored_flows_owner_reports_its_steps_by_name(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let flow = alice.create(NewFlow::mirrored("deploy", "ci")).unwrap();
    let step = |name: &str, status: StepStatus| StepReport {
        name: name.to_owned(),
        status,
        output: (status == StepStatus::Succeeded).then(|| json!({"built": name})),
        error: (status == StepStatus::Failed).then(|| format!("{name} broke")),
    };
    let report = |steps: Vec<StepReport>, status: Option<FlowStatus>| StateReport {
        status,
        steps,
        ..StateReport::default()
    };
    let journal = |alice: &OwnerHandle| -> Vec<(u32, String, StepStatus, u32)> {
        let steps = alice.steps(&flow.id).unwrap();
        steps.into_iter().map(|s| (s.seq, s.name, s.status, s.attempt)).collect()
    };
    use StepStatus::{Failed, Running, Succeeded};
    let r2 = alice
        .report(&flow.id, report(vec![step("build", Running)], Some(FlowStatus::Running)), None)
        .unwrap();
    assert_eq!(r2.current_step.as_deref(), Some("build"), "the last step reported");
    let steps = vec![step("build", Succeeded), step("test", Running)];
    let r3 = alice.report(&flow.id, report(steps.clone(), None), Some(2)).unwrap();
    assert_eq!(r3.revision, 3);
    // The same report again changes nothing: no revision, no new row.
    let again = alice.report(&flow.id, report(steps, None), None).unwrap();
    assert_eq!(again.revision, 3);
    // So is a step's end without its output; another output is not the same end: refused.
    let both = |build: StepReport| vec![build, step("test", Running)];
    let bare = StepReport { output: None, ..step("build", Succeeded) };
    assert_eq!(alice.report(&flow.id, report(both(bare), None), None).unwrap().revision, 3);
    let other = StepReport { output: Some(json!({"built": "again"})), ..step("build", Succeeded) };
    let refused = alice.report(&flow.id, report(both(other), None), None).unwrap_err();
    assert!(
        matches!(&refused, Error::EndedOtherwise { name, what: "output", .. } if name == "build"),
        "{refused}"
    );
    assert!(refused.to_string().contains("`running`"), "{refused}");
    // What a step's status cannot keep is refused, not dropped; so is a current step that
    // could not be a step's name.
    let strays = [
        StepReport { error: Some("boom".into()), ..step("lint", Succeeded) },
        StepReport { output: Some(json!(1)), error: None, ..step("lint", Failed) },
        StepReport { output: Some(json!(1)), ..step("lint", Running) },
    ];
    for stray in strays {
        let refused = alice.report(&flow.id, report(vec![stray], None), None).unwrap_err();
        assert!(
            matches!(&refused, Error::InvalidInput(m) if m.contains("cannot keep")),
            "{refused}"
        );
    }
    for current in ["", "a\u{0}", &"x".repeat(201)] {
        let named = StateReport { current_step: Some(current.into()), ..Default::default() };
        let refused = alice.report(&flow.id, named, None).unwrap_err();
        assert!(
            matches!(&refused, Error::InvalidInput(m) if m.contains("current step")),
            "{refused}"
        );
    }
    // Nor is another status: the step ended once.
    for status in [Failed, StepStatus::Cancelled] {
        let error = (status == Failed).then(|| "boom".to_owned());
        let other = StepReport { error, output: None, ..step("build", status) };
        let refused = alice.report(&flow.id, report(both(other), None), None).unwrap_err();
        assert!(
            matches!(&refused, Error::EndedOtherwise { what: "status", .. }),
            "{status}: {refused}"
        );
    }
    assert_eq!(alice.flow(&flow.id).unwrap().revision, 3);
    assert_eq!(alice.steps(&flow.id).unwrap()[0].output, Some(json!({"built": "build"})));
    alice.report(&flow.id, report(vec![step("test", Failed)], None), None).unwrap();
    alice.report(&flow.id, report(vec![step("test", Running)], None), None).unwrap();
    assert_eq!(
        journal(&alice),
        [
            (1, "build".to_owned(), Succeeded, 1),
            (2, "test".to_owned(), Failed, 1),
            (3, "test".to_owned(), Running, 2),
        ]
    );
    let rows = alice.steps(&flow.id).unwrap();
    assert_eq!(rows[0].output, Some(json!({"built": "build"})));
    assert_eq!(rows[1].error.as_deref(), Some("test broke"));
    assert_eq!(rows[2].idempotency_key, rows[1].idempotency_key, "the next attempt's key");

    // A flow does not end with a step still running; ending both in one report works.
    let early = alice.report(&flow.id, report(vec![], Some(FlowStatus::Succeeded)), None);
    assert!(matches!(early, Err(Error::InvalidInput(ref m)) if m.contains("1 running step")));
    let done = vec![step("test", Succeeded), step("publish", Succeeded)];
    let ended = alice.report(&flow.id, report(done, Some(FlowStatus::Succeeded)), None).unwrap();
    assert_eq!((ended.status, journal(&alice).len()), (FlowStatus::Succeeded, 4));
    let history = alice.history(&flow.id).unwrap();
    let last = &history.last().unwrap().change;
    let fields: Vec<&str> = last.iter().map(|change| change.field.as_str()).collect();
    assert!(
        fields.contains(&"step 3 (test)") && fields.contains(&"step 4 (publish)"),
        "{fields:?}"
    );
    // Each begin and each end is an event; a step reported already ended (publish) is one.
    let events = alice.events(&EventQuery::default()).unwrap();
    let step_events: Vec<(u32, StepStatus)> = events
        .iter()
        .filter_map(|e| match e.change {
            Change::Step { seq, status, .. } => Some((seq, status)),
            Change::Flow { .. } => None,
        })
        .collect();
    assert_eq!(
        step_events,
        [
            (1, Running),
            (1, Succeeded),
            (2, Running),
            (2, Failed),
            (3, Running),
            (3, Succeeded),
            (4, Succeeded)
        ]
    );

    // A step begun and ended by one report is one field of its revision's event.
    let twice = alice.create(NewFlow::mirrored("twice", "ci")).unwrap();
    alice
        .report(&twice.id, report(vec![step("c", Running), step("c", Succeeded)], None), None)
        .unwrap();
    let query = EventQuery { flow: Some(twice.id.clone()), ..EventQuery::default() };
    let events = alice.events(&query).unwrap();
    let Some(Change::Flow { fields, .. }) = events.last().map(|event| &event.change) else {
        panic!("the report's revision is the last event: {events:?}")
    };
    let once: std::collections::BTreeSet<&String> = fields.iter().collect();
    assert!(fields.contains(&"step 1 (c)".to_owned()) && once.len() == fields.len(), "{fields:?}");

    // A managed flow takes no reports; a bad step name is refused.
    let bad = vec![StepReport { name: " ".into(), status: Running, output: None, error: None }];
    let other = alice.create(NewFlow::mirrored("other", "ci")).unwrap();
    assert!(alice.report(&other.id, report(bad, None), None).is_err());
    assert_eq!(alice.steps(&other.id).unwrap().len(), 0);
}

/// Free text a flow or a step keeps (a goal, an error) is the same on every backend: a NUL
/// character, which PostgreSQL's text cannot hold, is U+FFFD in the answer to the write, in the
/// record read back and in its history; so a mirrored step's failure reported again with the
/// same error is no change.
pub fn a_nul_in_a_goal_or_an_error_is_u_fffd_in_the_record_its_history_and_the_answer(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let mut new = NewFlow::mirrored("deploy", "alice");
    new.goal = Some("sh\0ip".to_owned());
    let mirrored = alice.create(new).unwrap();
    let charge = StepReport {
        name: "charge".to_owned(),
        status: StepStatus::Failed,
        output: None,
        error: Some("exit 3: card\0declined".to_owned()),
    };
    let steps = StateReport { steps: vec![charge], ..StateReport::default() };
    let reported = alice.report(&mirrored.id, steps.clone(), None).unwrap();
    let again = alice.report(&mirrored.id, steps, None).unwrap();
    assert_eq!(again.revision, reported.revision, "the same end again is no change");
    let failed = StateReport {
        status: Some(FlowStatus::Failed),
        error: Some("card\0declined".to_owned()),
        ..StateReport::default()
    };
    let ended = alice.report(&mirrored.id, failed, None).unwrap();

    let (managed, lease) = running(&alice, "build");
    let step = alice.begin_step(&lease, NewStep::new("compile", StepKind::Action)).unwrap();
    let step = alice.finish_step(&lease, step.seq, StepOutcome::Failed("cc\0oops".into())).unwrap();
    let failed = alice.set_status(&lease, FlowStatus::Failed, Some("exit\u{0}1".into())).unwrap();

    let answers = [
        (mirrored.goal.clone(), Some("sh\u{FFFD}ip")),
        (ended.error.clone(), Some("card\u{FFFD}declined")),
        (step.error.clone(), Some("cc\u{FFFD}oops")),
        (failed.error.clone(), Some("exit\u{FFFD}1")),
    ];
    for (answer, text) in answers {
        assert_eq!(answer.as_deref(), text);
    }
    let read = fx.alice_elsewhere();
    let stored = read.flow(&mirrored.id).unwrap();
    assert_eq!((stored.goal, stored.error), (mirrored.goal, ended.error));
    let steps = read.steps(&mirrored.id).unwrap();
    assert_eq!(steps[0].error.as_deref(), Some("exit 3: card\u{FFFD}declined"));
    assert_eq!(read.flow(&managed.id).unwrap().error, failed.error);
    assert_eq!(read.steps(&managed.id).unwrap()[0], step);
    let told = |id: &FlowId, field: &str| -> Vec<serde_json::Value> {
        let history = read.history(id).unwrap();
        let changes = history.into_iter().flat_map(|revision| revision.change);
        changes.filter(|change| change.field == field).map(|change| change.after).collect()
    };
    assert_eq!(told(&mirrored.id, "goal"), [json!("sh\u{FFFD}ip")]);
    assert_eq!(told(&mirrored.id, "error"), [json!("card\u{FFFD}declined")]);
    assert_eq!(told(&managed.id, "error"), [json!("exit\u{FFFD}1")]);
}

/// A mirrored step that ended runs again when its owner reports it `running`: after it failed
/// or was cancelled as its next attempt, under the same idempotency key; after it succeeded as
/// a new step of that name, attempt 1 with a key of its own (a succeeded step is not tried
/// again). The refusal of another end says which of the two a `running` report begins.
pub fn a_mirrored_step_run_again_is_its_next_attempt_only_if_it_did_not_succeed(
    harness: &dyn Harness,
) {
    use StepStatus::{Cancelled, Failed, Running, Succeeded};
    let fx = harness.fresh();
    let alice = fx.alice();
    let step = |status: StepStatus, output: Option<serde_json::Value>, error: Option<&str>| {
        StepReport { name: "deploy".into(), status, output, error: error.map(str::to_owned) }
    };
    let steps = |steps: Vec<StepReport>| StateReport { steps, ..StateReport::default() };
    // (how it ended, another end of it, what that end gives otherwise, what the refusal says a
    // `running` report begins, the next run's attempt, whether it keeps the key)
    let cases = [
        (
            step(Succeeded, Some(json!(1)), None),
            step(Succeeded, Some(json!(2)), None),
            "output",
            "run it again, as a new step of that name",
            1,
            false,
        ),
        (
            step(Failed, None, Some("down")),
            step(Failed, None, Some("still down")),
            "error",
            "begin its next attempt",
            2,
            true,
        ),
        (
            step(Cancelled, None, None),
            step(Succeeded, None, None),
            "status",
            "next attempt",
            2,
            true,
        ),
    ];
    for (ended, other, what, says, attempt, same_key) in cases {
        let status = ended.status;
        let flow = alice.create(NewFlow::mirrored("release", "ci")).unwrap();
        let running = StateReport { status: Some(FlowStatus::Running), ..steps(vec![]) };
        alice.report(&flow.id, running, None).unwrap();
        alice.report(&flow.id, steps(vec![step(Running, None, None)]), None).unwrap();
        alice.report(&flow.id, steps(vec![ended]), None).unwrap();
        let refused = alice.report(&flow.id, steps(vec![other]), None).unwrap_err();
        assert!(
            matches!(&refused, Error::EndedOtherwise { what: w, status: s, .. }
                if *w == what && *s == status),
            "{status}: {refused}"
        );
        assert!(refused.to_string().contains(says), "{status}: {refused}");
        alice.report(&flow.id, steps(vec![step(Running, None, None)]), None).unwrap();
        let journal = alice.steps(&flow.id).unwrap();
        let [first, again] = &journal[..] else { panic!("{status}: {journal:?}") };
        assert_eq!((again.status, again.attempt), (Running, attempt), "{status}");
        assert_eq!(again.idempotency_key == first.idempotency_key, same_key, "{status}");
        assert_eq!(again.idempotency_key, format!("{}:{}", flow.id, if same_key { 1 } else { 2 }));
    }
}

/// An ended flow waits for nothing: a mirrored flow's end clears its `wait`, whether it was
/// waiting or reported its wait while running, and a report that ends it and gives it a wait is
/// refused naming both, as anything else a report gives that its flow cannot keep, with nothing
/// written. A flow that has not ended keeps the wait its owner reports.
pub fn a_mirrored_flow_that_ends_waits_for_nothing(harness: &dyn Harness) {
    use FlowStatus::{Cancelled, Failed, Running, Succeeded, Waiting};
    let fx = harness.fresh();
    let alice = fx.alice();
    let before = json!({"for": "a person"});
    let asked = json!({"for": "approval"});
    let null = serde_json::Value::Null;
    // (the flow's status, the status and wait reported, its wait after, or `None`: refused)
    let cases = [
        (Running, Succeeded, Some(asked.clone()), None),
        (Running, Failed, Some(asked.clone()), None),
        (Waiting, Cancelled, Some(asked.clone()), None),
        (Running, Succeeded, None, Some(None)),
        (Running, Succeeded, Some(null.clone()), Some(None)),
        (Waiting, Failed, None, Some(None)),
        (Waiting, Cancelled, Some(null), Some(None)),
        (Running, Waiting, Some(asked.clone()), Some(Some(asked.clone()))),
        (Waiting, Running, None, Some(Some(before.clone()))),
    ];
    for (from, to, wait, after) in cases {
        let case = format!("{from} -> {to} with wait {wait:?}");
        let flow = alice.create(NewFlow::mirrored("deploy", "ci")).unwrap();
        let first = StateReport {
            status: Some(from),
            wait: Some(before.clone()),
            ..StateReport::default()
        };
        let at = alice.report(&flow.id, first, None).unwrap();
        let report = StateReport { status: Some(to), wait, ..StateReport::default() };
        let answer = alice.report(&flow.id, report, None);
        let stored = alice.flow(&flow.id).unwrap();
        match after {
            Some(wait) => {
                let answered = answer.unwrap_or_else(|error| panic!("{case}: {error}"));
                assert_eq!((answered.status, &answered.wait), (to, &wait), "{case}");
                assert_eq!((stored.status, stored.wait), (to, wait), "{case}: as stored");
            }
            None => {
                let refused = answer.err().unwrap_or_else(|| panic!("{case}: accepted"));
                assert!(
                    matches!(&refused, Error::EndsWithWait { status, .. } if *status == to),
                    "{case}: {refused}"
                );
                let message = refused.to_string();
                assert!(message.contains(&format!("reported {to} with a `wait`")), "{message}");
                assert_eq!((stored.revision, stored.status), (at.revision, from), "{case}");
                assert_eq!(stored.wait, Some(before.clone()), "{case}: nothing written");
            }
        }
    }
}

/// A flow's count of steps is out of the steps its pipeline lists until its journal has reached
/// them all; a journal with more names than its spec lists, or a spec without a list of steps
/// (an agent's), counts the journal's names.
pub fn a_flows_step_count_is_out_of_the_steps_its_pipeline_lists(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let pipeline = |ids: &[&str]| {
        let steps: Vec<serde_json::Value> =
            ids.iter().map(|id| json!({"id": id, "action": "echo"})).collect();
        Some(json!({"name": "p", "steps": steps}))
    };
    let cases = [
        (pipeline(&["a", "b", "c"]), 1, Some(3), (1, 3)),
        (pipeline(&["a"]), 2, Some(1), (2, 2)),
        (Some(json!({"prompt": "go"})), 1, None, (1, 1)),
        (Some(json!({"steps": "not a list"})), 1, None, (1, 1)),
        (None, 0, None, (0, 0)),
    ];
    for (n, (spec, journal, listed, counts)) in cases.into_iter().enumerate() {
        let mut new = NewFlow::managed(format!("f{n}"));
        new.spec = spec;
        let flow = alice.create(new).unwrap();
        let lease = alice.acquire_lease(&flow.id, TTL).unwrap();
        alice.set_status(&lease, FlowStatus::Running, None).unwrap();
        for name in ["a", "b", "c"].into_iter().take(journal) {
            let step = alice.begin_step(&lease, NewStep::new(name, StepKind::Tool)).unwrap();
            alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(name))).unwrap();
        }
        let query = ListQuery { name: Some(format!("f{n}")), ..Default::default() };
        let shown = alice.list(&query).unwrap();
        assert_eq!((shown[0].steps_done, shown[0].steps_total), counts, "case {n}");
        assert_eq!(alice.flow(&flow.id).unwrap().listed_steps(), listed, "case {n}");
    }
}

pub fn list_is_newest_first_per_owner_with_filters_and_step_counts(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(alice.create(NewFlow::managed(format!("a{i}"))).unwrap().id);
        std::thread::sleep(Duration::from_millis(2));
    }
    bob.create(NewFlow::managed("b")).unwrap();
    let (run, lease) = running(&alice, "with steps");
    for name in ["one", "two", "three"] {
        let step = alice.begin_step(&lease, NewStep::new(name, StepKind::Tool)).unwrap();
        if name == "one" {
            // A step that took two attempts counts once.
            alice.finish_step(&lease, step.seq, StepOutcome::Failed("boom".into())).unwrap();
            let again = NewStep::new(name, StepKind::Tool).retrying(step.seq);
            let retried = alice.begin_step(&lease, again).unwrap();
            alice.finish_step(&lease, retried.seq, StepOutcome::Succeeded(json!(name))).unwrap();
        } else if name == "two" {
            // A step whose latest run failed is not done, whatever an earlier one did (a
            // mirrored flow's owner may run a step again).
            alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(name))).unwrap();
            let retried = alice.begin_step(&lease, NewStep::new(name, StepKind::Tool)).unwrap();
            alice.finish_step(&lease, retried.seq, StepOutcome::Failed("boom".into())).unwrap();
        }
    }

    let list = |query: ListQuery| alice.list(&query).unwrap();
    let all = list(ListQuery::default());
    let mut expected: Vec<FlowId> = ids.iter().rev().cloned().collect();
    expected.insert(0, run.id.clone());
    assert_eq!(all.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), expected);
    assert_eq!((all[0].steps_done, all[0].steps_total), (1, 3));
    assert_eq!(all[0].revision, alice.flow(&run.id).unwrap().revision);
    assert_eq!(list(ListQuery { limit: 2, ..Default::default() }).len(), 2);
    let running_only = list(ListQuery { status: Some(FlowStatus::Running), ..Default::default() });
    assert_eq!(
        running_only.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&run.id)
    );
    let everyone = list(ListQuery { all_owners: true, ..Default::default() });
    assert_eq!(everyone.len(), 7);
    assert_eq!(everyone[0].owner, "alice");
    assert_eq!(everyone[1].owner, "bob");

    // By name; and page by page, each page starting after the last flow of the one before.
    let named = list(ListQuery { name: Some("a3".into()), ..Default::default() });
    assert_eq!(named.iter().map(|f| &f.name).collect::<Vec<_>>(), ["a3"]);
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = list(ListQuery { limit: 2, before: before.clone(), ..Default::default() });
        let Some(last) = page.last() else { break };
        before = Some((last.created_at, last.id.clone()));
        pages.push(page.iter().map(|f| f.id.clone()).collect::<Vec<_>>());
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), expected, "every flow once, newest first");

    // By schedule (the flows whose id is `NAME@SLOT`), and by the time they were created.
    let slot = |name: &str, slot: i64| {
        let flow = schedules::fired(&alice, name, slot);
        std::thread::sleep(Duration::from_millis(2));
        flow
    };
    let first = slot("nightly", 0);
    slot("nightly-2", 0);
    slot("nightlyA", 0);
    let named_so = NewFlow::managed("slot").with_id(FlowId::parse("nightly").unwrap());
    alice.create(named_so).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let second = slot("nightly", 1440);
    let ids = |flows: Vec<FlowSummary>| flows.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let nightly = ListQuery { schedule: Some("nightly".into()), ..Default::default() };
    assert_eq!(ids(list(nightly.clone())), [second.id.clone(), first.id.clone()]);
    let since = ListQuery { since: Some(second.created_at), ..Default::default() };
    assert_eq!(ids(list(since)), std::slice::from_ref(&second.id));
    let until = ListQuery { until: Some(second.created_at), ..nightly };
    assert_eq!(ids(list(until)), [first.id]);
}

/// A running flow held by `holder` for `ttl`.
fn held_by(handle: &OwnerHandle, name: &str, holder: LeaseHolder, ttl: Duration) -> (Flow, Lease) {
    let flow = handle.create(NewFlow::managed(name)).unwrap();
    let lease = handle.acquire_lease_as(&flow.id, holder, ttl).unwrap();
    let flow = handle.set_status(&lease, FlowStatus::Running, None).unwrap();
    (flow, lease)
}

pub fn a_flow_without_a_live_runner_is_stalled_with_why_and_looking_changes_nothing(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let (live, _live_lease) = running(&alice, "live");
    std::thread::sleep(Duration::from_millis(2));
    let (dead, _) = held_by(&alice, "killed", dead_runner(), TTL);
    std::thread::sleep(Duration::from_millis(2));
    let elsewhere = LeaseHolder { host: "another-host".into(), pid: 7, process_start: Some(1) };
    let (expired, expired_lease) = held_by(&alice, "silent", elsewhere.clone(), MIN_TTL);
    let mirrored = alice.create(NewFlow::mirrored("mirror", "plugin")).unwrap();
    let to_running = StateReport { status: Some(FlowStatus::Running), ..Default::default() };
    alice.report(&mirrored.id, to_running, None).unwrap();
    std::thread::sleep(MIN_TTL + Duration::from_millis(50));
    let ids = [&live.id, &dead.id, &expired.id, &mirrored.id];
    let revisions_before: Vec<Vec<u64>> = ids.iter().map(|id| revisions(&alice, id)).collect();
    let now = Timestamp::now();

    assert_eq!(alice.flow(&live.id).unwrap().stall(now), None);
    assert_eq!(
        alice.flow(&mirrored.id).unwrap().stall(now),
        None,
        "a mirrored flow's owner runs it"
    );
    let killed = alice.flow(&dead.id).unwrap().stall(now).expect("a dead holder stalls its flow");
    assert_eq!(
        killed,
        Stall { reason: StallReason::HolderGone, holder: Some(dead_runner()), since: None }
    );
    let silent = alice.flow(&expired.id).unwrap().stall(now).expect("an expired lease stalls");
    assert_eq!(
        silent,
        Stall {
            reason: StallReason::LeaseExpired,
            holder: Some(elsewhere),
            since: Some(expired_lease.expires_at),
        }
    );

    // `--status stalled`: exactly those two, newest first, a page at a time, with the same
    // verdict as the record's.
    let stalled = |query: ListQuery| -> Vec<FlowId> {
        alice
            .list(&ListQuery { stalled: true, ..query })
            .unwrap()
            .iter()
            .map(|f| f.id.clone())
            .collect()
    };
    assert_eq!(stalled(ListQuery::default()), [expired.id.clone(), dead.id.clone()]);
    let first = alice.list(&ListQuery { stalled: true, limit: 1, ..Default::default() }).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].stall(now), Some(silent));
    let before = Some((first[0].created_at, first[0].id.clone()));
    assert_eq!(
        stalled(ListQuery { limit: 1, before, ..Default::default() }),
        std::slice::from_ref(&dead.id)
    );
    let summaries = alice.list(&ListQuery::default()).unwrap();
    let judged: Vec<(FlowId, bool)> =
        summaries.iter().map(|summary| (summary.id.clone(), summary.is_stalled(now))).collect();
    for (id, stalled) in judged {
        assert_eq!(stalled, alice.flow(&id).unwrap().is_stalled(now), "{id}");
    }

    let revisions_after: Vec<Vec<u64>> = ids.iter().map(|id| revisions(&alice, id)).collect();
    assert_eq!(revisions_after, revisions_before, "reading a flow never changes it");
}

/// A managed flow run to `status` (no steps) by `handle`.
fn ended(handle: &OwnerHandle, name: &str, status: FlowStatus) -> FlowId {
    let (flow, lease) = running(handle, name);
    handle.set_status(&lease, status, None).unwrap();
    flow.id
}

pub fn prune_removes_ended_trees_in_batches_and_never_an_unfinished_flow(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let done = ended(&alice, "done", FlowStatus::Succeeded);
    let failed = ended(&alice, "failed", FlowStatus::Failed);
    // A parent that ended after its child: the two go together.
    let (parent, parent_lease) = running(&alice, "parent");
    let parent = parent.id;
    let (_, child_lease) = running_child(&alice, &parent_lease, "child");
    alice.set_status(&child_lease, FlowStatus::Succeeded, None).unwrap();
    assert_eq!(alice.steps(&parent).unwrap()[0].status, StepStatus::Succeeded);
    alice.set_status(&parent_lease, FlowStatus::Succeeded, None).unwrap();
    let child = child_lease.flow_id.clone();
    let (live, _live_lease) = running(&alice, "live");
    let live = live.id;
    let queued = alice.create(NewFlow::managed("queued")).unwrap().id;
    let bobs = ended(&bob, "bob's", FlowStatus::Succeeded);
    std::thread::sleep(Duration::from_millis(5));
    let cutoff = Timestamp::now();
    std::thread::sleep(Duration::from_millis(5));
    let recent = ended(&alice, "recent", FlowStatus::Succeeded);

    let gone = |id: &FlowId| matches!(alice.flow(id), Err(Error::NotFound { .. }));
    let query = |status, limit| PruneQuery {
        ended_before: cutoff,
        status,
        after: None,
        limit,
        all_owners: false,
    };
    // Only the failed ones first.
    let batch = alice.prune(&query(Some(FlowStatus::Failed), 10)).unwrap();
    assert_eq!((batch.removed, batch.next.clone()), (1, None));
    assert!(gone(&failed) && !gone(&done));
    assert!(matches!(alice.history(&failed), Err(Error::NotFound { .. })));

    // The rest, one top-level flow per batch, until nothing is left.
    let mut removed = 0;
    let mut next = query(None, 1);
    loop {
        let batch = alice.prune(&next).unwrap();
        removed += batch.removed;
        match batch.next {
            Some(after) => next.after = Some(after),
            None => break,
        }
    }
    assert_eq!(removed, 3, "done, and the parent with its child");
    for id in [&done, &parent, &child] {
        assert!(gone(id), "{id} is removed");
    }
    for id in [&live, &queued, &recent] {
        assert!(!gone(id), "{id} is kept");
    }
    assert!(bob.flow(&bobs).is_ok(), "another owner's flows are kept");
    let everyone = PruneQuery { all_owners: true, ..query(None, 10) };
    assert_eq!(alice.prune(&everyone).unwrap().removed, 1);
    assert!(matches!(bob.flow(&bobs), Err(Error::NotFound { .. })));
}

/// Eight writers at once on one flow tree, each through a store of its own (as eight processes
/// would): six begin and end steps through the flow's lease and spawn children, one reads, one
/// cancels the tree midway. Every begun step gets a seq of its own with none skipped, and the
/// cancel reaches the flow and every child spawned before it; none is spawned after it.
pub fn eight_writers_at_once_never_share_a_step_seq_nor_lose_a_cancel(harness: &dyn Harness) {
    const WRITERS: usize = 6;
    const STEPS: usize = 12;
    let fx = harness.fresh();
    let (parent, lease) = running(&fx.alice(), "busy");
    let barrier = Arc::new(Barrier::new(8));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, barrier, lease) = (fx.reopen(), Arc::clone(&barrier), lease.clone());
            std::thread::spawn(move || {
                let alice = store.bind("alice").unwrap().with_actor(format!("writer {writer}"));
                let (mut seqs, mut children) = (Vec::new(), Vec::new());
                barrier.wait();
                for i in 0..STEPS {
                    let step = NewStep::new(format!("w{writer} s{i}"), StepKind::Tool);
                    match alice.begin_step(&lease, step) {
                        Ok(step) => {
                            seqs.push(step.seq);
                            alice
                                .finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(i)))
                                .unwrap();
                        }
                        // The cancel came first (and may have ended the flow, and its lease,
                        // once no step of it ran).
                        Err(Error::CancelRequested { .. } | Error::LeaseLost { .. }) => break,
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                    if i % 4 == writer % 4 {
                        match alice.spawn_child(&lease, NewFlow::managed(format!("c{writer}.{i}")))
                        {
                            Ok((child, step)) => {
                                seqs.push(step.seq);
                                children.push(child.id);
                            }
                            Err(Error::SpawnRefused { reason, .. }) => {
                                assert!(
                                    matches!(
                                        reason,
                                        SpawnRefusal::ParentCancelRequested
                                            | SpawnRefusal::ParentTerminal(FlowStatus::Cancelled)
                                    ),
                                    "{reason:?}"
                                );
                                break;
                            }
                            Err(Error::LeaseLost { .. }) => break,
                            Err(other) => panic!("writer {writer}: {other}"),
                        }
                    }
                }
                (seqs, children)
            })
        })
        .collect();
    let reader = {
        let (store, barrier, id) = (fx.reopen(), Arc::clone(&barrier), parent.id.clone());
        std::thread::spawn(move || {
            let alice = store.bind("alice").unwrap();
            barrier.wait();
            for _ in 0..STEPS {
                let steps = alice.steps(&id).unwrap();
                let seqs: Vec<u32> = steps.iter().map(|step| step.seq).collect();
                assert_eq!(seqs, (1..=seqs.len() as u32).collect::<Vec<_>>(), "a snapshot");
            }
        })
    };
    let canceller = {
        let (store, barrier, id) = (fx.reopen(), Arc::clone(&barrier), parent.id.clone());
        std::thread::spawn(move || {
            let alice = store.bind("alice").unwrap();
            barrier.wait();
            std::thread::sleep(Duration::from_millis(20));
            alice.request_cancel(&id, None).unwrap()
        })
    };
    let (mut seqs, mut children) = (Vec::new(), Vec::new());
    for writer in writers {
        let (more_seqs, more_children) = writer.join().unwrap();
        seqs.extend(more_seqs);
        children.extend(more_children);
    }
    reader.join().unwrap();
    let cancel = canceller.join().unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u32).collect::<Vec<_>>(), "no seq twice, none skipped");
    let alice = fx.alice();
    let journal: Vec<u32> = alice.steps(&parent.id).unwrap().iter().map(|step| step.seq).collect();
    assert_eq!(journal, seqs, "the journal holds exactly the steps begun");
    let parent = alice.flow(&parent.id).unwrap();
    assert_eq!(parent.cancel_requested_at, cancel.flow.cancel_requested_at, "the cancel stays");
    let at = parent.cancel_requested_at.unwrap();
    assert_eq!(alice.children(&parent.id).unwrap().len(), children.len());
    // Before and after in commit order, not by the clock: a write's time is taken before it
    // waits for the tree's lock, while its events take their ids under that lock.
    let events = alice.events(&EventQuery { limit: 100_000, ..EventQuery::default() }).unwrap();
    let cancelled = events
        .iter()
        .find(|event| {
            event.flow_id == parent.id
                && matches!(&event.change, Change::Flow { fields, .. }
                    if fields.iter().any(|field| field == "cancel_requested_at"))
        })
        .expect("the cancel's event")
        .id;
    for child in &children {
        let created = events.iter().find(|event| event.flow_id == *child).expect("its creation");
        let child = alice.flow(child).unwrap();
        assert_eq!(child.cancel_requested_at, Some(at), "{}: reached by the cancel", child.name);
        assert_eq!(child.status, FlowStatus::Cancelled, "{}", child.name);
        assert!(created.id < cancelled, "{}: spawned before the cancel", child.name);
    }
    let spawns: Vec<u32> = alice
        .steps(&parent.id)
        .unwrap()
        .iter()
        .filter(|step| step.kind == StepKind::Child)
        .map(|step| step.seq)
        .collect();
    for event in events.iter().filter(|event| event.flow_id == parent.id) {
        if let Change::Step { seq, status: StepStatus::Running, .. } = &event.change
            && !spawns.contains(seq)
        {
            assert!(event.id < cancelled, "step {seq} began after the cancel");
        }
    }
}

/// One `#[test]` per kit test, each run with the harness `$harness` (an expression that makes
/// a [`Harness`]).
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            every_change_to_the_flow_record_bumps_the_revision_and_appends_one_row,
            a_step_is_a_journal_record_and_the_flow_reads_its_current_step_from_the_journal,
            a_step_tried_again_records_why_its_attempt_ended_in_the_history,
            another_owners_flow_is_not_found_exactly_like_a_missing_one,
            expected_revision_mismatch_is_a_conflict_and_changes_nothing,
            concurrent_writers_with_the_same_expected_revision_one_wins,
            eight_writers_at_once_never_share_a_step_seq_nor_lose_a_cancel,
            mirrored_flows_take_reports_are_never_run_and_are_validated,
            spawn_and_cancel_racing_never_leave_a_live_child_under_a_cancelled_request,
            a_mirrored_flow_with_a_cancel_request_waits_for_its_owner_to_report_it,
            child_flows_and_when_spawning_is_refused,
            sticky_cancel_waits_for_running_work_then_cancels,
            checkpoints_see_what_other_connections_changed_between_them,
            a_change_elsewhere_is_seen_even_after_checkpoints_of_other_flows,
            single_op_writes_and_checkpoints_agree_on_a_flows_journal,
            a_step_begun_through_another_store_is_seen_by_the_next_checkpoint,
            a_step_ended_or_retried_through_another_store_is_seen_by_the_next_checkpoint,
            a_state_sent_again_unchanged_is_no_change_whatever_its_numbers,
            a_flow_ends_only_once_no_step_runs_whatever_its_run_read_at_its_start,
            the_flow_a_checkpoint_answers_is_the_flow_as_stored,
            a_change_through_the_same_store_is_seen_by_the_next_checkpoint,
            a_child_ending_in_its_own_checkpoint_is_seen_by_the_parents_next_one,
            a_null_state_is_no_change_from_no_state,
            a_cancel_request_survives_a_restart,
            leases_asked_together_are_granted_or_refused_each_on_its_own,
            leases_refuse_a_second_runner_expire_and_fence_the_old_one,
            a_lease_held_by_a_dead_process_on_this_host_is_taken_over_at_once,
            a_flow_cannot_end_with_steps_running_and_steps_run_only_while_it_runs,
            list_is_newest_first_per_owner_with_filters_and_step_counts,
            a_flows_step_count_is_out_of_the_steps_its_pipeline_lists,
            a_chosen_id_is_kept_as_given_and_one_taken_is_refused,
            every_accepted_change_is_one_event_of_its_owner_in_commit_order,
            a_mirrored_flows_owner_reports_its_steps_by_name,
            a_nul_in_a_goal_or_an_error_is_u_fffd_in_the_record_its_history_and_the_answer,
            a_mirrored_step_run_again_is_its_next_attempt_only_if_it_did_not_succeed,
            a_mirrored_flow_that_ends_waits_for_nothing,
            flows_no_live_runner_holds_are_adoptable_for_every_owner,
            a_flow_without_a_live_runner_is_stalled_with_why_and_looking_changes_nothing,
            prune_removes_ended_trees_in_batches_and_never_an_unfinished_flow,
            a_flow_whose_running_steps_all_wait_gives_its_lease_up_until_it_is_due,
            a_signal_is_kept_until_a_step_takes_it_and_wakes_a_flow_waiting_for_it,
            a_cancel_ends_a_waiting_flow_and_its_waiting_steps_at_once,
            an_approval_is_decided_once_and_only_for_a_call_the_flow_waits_for,
            a_parent_waiting_for_its_childs_decision_is_due_once_it_is_decided_or_ends,
            a_decision_recorded_before_the_parent_waits_for_its_child_is_not_lost,
            schedules_are_owner_scoped_with_revisions_and_apply_twice_changes_nothing,
            gates_name_the_owners_schedules_and_cycles_are_refused,
            a_slot_fires_once_by_the_creation_of_its_flow_and_its_record_follows_the_flow,
            a_pruned_slot_flow_takes_its_signals_and_leaves_the_slot_record,
            a_slot_fired_again_keeps_the_reason_and_time_it_fired_with,
            slots_not_run_are_recorded_with_their_reason_and_waiting_ones_are_resolved,
            a_schedules_flows_are_its_slots_and_schedules_come_in_the_order_of_their_names_bytes,
            a_slot_decided_by_hand_inside_a_range_of_missed_slots_splits_it_keeping_the_others,
            a_slots_run_cancelled_by_its_schedule_says_why_on_the_slots_record,
            a_claim_takes_what_no_live_runner_holds_and_a_dead_holder_only_on_its_own_host,
            a_flow_made_or_forked_to_run_is_held_by_its_maker_from_the_transaction_that_makes_it,
            a_claimed_run_starts_from_its_flow_spec_and_journal_read_at_once,
            eight_claimers_at_once_get_disjoint_sets_that_cover_every_queued_flow,
        );
    };
    (@each $harness:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::$name(&$harness)
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// The macro lists every kit test: a test added to the kit runs on every backend.
    #[test]
    fn the_macro_names_every_kit_test() {
        let source = include_str!("testkit.rs");
        let (tests, macro_body) = source.split_once("macro_rules! conformance_tests").unwrap();
        let tests = [
            tests,
            include_str!("testkit/waits.rs"),
            include_str!("testkit/schedules.rs"),
            include_str!("testkit/claims.rs"),
        ]
        .concat();
        let defined: Vec<&str> = tests
            .split("pub fn ")
            .skip(1)
            .filter_map(|rest| rest.split_once('('))
            .filter(|(_, after)| after.trim_start().starts_with("harness: &dyn Harness"))
            .map(|(name, _)| name)
            .collect();
        assert!(defined.len() > 20, "{defined:?}");
        for name in defined {
            assert!(macro_body.contains(&format!("            {name},\n")), "{name} is not run");
        }
    }
}
