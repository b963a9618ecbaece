//! The owner-bound API. [`TaskFlow`] wraps a store; [`TaskFlow::bind`] gives an
//! [`OwnerHandle`] for one owner, and every query and mutation goes through such a handle with
//! the owner injected, never passed per call. Another owner's flow is `NotFound`, exactly like a
//! missing id, so a handle cannot even learn that it exists.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::Finding;
use crate::error::{Error, Result};
use crate::event::{Event, EventQuery};
use crate::lease::{self, CurrentLease, Decision, Lease, LeaseHolder};
use crate::model::{
    Adoptable, CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, Claim, ExpectedRevision,
    Flow, FlowId, FlowSummary, ListQuery, NewFlow, NewStep, ResumePlan, Revision, RunStart, Signal,
    StateReport, Step, StepKind, StepOutcome,
};
use crate::prune::{PruneBatch, PruneQuery};
use crate::rules;
use crate::schedule::{
    Decided, GateState, NewSchedule, Put, Schedule, ScheduleSummary, Slot, SlotDecision, SlotTimes,
};
use crate::status::FlowStatus;
use crate::store::{Answer, Caller, Decisions, FlowStore, Resumed, Submission};
use crate::time::Timestamp;

/// A flow store, ready to be bound to an owner.
#[derive(Clone)]
pub struct TaskFlow {
    store: Arc<dyn FlowStore>,
}

impl std::fmt::Debug for TaskFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFlow").finish_non_exhaustive()
    }
}

impl TaskFlow {
    /// Uses any [`FlowStore`] backend.
    pub fn new(store: Arc<dyn FlowStore>) -> Self {
        TaskFlow { store }
    }

    /// Every owner's events after `query.after`, oldest first: the whole change feed, for a
    /// server that hands each owner's part to its watchers.
    pub fn all_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        self.store.events(None, query)
    }

    /// The newest event's id of the whole feed (0 when there is none).
    pub fn last_event_id(&self) -> Result<u64> {
        self.store.last_event_id()
    }

    /// Every owner's managed flows that no live runner holds, oldest first, at most `limit`:
    /// what a recovery sweep runs, each for its owner.
    pub fn adoptable(&self, limit: u32) -> Result<Vec<Adoptable>> {
        self.store.adoptable(limit)
    }

    /// Takes the leases on up to `limit` flows of any owner that no live runner holds, for this
    /// process, none of `skip`: what a worker runs next, each lease already held
    /// ([`FlowStore::claim`]).
    pub fn claim(&self, ttl: Duration, limit: u32, skip: &[FlowId]) -> Result<Vec<Claim>> {
        self.claim_as(&LeaseHolder::current(), ttl, limit, skip)
    }

    /// [`Self::claim`] for an explicit holder.
    pub fn claim_as(
        &self,
        holder: &LeaseHolder,
        ttl: Duration,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<Claim>> {
        self.store.claim(holder, ttl, limit, skip)
    }

    /// The earliest instant a waiting flow of any owner is due to run again: when a server
    /// that wakes them looks next.
    pub fn next_wake(&self) -> Result<Option<Timestamp>> {
        self.store.next_wake()
    }

    /// Every owner's schedules that are due (not paused, next slot fires at or before `now`),
    /// the earliest first: what a scheduler decides next, each for its owner.
    pub fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        self.store.due_schedules(now, limit)
    }

    /// When the next slot of any schedule that is not paused fires.
    pub fn next_fire(&self) -> Result<Option<Timestamp>> {
        self.store.next_fire()
    }

    /// Tries to become the one holder of `role` among the processes sharing this database
    /// ([`FlowStore::lead`]); `None` while another holds it.
    pub fn lead(&self, role: &str) -> Result<Option<crate::Leadership>> {
        self.store.lead(role)
    }

    /// Every owner's slots that are not decided for good (running, gated, buffered), with
    /// their schedules.
    pub fn open_slots(&self, limit: u32) -> Result<Vec<(Schedule, Slot)>> {
        self.store.open_slots(limit)
    }

    /// Deletes every owner's events older than `before` (but the newest, which keeps ids
    /// increasing): retention, for whoever runs the store.
    pub fn prune_events(&self, before: Timestamp) -> Result<u64> {
        self.store.prune_events(before)
    }

    /// The handle through which `owner` sees and changes its flows. Revisions it writes name
    /// the owner as their actor unless [`OwnerHandle::with_actor`] says otherwise.
    pub fn bind(&self, owner: impl Into<String>) -> Result<OwnerHandle> {
        let owner = owner.into();
        rules::check_text("owner", &owner)?;
        Ok(OwnerHandle { store: Arc::clone(&self.store), actor: owner.clone(), owner })
    }
}

