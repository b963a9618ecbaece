//! `taskflow-orchestrator`: the durable Task Flow store (DESIGN §5).
//!
//! Flows, their steps and their revision history live in SQLite ([`store::SqliteStore`]) behind
//! the [`store::FlowStore`] trait. Programs reach them through an owner-bound handle:
//!
//! ```
//! use taskflow_orchestrator::{NewFlow, OpenOptions, TaskFlow};
//!
//! let dir = tempfile::tempdir()?;
//! let taskflow = TaskFlow::open(dir.path().join("flows.db"), &OpenOptions::default())?;
//! let alice = taskflow.bind("alice")?;
//! let flow = alice.create(NewFlow::managed("daily digest"))?;
//! let outcome = alice.request_cancel(&flow.id, Some(flow.revision))?;
//! assert_eq!(outcome.flow.status.as_str(), "cancelled");
//! assert!(taskflow.bind("bob")?.flow(&flow.id).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rules (legal transitions, optimistic concurrency, sticky cancel, child spawning, leases)
//! are pure functions in [`status`], [`rules`] and [`lease`]; a backend applies them inside its
//! transactions.

pub mod action;
pub mod agent;
pub mod engine;
pub mod error;
pub mod handle;
pub mod lease;
pub mod model;
pub mod pipeline;
pub mod rules;
pub mod status;
pub mod store;
pub mod time;
pub mod tools;

pub use action::{Action, ActionError, ActionFuture, ActionResult, Actions, StepContext};
pub use engine::{Engine, EngineError, EngineOptions, Progress, ProgressSink};
pub use pipeline::{FlowSpec, Plan, RetryPolicy, StepSpec};
pub use tools::{Tool, Tools};

pub use error::{Error, Result, SpawnRefusal};
pub use handle::{Inspection, OwnerHandle, TaskFlow};
pub use lease::{Lease, LeaseHolder, Takeover};
pub use model::{
    CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, ExpectedRevision, FieldChange, Flow,
    FlowId, FlowSummary, LeaseInfo, ListQuery, NewFlow, NewStep, ResumePlan, Revision, StateReport,
    Step, StepKind, StepOutcome, SyncMode,
};
pub use status::{FlowStatus, StepStatus};
pub use store::{Durability, FlowStore, OpenOptions, SqliteStore};
pub use time::Timestamp;
