//! Tools: named functions over JSON arguments that a pipeline's `tool` step or a model in an
//! agent run calls. A tool gets the same [`StepContext`] as an action, so it sees the step's
//! idempotency key and cancellation. Its name is a value, not a constant, so a tool known only
//! at run time (one a tool server offers) registers like a built-in. [`Tools`] is the registry;
//! the built-in tools (module `tools`) register themselves with `Tools::builtin` and
//! `register_agent_tools`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::step::{ActionFuture, StepContext};

/// A tool.
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    /// One line for a model or a `--help`.
    fn description(&self) -> &str;
    /// The JSON schema of its arguments.
    fn parameters(&self) -> Value;
    fn call(&self, args: Value, context: StepContext) -> ActionFuture;
}

/// Tools by name, in name order.
#[derive(Clone, Default)]
pub struct Tools {
    by_name: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Tools {
    /// Registers (or replaces) the tool under its name.
    pub fn register(&mut self, tool: impl Tool + 'static) -> &mut Self {
        self.by_name.insert(tool.name().to_owned(), Arc::new(tool));
        self
    }

    /// Registers a tool another registry already holds.
    pub fn register_shared(&mut self, tool: Arc<dyn Tool>) -> &mut Self {
        self.by_name.insert(tool.name().to_owned(), tool);
        self
    }

    pub fn get(&self, name: impl AsRef<str>) -> Option<Arc<dyn Tool>> {
        self.by_name.get(name.as_ref()).cloned()
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A tool whose name comes from elsewhere at run time, as a tool server's would.
    struct Named(String);

    impl Tool for Named {
        fn name(&self) -> &str {
            &self.0
        }

        fn description(&self) -> &str {
            "named at run time"
        }

        fn parameters(&self) -> Value {
            json!({"type": "object"})
        }

        fn call(&self, args: Value, _context: StepContext) -> ActionFuture {
            Box::pin(std::future::ready(Ok(args)))
        }
    }

    #[test]
    fn tools_named_at_run_time_are_registered_and_listed_in_name_order() {
        let mut tools = Tools::default();
        for name in ["zeta", "alpha", "mid"] {
            tools.register(Named(format!("server_{name}")));
        }
        assert_eq!(tools.names(), ["server_alpha", "server_mid", "server_zeta"]);
        let name = String::from("server_alpha");
        assert_eq!(tools.get(&name).map(|tool| tool.name().to_owned()), Some(name.clone()));
        assert!(tools.get(name).is_some());
        assert!(tools.get("server_beta").is_none());
        let mut chosen = Tools::default();
        chosen.register_shared(tools.get("server_zeta").unwrap());
        assert_eq!(chosen.names(), ["server_zeta"]);
    }
}
