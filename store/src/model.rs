//! The records the store keeps (flows, steps, revisions) and the requests that change them, as
//! plain data shared by every backend, the engine and the CLI.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
pub use crate::id::FlowId;
use crate::lease::{Lease, LeaseHolder};
use crate::status::{FlowStatus, StatusFilter, StepStatus};
use crate::time::Timestamp;

/// Who drives a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncMode {
    /// taskflow's engine schedules, checkpoints, retries and resumes it.
    Managed,
    /// An outside owner does the work and reports state; taskflow records and validates it and
    /// runs nothing.
    Mirrored,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Managed => "managed",
            SyncMode::Mirrored => "mirrored",
        }
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "managed" => Ok(SyncMode::Managed),
            "mirrored" => Ok(SyncMode::Mirrored),
            other => Err(Error::InvalidInput(format!(
                "unknown sync mode `{other}` (managed or mirrored)"
            ))),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    Llm,
    Tool,
    Action,
    /// Runs a child flow; the step ends when the child ends.
    Child,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Llm => "llm",
            StepKind::Tool => "tool",
            StepKind::Action => "action",
            StepKind::Child => "child",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "llm" => Ok(StepKind::Llm),
            "tool" => Ok(StepKind::Tool),
            "action" => Ok(StepKind::Action),
            "child" => Ok(StepKind::Child),
            other => Err(Error::InvalidInput(format!("unknown step kind `{other}`"))),
        }
    }
}

/// The lease on a flow as the flow record shows it (the token stays with its runner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub holder: LeaseHolder,
    pub expires_at: Timestamp,
}

/// One flow record (DESIGN §5).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: FlowId,
    pub name: String,
    pub owner: String,
    pub sync_mode: SyncMode,
    /// Who drives a mirrored flow, or which runner kind drives a managed one.
    pub controller: Option<String>,
    pub status: FlowStatus,
    /// Bumped by every accepted change to the flow record; starts at 1 when the flow is
    /// created. A step that begins or ends is a record of the journal and leaves it alone.
    pub revision: u64,
    pub goal: Option<String>,
    /// A managed flow's last step in its journal; what a mirrored flow's owner reported.
    pub current_step: Option<String>,
    pub state: Option<Value>,
    /// What a waiting flow waits for (see [`crate::wait`] for a managed flow's).
    pub wait: Option<Value>,
    /// When a waiting managed flow is due to run again: its earliest timer, or the moment a
    /// signal it waits for arrived. `None` while it waits for signals only, and whenever it
    /// does not wait.
    pub wake_at: Option<Timestamp>,
    /// The pipeline or agent definition the flow runs.
    pub spec: Option<Value>,
    pub parent_flow_id: Option<FlowId>,
    pub cancel_requested_at: Option<Timestamp>,
    pub lease: Option<LeaseInfo>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub error: Option<String>,
}

impl Flow {
    /// How many steps the flow's pipeline lists, if it runs one: what its count of steps is
    /// out of before its journal has reached them all.
    pub fn listed_steps(&self) -> Option<usize> {
        self.spec.as_ref()?.get("steps")?.as_array().map(Vec::len)
    }

    /// Whether the flow waits and its wake-up time has come (a timer ran out, a signal or a
    /// decision it waited for came): a runner may run it on now.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.status == FlowStatus::Waiting && self.wake_at.is_some_and(|at| at <= now)
    }

    /// Why a managed flow left `running` has no live runner, if it has none: it can be resumed.
    pub fn stall(&self, now: Timestamp) -> Option<Stall> {
        stall(self.sync_mode, self.status, self.lease.as_ref(), now)
    }

    /// Whether [`Flow::stall`] finds the flow stalled.
    pub fn is_stalled(&self, now: Timestamp) -> bool {
        self.stall(now).is_some()
    }
}

/// Why a `running` managed flow has no live runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallReason {
    /// It holds no lease at all (its runner gave it back without ending it).
    NoLease,
    /// Its lease's holder is a process of this host that is gone (killed, crashed); the lease
    /// has not expired yet, but nothing will renew it.
    HolderGone,
    /// Its lease expired: its holder, on this host or another, stopped renewing it.
    LeaseExpired,
}

impl StallReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StallReason::NoLease => "no_lease",
            StallReason::HolderGone => "holder_gone",
            StallReason::LeaseExpired => "lease_expired",
        }
    }
}

/// A stalled flow: why, who held it, and since when (the lease's expiry, when it expired; a
/// holder found gone is gone since a moment no record tells).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub reason: StallReason,
    pub holder: Option<LeaseHolder>,
    pub since: Option<Timestamp>,
}

