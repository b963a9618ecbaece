//! `taskflow-engine`: the engine that runs managed flows as checkpointed steps
//! (DESIGN §5), pipelines (TOML or built in code) and agent runs.
//!
//! What a step runs (actions and tools) is `taskflow-tools`, re-exported here as [`tools`]
//! with its main names at the root. The flows themselves live in a store (`taskflow-store`,
//! with a backend such as `taskflow-store-sqlite`); the engine reaches it only through the
//! owner-bound handle. The store's records and handle are re-exported here too, so that a
//! program can build and run flows with this crate and a backend alone.

pub mod agent;
pub mod engine;
pub mod pipeline;

pub use engine::{Engine, EngineError, EngineOptions, Progress, ProgressSink, RunControl};
pub use pipeline::{FlowSpec, Plan, RetryPolicy, StepSpec};
pub use taskflow_tools as tools;
pub use taskflow_tools::{
    Action, ActionError, ActionFuture, ActionResult, Actions, StepContext, Tool, Tools,
};

pub use taskflow_store::{
    CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, Error, ExpectedRevision,
    FieldChange, Finding, FindingCode, Flow, FlowId, FlowStatus, FlowStore, FlowSummary,
    Inspection, Lease, LeaseHolder, LeaseInfo, ListQuery, NewFlow, NewStep, OwnerHandle,
    PruneBatch, PruneQuery, Result, ResumePlan, Revision, SpawnRefusal, Stall, StallReason,
    StateReport, StatusFilter, Step, StepKind, StepOutcome, StepStatus, StorageError,
    StorageErrorKind, SyncMode, Takeover, TaskFlow, Timestamp,
};
