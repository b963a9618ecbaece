//! The rows of one transaction: [`StoreTx`], what a backend writes and reads for the
//! semantics (a flow row, a step row, a revision row, a few counts).
//!
//! **Per-flow serialization.** The semantics rely on this, and a backend must guarantee it:
//! inside a write transaction, [`StoreTx::load_flow`] locks the flow's row until the transaction
//! ends, and every write to a flow's row, its steps or its revisions happens after the
//! transaction loaded that flow. So two transactions never interleave on one flow: the next
//! step's seq (`last_seq + 1`), a revision number, a cancel request and the check of a spawn
//! cannot race. SQLite gets this from `BEGIN IMMEDIATE` (one writer at a time); a server
//! database from `SELECT … FOR UPDATE`. A backend that detects a conflict it cannot order (a
//! deadlock, a serialization failure) fails the transaction with
//! [`StorageErrorKind::Conflict`](crate::StorageErrorKind::Conflict), having written nothing.

use serde_json::Value;

use crate::error::Result;
use crate::event::{Event, EventQuery, NewEvent};
use crate::model::{
    ChildSummary, FieldChange, Flow, FlowId, FlowSummary, ListQuery, Revision, Signal, Step,
};
use crate::prune::PruneQuery;
use crate::revision::FieldSet;
use crate::schedule::{Schedule, ScheduleSummary, Slot};
use crate::status::StepStatus;
use crate::time::Timestamp;

/// The row-level work of one transaction. Every method sees the transaction's own writes.
/// Ids and owners are taken as given: the semantics check them.
pub trait StoreTx {
    /// Flow `id`, with its lease token; with `owner`, only if that owner's. `with_spec` reads
    /// the spec too (otherwise `spec` is `None`). In a write transaction the flow stays locked
    /// until the transaction ends (see the module doc).
    fn load_flow(
        &self,
        owner: Option<&str>,
        id: &FlowId,
        with_spec: bool,
    ) -> Result<Option<(Flow, Option<String>)>>;

    /// The spec of flow `id` as the JSON text it was stored as.
    fn spec_text(&self, id: &FlowId) -> Result<Option<String>>;

    /// Whether any flow, of any owner, has this id.
    fn flow_exists(&self, id: &FlowId) -> Result<bool>;

    /// Inserts a new flow row (and its spec) as given.
    fn insert_flow(&self, flow: &Flow) -> Result<()>;

    /// Writes the `fields` of `after` over the row of a flow still at `before.revision`, with
    /// `after.revision` and `after.updated_at`; `new_token` replaces the lease token. Returns
    /// false, having written nothing, when the row is missing or at another revision. Under the
    /// lock `load_flow` took, that never happens; a backend that does not wait for the write's
    /// answer may instead fail the whole transaction when it finds so (PostgreSQL).
    fn update_flow(
        &self,
        before: &Flow,
        after: &Flow,
        fields: FieldSet,
        new_token: Option<&str>,
    ) -> Result<bool>;

    /// The stored revision of flow `id`.
    fn flow_revision(&self, id: &FlowId) -> Result<Option<u64>>;

    /// Appends revision `revision` of flow `id` (a backend may send it with its next statement:
    /// a failure then fails the transaction).
    fn insert_revision(
        &self,
        id: &FlowId,
        revision: u64,
        at: Timestamp,
        actor: &str,
        changes: &[FieldChange],
    ) -> Result<()>;

    /// Moves the expiry of the lease `token` holds on flow `id` (no revision: a renewal is not
    /// a change of the flow).
    fn renew_lease(&self, id: &FlowId, token: &str, expires_at: Timestamp) -> Result<()>;

    /// Children of flow `id` that have not ended and have no cancel request, oldest first.
    fn active_children(&self, id: &FlowId) -> Result<Vec<FlowId>>;

    /// The highest seq in flow `id`'s journal.
    fn last_seq(&self, id: &FlowId) -> Result<Option<u32>>;

    /// Inserts a step row as given.
    fn insert_step(&self, step: &Step) -> Result<()>;

    fn load_step(&self, id: &FlowId, seq: u32) -> Result<Option<Step>>;

    /// The latest step of flow `id` called `name`.
    fn last_step_named(&self, id: &FlowId, name: &str) -> Result<Option<Step>>;

