//! What `taskflow doctor` finds wrong in a flow database and what it may repair: records that
//! no longer tell the truth (a running flow nobody runs, a waiting flow nothing can wake, a
//! cancel that never settles, a child whose parent ended), a damaged file or a schema left
//! behind. Each finding has a stable code, the flow it is about, and one line saying why.

use std::fmt;

use serde::Serialize;

use crate::model::FlowId;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    /// A `running` flow whose lease holder is gone or whose lease expired.
    StaleRunning,
    /// A `waiting` managed flow with nothing that could ever wake it: no timer, no signal, no
    /// approval awaited.
    WaitingWithoutWake,
    /// A cancel asked for a while ago that has not settled, and no live runner is left to
    /// settle it.
    CancelStuck,
    /// A child still active under a parent that ended, or a parent's child step still running
    /// for a child that ended.
    OrphanChild,
    /// The database's schema is older than this taskflow's: migrations are pending.
    Schema,
    /// The database file failed its integrity check.
    Integrity,
}

impl FindingCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::StaleRunning => "stale_running",
            FindingCode::WaitingWithoutWake => "waiting_without_wake",
            FindingCode::CancelStuck => "cancel_stuck",
            FindingCode::OrphanChild => "orphan_child",
            FindingCode::Schema => "schema",
            FindingCode::Integrity => "integrity",
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: FindingCode,
    /// The flow it is about (none for the database as a whole).
    pub flow: Option<FlowId>,
    pub owner: Option<String>,
    /// One line: why.
    pub reason: String,
    /// What `--fix` would do, when a safe repair exists.
    pub repair: Option<String>,
}
