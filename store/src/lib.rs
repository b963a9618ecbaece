//! `taskflow-store`: Task Flow's records and rules (DESIGN §5), independent of any database.
//!
//! Flows, their steps and their revision history are kept by a backend (SQLite in
//! `taskflow-store-sqlite`) behind the [`FlowStore`] trait. Programs reach them through an
//! owner-bound handle: [`TaskFlow::bind`] gives an [`OwnerHandle`] that injects its owner into
//! every call, so another owner's flow is `NotFound`.
//!
//! The rules (legal transitions, optimistic concurrency, sticky cancel, child spawning, leases)
//! are pure functions in [`status`], [`rules`] and [`lease`]. The semantics of each operation
//! (what it reads, checks and writes, and what it does to other flows of a tree) are written
//! once in [`semantics`] over the row-level transaction trait [`StoreTx`]; a backend implements
//! that trait and [`Backend`], and is a [`FlowStore`] from then on. The conformance kit
//! (feature `testkit`) is every store test, run by each backend against itself.

pub mod audit;
pub mod backend;
pub mod durability;
pub mod error;
pub mod event;
pub mod excerpt;
#[cfg(feature = "testkit")]
pub mod faults;
pub mod handle;
pub mod id;
pub mod leadership;
pub mod lease;
pub mod list_query;
pub mod model;
pub mod prune;
pub mod revision;
pub mod rules;
pub mod schedule;
pub mod semantics;
pub mod status;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod tx;
pub mod wait;

pub use audit::{Finding, FindingCode};
pub use backend::Backend;
pub use durability::Durability;
pub use error::{Error, Result, SpawnRefusal, StorageError, StorageErrorKind};
pub use event::{Change, Event, EventQuery, NewEvent};
pub use handle::{Inspection, OwnerHandle, TaskFlow};
pub use id::{FlowId, ID_RULE, InvalidId};
pub use leadership::{Hold, Leadership};
pub use lease::{Lease, LeaseHolder, Takeover};
pub use model::{
    Adoptable, ApprovalDecision, ApprovalRequest, CancelOutcome, CheckpointDone, CheckpointOp,
    ChildSummary, Claim, ExpectedRevision, FieldChange, Flow, FlowSummary, LeaseInfo, ListQuery,
    NewFlow, NewStep, ResumePlan, Revision, RunStart, Signal, Stall, StallReason, StateReport,
    Step, StepKind, StepOutcome, StepReport, SyncMode, WaitingStep,
};
pub use prune::{PruneBatch, PruneQuery};
pub use schedule::{
    CatchUp, Decided, GateState, NewSchedule, Otherwise, Overlap, Put, Schedule, ScheduleSpec,
    ScheduleSummary, Slot, SlotDecision, SlotStatus, SlotTimes, Timing,
};
pub use status::{FlowStatus, StatusFilter, StepStatus};
pub use store::{Answer, Caller, Decisions, FlowStore, Resumed, Submission};
pub use time::Timestamp;
pub use tx::StoreTx;
