//! What one attempt of a step is given and gives back, the same for an action and a tool:
//! the step's identity, idempotency key and cancellation ([`StepContext`]), and its output or
//! an [`ActionError`]. A step that starts work of its own as child flows (the `agent` action)
//! reaches the engine through [`StepContext::children`], a [`ChildFlows`] the engine
//! implements, so that nothing here names the engine. A step that must wait before it can end
//! (a durable timer, a signal) says so with [`ActionError::Waiting`], and takes the signals its
//! flow receives through [`StepContext::signals`], which the engine implements too.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskflow_store::model::{Flow, FlowId};
use taskflow_store::time::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::agent_spec::AgentSpec;

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
    /// Not a failure: the step cannot end before an instant or a signal. Its flow waits for
    /// it without a process (once nothing else of the flow runs), and the step runs again, in
    /// the same attempt, when the wait may be over.
    #[error("{0}")]
    Waiting(Wait),
    /// Not a failure: the step stopped because its flow may spend no more (its pipeline's
    /// budget is spent); the flow is `blocked` with this reason, and a resume runs the step
    /// again.
    #[error("{0}")]
    Blocked(String),
}

/// What a step waits for before it can end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// It can end at this instant (a timer, or a signal's timeout).
    pub until: Option<Timestamp>,
    /// It can end when a signal of this name arrives.
    pub signal: Option<String>,
    /// It can end when this child flow of its flow (its id), which waits itself (for a
    /// person's decision about a tool call), ends or is decided about.
    pub child: Option<String>,
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(child) = &self.child {
            return write!(f, "waiting for its child flow {child}");
        }
        match (&self.signal, self.until) {
            (Some(signal), Some(until)) => write!(f, "waiting for signal `{signal}` until {until}"),
            (Some(signal), None) => write!(f, "waiting for signal `{signal}`"),
            (None, Some(until)) => write!(f, "waiting until {until}"),
            (None, None) => f.write_str("waiting"),
        }
    }
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
    /// The token of the run's lease (empty where there is none): every process the step starts
    /// carries it (`TASKFLOW_RUN_TOKEN`), so that a run taking over from this one, should it
    /// die, can end what it left running ([`crate::process::end_interrupted`]).
    pub run_token: String,
    /// When the step began (its first attempt): the same on every attempt and every run, so a
    /// timer measured from it survives a restart.
    pub started_at: Timestamp,
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
    /// Takes the signals this step's flow receives; `None` where there is no engine behind the
    /// step.
    pub signals: Option<Arc<dyn Signals>>,
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

#[cfg(test)]
impl StepContext {
    /// A first attempt of step `tool` with no run token, base folder or engine behind it, and a
    /// short grace period.
    pub(crate) fn for_test() -> Self {
        StepContext {
            flow_id: FlowId::new(),
            step: "tool".into(),
            seq: 1,
            attempt: 1,
            idempotency_key: "key-1".into(),
            run_token: String::new(),
            started_at: Timestamp::now(),
            cancel: CancellationToken::new(),
            kill_grace: Duration::from_millis(200),
            base_dir: None,
            output_dir: None,
            children: None,
            signals: None,
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

/// What [`Signals::take`] resolves to: the taken signal's payload, or `None` when no signal of
/// that name has arrived (yet).
pub type SignalFuture = Pin<Box<dyn Future<Output = Result<Option<Value>, ActionError>> + Send>>;

/// The signals a running step's flow receives (DESIGN §9), kept in the store until a step takes
/// one. The engine implements it, under the lease of the step's flow.
pub trait Signals: Send + Sync + std::fmt::Debug {
    /// The payload of the oldest signal called `name` that no step has taken, now taken by the
    /// step of `context`; the same one again if that step took one before (its runner may have
    /// stopped before the step ended). `None`: none has arrived.
    fn take(&self, name: &str, context: &StepContext) -> SignalFuture;
}
