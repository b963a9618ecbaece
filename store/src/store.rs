//! The store's operations, as the engine and the owner-bound handle see them. [`FlowStore`] is
//! object-safe (`Arc<dyn FlowStore>`); every [`crate::Backend`] is one, with the semantics of
//! [`crate::semantics`].

use std::time::Duration;

use crate::audit::Finding;
use crate::error::Result;
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
use crate::time::Timestamp;

/// How a write handed to [`FlowStore::submit`] is answered: once, when it is durable or refused.
pub type Answer<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// A write handed to a backend's writer to be committed together with others (group commit).
pub enum Submission {
    /// A runner's ops, as for [`FlowStore::checkpoint`].
    Checkpoint { ops: Vec<CheckpointOp>, answer: Answer<Vec<Result<CheckpointDone>>> },
    /// The lease for a run that starts, as for [`FlowStore::acquire_lease`].
    Lease { id: FlowId, holder: LeaseHolder, ttl: Duration, answer: Answer<Lease> },
    /// A mirrored flow's report, as for [`FlowStore::report`].
    Report { id: FlowId, report: StateReport, expected: ExpectedRevision, answer: Answer<Flow> },
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Submission::Checkpoint { ops, .. } => f.debug_tuple("Checkpoint").field(ops).finish(),
            Submission::Lease { id, .. } => f.debug_tuple("Lease").field(id).finish(),
            Submission::Report { id, .. } => f.debug_tuple("Report").field(id).finish(),
        }
    }
}

/// On whose behalf an operation runs: the owner scopes every lookup (another owner's flow is
/// not found), the actor is written into the revision rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    pub owner: &'a str,
    pub actor: &'a str,
}

