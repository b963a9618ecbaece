//! A pipeline's budget, spent by its whole tree: the pipeline's own `llm` steps and the model
//! calls of the agent runs its `agent` steps start as child flows. One run of the pipeline
//! holds one [`TreeBudget`]: what the tree spent is summed from the journals when the run
//! starts (so it survives a resume), then grows as each model call of the tree ends; every
//! model call of the tree looks at it first, and none is made once a limit is reached.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use taskflow_store::model::FlowId;
use taskflow_tools::{Budget, Spent};

#[derive(Debug)]
pub(crate) struct TreeBudget {
    pipeline: FlowId,
    budget: Budget,
    spent: Mutex<Spent>,
}

impl TreeBudget {
    /// The budget of `pipeline`, of which `spent` is used; `None` when it sets no limit.
    pub(crate) fn new(pipeline: FlowId, budget: Budget, spent: Spent) -> Option<Arc<TreeBudget>> {
        (!budget.is_empty())
            .then(|| Arc::new(TreeBudget { pipeline, budget, spent: Mutex::new(spent) }))
    }

    /// Why no further model call of the tree may be made (naming the pipeline and the command
    /// that raises its budget), or `None` while the budget lasts.
    pub(crate) fn exhausted(&self) -> Option<String> {
        let spent = *self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let exhausted = self.budget.spent_by(spent, None)?;
        Some(format!("pipeline {}: {}", self.pipeline, exhausted.message(&self.pipeline)))
    }

    /// Counts the usage of one model call's checkpointed response.
    pub(crate) fn add(&self, response: &Value) {
        let mut spent = self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *spent = spent.plus(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tree_is_stopped_once_its_calls_reach_the_limit() {
        let pipeline = FlowId::new();
        let budget = Budget { max_tokens: Some(100), max_cost: None };
        assert!(TreeBudget::new(pipeline.clone(), Budget::default(), Spent::default()).is_none());
        let tree =
            TreeBudget::new(pipeline.clone(), budget, Spent { input_tokens: 60, output_tokens: 0 })
                .unwrap();
        assert_eq!(tree.exhausted(), None);
        tree.add(&json!({"content": "x", "usage": {"prompt_tokens": 30, "completion_tokens": 10}}));
        let reason = tree.exhausted().unwrap();
        assert!(reason.contains("100 tokens used of 100"), "{reason}");
        assert!(
            reason.contains(&format!("`taskflow flows resume {pipeline} --max-tokens N`")),
            "{reason}"
        );
    }
}
