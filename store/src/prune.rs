//! Retention: ended flows and their journals removed in batches, so that a database that runs
//! flows every day does not grow without bound. A flow goes with its whole tree (its children
//! with it, never a child alone) and only when every flow of the tree has ended.

use crate::model::FlowId;
use crate::status::FlowStatus;
use crate::time::Timestamp;

/// Which ended flows one batch removes.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneQuery {
    /// Flows that ended before this instant.
    pub ended_before: Timestamp,
    /// Only flows that ended with this status (an ended one).
    pub status: Option<FlowStatus>,
    /// Where the previous batch stopped (`PruneBatch::next`).
    pub after: Option<(Timestamp, FlowId)>,
    /// Most top-level flows (each with its tree) one batch removes.
    pub limit: u32,
    /// Every owner's flows, not only the caller's.
    pub all_owners: bool,
}

/// What one batch removed, and where the next one starts (`None`: nothing is left).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PruneBatch {
    /// Flows removed, children included.
    pub removed: u64,
    /// Trees left because some flow of them has not ended.
    pub kept: u64,
    pub next: Option<(Timestamp, FlowId)>,
}
