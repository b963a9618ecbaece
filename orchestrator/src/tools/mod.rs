//! Built-in tools: named functions over JSON arguments that a pipeline's `tool` step calls
//! (and, later, a model in an agent run). A tool gets the same [`StepContext`] as an action, so
//! it sees the step's idempotency key and cancellation. [`Tools`] is the registry; new tools are
//! one file each and one `register` call.

mod html_text;
mod keyword_filter;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

pub use html_text::HtmlText;
pub use keyword_filter::KeywordFilter;

use crate::action::{ActionFuture, StepContext};

/// A built-in tool.
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for a model or a `--help`.
    fn description(&self) -> &'static str;
    /// The JSON schema of its arguments.
    fn parameters(&self) -> Value;
    fn call(&self, args: Value, context: StepContext) -> ActionFuture;
}

/// The tools a `tool` step may name.
#[derive(Clone, Default)]
pub struct Tools {
    by_name: BTreeMap<&'static str, Arc<dyn Tool>>,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Tools {
    /// `html_text` and `keyword_filter`.
    pub fn builtin() -> Self {
        let mut tools = Tools::default();
        tools.register(HtmlText).register(KeywordFilter);
        tools
    }

    pub fn register(&mut self, tool: impl Tool + 'static) -> &mut Self {
        self.by_name.insert(tool.name(), Arc::new(tool));
        self
    }

    /// Registers a tool another registry already holds.
    pub fn register_shared(&mut self, tool: Arc<dyn Tool>) -> &mut Self {
        self.by_name.insert(tool.name(), tool);
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }
}
