//! The crate's one error type. Each refusal of the store's rules is its own variant, so callers
//! (the engine, the CLI) can react to it by kind; only the binary turns them into messages and
//! exit codes.

use std::path::PathBuf;

use crate::status::{FlowStatus, StepStatus};
use crate::time::Timestamp;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a child flow could not be spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnRefusal {
    /// The parent already ended.
    ParentTerminal(FlowStatus),
    /// The parent is driven by an outside owner; taskflow schedules nothing under it.
    ParentMirrored,
    /// The parent has a cancel request.
    ParentCancelRequested,
}

impl std::fmt::Display for SpawnRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnRefusal::ParentTerminal(status) => write!(f, "the parent flow already {status}"),
            SpawnRefusal::ParentMirrored => f.write_str("the parent flow is mirrored"),
            SpawnRefusal::ParentCancelRequested => {
                f.write_str("the parent flow has a cancel request")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No flow with this id for this owner. Deliberately the same for a missing id and for
    /// another owner's flow.
    #[error("no flow `{id}`")]
    NotFound { id: String },

    /// A flow (of any owner) already has the id a new flow asked for.
    #[error("flow id {id} is already taken")]
    IdTaken { id: String },

    #[error("flow {id} has no step {seq}")]
    StepNotFound { id: String, seq: u32 },

    #[error("revision conflict: expected revision {expected}, the flow is at revision {current}")]
    RevisionConflict { expected: u64, current: u64 },

    #[error("illegal transition from {from} to {to}{}", ended_note(*from))]
    IllegalTransition { from: FlowStatus, to: FlowStatus },

    #[error("flow {id} has a cancel request: nothing new is scheduled on it")]
    CancelRequested { id: String },

    #[error("cannot spawn a child of flow {parent}: {reason}")]
    SpawnRefused { parent: String, reason: SpawnRefusal },

    #[error(
        "flow {id} is mirrored: its owner drives the work and reports its state; \
         taskflow does not {action} it"
    )]
    Mirrored { id: String, action: &'static str },

    #[error("flow {id} is managed: its state is changed by its runner, not by reports")]
    NotMirrored { id: String },

    #[error("flow {id} already ended ({status})")]
    AlreadyEnded { id: String, status: FlowStatus },

    #[error("flow {id} is still {status}: only a flow that has ended can be forked")]
    NotEnded { id: String, status: FlowStatus },

    #[error("step {seq} of flow {id} already ended ({status})")]
    StepEnded { id: String, seq: u32, status: crate::status::StepStatus },

    #[error(
        "step `{name}` of flow {id} already ended {status}, and this report gives it another \
         {what}: {}",
        run_again(*status)
    )]
    EndedOtherwise {
        id: String,
        name: String,
        status: crate::status::StepStatus,
        what: &'static str,
    },

    /// A mirrored flow's report ends it and gives it a `wait`, which an ended flow cannot keep.
    #[error(
        "flow {id} is reported {status} with a `wait`: an ended flow waits for nothing; leave \
         `wait` out (or null) when reporting its end"
    )]
    EndsWithWait { id: String, status: FlowStatus },

    #[error("flow {id} is leased by {holder} until {expires_at}")]
    LeaseHeld { id: String, holder: String, expires_at: Timestamp },

    #[error("the lease on flow {id} is no longer held by this runner")]
    LeaseLost { id: String },

    /// No schedule of this name for this owner (the same for another owner's).
    #[error("no schedule `{name}`")]
    ScheduleNotFound { name: String },

    /// A schedule of this owner already has this name.
    #[error("schedule `{name}` already exists")]
    ScheduleExists { name: String },

    /// Another owner's schedule has this name: schedule names are one namespace per database.
    #[error(
        "the schedule name `{name}` is taken by another owner (schedule names are shared by \
         every owner of the database)"
    )]
    ScheduleNameTaken { name: String },

    /// A scheduler's decision about a schedule whose cursor another scheduler moved meanwhile:
    /// nothing was written, and the decision is made again from what is stored now.
    #[error("the scheduler of `{name}` moved on meanwhile")]
    ScheduleMoved { name: String },

    /// A decision about a tool call that was decided already: a decision is recorded once.
    #[error("call `{call_id}` of flow {id} was already {decision}")]
    AlreadyDecided { id: String, call_id: String, decision: &'static str },

    /// A decision about a call the flow does not wait for; `pending` lists the calls it waits
    /// for (none when it waits for no approval).
    #[error("flow {id} is not waiting for an approval of call `{call_id}`{}", pending_calls(.pending))]
    NoApproval { id: String, call_id: String, pending: Vec<String> },

    #[error("{0}")]
    InvalidInput(String),

    /// The storage backend failed or refused: see [`StorageError::kind`].
    #[error(transparent)]
    Storage(#[from] StorageError),

    #[error("no place for the flow database: neither XDG_DATA_HOME nor HOME is set")]
    NoDataDir,

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("a stored JSON value is invalid: {0}")]
    Json(#[from] serde_json::Error),
}

/// What kind of trouble a storage backend reports. Callers decide on the kind (a hint to show,
/// whether to retry); the backend's own error stays reachable as the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// Another process holds the database and did not let go in time.
    Locked,
    /// The database is damaged, or is not a taskflow database.
    Corrupt,
    /// The database was written by a newer taskflow.
    SchemaTooNew { found: i64, supported: i64 },
    /// The database cannot be opened or reached (a path, permissions, a server that is down).
    Unavailable,
    /// The disk (or quota) that holds the database is full; nothing of the failed write was
    /// kept.
    Full,
    /// A read, write or sync of the database failed; the failed write is treated as not
    /// committed, never as kept.
    Io,
    /// The database cannot be written any more: a file made read-only, or removed, while in
    /// use; a server that takes no writes. The detail says which, in the backend's terms.
    ReadOnly,
    /// The transaction lost a race with another writer and changed nothing; it may be tried
    /// again.
    Conflict,
    /// Anything else the backend reports.
    Other,
}

