//! The seam between the flow semantics and a storage backend.
//!
//! A backend implements two traits: [`StoreTx`], the row-level reads and writes of one
//! transaction (a flow row, a step row, a revision row, a few counts), and [`Backend`], which
//! opens transactions and may override how checkpoints are committed. Everything else (what a
//! checkpoint checks and writes, the cancel tree, a child's end reaching its parent, forks, the
//! attempt and key of a retried step) is written once in [`crate::semantics`] over these traits,
//! and every type that implements [`Backend`] is a [`FlowStore`] through the blanket
//! implementation below. A backend in its own crate therefore holds SQL and connection handling
//! only, and runs the conformance kit (`testkit`) to prove it keeps the contract.
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

use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::lease::{Lease, LeaseHolder};
use crate::model::{
    CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, ExpectedRevision, FieldChange, Flow,
    FlowId, FlowSummary, ListQuery, NewFlow, NewStep, Revision, StateReport, Step, StepOutcome,
};
use crate::revision::FieldSet;
use crate::semantics::{self, Forget};
use crate::status::{FlowStatus, StepStatus};
use crate::store::{Caller, FlowStore, Submission};
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
    /// false, having written nothing, when the row is missing or at another revision.
    fn update_flow(
        &self,
        before: &Flow,
        after: &Flow,
        fields: FieldSet,
        new_token: Option<&str>,
    ) -> Result<bool>;

    /// The stored revision of flow `id`.
    fn flow_revision(&self, id: &FlowId) -> Result<Option<u64>>;

    /// Appends revision `revision` of flow `id`.
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

    /// Flows newest first; with `owner`, only that owner's.
    fn list(&self, owner: Option<&str>, query: &ListQuery) -> Result<Vec<FlowSummary>>;

    /// Flow `id`'s steps in order.
    fn steps(&self, id: &FlowId) -> Result<Vec<Step>>;

    /// Flow `id`'s children, oldest first.
    fn children(&self, id: &FlowId) -> Result<Vec<ChildSummary>>;

    /// Flow `id`'s revisions, oldest first.
    fn history(&self, id: &FlowId) -> Result<Vec<Revision>>;

    /// Which of `ids` are `owner`'s flows with a cancel request.
    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>>;
}

/// A storage backend: how transactions are opened, and the hooks a backend may override.
pub trait Backend: Send + Sync {
    type Tx<'a>: StoreTx
    where
        Self: 'a;