/// The one definition of a stalled flow, for a record and a summary alike: managed, `running`,
/// and no lease, a lease that expired, or one whose holder is a process of this host that is
/// gone. Reading it changes nothing.
fn stall(
    mode: SyncMode,
    status: FlowStatus,
    lease: Option<&LeaseInfo>,
    now: Timestamp,
) -> Option<Stall> {
    if mode != SyncMode::Managed || status != FlowStatus::Running {
        return None;
    }
    let Some(lease) = lease else {
        return Some(Stall { reason: StallReason::NoLease, holder: None, since: None });
    };
    let holder = Some(lease.holder.clone());
    if lease.expires_at <= now {
        return Some(Stall {
            reason: StallReason::LeaseExpired,
            holder,
            since: Some(lease.expires_at),
        });
    }
    if lease.holder.is_gone(crate::lease::this_host()) {
        return Some(Stall { reason: StallReason::HolderGone, holder, since: None });
    }
    None
}

/// One row of `flows list`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSummary {
    pub id: FlowId,
    pub name: String,
    pub owner: String,
    pub sync_mode: SyncMode,
    pub status: FlowStatus,
    pub revision: u64,
    /// Its steps done (their latest attempt succeeded), and its steps: by name, however many
    /// attempts each took.
    pub steps_done: u64,
    pub steps_total: u64,
    pub cancel_requested_at: Option<Timestamp>,
    pub lease: Option<LeaseInfo>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl FlowSummary {
    /// See [`Flow::stall`].
    pub fn stall(&self, now: Timestamp) -> Option<Stall> {
        stall(self.sync_mode, self.status, self.lease.as_ref(), now)
    }

    /// Whether [`FlowSummary::stall`] finds the flow stalled.
    pub fn is_stalled(&self, now: Timestamp) -> bool {
        self.stall(now).is_some()
    }
}

/// A managed flow that no live runner holds: queued and never leased, or left by a runner that
/// stopped (its lease expired, or its holder is a process of this host that is gone). A
/// recovery sweep runs it for its owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoptable {
    pub id: FlowId,
    pub owner: String,
    pub status: FlowStatus,
}

/// A flow a claim took: its lease is held already, and the run acts for `owner`.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub owner: String,
    pub lease: Lease,
}

/// What a run starts from, read in one read transaction (one snapshot): the flow (without its
/// spec), its spec as the JSON text it was stored as, and its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub flow: Flow,
    pub spec_json: Option<String>,
    pub steps: Vec<Step>,
}

/// A child flow as its parent's `inspect` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSummary {
    pub id: FlowId,
    pub name: String,
    pub sync_mode: SyncMode,
    pub status: FlowStatus,
    pub lease: Option<LeaseInfo>,
}

impl ChildSummary {
    /// See [`Flow::stall`]: a child whose runner stopped is shown so under its parent too.
    pub fn stall(&self, now: Timestamp) -> Option<Stall> {
        stall(self.sync_mode, self.status, self.lease.as_ref(), now)
    }
}

/// One step of a flow's journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub flow_id: FlowId,
    /// 1, 2, 3… in the order the steps were scheduled.
    pub seq: u32,
    pub name: String,
    pub kind: StepKind,
    pub status: StepStatus,
    pub attempt: u32,
    /// The same on every attempt of the step, so tools can deduplicate a re-run.
    pub idempotency_key: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub child_flow_id: Option<FlowId>,
}

/// One field of a flow changed by one revision. A value that was absent is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// One entry of a flow's history: every accepted change appends one.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub revision: u64,
    pub at: Timestamp,
    pub actor: String,
    pub change: Vec<FieldChange>,
}

/// What is needed to create a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFlow {
    /// The id to give the flow; a fresh one when `None`. An id already taken is refused.
    pub id: Option<FlowId>,
    pub name: String,
    pub sync_mode: SyncMode,
    pub controller: Option<String>,
    pub goal: Option<String>,
    pub spec: Option<Value>,
    pub state: Option<Value>,
}

impl NewFlow {
    /// A managed flow with only a name.
    pub fn managed(name: impl Into<String>) -> Self {
        NewFlow {
            id: None,
            name: name.into(),
            sync_mode: SyncMode::Managed,
            controller: None,
            goal: None,
            spec: None,
            state: None,
        }
    }

    /// A mirrored flow driven by `controller`.
    pub fn mirrored(name: impl Into<String>, controller: impl Into<String>) -> Self {
        NewFlow {
            sync_mode: SyncMode::Mirrored,
            controller: Some(controller.into()),
            ..NewFlow::managed(name)
        }
    }

