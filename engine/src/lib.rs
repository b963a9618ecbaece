//! `taskflow-engine`: the engine that runs managed flows as checkpointed steps
//! (DESIGN §5), pipelines (TOML or built in code) and agent runs.
//!
//! What a step runs (actions and tools) is `taskflow-tools`, re-exported here as [`tools`]
//! with its main names at the root. The flows themselves live in a store (`taskflow-store`,
//! with a backend such as `taskflow-store-sqlite`); the engine reaches it only through the
//! owner-bound handle. The store's records and handle are re-exported here too, so that a
//! program can build and run flows with this crate and a backend alone.

pub mod agent;
pub mod costs;
pub mod engine;
pub mod pipeline;
pub mod runs;
pub mod schedule;
pub mod waits;

pub use engine::{Engine, EngineError, EngineOptions, Progress, ProgressSink, RunControl};
pub use pipeline::{FlowSpec, Plan, RetryPolicy, StepSpec};
pub use runs::Runs;
pub use taskflow_tools as tools;
pub use taskflow_tools::{
    Action, ActionError, ActionFuture, ActionResult, Actions, StepContext, Tool, Tools,
};

/// Every action an engine runs unless told otherwise: the built-ins of `taskflow-tools` and the
/// durable waits, `sleep` and `wait_signal` ([`waits`]). What a pipeline file is checked
/// against before anything runs.
pub fn builtin_actions() -> Actions {
    let mut actions = Actions::builtin();
    for (name, action) in waits::actions() {
        actions.register_shared(name, action);
    }
    actions
}

pub use taskflow_store::{
    ApprovalDecision, ApprovalRequest, CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary,
    Error, ExpectedRevision, FieldChange, Finding, FindingCode, Flow, FlowId, FlowStatus,
    FlowStore, FlowSummary, Inspection, Lease, LeaseHolder, LeaseInfo, ListQuery, NewFlow, NewStep,
    OwnerHandle, PruneBatch, PruneQuery, Result, ResumePlan, Revision, Signal, SpawnRefusal, Stall,
    StallReason, StateReport, StatusFilter, Step, StepKind, StepOutcome, StepStatus, StorageError,
    StorageErrorKind, SyncMode, Takeover, TaskFlow, Timestamp, WaitingStep,
};
pub use taskflow_store::{
    CatchUp, Decisions, GateState, NewSchedule, Otherwise, Overlap, Schedule, ScheduleSpec,
    ScheduleSummary, Slot, SlotDecision, SlotStatus, Timing,
};
