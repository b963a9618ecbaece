//! A pipeline's budget, spent by its whole tree: the pipeline's own `llm` steps and the model
//! calls of the agent runs its `agent` steps start as child flows. One run of the pipeline
//! holds one [`TreeBudget`]: what the tree spent (tokens, and dollars at the price of each
//! call's model, `crate::costs`) is summed from the journals when the run starts (so it
//! survives a resume), then grows as each model call of the tree ends; every model call of
//! the tree looks at it first, and none is made once a limit is reached.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use taskflow_store::model::FlowId;
use taskflow_tools::{Budget, Price, Spent};

#[derive(Debug)]
pub(crate) struct TreeBudget {
    pipeline: FlowId,
    budget: Budget,
    spent: Mutex<(Spent, Option<f64>)>,
}

impl TreeBudget {
    /// The budget of `pipeline`, of which `spent` is used, costing `cost` (`None` when its
    /// prices are unknown); `None` when it sets no limit.
    pub(crate) fn new(
        pipeline: FlowId,
        budget: Budget,
        spent: Spent,
        cost: Option<f64>,
    ) -> Option<Arc<TreeBudget>> {
        (!budget.is_empty())
            .then(|| Arc::new(TreeBudget { pipeline, budget, spent: Mutex::new((spent, cost)) }))
    }

    /// The limits in force.
    pub(crate) fn budget(&self) -> Budget {
        self.budget
    }

    /// Why no further model call of the tree may be made (naming the pipeline and the command
    /// that raises its budget), or `None` while the budget lasts.
    pub(crate) fn exhausted(&self) -> Option<String> {
        let (spent, cost) = *self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let exhausted = self.budget.spent_by(spent, cost)?;
        Some(format!("pipeline {}: {}", self.pipeline, exhausted.message(&self.pipeline)))
    }

    /// Counts the usage of one model call's checkpointed response, made with a model of
    /// `price` (the cost is unknown from then on without one).
    pub(crate) fn add(&self, response: &Value, price: Option<Price>) {
        let mut spent = self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let call = Spent::default().plus(response);
        let cost = match (spent.1, price) {
            (Some(cost), Some(price)) => Some(cost + call.cost(price)),
            _ => None,
        };
        *spent = (spent.0.plus(response), cost);
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
        assert!(
            TreeBudget::new(pipeline.clone(), Budget::default(), Spent::default(), None).is_none()
        );
        let spent = Spent { input_tokens: 60, output_tokens: 0, unmeasured: 0 };
        let tree = TreeBudget::new(pipeline.clone(), budget, spent, None).unwrap();
        assert_eq!(tree.exhausted(), None);
        let call = json!({"content": "x", "usage": {"prompt_tokens": 30, "completion_tokens": 10}});
        tree.add(&call, None);
        let reason = tree.exhausted().unwrap();
        assert!(reason.contains("100 tokens used of 100"), "{reason}");
        assert!(
            reason.contains(&format!("`taskflow flows resume {pipeline} --max-tokens N`")),
            "{reason}"
        );
    }

    #[test]
    fn the_tree_is_stopped_once_its_calls_cost_the_limit_each_at_its_models_price() {
        let pipeline = FlowId::new();
        let budget = Budget { max_tokens: None, max_cost: Some(0.001) };
        let tree = TreeBudget::new(pipeline.clone(), budget, Spent::default(), Some(0.0)).unwrap();
        let call =
            json!({"content": "x", "usage": {"prompt_tokens": 100, "completion_tokens": 50}});
        tree.add(&call, Some(Price { input_per_mtok: 1.0, output_per_mtok: 4.0 }));
        assert_eq!(tree.exhausted(), None, "$0.0003 of $0.001");
        tree.add(&call, Some(Price { input_per_mtok: 4.0, output_per_mtok: 8.0 }));
        let reason = tree.exhausted().unwrap();
        assert!(reason.contains("$0.0011 used of $0.0010"), "{reason}");
        assert!(reason.contains("--max-cost USD"), "{reason}");
    }
}
