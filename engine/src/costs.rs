//! What a flow's model calls cost, in one place for the budget checks and `flows inspect`:
//! each succeeded `llm` step at the price of the model it called, as the flow stored it when
//! it started (an agent run's one price, [`AgentSpec::price`]; a pipeline step's,
//! [`FlowSpec::prices`] by step id), and a pipeline's agent runs' calls at their own stored
//! price. A change of the config file later does not change what was spent.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use taskflow_store::model::{Flow, FlowId, Step};
use taskflow_tools::{AgentSpec, Price, Spent, StepModel};

use crate::pipeline::FlowSpec;

/// The prices a flow's spec holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Prices {
    /// An agent run: every call at the price of its one model.
    Agent(Option<Price>),
    /// A pipeline: each `llm` step at the price of its step's model.
    Pipeline(BTreeMap<String, StepModel>),
}

impl Prices {
    /// The prices of a stored spec (none for one this taskflow cannot read).
    pub fn of_spec(spec: Option<&Value>) -> Prices {
        let Some(spec) = spec else { return Prices::Agent(None) };
        match AgentSpec::from_flow_spec(spec) {
            Some(agent) => Prices::Agent(agent.ok().and_then(|agent| agent.price)),
            None => Prices::Pipeline(
                FlowSpec::from_value(spec).map(|spec| spec.prices).unwrap_or_default(),
            ),
        }
    }

    /// Whether it holds no price at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Prices::Agent(price) => price.is_none(),
            Prices::Pipeline(steps) => steps.values().all(|model| model.price.is_none()),
        }
    }

    /// The price of the model a journaled step of the flow called.
    pub fn of_step(&self, step: &Step) -> Option<Price> {
        match self {
            Prices::Agent(price) => *price,
            Prices::Pipeline(steps) => steps.get(&step.name).and_then(|model| model.price),
        }
    }
}

/// The id and spec of each of `flows`, as [`tree_cost`] reads descendants.
pub fn specs(flows: &[Flow]) -> impl Iterator<Item = (&FlowId, Option<&Value>)> {
    flows.iter().map(|flow| (&flow.id, flow.spec.as_ref()))
}

/// What the succeeded `llm` steps of a flow (its prices `own`, its journal `steps`) and of its
/// descendants (each one's id and spec in `descendants`, their `llm` steps in
/// `descendant_steps`) cost, in US dollars; `None` when the flow holds no price, or a call
/// that used tokens has none.
pub fn tree_cost<'a>(
    own: &Prices,
    steps: &[Step],
    descendants: impl IntoIterator<Item = (&'a FlowId, Option<&'a Value>)>,
    descendant_steps: &[Step],
) -> Option<f64> {
    if own.is_empty() {
        return None;
    }
    let below: HashMap<&FlowId, Prices> =
        descendants.into_iter().map(|(id, spec)| (id, Prices::of_spec(spec))).collect();
    let calls = steps.iter().map(|step| (step, own.of_step(step))).chain(
        descendant_steps
            .iter()
            .map(|step| (step, below.get(&step.flow_id).and_then(|prices| prices.of_step(step)))),
    );
    let mut cost = 0.0;
    for (step, price) in calls {
        let Some(spent) = Spent::of_call(step) else { continue };
        match price {
            Some(price) => cost += spent.cost(price),
            None if spent.tokens() == 0 => {}
            None => return None,
        }
    }
    Some(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use taskflow_store::model::StepKind;
    use taskflow_store::status::StepStatus;
    use taskflow_store::time::Timestamp;

    fn llm(flow: &FlowId, name: &str, input: u64, output: u64) -> Step {
        Step {
            flow_id: flow.clone(),
            seq: 1,
            name: name.to_owned(),
            kind: StepKind::Llm,
            status: StepStatus::Succeeded,
            attempt: 1,
            idempotency_key: String::new(),
            input: None,
            output: Some(json!({"content": "x", "usage": {
                "prompt_tokens": input, "completion_tokens": output}})),
            error: None,
            started_at: Timestamp::now(),
            ended_at: None,
            child_flow_id: None,
        }
    }

    #[test]
    fn each_call_costs_what_its_model_cost_when_its_flow_started() {
        let (pipeline, child) = (FlowId::new(), FlowId::new());
        let spec = json!({"name": "p", "steps": [], "prices": {
            "outline": {"model": "small", "price": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}},
            "summary": {"model": "large"},
        }});
        let agent = json!({"agent": {"name": "a", "prompt": "p", "provider": {"provider": "replay"},
            "workspace": "/", "max_turns": 3,
            "price": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}});
        let below = [llm(&child, "llm 1", 100, 10)];
        let check = |steps: &[Step], expected: Option<f64>| {
            let cost =
                tree_cost(&Prices::of_spec(Some(&spec)), steps, [(&child, Some(&agent))], &below);
            match (cost, expected) {
                (Some(cost), Some(expected)) => assert!((cost - expected).abs() < 1e-12, "{cost}"),
                (cost, expected) => assert_eq!(cost, expected),
            }
        };
        // 100·1 + 20·4 for `outline`, 100·2 + 10·8 for the agent's turn.
        check(&[llm(&pipeline, "outline", 100, 20)], Some(460e-6));
        check(&[], Some(280e-6));
        check(&[llm(&pipeline, "summary", 45, 15)], None);
        assert_eq!(tree_cost(&Prices::of_spec(None), &[], [(&child, Some(&agent))], &below), None);
    }
}
