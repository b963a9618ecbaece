//! The crate's one error type. Each refusal of the store's rules is its own variant, so callers
//! (the engine, the CLI) can react to it by kind; only the binary turns them into messages and
//! exit codes.

use std::path::PathBuf;

use crate::status::FlowStatus;
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

    #[error("flow {id} has no step {seq}")]
    StepNotFound { id: String, seq: u32 },

    #[error("revision conflict: expected revision {expected}, the flow is at revision {current}")]
    RevisionConflict { expected: u64, current: u64 },

    #[error("illegal transition from {from} to {to}")]
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

    #[error("flow {id} is leased by {holder} until {expires_at}")]
    LeaseHeld { id: String, holder: String, expires_at: Timestamp },

    #[error("the lease on flow {id} is no longer held by this runner")]
    LeaseLost { id: String },

    #[error("{0}")]
    InvalidInput(String),

    #[error(
        "the flow database {path} has schema version {found}, newer than this taskflow \
         understands ({supported})"
    )]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },

    #[error("the flow database {path} is damaged or not a taskflow database: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error("the flow database {path} is locked by another process")]
    Locked { path: PathBuf },

    #[error("cannot open the flow database {path}: {detail}")]
    Open { path: PathBuf, detail: String },

    #[error("no place for the flow database: neither XDG_DATA_HOME nor HOME is set")]
    NoDataDir,

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("flow database error: {0}")]
    Database(#[from] rusqlite::Error),

    #[error("a stored JSON value is invalid: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Turns a SQLite failure on the database at `path` into the variant a user can act on.
    pub(crate) fn from_sqlite(path: &std::path::Path, error: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        let code = error.sqlite_error_code();
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Error::Locked { path: path.to_owned() }
            }
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Error::Corrupt { path: path.to_owned(), detail: error.to_string() }
            }
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure,
            ) => Error::Open { path: path.to_owned(), detail: error.to_string() },
            _ => Error::Database(error),
        }
    }
}
