//! Fault injection (feature `testkit`): a [`FlowStore`] that hands everything to the store it
//! wraps but makes one chosen write fail the way storage fails, so that tests can put a fault at
//! every position of a run and check what the runner and a resume make of it.
//!
//! Writes are counted in the order they reach the store (every operation that changes the
//! database, lease renewals excepted: their number depends on timing). The write numbered `at`
//! gets the fault; every other write, before and after, goes through untouched.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::audit::Finding;
use crate::error::{Error, Result, StorageError, StorageErrorKind};
use crate::event::{Event, EventQuery};
use crate::leadership::Leadership;
use crate::lease::{Lease, LeaseHolder};
use crate::model::{
    Adoptable, CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, Claim, ExpectedRevision,
    Flow, FlowId, FlowSummary, ListQuery, NewFlow, NewStep, Revision, RunStart, Signal,
    StateReport, Step, StepOutcome,
};
use crate::prune::{PruneBatch, PruneQuery};
use crate::schedule::{
    Decided, GateState, NewSchedule, Put, Schedule, ScheduleSummary, Slot, SlotDecision, SlotTimes,
};
use crate::status::FlowStatus;
use crate::store::{Answer, Caller, Decisions, FlowStore, Resumed, Submission};
use crate::time::Timestamp;

/// How the chosen write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it reaches the store, as by a full disk or a failed write: nothing of it
    /// is kept, and the caller gets a storage error of this kind.
    Refused(StorageErrorKind),
    /// It reaches the store and is kept, but the caller is told it failed with an I/O error, as
    /// when a sync fails after the data went out: the caller must treat it as not committed,
    /// and whoever resumes must cope with finding it kept.
    Unacknowledged,
    /// The store panics in the middle of it, before anything is kept.
    Panic,
}

impl Fault {
    /// Every fault a run is checked under.
    pub const ALL: [Fault; 4] = [
        Fault::Refused(StorageErrorKind::Full),
        Fault::Refused(StorageErrorKind::Io),
        Fault::Unacknowledged,
        Fault::Panic,
    ];
}

/// A store whose write number `at` (from 1) fails with `fault`.
pub struct FaultyStore {
    inner: Arc<dyn FlowStore>,
    fault: Fault,
    at: usize,
    writes: AtomicUsize,
    fired: AtomicBool,
    stalled: Arc<Stall>,
    /// While set, every write is refused as by a database that takes no writes.
    read_only: AtomicBool,
}

/// Whether writes wait, and the wake-up of those waiting when they may go on.
#[derive(Default)]
struct Stall {
    on: Mutex<bool>,
    cleared: Condvar,
}

impl Stall {
    fn wait(&self) {
        let on = self.on.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _cleared = self.cleared.wait_while(on, |on| *on);
    }

    fn is_on(&self) -> bool {
        *self.on.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn FlowStore>, fault: Fault, at: usize) -> Self {
        FaultyStore {
            inner,
            fault,
            at,
            writes: AtomicUsize::new(0),
            fired: AtomicBool::new(false),
            stalled: Arc::default(),
            read_only: AtomicBool::new(false),
        }
    }

    /// While `on`, every write (lease renewals included) waits until it is turned off, as
    /// writes wait on a database that cannot be reached; then it goes through. A write handed
    /// over without waiting for its answer (`submit`) is handed over at once, and its answer
    /// waits.
    pub fn stall(&self, on: bool) {
        *self.stalled.on.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = on;
        self.stalled.cleared.notify_all();
    }

    /// While `on`, every write (lease renewals and releases included) is refused, nothing of it
    /// kept, as by a database made read-only; then they go through again.
    pub fn read_only(&self, on: bool) {
        self.read_only.store(on, Ordering::SeqCst);
    }

    /// A store that counts writes and fails none (`at` 0): how many a clean run makes.
    pub fn counting(inner: Arc<dyn FlowStore>) -> Self {
        FaultyStore::new(inner, Fault::Unacknowledged, 0)
    }

    /// How many writes reached this store.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Whether the fault happened.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Counts one write; the fault it gets, if it is the chosen one.
    fn next(&self) -> Option<Fault> {
        let number = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        (number == self.at).then(|| {
            self.fired.store(true, Ordering::SeqCst);
            self.fault
        })
    }

