//! The seam between the flow semantics and a storage backend: [`Backend`], which opens
//! transactions and may override how checkpoints are committed, and the blanket implementation
//! that makes every backend a [`FlowStore`] with the semantics of [`crate::semantics`]. A
//! backend implements [`StoreTx`] (the rows of one transaction, in `tx.rs`) and `Backend`; a
//! backend in its own crate therefore holds SQL and connection handling only, and runs the
//! conformance kit (`testkit`) to prove it keeps the contract.

use std::time::Duration;

use crate::audit::Finding;
use crate::error::{Error, Result};
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
    self, Decided, GateState, NewSchedule, Put, Schedule, ScheduleSummary, Slot, SlotDecision,
    SlotTimes,
};
use crate::semantics::{self, Forget};
use crate::status::FlowStatus;
use crate::store::{Caller, Decisions, FlowStore, Resumed, Submission};
use crate::time::Timestamp;
use crate::tx::StoreTx;

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

    /// Gives the space of removed rows back to the file system, outside any transaction.
    fn compact(&self) -> Result<()>;

    /// Tries to take `role` ([`FlowStore::lead`]); granted at once by default.
    fn lead(&self, role: &str) -> Result<Option<Leadership>> {
        let _ = role;
        Ok(Some(Leadership::always()))
    }

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

    /// A run of flow `flow` (without its spec) starts from it, its lease token and its whole
    /// journal `steps`, read in one read transaction ([`FlowStore::run_start`]). A backend that
    /// remembers flows between checkpoints may keep them ([`semantics::KnownFlow::read_whole`]),
    /// so that the run's first checkpoint need not read the flow again; by default nothing is
    /// kept.
    fn run_starts(&self, flow: &Flow, lease_token: Option<&str>, steps: &[Step]) {
        let _ = (flow, lease_token, steps);
    }

    /// Commits a submitted write ([`FlowStore::submit`]). A backend with a writer that groups
    /// the writes of many callers into one transaction overrides this; by default the write is
    /// committed at once.
    fn submit(&self, caller: Caller<'_>, work: Submission) {
        commit_now(self, caller, work);
    }
}

