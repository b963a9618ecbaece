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
use taskflow_store::excerpt::excerpt;

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

    /// The keys a step's `with` may hold, optional ones included: a step with another key is
    /// refused before anything runs ([`unknown_parameters`]), because a misspelt optional key
    /// (`timout`) would otherwise be ignored without a word. `None`, the default, takes any
    /// key: an action a program registers reads what it likes.
    fn parameters(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Whether a step's own `timeout` and `retry` apply to this action. They do by default;
    /// an action whose attempt only looks whether its wait is over (`sleep`, `wait_signal`)
    /// ends at once, so a timeout would never stop it and there is nothing to try again. Its
    /// message says why and what to write instead, and a step that sets either is refused.
    fn step_limits(&self) -> Result<(), String> {
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

/// The keys of `with` that `action`, registered as `name`, does not take
/// ([`Action::parameters`]), in the order of the table, each with its message. Nothing for an
/// action that takes any key or a `with` that is not a table (refused on its own).
pub fn unknown_parameters(name: &str, action: &dyn Action, with: &Value) -> Vec<(String, String)> {
    let (Some(parameters), Some(table)) = (action.parameters(), with.as_object()) else {
        return Vec::new();
    };
    table
        .keys()
        .filter(|key| !parameters.contains(&key.as_str()))
        .map(|key| {
            let message = format!(
                "`with.{}` is not a parameter of `{}` (parameters: {})",
                excerpt(key),
                excerpt(name),
                parameters.join(", ")
            );
            (key.clone(), message)
        })
        .collect()
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