    /// A write: `work` on the inner store, unless the fault says otherwise.
    fn write<T>(&self, work: impl FnOnce(&dyn FlowStore) -> Result<T>) -> Result<T> {
        self.stalled.wait();
        if self.read_only.load(Ordering::SeqCst) {
            return Err(injected(StorageErrorKind::ReadOnly));
        }
        match self.next() {
            None => work(self.inner.as_ref()),
            Some(Fault::Refused(kind)) => Err(injected(kind)),
            Some(Fault::Unacknowledged) => {
                let _kept = work(self.inner.as_ref());
                Err(injected(StorageErrorKind::Io))
            }
            Some(Fault::Panic) => panic!("injected panic in the middle of a write"),
        }
    }
}

fn injected(kind: StorageErrorKind) -> Error {
    let detail = match kind {
        StorageErrorKind::Full => "database or disk is full (injected)",
        StorageErrorKind::ReadOnly => "attempt to write a readonly database (injected)",
        _ => "disk I/O error (injected)",
    };
    Error::Storage(StorageError::new(kind, "faulty store", detail))
}

/// The answer of a submission whose write was kept but is reported failed.
fn unacknowledged<T: 'static>(answer: Answer<T>) -> Answer<T> {
    Box::new(move |_kept| answer(Err(injected(StorageErrorKind::Io))))
}

impl FlowStore for FaultyStore {
    fn create_flow(&self, caller: Caller<'_>, new: NewFlow) -> Result<Flow> {
        self.write(|inner| inner.create_flow(caller, new))
    }

    fn create_held(
        &self,
        caller: Caller<'_>,
        new: NewFlow,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        self.write(|inner| inner.create_held(caller, new, holder, ttl))
    }

    fn spawn_child(
        &self,
        caller: Caller<'_>,
        parent: &Lease,
        new: NewFlow,
    ) -> Result<(Flow, Step)> {
        self.write(|inner| inner.spawn_child(caller, parent, new))
    }

    fn flow(&self, owner: &str, id: &FlowId) -> Result<Flow> {
        self.inner.flow(owner, id)
    }

    fn flow_without_spec(&self, owner: &str, id: &FlowId) -> Result<Flow> {
        self.inner.flow_without_spec(owner, id)
    }

    fn spec_json(&self, owner: &str, id: &FlowId) -> Result<Option<String>> {
        self.inner.spec_json(owner, id)
    }

    fn list(&self, owner: &str, query: &ListQuery) -> Result<Vec<FlowSummary>> {
        self.inner.list(owner, query)
    }

    fn steps(&self, owner: &str, id: &FlowId) -> Result<Vec<Step>> {
        self.inner.steps(owner, id)
    }

    fn run_start(&self, owner: &str, id: &FlowId) -> Result<RunStart> {
        self.inner.run_start(owner, id)
    }

    fn children(&self, owner: &str, id: &FlowId) -> Result<Vec<ChildSummary>> {
        self.inner.children(owner, id)
    }

    fn history(&self, owner: &str, id: &FlowId) -> Result<Vec<Revision>> {
        self.inner.history(owner, id)
    }

    fn request_cancel(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        expected: ExpectedRevision,
    ) -> Result<CancelOutcome> {
        self.write(|inner| inner.request_cancel(caller, id, expected))
    }

    fn report(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        report: StateReport,
        expected: ExpectedRevision,
    ) -> Result<Flow> {
        self.write(|inner| inner.report(caller, id, report, expected))
    }

