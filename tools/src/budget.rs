//! Budgets of an agent run: at most so many tokens, at most so much money.
//!
//! What a run has spent is never counted on the side: it is summed from the usage its
//! succeeded `llm` steps checkpointed, so a resumed run, `flows inspect` and the check before
//! each model call all read the same number from the journal, and it cannot drift from what
//! was really asked for. The limits a run started with live in its spec; a limit raised later
//! (`taskflow flows resume ID --max-tokens N`) is written to the flow's state, where every
//! change is a revision, and wins over the spec's.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use taskflow_store::model::{Step, StepKind};
use taskflow_store::status::StepStatus;

/// The limits of a run; a limit that is `None` does not apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Input and output tokens together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// US dollars, at the model's price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// The model a pipeline's `llm` or `agent` step calls, and that model's price when the config
/// file had one as the pipeline was started (stored with the pipeline, so a later change of
/// the config file does not change what its calls cost).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepModel {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

/// The tokens a run's model calls used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The calls whose response reported no usage (a server that ignores
    /// `stream_options.include_usage`, a replay script without it): a budget cannot count them,
    /// and `flows inspect` says so.
    pub unmeasured: u64,
}

/// A limit that was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub reason: String,
    /// The option of `taskflow flows resume` that raises it.
    pub raise: &'static str,
}

/// The key of the flow's state that holds a raised budget.
pub const BUDGET_STATE_KEY: &str = "budget";

/// The key of an agent run's state that holds a raised turn limit
/// (`taskflow flows resume ID --max-turns N`), which wins over its spec's.
pub const MAX_TURNS_STATE_KEY: &str = "max_turns";

/// The turn limit in force: the one raised in `state`, else the spec's.
pub fn turns_in_force(spec: u32, state: Option<&Value>) -> u32 {
    state
        .and_then(|state| state.get(MAX_TURNS_STATE_KEY))
        .and_then(Value::as_u64)
        .and_then(|turns| u32::try_from(turns).ok())
        .unwrap_or(spec)
}

impl Budget {
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none() && self.max_cost.is_none()
    }

    /// This budget with the limits `other` sets in place of its own.
    pub fn overlaid(self, other: Budget) -> Budget {
        Budget {
            max_tokens: other.max_tokens.or(self.max_tokens),
            max_cost: other.max_cost.or(self.max_cost),
        }
    }

    /// The budget a pipeline's stored spec started with (its `budget`; none for a spec without
    /// one, or one this taskflow cannot read).
    pub fn of_pipeline(spec: Option<&Value>) -> Budget {
        spec.and_then(|spec| spec.get("budget"))
            .and_then(|budget| serde_json::from_value(budget.clone()).ok())
            .unwrap_or_default()
    }

    /// The budget a flow runs under: its spec's, with what its state raised.
    pub fn in_force(spec: Budget, state: Option<&Value>) -> Budget {
        match state.and_then(|state| state.get(BUDGET_STATE_KEY)) {
            Some(raised) => {
                spec.overlaid(serde_json::from_value(raised.clone()).unwrap_or_default())
            }
            None => spec,
        }
    }

    /// Why no further model call may be made, or `None` while the budget lasts. `cost` is
    /// what `spent` cost at the prices of the models that spent it (a cost limit without
    /// them is refused before the run, see [`Budget::check_price`]).
    pub fn spent_by(&self, spent: Spent, cost: Option<f64>) -> Option<Exhausted> {
        if let Some(max) = self.max_tokens
            && spent.tokens() >= max
        {
            return Some(Exhausted {
                reason: format!(
                    "the token budget is spent: {} tokens used of {max}",
                    spent.tokens()
                ),
                raise: "--max-tokens N",
            });
        }
        if let (Some(max), Some(cost)) = (self.max_cost, cost)
            && cost >= max
        {
            return Some(Exhausted {
                reason: format!("the cost budget is spent: ${cost:.4} used of ${max:.4}"),
                raise: "--max-cost USD",
            });
        }
        None
    }

    /// A cost limit needs the model's price.
    pub fn check_price(&self, price: Option<Price>, model: &str) -> Result<(), String> {
        match (self.max_cost, price) {
            (Some(_), None) => Err(format!(
                "a cost budget needs the price of model `{model}`: add [prices.\"{model}\"] \
                 with input_per_mtok and output_per_mtok to the config file"
            )),
            _ => Ok(()),
        }
    }
}

