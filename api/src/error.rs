//! The api's one error type. A front end turns it into its own answer: the CLI into a message,
//! a hint and an exit code; a server into a status code and a JSON error.

use taskflow_engine::EngineError;
use taskflow_store::{Error, StorageErrorKind};

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The flow store refused or failed.
    #[error(transparent)]
    Store(#[from] taskflow_store::Error),

    /// The engine could not do what it was asked (a spec it cannot run, an agent that cannot
    /// start).
    #[error(transparent)]
    Engine(EngineError),

    /// A request that does not make sense as given, and what to do instead.
    #[error("{message}")]
    Invalid { message: String, hint: Option<String> },

    /// A request the flow is in no state for (an approval it does not wait for), and what to
    /// do instead.
    #[error("{message}")]
    Refused { message: String, hint: Option<String> },

    /// The config file cannot be used.
    #[error("{message}")]
    Config { message: String, hint: Option<String> },

    /// A flow with the id asked for exists and was created from another spec.
    #[error("flow {id} exists and was created from another spec: {difference}")]
    IdTaken { id: String, difference: String },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid { message: message.into(), hint: None }
    }

    /// What the user can do about it, where the api knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { hint, .. }
            | ApiError::Refused { hint, .. }
            | ApiError::Config { hint, .. } => hint.as_deref(),
            ApiError::IdTaken { .. } => {
                Some("pick another id, or resume the flow that has it (`taskflow flows resume ID`)")
            }
            _ => None,
        }
    }
}

/// What kind of failure an error is, in the stable words every front end answers with (serve's
/// `error.code`, the MCP server's tool errors), so a client can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request cannot be understood as given.
    BadRequest,
    /// No such flow for this owner (another owner's flow is not found either).
    NotFound,
    /// Someone else got there first: a revision, an id, a lease, a decision.
    Conflict,
    /// The rules refuse it in the flow's present state.
    Refused,
    /// The database cannot be reached or written now.
    Unavailable,
    /// Something broke that the caller cannot fix.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Refused => "refused",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The kind of a store failure.
    pub fn of_store(error: &Error) -> ErrorCode {
        match error {
            Error::NotFound { .. } | Error::ScheduleNotFound { .. } => ErrorCode::NotFound,
            Error::RevisionConflict { .. }
            | Error::IdTaken { .. }
            | Error::LeaseHeld { .. }
            | Error::AlreadyDecided { .. } => ErrorCode::Conflict,
            Error::Storage(storage) => match storage.kind {
                StorageErrorKind::Locked
                | StorageErrorKind::Unavailable
                | StorageErrorKind::Full
                | StorageErrorKind::Io
                | StorageErrorKind::ReadOnly => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            },
            Error::Json(_) | Error::Io { .. } | Error::NoDataDir => ErrorCode::Internal,
            _ => ErrorCode::Refused,
        }
    }
}

impl ApiError {
    /// The kind of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Store(error) | ApiError::Engine(EngineError::Store(error)) => {
                ErrorCode::of_store(error)
            }
            ApiError::Engine(_) | ApiError::Refused { .. } | ApiError::Config { .. } => {
                ErrorCode::Refused
            }
            ApiError::Invalid { .. } => ErrorCode::BadRequest,
            ApiError::IdTaken { .. } => ErrorCode::Conflict,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(error) => ApiError::Store(error),
            other => ApiError::Engine(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use taskflow_store::{Error, FlowStatus, StorageError, StorageErrorKind};

    use super::ApiError;

    fn check(error: ApiError, expected: &str) {
        assert_eq!(error.code().as_str(), expected, "{error}");
    }

    #[test]
    fn every_failure_has_the_word_a_client_matches() {
        let store = |error: Error| ApiError::Store(error);
        check(store(Error::NotFound { id: "a".into() }), "not_found");
        check(store(Error::RevisionConflict { expected: 1, current: 2 }), "conflict");
        check(store(Error::IdTaken { id: "a".into() }), "conflict");
        check(
            store(Error::AlreadyDecided { id: "a".into(), call_id: "c".into(), decision: "x" }),
            "conflict",
        );
        check(
            store(Error::IllegalTransition {
                from: FlowStatus::Succeeded,
                to: FlowStatus::Running,
            }),
            "refused",
        );
        check(store(Error::Mirrored { id: "a".into(), action: "resume" }), "refused");
        check(
            store(Error::Storage(StorageError::new(
                StorageErrorKind::Full,
                "flows.db",
                "disk full",
            ))),
            "unavailable",
        );
        check(
            store(Error::Storage(StorageError::new(
                StorageErrorKind::Corrupt,
                "flows.db",
                "not a db",
            ))),
            "internal",
        );
        check(ApiError::invalid("no"), "bad_request");
        check(ApiError::Refused { message: "no".into(), hint: None }, "refused");
        check(ApiError::IdTaken { id: "a".into(), difference: "d".into() }, "conflict");
        let engine = taskflow_engine::EngineError::Store(Error::NotFound { id: "a".into() });
        check(ApiError::Engine(engine), "not_found");
    }
}