/// Commits a submitted write in a transaction of its own, at once, on this thread, and
/// answers it.
pub fn commit_now<B: Backend + ?Sized>(backend: &B, caller: Caller<'_>, work: Submission) {
    match work {
        Submission::Checkpoint { ops, answer } => answer(backend.checkpoint(caller, ops)),
        Submission::Lease { id, holder, ttl, answer } => {
            answer(acquire_lease(backend, caller, &id, holder, ttl))
        }
        Submission::Report { id, report, expected, answer } => answer(
            backend.write(|tx, now| semantics::report(tx, caller, &id, report, expected, now)),
        ),
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

/// A checkpoint of one op that answers with a step.
fn one_step<B: Backend + ?Sized>(
    backend: &B,
    caller: Caller<'_>,
    op: CheckpointOp,
) -> Result<Step> {
    match semantics::one_answer(backend.checkpoint(caller, vec![op]))? {
        CheckpointDone::Step(step) => Ok(step),
        other => Err(semantics::unexpected(other)),
    }
}

/// `flow`, just made or opened in `tx`, with its lease taken for `holder` in the same
/// transaction.
fn held<B: Backend>(
    backend: &B,
    tx: &B::Tx<'_>,
    caller: Caller<'_>,
    flow: Flow,
    holder: &LeaseHolder,
    ttl: Duration,
    now: Timestamp,
) -> Result<(Flow, Lease)> {
    let lease =
        semantics::acquire_lease(tx, caller, &flow.id, holder.clone(), ttl, now, backend.host())?;
    Ok((flow, lease))
}

impl<B: Backend> FlowStore for B {
    fn create_flow(&self, caller: Caller<'_>, new: NewFlow) -> Result<Flow> {
        check_chosen_id(&new)?;
        self.write(|tx, now| semantics::create_flow(tx, caller, new, None, Vec::new(), now))
    }

    fn create_held(
        &self,
        caller: Caller<'_>,
        new: NewFlow,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        check_chosen_id(&new)?;
        self.write(|tx, now| {
            let flow = semantics::create_flow(tx, caller, new, None, Vec::new(), now)?;
            held(self, tx, caller, flow, holder, ttl, now)
        })
    }

    fn spawn_child(
        &self,
        caller: Caller<'_>,
        parent: &Lease,
        new: NewFlow,
    ) -> Result<(Flow, Step)> {
        check_chosen_id(&new)?;
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
        let owner = (!query.all_owners).then_some(owner);
        if !query.stalled {
            return self.read(|tx| tx.list(owner, query));
        }
        self.read(|tx| semantics::list_stalled(tx, owner, query, Timestamp::now()))
    }

    fn steps(&self, owner: &str, id: &FlowId) -> Result<Vec<Step>> {
        self.read(|tx| {
            semantics::load_flow(tx, Some(owner), id, false)?;
            tx.steps(id)
        })
    }

    fn run_start(&self, owner: &str, id: &FlowId) -> Result<RunStart> {
        let (start, lease_token) = self.read(|tx| {
            let (flow, lease_token) = semantics::load_flow(tx, Some(owner), id, false)?;
            let start = RunStart { flow, spec_json: tx.spec_text(id)?, steps: tx.steps(id)? };
            Ok((start, lease_token))
        })?;
        self.run_starts(&start.flow, lease_token.as_deref(), &start.steps);
        Ok(start)
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

    fn claim(
        &self,
        holder: &LeaseHolder,
        ttl: Duration,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<Claim>> {
        self.write(|tx, now| semantics::claim(tx, holder, ttl, limit, skip, now, self.host()))
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
        one_step(self, caller, CheckpointOp::Begin { lease: lease.clone(), step })
    }

    fn finish_step(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        outcome: StepOutcome,
    ) -> Result<Step> {
        one_step(self, caller, CheckpointOp::Finish { lease: lease.clone(), seq, outcome })
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

    fn events(&self, owner: Option<&str>, query: &EventQuery) -> Result<Vec<Event>> {
        self.read(|tx| tx.events(owner, query))
    }

    fn last_event_id(&self) -> Result<u64> {
        self.read(|tx| tx.last_event_id())
    }

    fn prune_events(&self, before: Timestamp) -> Result<u64> {
        self.write(|tx, _| tx.prune_events(before))
    }

    fn audit(&self, owner: Option<&str>) -> Result<Vec<Finding>> {
        self.read(|tx| semantics::audit(tx, owner, Timestamp::now()))
    }

    fn repair(&self, caller: Caller<'_>, finding: &Finding) -> Result<Option<String>> {
        let owner = finding.owner.as_deref().unwrap_or(caller.owner);
        if owner != caller.owner {
            return Ok(None);
        }
        self.write(|tx, now| semantics::repair(tx, caller.actor, finding, now))
    }

    fn integrity_check(&self) -> Result<Vec<String>> {
        self.read(|tx| tx.integrity_problems())
    }

    fn prune(&self, owner: Option<&str>, query: &PruneQuery) -> Result<PruneBatch> {
        self.write(|tx, _| semantics::prune(tx, owner, query))
    }

    fn compact(&self) -> Result<()> {
        Backend::compact(self)
    }

    fn lead(&self, role: &str) -> Result<Option<Leadership>> {
        Backend::lead(self, role)
    }

    fn adoptable(&self, limit: u32) -> Result<Vec<Adoptable>> {
        let now = Timestamp::now();
        let flows = self.read(|tx| {
            let mut flows = tx.active_flows(limit)?;
            let room = limit.saturating_sub(flows.len() as u32);
            if room > 0 {
                flows.extend(tx.due_flows(now, room)?);
            }
            Ok(flows)
        })?;
        Ok(semantics::adoptable(flows, now, self.host()))
    }

    fn next_wake(&self) -> Result<Option<Timestamp>> {
        self.read(|tx| tx.next_wake())
    }

    fn send_signal(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(Signal, Flow)> {
        self.write(|tx, now| semantics::send_signal(tx, caller, id, name, payload, now))
    }

    fn decide_approval(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        call_id: &str,
        decision: &crate::model::ApprovalDecision,
    ) -> Result<(Signal, Flow)> {
        self.write(|tx, now| semantics::decide_approval(tx, caller, id, call_id, decision, now))
    }

    fn take_signal(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        name: &str,
    ) -> Result<Option<Signal>> {
        self.write(|tx, now| semantics::take_signal(tx, caller, lease, seq, name, now))
    }

    fn signals(&self, owner: &str, id: &FlowId) -> Result<Vec<Signal>> {
        self.read(|tx| semantics::signals(tx, owner, id))
    }

    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        self.read(|tx| tx.cancel_requested(owner, ids))
    }

    fn reopen(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        self.write(|tx, now| {
            let flow = semantics::reopen(tx, caller, id, now)?;
            held(self, tx, caller, flow, holder, ttl, now)
        })
    }

    fn fork(&self, caller: Caller<'_>, source: &FlowId, from_seq: u32) -> Result<Flow> {
        self.write(|tx, now| semantics::fork(tx, caller, source, from_seq, now))
    }

    fn fork_held(
        &self,
        caller: Caller<'_>,
        source: &FlowId,
        from_seq: u32,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(Flow, Lease)> {
        self.write(|tx, now| {
            let flow = semantics::fork(tx, caller, source, from_seq, now)?;
            held(self, tx, caller, flow, holder, ttl, now)
        })
    }

    fn put_schedule(&self, caller: Caller<'_>, new: NewSchedule, replace: bool) -> Result<Put> {
        self.write(|tx, now| semantics::put_schedule(tx, caller, new, replace, now))
    }

    fn set_paused(
        &self,
        caller: Caller<'_>,
        name: &str,
        paused: bool,
        resumed: Option<Resumed>,
    ) -> Result<Schedule> {
        self.write(|tx, now| semantics::set_paused(tx, caller, name, paused, resumed, now))
    }

    fn remove_schedule(&self, caller: Caller<'_>, name: &str) -> Result<Schedule> {
        self.write(|tx, _| semantics::remove_schedule(tx, caller, name))
    }

    fn schedules(&self, owner: &str) -> Result<Vec<ScheduleSummary>> {
        self.read(|tx| semantics::summaries(tx, owner))
    }

    fn schedule(
        &self,
        owner: &str,
        name: &str,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<(Schedule, Vec<Slot>)> {
        self.read(|tx| semantics::show(tx, owner, name, before, limit))
    }

    fn schedule_history(&self, owner: &str, name: &str) -> Result<Vec<Revision>> {
        self.read(|tx| semantics::schedule_history(tx, owner, name))
    }

    fn decide_slots(
        &self,
        caller: Caller<'_>,
        name: &str,
        decisions: Decisions,
    ) -> Result<Vec<Decided>> {
        let Decisions { expected, slots, next_slot, next_fire } = decisions;
        self.write(|tx, now| {
            semantics::decide(tx, caller, name, expected, slots, next_slot, next_fire, now)
        })
    }

    fn decide_by_hand(
        &self,
        caller: Caller<'_>,
        name: &str,
        decisions: Vec<SlotDecision>,
        times: &dyn SlotTimes,
    ) -> Result<Vec<Decided>> {
        self.write(|tx, now| semantics::decide_by_hand(tx, caller, name, decisions, times, now))
    }

    fn cancel_slot_run(
        &self,
        caller: Caller<'_>,
        name: &str,
        at: Timestamp,
        why: &str,
    ) -> Result<Slot> {
        self.write(|tx, now| semantics::cancel_slot_run(tx, caller, name, at, why, now))
    }

    fn resolve_slot(&self, caller: Caller<'_>, name: &str, decision: SlotDecision) -> Result<Slot> {
        self.write(|tx, now| semantics::resolve(tx, caller, name, decision, now))
    }

    fn gate_states(&self, owner: &str, names: &[String], at: Timestamp) -> Result<Vec<GateState>> {
        self.read(|tx| semantics::gate_states(tx, owner, names, at))
    }

    fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        self.read(|tx| tx.due_schedules(now, limit))
    }

    fn next_fire(&self) -> Result<Option<Timestamp>> {
        self.read(|tx| tx.next_fire())
    }

    fn open_slots(&self, limit: u32) -> Result<Vec<(Schedule, Slot)>> {
        self.read(|tx| {
            let mut open = Vec::new();
            for slot in tx.open_slots(limit)? {
                if let Some(schedule) = tx.load_schedule(None, &slot.schedule)? {
                    open.push((schedule, slot));
                }
            }
            Ok(open)
        })
    }
}

/// Refuses a flow to make under an id its maker may not choose: one of a schedule slot's form,
/// which only the scheduler makes (its slots' flows are made in the store's own transaction, not
/// through these calls), and `.` or `..`, which no URL can name (clients resolve them as steps
/// of the path, so `/v1/flows/..` is not that flow).
fn check_chosen_id(new: &NewFlow) -> Result<()> {
    let Some(id) = &new.id else { return Ok(()) };
    if schedule::is_slot_flow_id(id.as_str()) {
        return Err(Error::InvalidInput(format!(
            "`{id}` has the form of a schedule slot's flow id (NAME@INSTANT), which only the \
             scheduler makes: pick another id"
        )));
    }
    if matches!(id.as_str(), "." | "..") {
        return Err(Error::InvalidInput(format!(
            "`{id}` cannot be a flow id: no URL can name it; pick another id"
        )));
    }
    Ok(())
}
