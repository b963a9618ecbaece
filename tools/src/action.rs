//! Actions: what a step runs. An action is an async handler with one contract, the same for
//! the built-ins and for those a program registers: it gets the step's input (its `with`, with
//! templates filled in) and a [`StepContext`], and returns the step's output or an
//! [`ActionError`](crate::step::ActionError). [`Actions`] is the registry a spec is checked
//! against and an engine runs from; the built-in actions (module `actions`) register
//! themselves with `Actions::builtin`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::step::{ActionFuture, ActionResult, StepContext};

/// A step handler.
pub trait Action: Send + Sync {
    /// Runs one attempt.
    fn run(&self, input: Value, context: StepContext) -> ActionFuture;

    /// Checks a step's `with` before anything runs (templates not yet filled in); the message
    /// says what is wrong.
    fn check(&self, _with: &Value) -> Result<(), String> {
        Ok(())
    }

    /// Whether a step of this action is one model call: its output is the model's whole
    /// response, usage included ([`reply_text`](crate::actions::reply_text) is what templates
    /// and the flow's result read of it), it is journaled as an `llm` step, and its flow's
    /// budget is looked at before it begins.
    fn model_call(&self) -> bool {
        false
    }

    /// Whether a step with this `with` stays off the host when a caller who is not the host's
    /// user sent it (a serve token's owner): it reaches no command, file, environment variable
    /// or address beyond what the host's own configuration names. The message says what it
    /// would reach. An action says nothing of that by default, so it is refused.
    fn off_host(&self, _with: &Value) -> Result<(), String> {
        Err("it runs with the host's commands, files and network".to_owned())
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

    /// Registers (or replaces) the action called `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        action: impl Action + 'static,
    ) -> &mut Self {
        self.by_name.insert(name.into(), Arc::new(action));
        self
    }

    /// Registers (or replaces) an action that is shared already.
    pub fn register_shared(
        &mut self,
        name: impl Into<String>,
        action: Arc<dyn Action>,
    ) -> &mut Self {
        self.by_name.insert(name.into(), action);
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Action>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// Why a step of action `name` with `with` would reach the host ([`Action::off_host`]),
    /// if it would.
    pub fn reaches_host(&self, name: &str, with: &Value) -> Option<String> {
        match self.by_name.get(name) {
            Some(action) => action.off_host(with).err(),
            None => Some(format!("`{name}` is no action here")),
        }
    }
}