/// A flow, its steps and its children, as `flows inspect` shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub flow: Flow,
    pub steps: Vec<Step>,
    pub children: Vec<ChildSummary>,
    /// The `llm` steps of its descendant flows (a pipeline's agent runs): what they spent
    /// counts toward the flow's usage.
    pub descendant_llm_steps: Vec<Step>,
    /// Its descendant flows, whose specs say what their `llm` steps' models cost.
    pub descendants: Vec<Flow>,
}

/// One owner's view of the store. Cheap to clone.
#[derive(Clone)]
pub struct OwnerHandle {
    store: Arc<dyn FlowStore>,
    owner: String,
    actor: String,
}

impl std::fmt::Debug for OwnerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerHandle")
            .field("owner", &self.owner)
            .field("actor", &self.actor)
            .finish()
    }
}

impl OwnerHandle {
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The same owner, writing revisions as `actor` (e.g. `runner host:pid`).
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    fn caller(&self) -> Caller<'_> {
        Caller { owner: &self.owner, actor: &self.actor }
    }

    // Queries.

    pub fn flow(&self, id: &FlowId) -> Result<Flow> {
        self.store.flow(&self.owner, id)
    }

    /// [`Self::flow`] without its spec (`spec` is `None`).
    pub fn flow_without_spec(&self, id: &FlowId) -> Result<Flow> {
        self.store.flow_without_spec(&self.owner, id)
    }

    /// The flow's spec as the JSON text it was stored as.
    pub fn spec_json(&self, id: &FlowId) -> Result<Option<String>> {
        self.store.spec_json(&self.owner, id)
    }

    /// This owner's flows newest first (every owner's with `query.all_owners`).
    pub fn list(&self, query: &ListQuery) -> Result<Vec<FlowSummary>> {
        self.store.list(&self.owner, query)
    }

    pub fn steps(&self, id: &FlowId) -> Result<Vec<Step>> {
        self.store.steps(&self.owner, id)
    }

    /// What a run that holds the flow's lease starts from, in one read.
    pub fn run_start(&self, id: &FlowId) -> Result<RunStart> {
        self.store.run_start(&self.owner, id)
    }

    pub fn children(&self, id: &FlowId) -> Result<Vec<ChildSummary>> {
        self.store.children(&self.owner, id)
    }

    pub fn history(&self, id: &FlowId) -> Result<Vec<Revision>> {
        self.store.history(&self.owner, id)
    }

    /// The steps of `kind` of every descendant of a flow (its children, theirs, …).
    pub fn descendant_steps(&self, id: &FlowId, kind: StepKind) -> Result<Vec<Step>> {
        let mut found = Vec::new();
        let mut parents = vec![id.clone()];
        while let Some(parent) = parents.pop() {
            for child in self.children(&parent)? {
                found.extend(self.steps(&child.id)?.into_iter().filter(|step| step.kind == kind));
                parents.push(child.id);
            }
        }
        Ok(found)
    }

    /// Every descendant of a flow (its children, theirs, …).
    pub fn descendants(&self, id: &FlowId) -> Result<Vec<Flow>> {
        let mut found = Vec::new();
        let mut parents = vec![id.clone()];
        while let Some(parent) = parents.pop() {
            for child in self.children(&parent)? {
                found.push(self.flow(&child.id)?);
                parents.push(child.id);
            }
        }
        Ok(found)
    }

    pub fn inspect(&self, id: &FlowId) -> Result<Inspection> {
        Ok(Inspection {
            flow: self.flow(id)?,
            steps: self.steps(id)?,
            children: self.children(id)?,
            descendant_llm_steps: self.descendant_steps(id, StepKind::Llm)?,
            descendants: self.descendants(id)?,
        })
    }

    // Mutations anyone with the handle may make.

    pub fn create(&self, new: NewFlow) -> Result<Flow> {
        self.store.create_flow(self.caller(), new)
    }

    /// Creates a flow for this process to run, its lease taken with it for `ttl`; see
    /// [`FlowStore::create_held`].
    pub fn create_held(&self, new: NewFlow, ttl: Duration) -> Result<(Flow, Lease)> {
        self.store.create_held(self.caller(), new, &LeaseHolder::current(), ttl)
    }

    /// Sticky cancel: see [`FlowStore::request_cancel`].
    pub fn request_cancel(&self, id: &FlowId, expected: ExpectedRevision) -> Result<CancelOutcome> {
        self.store.request_cancel(self.caller(), id, expected)
    }

    /// A mirrored flow's owner reports its state; refused for managed flows.
    pub fn report(
        &self,
        id: &FlowId,
        report: StateReport,
        expected: ExpectedRevision,
    ) -> Result<Flow> {
        self.store.report(self.caller(), id, report, expected)
    }

    /// What `resume` would do with this flow, or why it is refused: a mirrored flow is never
    /// resumed, an ended one has nothing left, and a flow another live runner holds is busy.
    /// The engine calls this before taking the lease.
    pub fn check_resume(&self, id: &FlowId) -> Result<ResumePlan> {
        let flow = self.flow(id)?;
        let now = Timestamp::now();
        let plan = rules::resume_plan(&flow, now)?;
        if let Some(current) = &flow.lease {
            let current =
                CurrentLease { holder: current.holder.clone(), expires_at: current.expires_at };
            let gone = current.holder.is_gone(&lease::host_name());
            if lease::decide(Some(&current), now, gone) == Decision::Refuse {
                return Err(Error::LeaseHeld {
                    id: id.to_string(),
                    holder: current.holder.to_string(),
                    expires_at: current.expires_at,
                });
            }
        }
        Ok(plan)
    }

    // The runner's side of a managed flow.

    /// Takes the lease on a managed flow for this process.
    pub fn acquire_lease(&self, id: &FlowId, ttl: Duration) -> Result<Lease> {
        self.acquire_lease_as(id, LeaseHolder::current(), ttl)
    }

    /// Takes the lease for an explicit holder.
    pub fn acquire_lease_as(
        &self,
        id: &FlowId,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<Lease> {
        self.store.acquire_lease(self.caller(), id, holder, ttl)
    }

    /// Takes the leases on several flows for this process in one transaction, each refused on
    /// its own.
    pub fn acquire_leases(&self, requests: &[(FlowId, Duration)]) -> Result<Vec<Result<Lease>>> {
        let holder = LeaseHolder::current();
        let requests =
            requests.iter().map(|(id, ttl)| (id.clone(), holder.clone(), *ttl)).collect();
        self.store.acquire_leases(self.caller(), requests)
    }

    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.store.renew_lease(self.caller(), lease, ttl)
    }

    pub fn release_lease(&self, lease: &Lease) -> Result<Flow> {
        self.store.release_lease(self.caller(), lease)
    }

    pub fn set_status(&self, lease: &Lease, to: FlowStatus, error: Option<String>) -> Result<Flow> {
        self.store.set_status(self.caller(), lease, to, error)
    }

    pub fn begin_step(&self, lease: &Lease, step: NewStep) -> Result<Step> {
        self.store.begin_step(self.caller(), lease, step)
    }

    pub fn finish_step(&self, lease: &Lease, seq: u32, outcome: StepOutcome) -> Result<Step> {
        self.store.finish_step(self.caller(), lease, seq, outcome)
    }

    /// Spawns a child flow under the leased parent; see [`FlowStore::spawn_child`].
    pub fn spawn_child(&self, parent: &Lease, new: NewFlow) -> Result<(Flow, Step)> {
        self.store.spawn_child(self.caller(), parent, new)
    }

    /// Several runner writes in one transaction; see [`FlowStore::checkpoint`].
    pub fn checkpoint(&self, ops: Vec<CheckpointOp>) -> Result<Vec<Result<CheckpointDone>>> {
        self.store.checkpoint(self.caller(), ops)
    }

    /// Hands `ops` to the store's writer, to be committed with other callers' writes; `answer`
    /// hears how they ended once they are durable (see [`FlowStore::submit`]).
    pub fn submit_checkpoint(
        &self,
        ops: Vec<CheckpointOp>,
        answer: Answer<Vec<Result<CheckpointDone>>>,
    ) {
        self.store.submit(&self.owner, &self.actor, Submission::Checkpoint { ops, answer })
    }

    /// Hands a lease request for this process to the store's writer, to be granted or refused
    /// in one transaction with the others waiting.
    pub fn submit_lease(&self, id: &FlowId, ttl: Duration, answer: Answer<Lease>) {
        let work =
            Submission::Lease { id: id.clone(), holder: LeaseHolder::current(), ttl, answer };
        self.store.submit(&self.owner, &self.actor, work)
    }

    /// This owner's events after `query.after`, oldest first: the changes of its flows in the
    /// order they were committed.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        self.store.events(Some(&self.owner), query)
    }

    /// Hands a mirrored flow's report to the store's writer, to be committed with other
    /// callers' writes (see [`FlowStore::submit`]); `answer` hears the flow as it left it.
    pub fn submit_report(
        &self,
        id: &FlowId,
        report: StateReport,
        expected: ExpectedRevision,
        answer: Answer<Flow>,
    ) {
        let work = Submission::Report { id: id.clone(), report, expected, answer };
        self.store.submit(&self.owner, &self.actor, work)
    }

    /// Delivers signal `name` to a managed flow that has not ended: stored durably (and recorded
    /// in its history) when this returns, kept until a step waiting for it takes it; a flow
    /// waiting for it is due at once. `payload` becomes that step's output.
    pub fn send_signal(
        &self,
        id: &FlowId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(Signal, Flow)> {
        self.store.send_signal(self.caller(), id, name, payload)
    }

    /// Records a person's decision about tool call `call_id` that flow `id` waits for (see
    /// [`FlowStore::decide_approval`]): durable when this returns, decided once.
    pub fn decide_approval(
        &self,
        id: &FlowId,
        call_id: &str,
        decision: &crate::model::ApprovalDecision,
    ) -> Result<(Signal, Flow)> {
        self.store.decide_approval(self.caller(), id, call_id, decision)
    }

    /// The running step `seq` of the leased flow takes the oldest signal `name` no step has
    /// taken (see [`FlowStore::take_signal`]).
    pub fn take_signal(&self, lease: &Lease, seq: u32, name: &str) -> Result<Option<Signal>> {
        self.store.take_signal(self.caller(), lease, seq, name)
    }

    /// A flow's signals, in the order they arrived.
    pub fn signals(&self, id: &FlowId) -> Result<Vec<Signal>> {
        self.store.signals(&self.owner, id)
    }

    /// Which of `ids` have a cancel request.
    pub fn cancel_requested(&self, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        self.store.cancel_requested(&self.owner, ids)
    }

    /// What is wrong with this owner's unfinished flows (every owner's with `all_owners`).
    pub fn audit(&self, all_owners: bool) -> Result<Vec<Finding>> {
        self.store.audit((!all_owners).then_some(self.owner.as_str()))
    }

    /// Makes the safe repair of one of this owner's findings, as this handle's actor.
    pub fn repair(&self, finding: &Finding) -> Result<Option<String>> {
        self.store.repair(self.caller(), finding)
    }

    /// Removes one batch of this owner's ended flows (every owner's with `query.all_owners`).
    pub fn prune(&self, query: &PruneQuery) -> Result<PruneBatch> {
        self.store.prune((!query.all_owners).then_some(self.owner.as_str()), query)
    }

    /// Gives the space of removed rows back to the file system.
    pub fn compact(&self) -> Result<()> {
        self.store.compact()
    }

    /// The database's own integrity check: the problems it reports.
    pub fn integrity_check(&self) -> Result<Vec<String>> {
        self.store.integrity_check()
    }

    /// Opens a failed flow again so that it can be resumed, its lease taken for this process
    /// for `ttl`; see [`FlowStore::reopen`].
    pub fn reopen(&self, id: &FlowId, ttl: Duration) -> Result<(Flow, Lease)> {
        self.store.reopen(self.caller(), id, &LeaseHolder::current(), ttl)
    }

    /// Copies an ended flow's journal before step `from_seq` into a new queued flow.
    pub fn fork(&self, source: &FlowId, from_seq: u32) -> Result<Flow> {
        self.store.fork(self.caller(), source, from_seq)
    }

    /// [`fork`](Self::fork) for this process to run, its lease taken with it for `ttl`; see
    /// [`FlowStore::fork_held`].
    pub fn fork_held(
        &self,
        source: &FlowId,
        from_seq: u32,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        self.store.fork_held(self.caller(), source, from_seq, &LeaseHolder::current(), ttl)
    }

    // Schedules.

    /// Adds a schedule; one of that name (of any owner) is refused.
    pub fn add_schedule(&self, new: NewSchedule) -> Result<Schedule> {
        Ok(self.store.put_schedule(self.caller(), new, false)?.schedule)
    }

    /// Creates a schedule or brings it up to date (the same again changes nothing).
    pub fn apply_schedule(&self, new: NewSchedule) -> Result<Put> {
        self.store.put_schedule(self.caller(), new, true)
    }

    pub fn pause_schedule(&self, name: &str) -> Result<Schedule> {
        self.store.set_paused(self.caller(), name, true, None)
    }

    /// Resumes a schedule, recording what it missed while paused and moving its cursor.
    pub fn resume_schedule(&self, name: &str, resumed: Resumed) -> Result<Schedule> {
        self.store.set_paused(self.caller(), name, false, Some(resumed))
    }

    pub fn remove_schedule(&self, name: &str) -> Result<Schedule> {
        self.store.remove_schedule(self.caller(), name)
    }

    /// This owner's schedules by name, each with its latest slot.
    pub fn schedules(&self) -> Result<Vec<ScheduleSummary>> {
        self.store.schedules(&self.owner)
    }

    /// A schedule and its slots, newest first.
    pub fn schedule(
        &self,
        name: &str,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<(Schedule, Vec<Slot>)> {
        self.store.schedule(&self.owner, name, before, limit)
    }

    pub fn schedule_history(&self, name: &str) -> Result<Vec<Revision>> {
        self.store.schedule_history(&self.owner, name)
    }

    /// A scheduler's decisions about a schedule's slots (see [`FlowStore::decide_slots`]).
    pub fn decide_slots(&self, name: &str, decisions: Decisions) -> Result<Vec<Decided>> {
        self.store.decide_slots(self.caller(), name, decisions)
    }

    /// Decisions made by hand about a schedule's slots, its cursor left alone (see
    /// [`FlowStore::decide_by_hand`]).
    pub fn decide_by_hand(
        &self,
        name: &str,
        decisions: Vec<SlotDecision>,
        times: &dyn SlotTimes,
    ) -> Result<Vec<Decided>> {
        self.store.decide_by_hand(self.caller(), name, decisions, times)
    }

    /// Asks for the cancel of the run of a schedule's slot `at`, recording why on the slot's
    /// record (see [`FlowStore::cancel_slot_run`]).
    pub fn cancel_slot_run(&self, name: &str, at: Timestamp, why: &str) -> Result<Slot> {
        self.store.cancel_slot_run(self.caller(), name, at, why)
    }

    /// Decides a slot that waited.
    pub fn resolve_slot(&self, name: &str, decision: SlotDecision) -> Result<Slot> {
        self.store.resolve_slot(self.caller(), name, decision)
    }

    /// Where this owner's schedules `names` stand for a slot gated on them at `at`.
    pub fn gate_states(&self, names: &[String], at: Timestamp) -> Result<Vec<GateState>> {
        self.store.gate_states(&self.owner, names, at)
    }
}