impl StorageErrorKind {
    /// Whether the storage itself failed under the caller (full, I/O, read-only, damaged): a run
    /// cannot go on until someone fixes it, and retrying at once would fail the same way.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            StorageErrorKind::Full
                | StorageErrorKind::Io
                | StorageErrorKind::ReadOnly
                | StorageErrorKind::Corrupt
        )
    }
}

/// A failure of the storage backend, the same for every backend: a kind, the database it is
/// about (as the user named it, with no secret in it), what happened, and the backend's own
/// error as the source.
#[derive(Debug)]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// Where the database is: a path, or a URL without its password. Empty when the backend
    /// does not know.
    pub database: String,
    pub detail: String,
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StorageError {
    pub fn new(
        kind: StorageErrorKind,
        database: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        StorageError { kind, database: database.into(), detail: detail.into(), source: None }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (database, detail) = (&self.database, &self.detail);
        match self.kind {
            StorageErrorKind::Locked => {
                write!(f, "the flow database {database} is locked by another process")
            }
            StorageErrorKind::Corrupt => write!(
                f,
                "the flow database {database} is damaged or not a taskflow database: {detail}"
            ),
            StorageErrorKind::SchemaTooNew { found, supported } => write!(
                f,
                "the flow database {database} has schema version {found}, newer than this \
                 taskflow understands ({supported})"
            ),
            StorageErrorKind::Unavailable => {
                write!(f, "cannot open the flow database {database}: {detail}")
            }
            StorageErrorKind::Full => {
                write!(f, "the disk that holds the flow database {database} is full: {detail}")
            }
            StorageErrorKind::Io => write!(
                f,
                "the flow database {database} could not be read or written (an I/O error): {detail}"
            ),
            StorageErrorKind::ReadOnly => {
                write!(f, "the flow database {database} cannot be written: {detail}")
            }
            StorageErrorKind::Conflict => write!(
                f,
                "the flow database {database} refused a write that raced another: {detail}"
            ),
            StorageErrorKind::Other => write!(f, "flow database error: {detail}"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// The kind of storage failure, if this is one.
    pub fn storage_kind(&self) -> Option<StorageErrorKind> {
        match self {
            Error::Storage(error) => Some(error.kind),
            _ => None,
        }
    }
}

impl From<crate::status::UnknownStatus> for Error {
    fn from(error: crate::status::UnknownStatus) -> Self {
        Error::InvalidInput(error.to_string())
    }
}

/// What an illegal transition out of an ended status adds.
fn ended_note(from: FlowStatus) -> &'static str {
    if from.is_terminal() { ": the flow has ended, and an ended flow does not change" } else { "" }
}

/// How a mirrored step that ended runs again, as [`StepStatus::is_tried_again`] decides.
fn run_again(ended: StepStatus) -> &'static str {
    if ended.is_tried_again() {
        "report it `running` to begin its next attempt (the same idempotency key)"
    } else {
        "a step's end is reported once; report it `running` to run it again, as a new step of \
         that name (attempt 1, with an idempotency key of its own)"
    }
}

/// `NoApproval`'s list of the calls a flow does wait for.
fn pending_calls(pending: &[String]) -> String {
    match pending {
        [] => " (it waits for none)".to_owned(),
        calls => {
            let calls: Vec<String> = calls.iter().map(|call| format!("`{call}`")).collect();
            format!(" (it waits for {})", calls.join(", "))
        }
    }
}
