//! The api's one error type. A front end turns it into its own answer: the CLI into a message,
//! a hint and an exit code; a server into a status code and a JSON error.

use taskflow_engine::EngineError;

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
            ApiError::Invalid { hint, .. } | ApiError::Config { hint, .. } => hint.as_deref(),
            ApiError::IdTaken { .. } => {
                Some("pick another id, or resume the flow that has it (`taskflow flows resume ID`)")
            }
            _ => None,
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
