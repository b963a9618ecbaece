//! Flow and step statuses, and the one table of legal flow transitions.
//!
//! Every status change of a flow, whether the engine makes it or a mirrored flow's owner reports
//! it, is checked against [`FlowStatus::can_transition`] (through
//! [`crate::rules::check_status_change`]). Keeping the table here, and nowhere
//! else, is what lets the rest of the crate trust that a `succeeded` flow never runs again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::excerpt::excerpt;

/// Text that names no status; its message lists the names there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownStatus(String);

/// Where a flow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowStatus {
    /// Created, not started yet.
    Queued,
    /// A runner (or, for a mirrored flow, its owner) is working on it.
    Running,
    /// Paused until something outside happens (a timer, an approval, an event).
    Waiting,
    /// Cannot go on until someone fixes something (a missing credential, a full disk).
    Blocked,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped on request, after its active work settled.
    Cancelled,
    /// Given up on: its work can no longer be accounted for.
    Lost,
}

impl FlowStatus {
    /// All statuses, in the order of the lifecycle.
    pub const ALL: [FlowStatus; 8] = [
        FlowStatus::Queued,
        FlowStatus::Running,
        FlowStatus::Waiting,
        FlowStatus::Blocked,
        FlowStatus::Succeeded,
        FlowStatus::Failed,
        FlowStatus::Cancelled,
        FlowStatus::Lost,
    ];

    /// The name used in the database, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Queued => "queued",
            FlowStatus::Running => "running",
            FlowStatus::Waiting => "waiting",
            FlowStatus::Blocked => "blocked",
            FlowStatus::Succeeded => "succeeded",
            FlowStatus::Failed => "failed",
            FlowStatus::Cancelled => "cancelled",
            FlowStatus::Lost => "lost",
        }
    }

    /// A terminal flow never changes again (only a fork makes a new flow from it).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            FlowStatus::Succeeded | FlowStatus::Failed | FlowStatus::Cancelled | FlowStatus::Lost
        )
    }

    /// Whether a flow may go from `self` to `to`. Staying in the same status is not a
    /// transition and is not in the table.
    pub fn can_transition(self, to: FlowStatus) -> bool {
        use FlowStatus::*;
        match self {
            Queued => matches!(to, Running | Waiting | Blocked | Failed | Cancelled | Lost),
            Running => matches!(to, Waiting | Blocked | Succeeded | Failed | Cancelled | Lost),
            Waiting => matches!(to, Running | Blocked | Failed | Cancelled | Lost),
            Blocked => matches!(to, Running | Waiting | Failed | Cancelled | Lost),
            Succeeded | Failed | Cancelled | Lost => false,
        }
    }
}

impl fmt::Display for FlowStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlowStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        FlowStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| {
            UnknownStatus(format!(
                "unknown flow status `{}` (one of: {})",
                excerpt(s),
                FlowStatus::ALL.map(FlowStatus::as_str).join(", ")
            ))
        })
    }
}

/// What `flows list --status` and `GET /v1/flows?status=` select: one status, or `stalled`
/// (a `running` managed flow without a live runner, which is not a status of its own: the record
/// says `running`, its lease says no one runs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Is(FlowStatus),
    Stalled,
}

impl StatusFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Is(status) => status.as_str(),
            StatusFilter::Stalled => "stalled",
        }
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StatusFilter {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        if s == "stalled" {
            return Ok(StatusFilter::Stalled);
        }
        s.parse().map(StatusFilter::Is).map_err(|_| {
            UnknownStatus(format!(
                "unknown flow status `{}` (one of: {}, stalled)",
                excerpt(s),
                FlowStatus::ALL.map(FlowStatus::as_str).join(", ")
            ))
        })
    }
}

/// Where a step is. A step starts `running` when it is scheduled and ends once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl StepStatus {
    pub const ALL: [StepStatus; 4] =
        [StepStatus::Running, StepStatus::Succeeded, StepStatus::Failed, StepStatus::Cancelled];

    /// Whether a step that ended so is tried again when it runs again: a failed or cancelled
    /// step's next attempt keeps its idempotency key and counts its attempts on. A succeeded
    /// step is done: run again, it is a new step of the same name, attempt 1 with a key of its
    /// own, so that work deduplicated by its key is done again rather than taken for the run
    /// that succeeded.
    pub fn is_tried_again(self) -> bool {
        matches!(self, StepStatus::Failed | StepStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// An ended step is never changed again.
    pub fn is_ended(self) -> bool {
        self != StepStatus::Running
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        StepStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| {
            UnknownStatus(format!(
                "unknown step status `{}` (one of: {})",
                excerpt(s),
                StepStatus::ALL.map(StepStatus::as_str).join(", ")
            ))
        })
    }
}

/// Both statuses travel as their names (`"running"`), in JSON as in the database.
macro_rules! by_name {
    ($($status:ty),*) => {$(
        impl Serialize for $status {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $status {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

by_name!(FlowStatus, StepStatus);

#[cfg(test)]
mod tests {
    use super::FlowStatus::{self, *};
    use super::StepStatus;

    /// The full table, written out row by row: `from -> [targets allowed]`.
    const LEGAL: [(FlowStatus, &[FlowStatus]); 8] = [
        (Queued, &[Running, Waiting, Blocked, Failed, Cancelled, Lost]),
        (Running, &[Waiting, Blocked, Succeeded, Failed, Cancelled, Lost]),
        (Waiting, &[Running, Blocked, Failed, Cancelled, Lost]),
        (Blocked, &[Running, Waiting, Failed, Cancelled, Lost]),
        (Succeeded, &[]),
        (Failed, &[]),
        (Cancelled, &[]),
        (Lost, &[]),
    ];

    fn check(from: FlowStatus, to: FlowStatus, legal: bool) {
        assert_eq!(from.can_transition(to), legal, "{from} -> {to}");
    }

    #[test]
    fn every_pair_of_the_8x8_table() {
        let mut checked = 0;
        for (from, targets) in LEGAL {
            for to in FlowStatus::ALL {
                check(from, to, targets.contains(&to));
                checked += 1;
            }
        }
        assert_eq!(checked, 64);
    }

    #[test]
    fn terminal_statuses_have_no_way_out_and_the_others_can_always_stop() {
        for status in FlowStatus::ALL {
            let outs = FlowStatus::ALL.iter().filter(|to| status.can_transition(**to)).count();
            assert_eq!(status.is_terminal(), outs == 0, "{status}");
            if !status.is_terminal() {
                for stop in [Failed, Cancelled, Lost] {
                    assert!(status.can_transition(stop), "{status} -> {stop}");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for status in FlowStatus::ALL {
            assert_eq!(status.as_str().parse::<FlowStatus>().unwrap(), status);
        }
        for status in StepStatus::ALL {
            assert_eq!(status.as_str().parse::<StepStatus>().unwrap(), status);
        }
        let error = "done".parse::<FlowStatus>().unwrap_err().to_string();
        assert!(error.contains("`done`") && error.contains("queued"), "{error}");
    }
}