    fn acquire_lease(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<Lease> {
        self.write(|inner| inner.acquire_lease(caller, id, holder, ttl))
    }

    fn acquire_leases(
        &self,
        caller: Caller<'_>,
        requests: Vec<(FlowId, LeaseHolder, Duration)>,
    ) -> Result<Vec<Result<Lease>>> {
        self.write(|inner| inner.acquire_leases(caller, requests))
    }

    fn renew_lease(&self, caller: Caller<'_>, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.stalled.wait();
        self.inner.renew_lease(caller, lease, ttl)
    }

    fn release_lease(&self, caller: Caller<'_>, lease: &Lease) -> Result<Flow> {
        self.write(|inner| inner.release_lease(caller, lease))
    }

    fn set_status(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        to: FlowStatus,
        error: Option<String>,
    ) -> Result<Flow> {
        self.write(|inner| inner.set_status(caller, lease, to, error))
    }

    fn begin_step(&self, caller: Caller<'_>, lease: &Lease, step: NewStep) -> Result<Step> {
        self.write(|inner| inner.begin_step(caller, lease, step))
    }

    fn finish_step(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        outcome: StepOutcome,
    ) -> Result<Step> {
        self.write(|inner| inner.finish_step(caller, lease, seq, outcome))
    }

    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>> {
        if ops.iter().all(|op| matches!(op, CheckpointOp::Renew { .. }))
            && !self.read_only.load(Ordering::SeqCst)
        {
            self.stalled.wait();
            return self.inner.checkpoint(caller, ops);
        }
        self.write(|inner| inner.checkpoint(caller, ops))
    }

    fn submit(&self, owner: &str, actor: &str, work: Submission) {
        let renewal = matches!(&work, Submission::Checkpoint { ops, .. }
            if ops.iter().all(|op| matches!(op, CheckpointOp::Renew { .. })));
        let fault = if self.read_only.load(Ordering::SeqCst) {
            Some(Fault::Refused(StorageErrorKind::ReadOnly))
        } else if renewal {
            None
        } else {
            self.next()
        };
        let work = match (fault, work) {
            (None, work) => work,
            (Some(Fault::Panic), _) => panic!("injected panic in the middle of a write"),
            (Some(Fault::Refused(kind)), work) => {
                match work {
                    Submission::Checkpoint { answer, .. } => answer(Err(injected(kind))),
                    Submission::Lease { answer, .. } => answer(Err(injected(kind))),
                    Submission::Report { answer, .. } => answer(Err(injected(kind))),
                }
                return;
            }
            (Some(Fault::Unacknowledged), Submission::Checkpoint { ops, answer }) => {
                Submission::Checkpoint { ops, answer: unacknowledged(answer) }
            }
            (Some(Fault::Unacknowledged), Submission::Lease { id, holder, ttl, answer }) => {
                Submission::Lease { id, holder, ttl, answer: unacknowledged(answer) }
            }
            (Some(Fault::Unacknowledged), Submission::Report { id, report, expected, answer }) => {
                Submission::Report { id, report, expected, answer: unacknowledged(answer) }
            }
        };
        if self.stalled.is_on() {
            let (inner, stalled) = (self.inner.clone(), self.stalled.clone());
            let (owner, actor) = (owner.to_owned(), actor.to_owned());
            std::thread::spawn(move || {
                stalled.wait();
                inner.submit(&owner, &actor, work);
            });
            return;
        }
        self.inner.submit(owner, actor, work)
    }

    fn events(&self, owner: Option<&str>, query: &EventQuery) -> Result<Vec<Event>> {
        self.inner.events(owner, query)
    }

    fn last_event_id(&self) -> Result<u64> {
        self.inner.last_event_id()
    }

    fn prune_events(&self, before: Timestamp) -> Result<u64> {
        self.write(|inner| inner.prune_events(before))
    }

    fn claim(
        &self,
        holder: &LeaseHolder,
        ttl: Duration,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<Claim>> {
        self.write(|inner| inner.claim(holder, ttl, limit, skip))
    }

    fn adoptable(&self, limit: u32) -> Result<Vec<Adoptable>> {
        self.inner.adoptable(limit)
    }

    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        self.inner.cancel_requested(owner, ids)
    }

    fn reopen(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        self.write(|inner| inner.reopen(caller, id, holder, ttl))
    }

    fn fork(&self, caller: Caller<'_>, source: &FlowId, from_seq: u32) -> Result<Flow> {
        self.write(|inner| inner.fork(caller, source, from_seq))
    }

    fn fork_held(
        &self,
        caller: Caller<'_>,
        source: &FlowId,
        from_seq: u32,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        self.write(|inner| inner.fork_held(caller, source, from_seq, holder, ttl))
    }

    fn audit(&self, owner: Option<&str>) -> Result<Vec<Finding>> {
        self.inner.audit(owner)
    }

    fn repair(&self, caller: Caller<'_>, finding: &Finding) -> Result<Option<String>> {
        self.write(|inner| inner.repair(caller, finding))
    }

    fn integrity_check(&self) -> Result<Vec<String>> {
        self.inner.integrity_check()
    }

    fn prune(&self, owner: Option<&str>, query: &PruneQuery) -> Result<PruneBatch> {
        self.write(|inner| inner.prune(owner, query))
    }

    fn compact(&self) -> Result<()> {
        self.inner.compact()
    }

    fn lead(&self, role: &str) -> Result<Option<Leadership>> {
        self.inner.lead(role)
    }

    fn next_wake(&self) -> Result<Option<Timestamp>> {
        self.inner.next_wake()
    }

    fn send_signal(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(Signal, Flow)> {
        self.write(|inner| inner.send_signal(caller, id, name, payload))
    }

    fn decide_approval(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        call_id: &str,
        decision: &crate::model::ApprovalDecision,
    ) -> Result<(Signal, Flow)> {
        self.write(|inner| inner.decide_approval(caller, id, call_id, decision))
    }

    fn take_signal(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        name: &str,
    ) -> Result<Option<Signal>> {
        self.write(|inner| inner.take_signal(caller, lease, seq, name))
    }

    fn signals(&self, owner: &str, id: &FlowId) -> Result<Vec<Signal>> {
        self.inner.signals(owner, id)
    }

    fn put_schedule(&self, caller: Caller<'_>, new: NewSchedule, replace: bool) -> Result<Put> {
        self.write(|inner| inner.put_schedule(caller, new, replace))
    }

    fn set_paused(
        &self,
        caller: Caller<'_>,
        name: &str,
        paused: bool,
        resumed: Option<Resumed>,
    ) -> Result<Schedule> {
        self.write(|inner| inner.set_paused(caller, name, paused, resumed))
    }

    fn remove_schedule(&self, caller: Caller<'_>, name: &str) -> Result<Schedule> {
        self.write(|inner| inner.remove_schedule(caller, name))
    }

    fn schedules(&self, owner: &str) -> Result<Vec<ScheduleSummary>> {
        self.inner.schedules(owner)
    }

    fn schedule(
        &self,
        owner: &str,
        name: &str,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<(Schedule, Vec<Slot>)> {
        self.inner.schedule(owner, name, before, limit)
    }

    fn schedule_history(&self, owner: &str, name: &str) -> Result<Vec<Revision>> {
        self.inner.schedule_history(owner, name)
    }

    fn decide_slots(
        &self,
        caller: Caller<'_>,
        name: &str,
        decisions: Decisions,
    ) -> Result<Vec<Decided>> {
        self.write(|inner| inner.decide_slots(caller, name, decisions))
    }

    fn decide_by_hand(
        &self,
        caller: Caller<'_>,
        name: &str,
        decisions: Vec<SlotDecision>,
        times: &dyn SlotTimes,
    ) -> Result<Vec<Decided>> {
        self.write(|inner| inner.decide_by_hand(caller, name, decisions, times))
    }

    fn cancel_slot_run(
        &self,
        caller: Caller<'_>,
        name: &str,
        at: Timestamp,
        why: &str,
    ) -> Result<Slot> {
        self.write(|inner| inner.cancel_slot_run(caller, name, at, why))
    }

    fn resolve_slot(&self, caller: Caller<'_>, name: &str, decision: SlotDecision) -> Result<Slot> {
        self.write(|inner| inner.resolve_slot(caller, name, decision))
    }

    fn gate_states(&self, owner: &str, names: &[String], at: Timestamp) -> Result<Vec<GateState>> {
        self.inner.gate_states(owner, names, at)
    }

    fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        self.inner.due_schedules(now, limit)
    }

    fn next_fire(&self) -> Result<Option<Timestamp>> {
        self.inner.next_fire()
    }

    fn open_slots(&self, limit: u32) -> Result<Vec<(Schedule, Slot)>> {
        self.inner.open_slots(limit)
    }
}