    /// Counts one more attempt of step `seq` of flow `id` if it is running, and returns it as
    /// stored; `None` when it is not running (or missing).
    fn next_attempt(&self, id: &FlowId, seq: u32) -> Result<Option<Step>>;

    /// Ends step `seq` of flow `id` if it is running; false when it is not (or missing).
    fn end_step(
        &self,
        id: &FlowId,
        seq: u32,
        status: StepStatus,
        output: Option<&Value>,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<bool>;

    /// How many steps of flow `id` are running. Asked when a flow ends or has a cancel pending,
    /// not per step, so a backend need not index it.
    fn running_steps(&self, id: &FlowId) -> Result<u64>;

    /// The running `child` step of flow `parent` that waits for flow `child`.
    fn running_child_step(&self, parent: &FlowId, child: &FlowId) -> Result<Option<u32>>;

    /// Flow `id`'s succeeded steps before `seq` that are not `child` steps, in order: what a
    /// fork copies.
    fn steps_to_fork(&self, id: &FlowId, before_seq: u32) -> Result<Vec<Step>>;

    /// Every owner's managed flows that are queued or running (without their specs), oldest
    /// first.
    fn active_flows(&self, limit: u32) -> Result<Vec<Flow>>;

    /// Up to `limit` of every owner's managed flows a claim may take, each with its owner:
    /// queued or running, or waiting and due (`wake_at` at or before `now`), whose lease is
    /// none, expired at `now`, or held on `host` (its holder may be gone); those under no live
    /// lease first, then oldest first. In a write transaction each one's tree stays locked until
    /// the transaction ends, as [`Self::load_flow`] locks it, except that a flow whose tree
    /// another transaction holds is skipped instead of waited for: concurrent claimers get
    /// disjoint sets without queueing behind each other. None of `skip` is a candidate.
    fn claim_candidates(
        &self,
        now: Timestamp,
        host: &str,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<(FlowId, String)>>;

    /// Flows newest first; with `owner`, only that owner's.
    fn list(&self, owner: Option<&str>, query: &ListQuery) -> Result<Vec<FlowSummary>>;

    /// The database's own integrity check (SQLite's `quick_check`): the problems it reports.
    fn integrity_problems(&self) -> Result<Vec<String>>;

    /// Top-level flows (no parent) of `owner` (every owner's with `None`) that ended before
    /// `query.ended_before` (with `query.status`, if given), after `query.after` in the order
    /// (ended_at, id), at most `query.limit`, each with its end.
    fn ended_roots(
        &self,
        owner: Option<&str>,
        query: &PruneQuery,
    ) -> Result<Vec<(Timestamp, FlowId)>>;

    /// Deletes flow `id`'s steps, revisions, spec and signals.
    fn delete_journal(&self, id: &FlowId) -> Result<()>;

    /// Deletes flow `id`'s row (its journal and its children gone first).
    fn delete_flow(&self, id: &FlowId) -> Result<()>;

    /// Flow `id`'s steps in order.
    fn steps(&self, id: &FlowId) -> Result<Vec<Step>>;

    /// Flow `id`'s children, oldest first.
    fn children(&self, id: &FlowId) -> Result<Vec<ChildSummary>>;

    /// Flow `id`'s revisions, oldest first.
    fn history(&self, id: &FlowId) -> Result<Vec<Revision>>;

    /// Appends `event` to the feed, with an id greater than every id it gave before (even one
    /// whose event was pruned since).
    fn append_event(&self, event: &NewEvent) -> Result<()>;

    /// Events after `query.after`, oldest first; with `owner`, only that owner's.
    fn events(&self, owner: Option<&str>, query: &EventQuery) -> Result<Vec<Event>>;

    /// The newest event's id (0 when there is none).
    fn last_event_id(&self) -> Result<u64>;

    /// Deletes the events older than `before`, except the newest event of all (which keeps the
    /// ids increasing); returns how many went.
    fn prune_events(&self, before: Timestamp) -> Result<u64>;

    /// Which of `ids` are `owner`'s flows with a cancel request.
    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>>;

    /// Every owner's managed flows that are `waiting` and due (`wake_at` at or before `now`),
    /// without their specs, the longest due first.
    fn due_flows(&self, now: Timestamp, limit: u32) -> Result<Vec<Flow>>;

    /// The earliest `wake_at` of every waiting flow.
    fn next_wake(&self) -> Result<Option<Timestamp>>;

    /// Stores a signal for flow `id`, not taken; returns its id, greater than every signal id
    /// given before.
    fn insert_signal(&self, id: &FlowId, name: &str, payload: &Value, at: Timestamp)
    -> Result<u64>;

    /// Whether flow `id` has a signal called `name` that no step has taken.
    fn pending_signal(&self, id: &FlowId, name: &str) -> Result<bool>;

    /// The signal step `seq` of flow `id` took, if it took one.
    fn signal_taken_by(&self, id: &FlowId, seq: u32) -> Result<Option<Signal>>;

    /// Marks flow `id`'s oldest signal called `name` that no step has taken as taken by step
    /// `seq`, and returns it as stored; `None` when there is none.
    fn take_signal(
        &self,
        id: &FlowId,
        name: &str,
        seq: u32,
        at: Timestamp,
    ) -> Result<Option<Signal>>;

    /// Flow `id`'s signals in the order they arrived.
    fn signals(&self, id: &FlowId) -> Result<Vec<Signal>>;

    /// Schedule `name`; with `owner`, only if that owner's. In a write transaction it stays
    /// locked until the transaction ends, like a flow.
    fn load_schedule(&self, owner: Option<&str>, name: &str) -> Result<Option<Schedule>>;

    /// Inserts a new schedule row as given.
    fn insert_schedule(&self, schedule: &Schedule) -> Result<()>;

    /// Writes `schedule` over the row of the schedule still at `revision`; false, having
    /// written nothing, when it is at another revision.
    fn update_schedule(&self, schedule: &Schedule, revision: u64) -> Result<bool>;

    /// Moves schedule `name`'s cursor (no revision: the scheduler's progress is recorded by its
    /// slots).
    fn move_cursor(
        &self,
        name: &str,
        next_slot: Option<Timestamp>,
        next_fire: Option<Timestamp>,
    ) -> Result<()>;

    /// Deletes schedule `name`, its history and its slots (not the flows its slots ran).
    fn delete_schedule(&self, name: &str) -> Result<()>;

    /// Appends revision `revision` of schedule `name`.
    fn insert_schedule_revision(
        &self,
        name: &str,
        revision: u64,
        at: Timestamp,
        actor: &str,
        changes: &[FieldChange],
    ) -> Result<()>;

    /// Schedule `name`'s revisions, oldest first.
    fn schedule_history(&self, name: &str) -> Result<Vec<Revision>>;

    /// `owner`'s schedules by name; every owner's with `None`.
    fn schedules(&self, owner: Option<&str>) -> Result<Vec<Schedule>>;

    /// `owner`'s schedules by name, each with its newest slot, without their pipelines
    /// (`pipeline` is `null`): what `schedules list` shows, read at once.
    fn schedule_summaries(&self, owner: &str) -> Result<Vec<ScheduleSummary>>;

    /// Every owner's schedules that are not paused and whose next slot fires at or before
    /// `now`, the earliest first.
    fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>>;

    /// When the next slot of any schedule that is not paused fires.
    fn next_fire(&self) -> Result<Option<Timestamp>>;

    /// Schedule `name`'s slot at `at`, with its flow's status.
    fn slot(&self, name: &str, at: Timestamp) -> Result<Option<Slot>>;

    /// Schedule `name`'s slots newest first, those before `before` when given, at most `limit`,
    /// with their flows' statuses.
    fn slots(&self, name: &str, before: Option<Timestamp>, limit: u32) -> Result<Vec<Slot>>;

    /// Writes a slot's record (a new one, or over the one at its instant).
    fn put_slot(&self, slot: &Slot) -> Result<()>;

    /// Every owner's slots that are not decided for good (running, gated, buffered), oldest
    /// first, with their flows' statuses.
    fn open_slots(&self, limit: u32) -> Result<Vec<Slot>>;

    /// The flow `id` of a slot ended (`ended`) or runs again (a failed flow reopened): its
    /// slot's record follows.
    fn slot_flow_settled(&self, id: &FlowId, ended: bool, at: Timestamp) -> Result<()>;
}
