//! What every request handler and background task of one serve process shares: the store, the
//! engine, the tokens, the flows this process runs, the change feed and the dashboard's
//! sessions.

use std::sync::Arc;

use taskflow_api::ServeToken;
use taskflow_engine::Engine;
use taskflow_store::{OwnerHandle, TaskFlow};

use crate::feed::Feed;
use crate::sessions::Sessions;
use taskflow_engine::Runs;

/// Cheap to clone; one per process.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    taskflow: TaskFlow,
    engine: Engine,
    tokens: Vec<ServeToken>,
    owner: String,
    runs: Runs,
    feed: Feed,
    sessions: Sessions,
}

impl AppState {
    pub fn new(
        taskflow: TaskFlow,
        engine: Engine,
        tokens: Vec<ServeToken>,
        owner: String,
        runs: Runs,
        feed: Feed,
    ) -> Self {
        AppState(Arc::new(Shared {
            taskflow,
            engine,
            tokens,
            owner,
            runs,
            feed,
            sessions: Sessions::default(),
        }))
    }

    pub fn taskflow(&self) -> &TaskFlow {
        &self.0.taskflow
    }

    pub fn tokens(&self) -> &[ServeToken] {
        &self.0.tokens
    }

    /// The owner of every request when no token is configured.
    pub fn default_owner(&self) -> &str {
        &self.0.owner
    }

    pub fn runs(&self) -> &Runs {
        &self.0.runs
    }

    pub fn feed(&self) -> &Feed {
        &self.0.feed
    }

    /// The dashboard's sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    /// `owner`'s view of the store. Owners are checked by the store when bound.
    pub fn handle(&self, owner: &str) -> Result<OwnerHandle, taskflow_store::Error> {
        self.0.taskflow.bind(owner)
    }

    /// The one engine of the process, acting for serve's own owner (for a caller that picks
    /// the owner of each run itself).
    pub fn any_engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The engine acting for `owner`: the one engine of the process, so every owner's
    /// checkpoints are committed together.
    pub fn engine(&self, owner: &str) -> Result<Engine, taskflow_store::Error> {
        Ok(self.0.engine.for_owner(self.handle(owner)?))
    }
}