impl Exhausted {
    /// The reason with the command that raises the limit on `flow`.
    pub fn message(&self, flow: impl std::fmt::Display) -> String {
        format!("{}; `taskflow flows resume {flow} {}` raises it", self.reason, self.raise)
    }
}

impl Spent {
    /// The usage the succeeded `llm` steps of a journal checkpointed.
    pub fn from_journal<'a>(steps: impl IntoIterator<Item = &'a Step>) -> Spent {
        steps.into_iter().filter_map(Spent::of_call).fold(Spent::default(), |spent, call| Spent {
            input_tokens: spent.input_tokens + call.input_tokens,
            output_tokens: spent.output_tokens + call.output_tokens,
            unmeasured: spent.unmeasured + call.unmeasured,
        })
    }

    /// The usage one journaled step checkpointed, if it is a succeeded `llm` step.
    pub fn of_call(step: &Step) -> Option<Spent> {
        if step.kind != StepKind::Llm || step.status != StepStatus::Succeeded {
            return None;
        }
        step.output.as_ref().map(|output| Spent::default().plus(output))
    }

    /// This usage with that of one checkpointed response.
    pub fn plus(self, response: &Value) -> Spent {
        let tokens = |key: &str| response["usage"][key].as_u64().unwrap_or(0);
        Spent {
            input_tokens: self.input_tokens + tokens("prompt_tokens"),
            output_tokens: self.output_tokens + tokens("completion_tokens"),
            unmeasured: self.unmeasured + u64::from(!response["usage"].is_object()),
        }
    }

    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// In US dollars.
    pub fn cost(&self, price: Price) -> f64 {
        (self.input_tokens as f64 * price.input_per_mtok
            + self.output_tokens as f64 * price.output_per_mtok)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_without_usage_is_counted_as_not_measured() {
        let spent = Spent::default()
            .plus(&json!({"content": "a", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}))
            .plus(&json!({"content": "b"}))
            .plus(&json!({"content": "c", "usage": null}));
        assert_eq!(spent, Spent { input_tokens: 3, output_tokens: 2, unmeasured: 2 });
    }

    #[test]
    fn a_budget_is_spent_once_usage_reaches_a_limit() {
        let price = Some(Price { input_per_mtok: 1.0, output_per_mtok: 4.0 });
        let spent = Spent { input_tokens: 120, output_tokens: 30, unmeasured: 0 };
        for (budget, expected) in [
            (Budget::default(), None),
            (Budget { max_tokens: Some(151), max_cost: None }, None),
            (Budget { max_tokens: Some(150), max_cost: None }, Some("150 tokens used of 150")),
            (Budget { max_tokens: None, max_cost: Some(0.001) }, None),
            (Budget { max_tokens: None, max_cost: Some(0.00024) }, Some("$0.0002 used")),
        ] {
            let cost = price.map(|price| spent.cost(price));
            let reason = budget.spent_by(spent, cost).map(|exhausted| exhausted.reason);
            match expected {
                None => assert_eq!(reason, None, "{budget:?}"),
                Some(fragment) => {
                    assert!(reason.as_deref().unwrap_or("").contains(fragment), "{reason:?}")
                }
            }
        }
    }

    #[test]
    fn a_raised_limit_in_the_state_wins_over_the_spec() {
        let spec = Budget { max_tokens: Some(100), max_cost: Some(1.0) };
        for (state, expected) in [
            (None, spec),
            (Some(json!({"answer": "x"})), spec),
            (
                Some(json!({"budget": {"max_tokens": 500}})),
                Budget { max_tokens: Some(500), max_cost: Some(1.0) },
            ),
        ] {
            assert_eq!(Budget::in_force(spec, state.as_ref()), expected);
        }
    }

    #[test]
    fn a_cost_limit_without_a_price_is_refused() {
        let budget = Budget { max_tokens: None, max_cost: Some(1.0) };
        let error = budget.check_price(None, "kimi-k2").unwrap_err();
        assert!(error.contains("[prices.\"kimi-k2\"]"), "{error}");
        assert!(Budget::default().check_price(None, "kimi-k2").is_ok());
    }
}
