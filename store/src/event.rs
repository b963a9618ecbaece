//! The change feed: one event per accepted change, in the order the changes were committed. A
//! flow's change (its creation, and every later revision) and a step that begins, starts another
//! attempt or ends are each one event, written in the same transaction as the change itself, so
//! the feed holds exactly what was committed. Event ids increase with every event and are never
//! reused, so a watcher that saw event N asks for what came after N and misses nothing.

use serde::{Deserialize, Serialize};

use crate::id::FlowId;
use crate::model::{Flow, Step};
use crate::status::{FlowStatus, StepStatus};
use crate::time::Timestamp;

/// One change, as the feed records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its place in the feed: greater than every event committed before it.
    pub id: u64,
    pub flow_id: FlowId,
    pub owner: String,
    pub at: Timestamp,
    #[serde(flatten)]
    pub change: Change,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The flow record changed (or was created, at revision 1): its state after the change and
    /// the fields the revision lists.
    Flow { revision: u64, status: FlowStatus, current_step: Option<String>, fields: Vec<String> },
    /// A step of the flow's journal began, started another attempt, or ended.
    Step { seq: u32, name: String, status: StepStatus, attempt: u32 },
}

impl Change {
    /// The change's kind, as the feed names it: `flow` or `step`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Flow { .. } => "flow",
            Change::Step { .. } => "step",
        }
    }
}

/// An event to append, before the feed gives it its id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub flow_id: FlowId,
    pub owner: String,
    pub at: Timestamp,
    pub change: Change,
}

impl NewEvent {
    /// `flow` as a change just left it; `fields` are the fields its revision lists.
    pub fn flow(flow: &Flow, fields: Vec<String>, at: Timestamp) -> Self {
        NewEvent {
            flow_id: flow.id.clone(),
            owner: flow.owner.clone(),
            at,
            change: Change::Flow {
                revision: flow.revision,
                status: flow.status,
                current_step: flow.current_step.clone(),
                fields,
            },
        }
    }

    /// `step` of `flow` as it was just written.
    pub fn step(flow: &Flow, step: &Step, at: Timestamp) -> Self {
        NewEvent {
            flow_id: flow.id.clone(),
            owner: flow.owner.clone(),
            at,
            change: Change::Step {
                seq: step.seq,
                name: step.name.clone(),
                status: step.status,
                attempt: step.attempt,
            },
        }
    }
}

/// Which events a reader asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// Events after this id (0: from the oldest kept).
    pub after: u64,
    /// Only this flow's.
    pub flow: Option<FlowId>,
    pub limit: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery { after: 0, flow: None, limit: 1000 }
    }
}
