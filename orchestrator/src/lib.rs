//! `taskflow-orchestrator`: the engine that runs managed flows as checkpointed steps
//! (DESIGN §5), pipelines (TOML or built in code), agent runs, and the actions and tools they
//! run.
//!
//! The flows themselves live in a store (`taskflow-store`, with a backend such as
//! `taskflow-store-sqlite`); the engine reaches it only through the owner-bound handle. The
//! store's records and handle are re-exported here, so that a program can build and run flows
//! with this crate and a backend alone.

pub mod action;
pub mod agent;
pub mod engine;
pub mod pipeline;
pub mod tools;

pub use action::{Action, ActionError, ActionFuture, ActionResult, Actions, StepContext};
pub use engine::{Engine, EngineError, EngineOptions, Progress, ProgressSink};
pub use pipeline::{FlowSpec, Plan, RetryPolicy, StepSpec};
pub use tools::{Tool, Tools};

pub use taskflow_store::{
    CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, Error, ExpectedRevision,
    FieldChange, Flow, FlowId, FlowStatus, FlowStore, FlowSummary, Inspection, Lease, LeaseHolder,
    LeaseInfo, ListQuery, NewFlow, NewStep, OwnerHandle, Result, ResumePlan, Revision,
    SpawnRefusal, StateReport, Step, StepKind, StepOutcome, StepStatus, StorageError,
    StorageErrorKind, SyncMode, Takeover, TaskFlow, Timestamp,
};