    pub fn with_goal(mut self, goal: impl Into<String>) -> Self {
        self.goal = Some(goal.into());
        self
    }

    pub fn with_spec(mut self, spec: Value) -> Self {
        self.spec = Some(spec);
        self
    }

    pub fn with_id(mut self, id: FlowId) -> Self {
        self.id = Some(id);
        self
    }
}

/// A step to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    pub name: String,
    pub kind: StepKind,
    pub input: Option<Value>,
    /// The seq of a failed or cancelled step of the same name that this one tries again: the
    /// new step keeps its idempotency key and counts its attempts on.
    pub retry_of: Option<u32>,
}

impl NewStep {
    pub fn new(name: impl Into<String>, kind: StepKind) -> Self {
        NewStep { name: name.into(), kind, input: None, retry_of: None }
    }

    pub fn with_input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    pub fn retrying(mut self, seq: u32) -> Self {
        self.retry_of = Some(seq);
        self
    }
}

/// One write of a runner, applied with others in one transaction by
/// [`crate::FlowStore::checkpoint`] (group commit). Each is checked and applied on its own: a
/// refused one changes nothing and does not stop the others.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointOp {
    /// Schedules a step (see [`crate::FlowStore::begin_step`]).
    Begin { lease: Lease, step: NewStep },
    /// A running step starts its next attempt, with the same idempotency key: after a failed
    /// attempt (`reason` is its error) or after its runner stopped mid-attempt.
    NextAttempt { lease: Lease, seq: u32, reason: String },
    /// Records how a step ended (see [`crate::FlowStore::finish_step`]).
    Finish { lease: Lease, seq: u32, outcome: StepOutcome },
    /// Ends or changes the flow, with its result `state` (see [`crate::FlowStore::set_status`]).
    Status { lease: Lease, to: FlowStatus, error: Option<String>, state: Option<Value> },
    /// Extends the lease (no revision).
    Renew { lease: Lease, ttl: std::time::Duration },
    /// Every step still running waits (a timer, a signal): the flow becomes `waiting`, its
    /// `wait` says what for and until when, and the lease is given up, so no process holds it
    /// while it waits. `steps` are all of its running steps.
    Wait { lease: Lease, steps: Vec<WaitingStep> },
}

impl CheckpointOp {
    /// The flow it writes to: its lease's.
    pub fn flow_id(&self) -> &FlowId {
        match self {
            CheckpointOp::Begin { lease, .. }
            | CheckpointOp::NextAttempt { lease, .. }
            | CheckpointOp::Finish { lease, .. }
            | CheckpointOp::Status { lease, .. }
            | CheckpointOp::Renew { lease, .. }
            | CheckpointOp::Wait { lease, .. } => &lease.flow_id,
        }
    }
}

/// A step that waits for a time or a signal before it can end, as its runner hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingStep {
    pub seq: u32,
    /// The step's name in the journal.
    pub step: String,
    /// It can end at this instant (a timer, or a signal's timeout).
    pub until: Option<Timestamp>,
    /// It ends when a signal of this name arrives.
    pub signal: Option<String>,
    /// It is a tool call that waits for a person's decision (its signal is
    /// [`crate::wait::approval_signal`] of the call).
    pub approval: Option<ApprovalRequest>,
    /// It waits for this child flow of its flow (which waits itself, for a person's decision
    /// about a tool call): the flow is due again once the child is decided about or ends.
    pub child: Option<FlowId>,
}

/// A tool call an agent run may make only once a person approves it: what `flows inspect`
/// shows and what the decision answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The model's id of the call.
    pub call_id: String,
    /// The tool it calls.
    pub tool: String,
    /// Its arguments: the JSON the model wrote, or its text when it is not JSON.
    pub arguments: Value,
}

/// A person's decision about an [`ApprovalRequest`]; the payload of the call's approval
/// signal, `{"approved": true|false, "reason": TEXT|null}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    pub approved: bool,
    /// Why (shown to the model after a denial).
    pub reason: Option<String>,
}

impl ApprovalDecision {
    /// The decision as its signal carries it.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"approved": self.approved, "reason": self.reason})
    }

    /// The decision a signal's payload carries; `None` when it carries none.
    pub fn from_value(payload: &Value) -> Option<ApprovalDecision> {
        let approved = payload.get("approved")?.as_bool()?;
        let reason = payload.get("reason").and_then(Value::as_str).map(str::to_owned);
        Some(ApprovalDecision { approved, reason })
    }
}

