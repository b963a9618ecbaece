//! Actions: what a step runs. An action is an async handler with one contract, the same for
//! the built-ins and for those a program registers: it gets the step's input (its `with`, with
//! templates filled in) and a [`StepContext`] (idempotency key, attempt, cancellation), and
//! returns the step's output or an [`ActionError`]. [`Actions`] is the registry a spec is checked
//! against and the engine runs from; `llm` and `agent` actions plug in the same way.
//!
//! An action that starts work of its own as child flows (the `agent` action) reaches the
//! engine through [`StepContext::children`], a [`ChildFlows`] the engine implements: actions
//! never name the engine.

mod agent;
mod echo;
mod fetch;
mod llm;
mod process;
mod shell;
mod tool;
mod write_file;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use agent::AgentAction;
pub use echo::Echo;
pub use fetch::FetchUrls;
pub use llm::Llm;
pub(crate) use process::run_child;
pub use shell::Shell;
pub use tool::ToolAction;
pub use write_file::WriteFile;

use crate::agent::AgentSpec;
use crate::tools::Tools;
use taskflow_store::model::{Flow, FlowId};

/// What an action's future resolves to.
pub type ActionResult = Result<Value, ActionError>;

/// The boxed future an action returns.
pub type ActionFuture = Pin<Box<dyn Future<Output = ActionResult> + Send>>;

/// Why an attempt of a step did not produce an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// It failed; another attempt may succeed (the retry policy decides).
    #[error("{0}")]
    Failed(String),
    /// It failed in a way another attempt would repeat (bad input, a 404): not retried.
    #[error("{0}")]
    Permanent(String),
    /// It stopped because its cancellation token fired.
    #[error("cancelled")]
    Cancelled,
}

impl ActionError {
    pub fn failed(message: impl Into<String>) -> Self {
        ActionError::Failed(message.into())
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        ActionError::Permanent(message.into())
    }
}

/// What a running step knows about itself.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub flow_id: FlowId,
    /// The step's id in the spec.
    pub step: String,
    /// Its place in the flow's journal.
    pub seq: u32,
    /// 1 on the first attempt; more when it is tried again (after a failure, or after its
    /// runner stopped mid-attempt).
    pub attempt: u32,
    /// The same on every attempt of this step: an action with side effects uses it to do them
    /// once.
    pub idempotency_key: String,
    /// Fires when the step must stop: the flow was cancelled, or the attempt timed out.
    pub cancel: CancellationToken,
    /// How long a stopped child process gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Where relative paths of the spec are resolved.
    pub base_dir: Option<PathBuf>,
    /// The only folder `write_file` writes into.
    pub output_dir: Option<PathBuf>,
    /// Runs child flows of this step's flow; `None` where there is no engine behind the step
    /// (an agent's tool calls).
    pub children: Option<Arc<dyn ChildFlows>>,
}

impl StepContext {
    /// `path` resolved against the spec's base folder (the working directory if it has none).
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        match &self.base_dir {
            Some(base) => base.join(path),
            None => path.as_ref().to_owned(),
        }
    }
}

/// What [`ChildFlows::run_agent`] resolves to.
pub type ChildFuture = Pin<Box<dyn Future<Output = Result<Flow, ActionError>> + Send>>;

/// Child flows of a running step's flow (DESIGN §5 "Child tasks"), run in the same process by
/// the engine that runs the step, under the lease of the step's flow.
pub trait ChildFlows: Send + Sync + std::fmt::Debug {
    /// Runs `agent` as a child flow of the step's flow until it ends, and returns the child as
    /// it is then. The child is marked with the step's idempotency key, so another attempt of
    /// the step (after a crash, or a retry) continues that child instead of spawning a second
    /// one, unless it failed or was cancelled. When the step is stopped (`context.cancel`), the
    /// child's run stops too and the child comes back unended (or `cancelled`, when the stop
    /// was a cancel of the flow). A spawn refused because the flow has a cancel request is
    /// [`ActionError::Cancelled`].
    fn run_agent(&self, agent: AgentSpec, context: &StepContext) -> ChildFuture;
}

/// A step handler.
pub trait Action: Send + Sync {
    /// Runs one attempt.
    fn run(&self, input: Value, context: StepContext) -> ActionFuture;

    /// Checks a step's `with` before anything runs (templates not yet filled in); the message
    /// says what is wrong.
    fn check(&self, _with: &Value) -> Result<(), String> {
        Ok(())
    }
}

impl<F, Fut> Action for F
where
    F: Fn(Value, StepContext) -> Fut + Send + Sync,
    Fut: Future<Output = ActionResult> + Send + 'static,
{
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        Box::pin(self(input, context))
    }
}

/// The actions a spec may name.
#[derive(Clone, Default)]
pub struct Actions {
    by_name: BTreeMap<String, Arc<dyn Action>>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Actions {
    /// No actions at all.
    pub fn new() -> Self {
        Actions::default()
    }

    /// `echo`, `shell`, `fetch_urls`, `write_file`, `tool` (over [`Tools::builtin`]), `llm`
    /// (providers from the presets; [`crate::Engine::with_providers`] replaces it) and `agent`
    /// (an agent run as a child flow, with the engine's providers).
    pub fn builtin() -> Self {
        let mut actions = Actions::new();
        actions
            .register("agent", AgentAction)
            .register("echo", Echo)
            .register("llm", Llm::new(crate::agent::preset_providers()))
            .register("shell", Shell)
            .register("fetch_urls", FetchUrls::default())
            .register("write_file", WriteFile)
            .register("tool", ToolAction::new(Tools::builtin()));
        actions
    }

    /// Registers (or replaces) the action called `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        action: impl Action + 'static,
    ) -> &mut Self {
        self.by_name.insert(name.into(), Arc::new(action));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Action>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

/// The string parameter `key` of `with`, if present; a template counts as present.
pub(crate) fn string_param<'a>(with: &'a Value, key: &str) -> Result<&'a str, String> {
    match with.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(format!("`with.{key}` must be a string")),
        None => Err(format!("`with.{key}` is missing")),
    }
}