/// A durable home for flows. Every method is one atomic operation: it sees one consistent
/// state, checks the rules against it, and either applies all of its changes (each accepted
/// change to a flow bumps its revision and appends a revision row; a step that begins or ends
/// is a row of the flow's journal and no change to the flow) or none.
///
/// Programs do not call this directly: they go through [`crate::TaskFlow`], which injects the
/// owner.
pub trait FlowStore: Send + Sync {
    /// Creates a `queued` flow at revision 1.
    fn create_flow(&self, caller: Caller<'_>, new: NewFlow) -> Result<Flow>;

    /// [`create_flow`](Self::create_flow), the new flow's lease taken for `holder` in the same
    /// transaction: the process that creates a flow to run it runs it, and no other runner (a
    /// worker woken by the creation) claims it first.
    fn create_held(
        &self,
        caller: Caller<'_>,
        new: NewFlow,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)>;

    /// Creates a `queued` child flow under the leased parent, and a `child` step on the parent
    /// that ends when the child ends. Refused when the parent is terminal, mirrored or has a
    /// cancel request; the check and the insert are one transaction, so a concurrent cancel
    /// either comes first (and the spawn is refused) or sees the child (and cancels it too).
    fn spawn_child(&self, caller: Caller<'_>, parent: &Lease, new: NewFlow)
    -> Result<(Flow, Step)>;

    fn flow(&self, owner: &str, id: &FlowId) -> Result<Flow>;

    /// [`Self::flow`] without its spec (`spec` is `None`): the spec can be large and no change
    /// after creation touches it.
    fn flow_without_spec(&self, owner: &str, id: &FlowId) -> Result<Flow>;

    /// A flow's spec as the JSON text it was stored as, for a caller that reads it into its own
    /// types (a large spec costs much less to read that way than through a [`serde_json::Value`]).
    fn spec_json(&self, owner: &str, id: &FlowId) -> Result<Option<String>>;

    /// Flows newest first.
    fn list(&self, owner: &str, query: &ListQuery) -> Result<Vec<FlowSummary>>;

    /// A flow's steps in order.
    fn steps(&self, owner: &str, id: &FlowId) -> Result<Vec<Step>>;

    /// [`Self::flow_without_spec`], [`Self::spec_json`] and [`Self::steps`] in one read, for a
    /// run that holds the flow's lease already (a claim's): no other runner writes its journal
    /// meanwhile. A run that is yet to take the lease reads the journal once it holds it.
    fn run_start(&self, owner: &str, id: &FlowId) -> Result<RunStart>;

    /// A flow's children, oldest first.
    fn children(&self, owner: &str, id: &FlowId) -> Result<Vec<ChildSummary>>;

    /// A flow's revisions, oldest first.
    fn history(&self, owner: &str, id: &FlowId) -> Result<Vec<Revision>>;

    /// Sticky cancel: records `cancel_requested_at` (once), passes the request on to active
    /// children, and cancels every managed flow of the tree that has no running step left.
    fn request_cancel(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        expected: ExpectedRevision,
    ) -> Result<CancelOutcome>;

    /// A mirrored flow's owner reports its state.
    fn report(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        report: StateReport,
        expected: ExpectedRevision,
    ) -> Result<Flow>;

    /// Takes the lease on a managed flow for `holder`, replacing one that expired or whose
    /// holder process is gone; refused while another lease is live.
    fn acquire_lease(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<Lease>;

    /// Several [`Self::acquire_lease`]s in one transaction (one commit for many runners
    /// starting at once), each refused on its own. The outer error is a database failure.
    fn acquire_leases(
        &self,
        caller: Caller<'_>,
        requests: Vec<(FlowId, LeaseHolder, Duration)>,
    ) -> Result<Vec<Result<Lease>>> {
        Ok(requests
            .into_iter()
            .map(|(id, holder, ttl)| self.acquire_lease(caller, &id, holder, ttl))
            .collect())
    }

    /// Takes the leases on up to `limit` flows of any owner that no live runner holds (queued;
    /// running under a lease that expired or whose holder, on this host, is gone; waiting and
    /// due) for `holder`, in one transaction, none of `skip` (flows the claimer would not run
    /// now). Claimers at once get disjoint sets, none waiting for another.
    fn claim(
        &self,
        holder: &LeaseHolder,
        ttl: Duration,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<Claim>>;

    /// Extends a held lease. Not a change of the flow: no revision.
    fn renew_lease(&self, caller: Caller<'_>, lease: &Lease, ttl: Duration) -> Result<Lease>;

    /// Gives a held lease up.
    fn release_lease(&self, caller: Caller<'_>, lease: &Lease) -> Result<Flow>;

    /// The runner changes the status of its managed flow. A flow cannot end while it has running
    /// steps.
    fn set_status(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        to: FlowStatus,
        error: Option<String>,
    ) -> Result<Flow>;

    /// The runner schedules a step; refused after a cancel request.
    fn begin_step(&self, caller: Caller<'_>, lease: &Lease, step: NewStep) -> Result<Step>;

    /// The runner records how a step ended. If the flow has a cancel request and this was its
    /// last running step, the flow becomes `cancelled` in the same transaction.
    fn finish_step(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        outcome: StepOutcome,
    ) -> Result<Step>;

    /// Applies a runner's writes, possibly for several flows, in one transaction (group
    /// commit): each op is checked and applied on its own and answered in order, and all the
    /// accepted ones are durable when this returns. The outer error is a failure of the
    /// transaction itself, which then applied nothing.
    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>>;

    /// Hands a write to the backend's writer, to be committed in one transaction with whatever
    /// other callers (of any owner) hand it meanwhile, and answers it through the submission
    /// once it is durable or refused. Nothing blocks the caller's async tasks: a backend
    /// without a writer of its own commits it at once on the caller's thread, and on a thread
    /// that drives a multi-threaded runtime it lets the runtime move the thread's other tasks
    /// elsewhere meanwhile.
    fn submit(&self, owner: &str, actor: &str, work: Submission);

    /// Events after `query.after`, oldest first (the change feed); with `owner`, only that
    /// owner's.
    fn events(&self, owner: Option<&str>, query: &EventQuery) -> Result<Vec<Event>>;

    /// The newest event's id, of every owner (0 when there is none): where a watcher that wants
    /// only what comes next starts.
    fn last_event_id(&self) -> Result<u64>;

    /// Deletes every owner's events older than `before`, but the newest; returns how many
    /// went.
    fn prune_events(&self, before: Timestamp) -> Result<u64>;

    /// Every owner's managed flows that no live runner holds ([`Adoptable`]), oldest first, then
    /// the waiting flows that are due, the longest due first: what a recovery sweep runs.
    fn adoptable(&self, limit: u32) -> Result<Vec<Adoptable>>;

    /// The earliest instant a waiting flow of any owner is due to run again.
    fn next_wake(&self) -> Result<Option<Timestamp>>;

    /// Stores a signal for a managed flow that has not ended (durable when this returns) and
    /// records its arrival in the flow's history; a flow waiting for it is due at once.
    fn send_signal(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(Signal, Flow)>;

    /// Records a person's decision about tool call `call_id`, which flow `id` waits for
    /// (durable when this returns); the flow is due at once. A call is decided once.
    fn decide_approval(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        call_id: &str,
        decision: &crate::model::ApprovalDecision,
    ) -> Result<(Signal, Flow)>;

    /// A running step of the leased flow takes the oldest signal of `name` that no step has
    /// taken (the one it took already, if it took one); `None` when none has arrived.
    fn take_signal(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        name: &str,
    ) -> Result<Option<Signal>>;

    /// A flow's signals, in the order they arrived.
    fn signals(&self, owner: &str, id: &FlowId) -> Result<Vec<Signal>>;

    /// Which of `ids` have a cancel request (a runner's poll).
    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>>;

    /// Opens a `failed` managed flow again (back to `queued`, error and end cleared) so that a
    /// resume retries it, and takes its lease for `holder` in the same transaction: no other
    /// runner (a worker woken by the change) can claim it first. Refused for every other status
    /// and for child flows.
    fn reopen(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)>;

    /// A new `queued` flow with the source's name, goal and spec, and a copy of its succeeded
    /// steps before step `from_seq` (renumbered from 1). The source must have ended.
    fn fork(&self, caller: Caller<'_>, source: &FlowId, from_seq: u32) -> Result<Flow>;

    /// [`fork`](Self::fork), the new flow's lease taken for `holder` in the same transaction,
    /// as [`create_held`](Self::create_held) does.
    fn fork_held(
        &self,
        caller: Caller<'_>,
        source: &FlowId,
        from_seq: u32,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)>;

    /// What is wrong with the unfinished flows of `owner` (of every owner with `None`): see
    /// [`crate::audit`]. Reading changes nothing.
    fn audit(&self, owner: Option<&str>) -> Result<Vec<Finding>>;

    /// Makes the safe repair of `finding` (judged again first) as the caller's actor; what was
    /// done, or `None` when nothing was left to repair.
    fn repair(&self, caller: Caller<'_>, finding: &Finding) -> Result<Option<String>>;

    /// The database's own integrity check: the problems it reports (none when it is sound).
    fn integrity_check(&self) -> Result<Vec<String>>;

    /// Removes one batch of ended flows with their journals (see [`crate::prune`]), in one
    /// transaction; with `owner`, only that owner's.
    fn prune(&self, owner: Option<&str>, query: &PruneQuery) -> Result<PruneBatch>;

    /// Gives the space of removed rows back to the file system (SQLite's `VACUUM`).
    fn compact(&self) -> Result<()>;

    /// Tries to become the one holder of `role` among the processes sharing this database
    /// (the scheduler among several serves): `None` while another holds it. The role is held
    /// until the [`Leadership`] is dropped or reports it lost, or the process dies.
    fn lead(&self, role: &str) -> Result<Option<Leadership>>;

    /// Adds a schedule (`replace` false) or applies one (created, or brought up to date);
    /// see [`crate::semantics::put_schedule`].
    fn put_schedule(&self, caller: Caller<'_>, new: NewSchedule, replace: bool) -> Result<Put>;

    /// Pauses or resumes a schedule; resuming records what it missed (`resumed`: the missed
    /// slots' record, the cursor and when it fires).
    fn set_paused(
        &self,
        caller: Caller<'_>,
        name: &str,
        paused: bool,
        resumed: Option<Resumed>,
    ) -> Result<Schedule>;

    /// Removes a schedule; refused while another runs after it.
    fn remove_schedule(&self, caller: Caller<'_>, name: &str) -> Result<Schedule>;

    /// An owner's schedules by name, each with its latest slot.
    fn schedules(&self, owner: &str) -> Result<Vec<ScheduleSummary>>;

    /// A schedule and its slots, newest first (before `before`, at most `limit`).
    fn schedule(
        &self,
        owner: &str,
        name: &str,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<(Schedule, Vec<Slot>)>;

    /// A schedule's revisions, oldest first.
    fn schedule_history(&self, owner: &str, name: &str) -> Result<Vec<crate::model::Revision>>;

    /// The scheduler's decisions about a schedule's slots, written with its new cursor if its
    /// cursor is still `expected`; see [`crate::semantics::decide`].
    fn decide_slots(
        &self,
        caller: Caller<'_>,
        name: &str,
        decisions: Decisions,
    ) -> Result<Vec<Decided>>;

    /// Decisions made by hand about a schedule's slots (a trigger, a backfill), its cursor left
    /// alone; `times` gives its slots, to split a range of missed slots that holds one decided;
    /// see [`crate::semantics::decide_by_hand`].
    fn decide_by_hand(
        &self,
        caller: Caller<'_>,
        name: &str,
        decisions: Vec<SlotDecision>,
        times: &dyn SlotTimes,
    ) -> Result<Vec<Decided>>;

    /// Asks for the cancel of the run of a schedule's slot and records why on the slot's
    /// record, in one transaction (a scheduler's cancel: a timeout, overlap `cancel-other`); see
    /// [`crate::semantics::cancel_slot_run`].
    fn cancel_slot_run(
        &self,
        caller: Caller<'_>,
        name: &str,
        at: Timestamp,
        why: &str,
    ) -> Result<Slot>;

    /// Decides a slot that waited (gated, buffered).
    fn resolve_slot(&self, caller: Caller<'_>, name: &str, decision: SlotDecision) -> Result<Slot>;

    /// Where the schedules `names` of `owner` stand for a slot gated on them at `at`.
    fn gate_states(&self, owner: &str, names: &[String], at: Timestamp) -> Result<Vec<GateState>>;

    /// Every owner's schedules whose next slot fires at or before `now` and that are not
    /// paused, the earliest first.
    fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>>;

    /// When the next slot of any schedule that is not paused fires.
    fn next_fire(&self) -> Result<Option<Timestamp>>;

    /// Every owner's slots that are not decided for good, oldest first, each with its
    /// schedule.
    fn open_slots(&self, limit: u32) -> Result<Vec<(Schedule, Slot)>>;
}

/// What a resume records: the slots the schedule missed while paused (a range), and where its
/// cursor goes (the next slot, and when it fires).
pub type Resumed = (Option<SlotDecision>, Option<Timestamp>, Option<Timestamp>);

/// A scheduler's decisions about one schedule: the cursor it read, the slots it decided, and
/// the cursor after them (with when that slot fires).
#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    pub expected: Option<Timestamp>,
    pub slots: Vec<SlotDecision>,
    pub next_slot: Option<Timestamp>,
    pub next_fire: Option<Timestamp>,
}