/// A signal delivered to a flow: kept, in the order it arrived, until a step waiting for its
/// name takes it (a signal sent before the step is reached waits for it).
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Increasing in the order signals were stored.
    pub id: u64,
    pub flow_id: FlowId,
    pub name: String,
    /// The sender's JSON (`null` when it sent none); the output of the step that takes it.
    pub payload: Value,
    pub sent_at: Timestamp,
    /// The seq of the step that took it, and when.
    pub taken_by: Option<u32>,
    pub taken_at: Option<Timestamp>,
}

/// What an accepted [`CheckpointOp`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointDone {
    Step(Step),
    /// The flow as the checkpoint left it, without its `spec` (which no op changes, and which
    /// can be large): [`crate::FlowStore::flow`] reads it.
    Flow(Flow),
    Lease(Lease),
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Succeeded(Value),
    Failed(String),
    Cancelled,
}

impl StepOutcome {
    pub fn status(&self) -> StepStatus {
        match self {
            StepOutcome::Succeeded(_) => StepStatus::Succeeded,
            StepOutcome::Failed(_) => StepStatus::Failed,
            StepOutcome::Cancelled => StepStatus::Cancelled,
        }
    }
}

/// A state report from a mirrored flow's owner. Fields left `None` are unchanged; `wait` and
/// `state` set to JSON `null` clear the stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateReport {
    pub status: Option<FlowStatus>,
    /// The step the flow is at; when left out, the last of `steps`, if any.
    pub current_step: Option<String>,
    pub state: Option<Value>,
    /// What the flow waits for; refused with a status that ends it (an ended flow waits for
    /// nothing).
    pub wait: Option<Value>,
    pub goal: Option<String>,
    pub error: Option<String>,
    /// Steps of the owner's work, in the order they happened, recorded in the flow's journal.
    pub steps: Vec<StepReport>,
}

/// One step of a mirrored flow as its owner reports it. A step is known by its name: a report
/// of a running step begins it (or is no change while it runs), a report of an ended one ends
/// the running step of that name or records it ended; the same end reported again is no
/// change. A step reported running again after it failed or was cancelled is its next attempt
/// (the same idempotency key); after it succeeded, a new step of that name (attempt 1, a key of
/// its own): a succeeded step is not tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub name: String,
    pub status: StepStatus,
    /// What a succeeded step produced.
    pub output: Option<Value>,
    /// Why a failed step failed.
    pub error: Option<String>,
}

/// Which flows `list` returns. Newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub status: Option<FlowStatus>,
    /// Only stalled flows (see [`Flow::stall`]): `running` managed flows without a live runner.
    pub stalled: bool,
    /// Only flows with this name.
    pub name: Option<String>,
    /// Only the flows schedule `NAME` fired: those whose id is `NAME@SLOT`.
    pub schedule: Option<String>,
    /// Only flows created at or after this instant.
    pub since: Option<Timestamp>,
    /// Only flows created before this instant.
    pub until: Option<Timestamp>,
    /// Only flows older than this one (created earlier, or at the same millisecond with a
    /// smaller id): where the previous page ended.
    pub before: Option<(Timestamp, FlowId)>,
    pub limit: u32,
    /// Ignore the bound owner and list every owner's flows (a local administrator's view).
    pub all_owners: bool,
}

impl ListQuery {
    /// The query of `filter`: one status, or the stalled flows.
    pub fn filtered(filter: Option<StatusFilter>) -> Self {
        match filter {
            None => ListQuery::default(),
            Some(StatusFilter::Is(status)) => {
                ListQuery { status: Some(status), ..Default::default() }
            }
            Some(StatusFilter::Stalled) => ListQuery { stalled: true, ..Default::default() },
        }
    }
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            status: None,
            stalled: false,
            name: None,
            schedule: None,
            since: None,
            until: None,
            before: None,
            limit: 50,
            all_owners: false,
        }
    }
}

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelOutcome {
    pub flow: Flow,
    /// The flow already had a cancel request; nothing was changed.
    pub already_requested: bool,
    /// Steps still running and children still active: the flow becomes `cancelled` once they
    /// have settled (zero when it is cancelled already, or when its owner must report it).
    pub active_steps: u64,
}

/// What resuming a flow would do, decided by [`crate::OwnerHandle::check_resume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumePlan {
    /// Run it on from its last checkpoint. `stalled` when its previous runner stopped without
    /// releasing it.
    Run { stalled: bool },
    /// It has a cancel request: finish the cancel instead of running.
    FinishCancel,
}

/// The `expected_revision` of a mutation: `None` accepts any current revision.
pub type ExpectedRevision = Option<u64>;