    /// Runs `work` in one write transaction stamped `now`: all of its writes or none. An error
    /// from `work` rolls back everything it wrote.
    fn write<T>(&self, work: impl FnOnce(&Self::Tx<'_>, Timestamp) -> Result<T>) -> Result<T>;

    /// Runs `work` in one read transaction: every query sees one committed state.
    fn read<T>(&self, work: impl FnOnce(&Self::Tx<'_>) -> Result<T>) -> Result<T>;

    /// This machine's host name, for judging whether a lease holder's process is gone.
    fn host(&self) -> &str;

    /// Commits a runner's ops in one transaction ([`FlowStore::checkpoint`]). A backend that
    /// remembers what it committed of a flow overrides this and passes its memory to
    /// [`semantics::checkpoint`].
    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>> {
        self.write(|tx, now| semantics::checkpoint(tx, caller, ops, now, &mut Forget))
    }

    /// Commits a submitted write ([`FlowStore::submit`]). A backend with a writer that groups
    /// the writes of many callers into one transaction overrides this; by default the write is
    /// committed at once.
    fn submit(&self, caller: Caller<'_>, work: Submission) {
        match work {
            Submission::Checkpoint { ops, answer } => {
                answer(Backend::checkpoint(self, caller, ops))
            }
            Submission::Lease { id, holder, ttl, answer } => {
                answer(acquire_lease(self, caller, &id, holder, ttl))
            }
        }
    }
}

/// [`FlowStore::acquire_lease`] on a backend: one write transaction.
fn acquire_lease<B: Backend + ?Sized>(
    backend: &B,
    caller: Caller<'_>,
    id: &FlowId,
    holder: LeaseHolder,
    ttl: Duration,
) -> Result<Lease> {
    semantics::check_ttl(ttl)?;
    backend
        .write(|tx, now| semantics::acquire_lease(tx, caller, id, holder, ttl, now, backend.host()))
}

impl<B: Backend> FlowStore for B {
    fn create_flow(&self, caller: Caller<'_>, new: NewFlow) -> Result<Flow> {
        self.write(|tx, now| semantics::create_flow(tx, caller, new, None, Vec::new(), now))
    }

    fn spawn_child(
        &self,
        caller: Caller<'_>,
        parent: &Lease,
        new: NewFlow,
    ) -> Result<(Flow, Step)> {
        self.write(|tx, now| semantics::spawn_child(tx, caller, parent, new, now))
    }

    fn flow(&self, owner: &str, id: &FlowId) -> Result<Flow> {
        self.read(|tx| Ok(semantics::load_flow(tx, Some(owner), id, true)?.0))
    }

    fn flow_without_spec(&self, owner: &str, id: &FlowId) -> Result<Flow> {
        self.read(|tx| Ok(semantics::load_flow(tx, Some(owner), id, false)?.0))
    }

    fn spec_json(&self, owner: &str, id: &FlowId) -> Result<Option<String>> {
        self.read(|tx| {
            semantics::load_flow(tx, Some(owner), id, false)?;
            tx.spec_text(id)
        })
    }

    fn list(&self, owner: &str, query: &ListQuery) -> Result<Vec<FlowSummary>> {
        self.read(|tx| tx.list((!query.all_owners).then_some(owner), query))
    }

    fn steps(&self, owner: &str, id: &FlowId) -> Result<Vec<Step>> {
        self.read(|tx| {
            semantics::load_flow(tx, Some(owner), id, false)?;
            tx.steps(id)
        })
    }

    fn children(&self, owner: &str, id: &FlowId) -> Result<Vec<ChildSummary>> {
        self.read(|tx| {
            semantics::load_flow(tx, Some(owner), id, false)?;
            tx.children(id)
        })
    }

    fn history(&self, owner: &str, id: &FlowId) -> Result<Vec<Revision>> {
        self.read(|tx| {
            semantics::load_flow(tx, Some(owner), id, false)?;
            tx.history(id)
        })
    }

    fn request_cancel(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        expected: ExpectedRevision,
    ) -> Result<CancelOutcome> {
        self.write(|tx, now| semantics::request_cancel(tx, caller, id, expected, now))
    }

    fn report(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        report: StateReport,
        expected: ExpectedRevision,
    ) -> Result<Flow> {
        self.write(|tx, now| semantics::report(tx, caller, id, report, expected, now))
    }

    fn acquire_lease(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<Lease> {
        semantics::check_ttl(ttl)?;
        self.write(|tx, now| {
            semantics::acquire_lease(tx, caller, id, holder, ttl, now, self.host())
        })
    }

    fn acquire_leases(
        &self,
        caller: Caller<'_>,
        requests: Vec<(FlowId, LeaseHolder, Duration)>,
    ) -> Result<Vec<Result<Lease>>> {
        self.write(|tx, now| semantics::acquire_leases(tx, caller, requests, now, self.host()))
    }

    fn renew_lease(&self, caller: Caller<'_>, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let op = CheckpointOp::Renew { lease: lease.clone(), ttl };
        match semantics::one_answer(self.checkpoint(caller, vec![op]))? {
            CheckpointDone::Lease(lease) => Ok(lease),
            other => Err(semantics::unexpected(other)),
        }
    }

    fn release_lease(&self, caller: Caller<'_>, lease: &Lease) -> Result<Flow> {
        self.write(|tx, now| semantics::release_lease(tx, caller, lease, now))
    }

    fn set_status(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        to: FlowStatus,
        error: Option<String>,
    ) -> Result<Flow> {
        let op = CheckpointOp::Status { lease: lease.clone(), to, error, state: None };
        match semantics::one_answer(self.checkpoint(caller, vec![op]))? {
            CheckpointDone::Flow(mut flow) => {
                // No write changes a spec: read after the change, it is the flow's.
                let spec = self.read(|tx| tx.spec_text(&flow.id))?;
                flow.spec = spec.map(|text| serde_json::from_str(&text)).transpose()?;
                Ok(flow)
            }
            other => Err(semantics::unexpected(other)),
        }
    }

    fn begin_step(&self, caller: Caller<'_>, lease: &Lease, step: NewStep) -> Result<Step> {
        let op = CheckpointOp::Begin { lease: lease.clone(), step };
        match semantics::one_answer(self.checkpoint(caller, vec![op]))? {
            CheckpointDone::Step(step) => Ok(step),
            other => Err(semantics::unexpected(other)),
        }
    }

    fn finish_step(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        outcome: StepOutcome,
    ) -> Result<Step> {
        let op = CheckpointOp::Finish { lease: lease.clone(), seq, outcome };
        match semantics::one_answer(self.checkpoint(caller, vec![op]))? {
            CheckpointDone::Step(step) => Ok(step),
            other => Err(semantics::unexpected(other)),
        }
    }

    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>> {
        Backend::checkpoint(self, caller, ops)
    }

    fn submit(&self, owner: &str, actor: &str, work: Submission) {
        Backend::submit(self, Caller { owner, actor }, work)
    }

    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        self.read(|tx| tx.cancel_requested(owner, ids))
    }

    fn reopen(&self, caller: Caller<'_>, id: &FlowId) -> Result<Flow> {
        self.write(|tx, now| semantics::reopen(tx, caller, id, now))
    }

    fn fork(&self, caller: Caller<'_>, source: &FlowId, from_seq: u32) -> Result<Flow> {
        self.write(|tx, now| semantics::fork(tx, caller, source, from_seq, now))
    }
}
