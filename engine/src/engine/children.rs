//! Child flows of a running pipeline step (DESIGN §5 "Child tasks"): the engine's side of
//! [`ChildFlows`]. A step's child is spawned under the lease of the step's flow (which adds a
//! `child` step to that flow, ended by the store when the child ends) and run to its end by the
//! same engine, in the same process, like any flow it runs: its own lease, its own checkpoints
//! through the engine's writer thread, and a cancel poll that covers it.
//!
//! The child's stored spec carries the step's idempotency key (`step_key`), the same on every
//! attempt of the step, so an attempt after a crash or a retry finds the child again and
//! continues it; only a child that failed or was cancelled is replaced by a new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::tree_budget::TreeBudget;
use super::{Engine, EngineError, RunControl, quiet};
use taskflow_store::error::{Error, SpawnRefusal};
use taskflow_store::lease::Lease;
use taskflow_store::model::{Flow, NewFlow};
use taskflow_store::status::FlowStatus;
use taskflow_tools::{ActionError, ChildFlows, ChildFuture, StepContext};
use taskflow_tools::{AgentSpec, StepModel};

/// The key of a child's spec that names the step that spawned it.
const STEP_KEY: &str = "step_key";

/// Runs the children of one flow's steps; one per run of a pipeline flow.
#[derive(Debug, Clone)]
pub(crate) struct ChildRuns {
    pub(crate) engine: Engine,
    /// The lease of the parent flow's run.
    pub(crate) parent: Lease,
    /// The parent run's cancellation token.
    pub(crate) flow_token: CancellationToken,
    /// The parent pipeline's budget, which its children's model calls spend too.
    pub(crate) tree: Option<Arc<TreeBudget>>,
    /// The parent pipeline's step models, by step id: a child stores the price of its step's.
    pub(crate) prices: BTreeMap<String, StepModel>,
}

impl ChildFlows for ChildRuns {
    fn run_agent(&self, mut agent: AgentSpec, context: &StepContext) -> ChildFuture {
        agent.price = self.prices.get(&context.step).and_then(|model| model.price);
        let runs = self.clone();
        let key = context.idempotency_key.clone();
        let stop = context.cancel.clone();
        Box::pin(async move { runs.agent(agent, key, stop).await })
    }
}

impl ChildRuns {
    async fn agent(
        self,
        agent: AgentSpec,
        key: String,
        stop: CancellationToken,
    ) -> Result<Flow, ActionError> {
        let child = match self.find(&key).await.map_err(store_error)? {
            Some(child) => child,
            None => self.spawn(&agent, &key).await?,
        };
        let child = if child.status.is_terminal() {
            child
        } else {
            self.engine
                .run_flow(
                    &child.id,
                    quiet(),
                    RunControl { stop: stop.child_token(), ..RunControl::default() },
                    None,
                    self.tree.clone(),
                )
                .await
                .map_err(engine_error)?
        };
        if child.status != FlowStatus::Succeeded && self.parent_cancel_requested().await {
            // The child stopped for the parent's cancel: the step is cancelled, not failed,
            // even if the parent's own run has not noticed the request yet.
            self.flow_token.cancel();
        }
        Ok(child)
    }

    /// The newest child spawned for the step with `key`, unless it failed or was cancelled
    /// (a new attempt then gets a new child).
    async fn find(&self, key: &str) -> Result<Option<Flow>, Error> {
        let parent = self.parent.flow_id.clone();
        let key = key.to_owned();
        self.engine
            .store
            .call(move |handle| {
                for summary in handle.children(&parent)?.iter().rev() {
                    let child = handle.flow(&summary.id)?;
                    let marked = child.spec.as_ref().and_then(|spec| spec.get(STEP_KEY));
                    if marked.and_then(Value::as_str) == Some(key.as_str()) {
                        let replaced = matches!(
                            child.status,
                            FlowStatus::Failed | FlowStatus::Cancelled | FlowStatus::Lost
                        );
                        return Ok(if replaced { None } else { Some(child) });
                    }
                }
                Ok(None)
            })
            .await
    }

    async fn spawn(&self, agent: &AgentSpec, key: &str) -> Result<Flow, ActionError> {
        self.engine.agent_parts(agent).map_err(ActionError::Permanent)?;
        let mut spec = agent.to_value();
        spec[STEP_KEY] = Value::String(key.to_owned());
        let mut new = NewFlow::managed(agent.name.clone()).with_spec(spec);
        new.controller = Some("taskflow agent".to_owned());
        let lease = self.parent.clone();
        let spawned = self.engine.store.call(move |handle| handle.spawn_child(&lease, new)).await;
        match spawned {
            Ok((child, _step)) => Ok(child),
            Err(Error::SpawnRefused { reason: SpawnRefusal::ParentCancelRequested, .. }) => {
                self.flow_token.cancel();
                Err(ActionError::Cancelled)
            }
            Err(error) => Err(store_error(error)),
        }
    }

    async fn parent_cancel_requested(&self) -> bool {
        let parent = self.parent.flow_id.clone();
        let flow = self.engine.store.call(move |handle| handle.flow(&parent)).await;
        flow.is_ok_and(|flow| flow.cancel_requested_at.is_some())
    }
}

/// A store refusal while handling the child: another attempt may get through (a busy
/// database, a lease still held), so the step's retry policy decides.
fn store_error(error: Error) -> ActionError {
    ActionError::failed(format!("the agent's child flow: {error}"))
}

fn engine_error(error: EngineError) -> ActionError {
    match error {
        EngineError::Store(error) => store_error(error),
        other => ActionError::permanent(other.to_string()),
    }
}
