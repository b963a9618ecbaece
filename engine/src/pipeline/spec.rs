//! A flow spec: the steps of a pipeline, what each runs, what it needs and how it retries. The
//! same value whether a program builds it in code or a TOML file is read into it; it is stored
//! on the flow (as JSON), so a resume runs exactly what was started. [`FlowSpec::plan`] checks
//! it against the registered actions before anything runs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use taskflow_store::excerpt::excerpt;

use super::template;
use taskflow_tools::{Actions, Budget, StepModel, unknown_parameters};

/// The actions that call a model with a provider and model their step chooses: `llm` (one
/// call, journaled in the pipeline) and `agent` (a child agent run whose turns are its calls).
pub const MODEL_ACTIONS: [&str; 2] = ["llm", "agent"];

/// How many steps of one flow run at once unless the spec says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// A pipeline: a name and its steps, in the order they are listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub name: String,
    /// Where relative file URLs and `output_dir` are resolved (the pipeline file's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<PathBuf>,
    /// The folder `write_file` steps write into; nothing is written elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<PathBuf>,
    /// At most this many steps of the flow run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// What the pipeline's model calls may spend in all: its `llm` steps and the turns of the
    /// agents its `agent` steps run (`[budget]` in a pipeline file).
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    /// The model each step of [`MODEL_ACTIONS`] calls, by step id, with its price as the
    /// pipeline was started: what its calls cost, and what a cost limit needs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, StepModel>,
    pub steps: Vec<StepSpec>,
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    /// The registered action it runs (`echo`, `shell`, … or one a program registered).
    pub action: String,
    /// Steps that must succeed first. Steps whose output a template reads are needed too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The action's parameters; string values may hold `{{steps.ID.output}}` templates.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub with: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Each attempt is stopped (and counts as failed) after this long.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "duration_text")]
    pub timeout: Option<Duration>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

fn is_empty_object(value: &Value) -> bool {
    value.as_object().is_some_and(Map::is_empty)
}

/// How often a failing step is tried, and how long to wait in between: attempt `n + 1` starts
/// after `backoff_ms · 2^(n-1)` (at most [`MAX_BACKOFF`]), of which a random half is jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default = "RetryPolicy::default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "RetryPolicy::default_backoff")]
    pub backoff_ms: u64,
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The longest step timeout: the longest duration taskflow keeps.
pub const MAX_TIMEOUT: Duration = duration_text::LONGEST;

impl RetryPolicy {
    fn default_attempts() -> u32 {
        3
    }

    fn default_backoff() -> u64 {
        500
    }

    /// Only one attempt.
    pub fn never() -> Self {
        RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }
    }

    /// The wait after failed attempt `failed` (1 for the first), given a random `unit` in
    /// `[0, 1)`: half of the exponential step is fixed and half is jitter, so runners that failed
    /// together do not retry together.
    pub fn backoff(&self, failed: u32, unit: f64) -> Duration {
        let exponent = failed.saturating_sub(1).min(30);
        let step =
            Duration::from_millis(self.backoff_ms).saturating_mul(1 << exponent).min(MAX_BACKOFF);
        step / 2 + step.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: RetryPolicy::default_attempts(),
            backoff_ms: RetryPolicy::default_backoff(),
        }
    }
}

impl FlowSpec {
    pub fn new(name: impl Into<String>) -> Self {
        FlowSpec {
            name: name.into(),
            base_dir: None,
            output_dir: None,
            concurrency: None,
            budget: Budget::default(),
            prices: BTreeMap::new(),
            steps: Vec::new(),
        }
    }

    /// The names of the signals its `wait_signal` steps wait for, each once, in step order;
    /// `None` when one of them takes its name from a template (known only when it begins).
    pub fn awaited_signals(&self) -> Option<Vec<&str>> {
        let mut names: Vec<&str> = Vec::new();
        for step in self.steps.iter().filter(|step| step.action == "wait_signal") {
            let name = step.with.get("name").and_then(Value::as_str)?;
            if name.contains("{{") {
                return None;
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Some(names)
    }

    /// The steps that call a model ([`MODEL_ACTIONS`]).
    pub fn model_steps(&self) -> impl Iterator<Item = &StepSpec> {
        self.model_steps_at().map(|(_, step)| step)
    }

    /// The same, each with its place in the pipeline.
    pub fn model_steps_at(&self) -> impl Iterator<Item = (usize, &StepSpec)> {
        let calls_a_model = |step: &StepSpec| MODEL_ACTIONS.contains(&step.action.as_str());
        self.steps.iter().enumerate().filter(move |(_, step)| calls_a_model(step))
    }

    /// The same, to change.
    pub fn model_steps_mut(&mut self) -> impl Iterator<Item = &mut StepSpec> {
        self.steps.iter_mut().filter(|step| MODEL_ACTIONS.contains(&step.action.as_str()))
    }

    /// The price of the model step `id` calls, if the pipeline was started with one.
    pub fn price_of(&self, id: &str) -> Option<taskflow_tools::Price> {
        self.prices.get(id).and_then(|model| model.price)
    }

    /// Adds a step.
    pub fn step(mut self, step: StepSpec) -> Self {
        self.steps.push(step);
        self
    }

    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = Some(dir.into());
        self
    }

    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = Some(limit);
        self
    }

    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The spec as stored on a flow.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A spec stored on a flow.
    pub fn from_value(value: &Value) -> Result<FlowSpec, serde_json::Error> {
        FlowSpec::deserialize(value)
    }

    /// Checks the spec against `actions` and works out what each step waits for. Every problem
    /// is reported, each naming the step and field it is about.
    pub fn plan(&self, actions: &Actions) -> Result<Plan, Vec<SpecError>> {
        self.clone().into_plan(actions)
    }

    /// [`Self::plan`] without the plan: whether the spec can run with `actions`.
    pub fn check(&self, actions: &Actions) -> Result<(), Vec<SpecError>> {
        self.analyse(actions).map(drop)
    }

    /// Whether a cost limit can be kept: every model step has the price of its model (set in
    /// [`Self::prices`] before the flow is created, see `taskflow_api::prepare_model_steps`).
    /// Each problem names the step and the model without a price.
    pub fn check_prices(&self) -> Result<(), Vec<SpecError>> {
        if self.budget.max_cost.is_none() {
            return Ok(());
        }
        let errors: Vec<SpecError> = self
            .model_steps_at()
            .filter_map(|(at, step)| {
                let problem = match self.prices.get(&step.id) {
                    Some(model) => self.budget.check_price(model.price, &model.model).err()?,
                    None => "a cost budget needs the price of the model it calls, which is \
                             stored when the pipeline starts with a cost budget (`[budget] \
                             max_cost_usd` or `taskflow run --budget-cost USD`)"
                        .to_owned(),
                };
                let message = format!("step `{}`: {problem}", step.id);
                Some(SpecError { step: Some(at), field: SpecField::Id, message })
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// [`Self::plan`], keeping the spec in the plan instead of a copy of it.
    pub fn into_plan(self, actions: &Actions) -> Result<Plan, Vec<SpecError>> {
        let (deps, index) = self.analyse(actions)?;
        Ok(Plan { spec: self, deps, index })
    }

    /// What each step waits for, and each step's position by id.
    fn analyse(&self, actions: &Actions) -> Result<(Dependencies, StepIndex), Vec<SpecError>> {
        let mut errors = Vec::new();
        let mut report = |step: Option<usize>, field: SpecField, message: String| {
            errors.push(SpecError { step, field, message });
        };
        if self.name.trim().is_empty() {
            report(None, SpecField::Name, "the pipeline needs a `name`".to_owned());
        } else if let Err(refused) = taskflow_store::rules::check_text("flow name", &self.name) {
            report(None, SpecField::Name, refused.to_string());
        }
        if self.steps.is_empty() {
            report(None, SpecField::Steps, "the pipeline has no `[[steps]]`".to_owned());
        }
        if self.concurrency == Some(0) {
            report(None, SpecField::Concurrency, "`concurrency` must be at least 1".to_owned());
        }
        if self.budget.max_tokens == Some(0) {
            report(None, SpecField::Budget, "`budget.max_tokens` must be at least 1".to_owned());
        }
        if self.budget.max_cost.is_some_and(|max| !(max.is_finite() && max > 0.0)) {
            report(
                None,
                SpecField::Budget,
                "`budget.max_cost_usd` must be a number of dollars above 0".to_owned(),
            );
        }
        let mut index = HashMap::new();
        for (at, step) in self.steps.iter().enumerate() {
            if !valid_id(&step.id) {
                report(
                    Some(at),
                    SpecField::Id,
                    format!(
                        "step id `{}` must be 1 to 64 letters, digits, `_` or `-`",
                        excerpt(&step.id)
                    ),
                );
            } else if index.insert(step.id.clone(), at).is_some() {
                report(Some(at), SpecField::Id, format!("step id `{}` is used twice", step.id));
            }
        }
        let mut deps = vec![Vec::new(); self.steps.len()];
        for (at, step) in self.steps.iter().enumerate() {
            match actions.get(&step.action) {
                None => report(
                    Some(at),
                    SpecField::Action,
                    format!(
                        "unknown action `{}` (known: {})",
                        excerpt(&step.action),
                        actions.names().join(", ")
                    ),
                ),
                Some(action) => {
                    // Each key the action does not take, at the key: a misspelt optional one
                    // would otherwise be ignored.
                    for (key, message) in unknown_parameters(&step.action, &*action, &step.with) {
                        report(Some(at), SpecField::With(Some(key)), message);
                    }
                    if let Err(message) = action.check(&step.with) {
                        report(Some(at), SpecField::With(None), message);
                    }
                    if let Err(why) = action.step_limits() {
                        let action = excerpt(&step.action);
                        if step.timeout.is_some() {
                            let message = format!("a `{action}` step takes no `timeout`: {why}");
                            report(Some(at), SpecField::Timeout, message);
                        }
                        if step.retry.is_some() {
                            let message = format!("a `{action}` step takes no `retry`: {why}");
                            report(Some(at), SpecField::Retry, message);
                        }
                    }
                }
            }
            if !step.with.is_object() {
                report(Some(at), SpecField::With(None), "`with` must be a table".to_owned());
            }
            for (n, need) in step.needs.iter().enumerate() {
                match index.get(need) {
                    Some(&other) if other == at => report(
                        Some(at),
                        SpecField::Needs(n),
                        format!("step `{}` needs itself", step.id),
                    ),
                    Some(&other) => deps[at].push(other),
                    None => report(
                        Some(at),
                        SpecField::Needs(n),
                        format!(
                            "step `{}` needs `{}`, which is not a step",
                            excerpt(&step.id),
                            excerpt(need)
                        ),
                    ),
                }
            }
            for read in template::steps_read(&step.with) {
                match read {
                    Ok(id) => match index.get(&id) {
                        Some(&other) if other == at => report(
                            Some(at),
                            SpecField::With(Some(format!("steps.{id}.output"))),
                            format!("step `{}` reads its own output", step.id),
                        ),
                        Some(&other) => deps[at].push(other),
                        None => report(
                            Some(at),
                            SpecField::With(Some(format!("steps.{id}.output"))),
                            format!(
                                "`{{{{steps.{id}.output}}}}` reads `{id}`, which is not a step"
                            ),
                        ),
                    },
                    Err(message) => report(Some(at), SpecField::With(Some("{{".into())), message),
                }
            }
            if let Some(retry) = step.retry
                && retry.max_attempts == 0
            {
                report(Some(at), SpecField::Retry, "`max_attempts` must be at least 1".to_owned());
            }
            if step.timeout == Some(Duration::ZERO) {
                report(Some(at), SpecField::Timeout, "`timeout` must be longer than 0".to_owned());
            }
            if step.timeout.is_some_and(|timeout| timeout > MAX_TIMEOUT) {
                let longest = duration_text::human(MAX_TIMEOUT);
                report(
                    Some(at),
                    SpecField::Timeout,
                    format!("`timeout` must be at most {longest}"),
                );
            }
        }
        for list in &mut deps {
            list.sort_unstable();
            list.dedup();
        }
        if let Some(cycle) = find_cycle(&deps) {
            let names: Vec<&str> = cycle.iter().map(|&at| self.steps[at].id.as_str()).collect();
            report(
                Some(cycle[0]),
                SpecField::Needs(0),
                format!("the steps need each other in a cycle: {}", names.join(" needs ")),
            );
        }
        if errors.is_empty() { Ok((deps, index)) } else { Err(errors) }
    }
}

impl StepSpec {
    /// The ids of the steps this one waits for, as written: its `needs`, then the steps its
    /// templates read (those [`FlowSpec::plan`] checks; a template it cannot read is left out).
    pub fn waits_for(&self) -> Vec<String> {
        let read = template::steps_read(&self.with).into_iter().filter_map(Result::ok);
        let mut ids: Vec<String> = self.needs.iter().cloned().chain(read).collect();
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        ids
    }

    /// A step `id` running `action`, with no parameters yet.
    pub fn new(id: impl Into<String>, action: impl Into<String>) -> Self {
        StepSpec {
            id: id.into(),
            action: action.into(),
            needs: Vec::new(),
            with: empty_object(),
            retry: None,
            timeout: None,
        }
    }

    pub fn needs<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.needs.extend(ids.into_iter().map(Into::into));
        self
    }

    /// Sets the parameters (a JSON object).
    pub fn with(mut self, with: Value) -> Self {
        self.with = with;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A dependency cycle as step indexes, first step repeated at the end; `None` if there is none.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; deps.len()];
    for root in 0..deps.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next dependency to look at).
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match marks[dep] {
                    Mark::New => {
                        marks[dep] = Mark::Open;
                        path.push((dep, 0));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        // Each step of the path needs the next; the last needs the first.
                        let mut cycle: Vec<usize> = path[from..].iter().map(|&(n, _)| n).collect();
                        cycle.push(dep);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}

/// What a [`SpecError`] is about, so that a file reader can point at its line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecField {
    Name,
    Steps,
    Concurrency,
    Budget,
    Id,
    Action,
    /// The n-th entry of `needs`.
    Needs(usize),
    /// `with`, or what inside it the error is about: one of its keys, else text inside it.
    With(Option<String>),
    Retry,
    Timeout,
}

/// One problem of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The index of the step it is about, if it is about one.
    pub step: Option<usize>,
    pub field: SpecField,
    pub message: String,
}

impl SpecError {
    /// Where the error is in the spec written as JSON: `name`, `steps[1].action`,
    /// `steps[0].needs[2]`, … (for a file, a reader points at a line and column instead).
    pub fn path(&self) -> String {
        let field = match &self.field {
            SpecField::Name => "name".to_owned(),
            SpecField::Steps => "steps".to_owned(),
            SpecField::Concurrency => "concurrency".to_owned(),
            SpecField::Budget => "budget".to_owned(),
            SpecField::Id => "id".to_owned(),
            SpecField::Action => "action".to_owned(),
            SpecField::Needs(n) => format!("needs[{n}]"),
            SpecField::With(_) => "with".to_owned(),
            SpecField::Retry => "retry".to_owned(),
            SpecField::Timeout => "timeout".to_owned(),
        };
        match (self.step, &self.field) {
            (Some(step), SpecField::Steps) => format!("steps[{step}]"),
            (Some(step), _) => format!("steps[{step}].{field}"),
            (None, _) => field,
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// For each step, the positions of the steps it waits for.
type Dependencies = Vec<Vec<usize>>;
/// Each step's position by id.
type StepIndex = HashMap<String, usize>;

/// A checked spec and the order it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub spec: FlowSpec,
    /// For each step, the steps it waits for (from `needs` and from its templates).
    pub deps: Vec<Vec<usize>>,
    index: HashMap<String, usize>,
}

impl Plan {
    /// The step with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Steps no other step waits for: their outputs are the flow's result.
    pub fn sinks(&self) -> Vec<usize> {
        let mut needed = vec![false; self.spec.steps.len()];
        for &dep in self.deps.iter().flatten() {
            needed[dep] = true;
        }
        (0..needed.len()).filter(|&at| !needed[at]).collect()
    }

    pub fn concurrency(&self) -> usize {
        self.spec.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }
}

/// Durations as text: `250ms`, `30s`, `5m`, `2h`, `7d`; a bare number is seconds.
pub mod duration_text {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use taskflow_store::excerpt::excerpt;

    /// The longest duration taskflow keeps: ten years. Longer ones mean "never" anyway, and past
    /// some point they make no instant (now plus it) or do not survive being stored and read
    /// back.
    pub const LONGEST: Duration = Duration::from_secs(3660 * 86_400);

    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| {
            format!("`{}` is not a duration (e.g. 500ms, 30s, 5m, 1h, 7d)", excerpt(text))
        })?;
        let seconds = match unit.trim() {
            "ms" => number / 1000.0,
            "" | "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            "d" => number * 86_400.0,
            other => {
                return Err(format!(
                    "unknown unit `{}` in `{}` (ms, s, m, h or d)",
                    excerpt(other),
                    excerpt(text)
                ));
            }
        };
        Duration::try_from_secs_f64(seconds)
            .ok()
            .filter(|duration| *duration <= LONGEST)
            .ok_or_else(|| {
                format!("`{}` is longer than taskflow keeps (at most 3660d)", excerpt(text))
            })
    }

    pub fn format(duration: Duration) -> String {
        format!("{}ms", duration.as_millis())
    }

    /// `duration` in the largest unit that divides it: `1d`, `2h`, `30m`, `90s`, `1500ms`.
    pub fn human(duration: Duration) -> String {
        let ms = duration.as_millis();
        if ms == 0 {
            return "0s".to_owned();
        }
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms.is_multiple_of(size) {
                return format!("{}{unit}", ms / size);
            }
        }
        format!("{ms}ms")
    }

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&format(*duration)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_option(Written)
    }

    /// A duration as a file or a body writes it: a number of seconds, or text with its unit.
    struct Written;

    impl<'de> Visitor<'de> for Written {
        type Value = Option<Duration>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a duration: seconds, or text such as 500ms, 30s, 5m, 1h, 7d")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_any(self)
        }

        fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_secs(seconds)))
        }

        fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Self::Value, E> {
            match u64::try_from(seconds) {
                Ok(seconds) => self.visit_u64(seconds),
                Err(_) => Err(E::custom(format!("a duration cannot be negative ({seconds})"))),
            }
        }

        fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Self::Value, E> {
            if seconds < 0.0 {
                return Err(E::custom(format!("a duration cannot be negative ({seconds})")));
            }
            self.visit_str(&seconds.to_string())
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse(text).map(Some).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(spec: FlowSpec) -> Vec<String> {
        match spec.plan(&crate::builtin_actions()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.message).collect(),
        }
    }

    fn echo(id: &str) -> StepSpec {
        StepSpec::new(id, "echo").with(json!({"value": id}))
    }

    fn check(spec: FlowSpec, expected: &[&str]) {
        let found = errors(spec);
        assert_eq!(found.len(), expected.len(), "{found:?}");
        for (found, fragment) in found.iter().zip(expected) {
            assert!(found.contains(fragment), "{found:?} lacks {fragment:?}");
        }
    }

    #[test]
    fn the_signals_a_pipeline_waits_for_are_known_unless_a_template_names_one() {
        let wait = |id: &str, with: Value| StepSpec::new(id, "wait_signal").with(with);
        let spec = |steps: Vec<StepSpec>| {
            steps.into_iter().fold(FlowSpec::new("p"), |spec, step| spec.step(step))
        };
        let echo = StepSpec::new("e", "echo").with(json!({"value": "{{x}}"}));
        assert_eq!(spec(vec![echo.clone()]).awaited_signals(), Some(vec![]));
        let named = spec(vec![
            wait("a", json!({"name": "approve"})),
            echo,
            wait("b", json!({"name": "ship", "timeout": "1h"})),
            wait("c", json!({"name": "approve"})),
        ]);
        assert_eq!(named.awaited_signals(), Some(vec!["approve", "ship"]));
        let templated = spec(vec![
            wait("a", json!({"name": "go"})),
            wait("b", json!({"name": "{{steps.a.output}}"})),
        ]);
        assert_eq!(templated.awaited_signals(), None);
    }

    #[test]
    fn validation() {
        let base = || FlowSpec::new("p");
        check(base().step(echo("a")).step(echo("b").needs(["a"])), &[]);
        check(base(), &["no `[[steps]]`"]);
        check(FlowSpec::new(" ").step(echo("a")), &["needs a `name`"]);
        check(base().step(StepSpec::new("a", "teleport")), &["unknown action `teleport`"]);
        check(base().step(echo("a")).step(echo("a")), &["used twice"]);
        check(base().step(echo("a b")), &["must be 1 to 64 letters"]);
        check(base().step(echo("a").needs(["zz"])), &["needs `zz`, which is not a step"]);
        check(base().step(echo("a").needs(["a"])), &["needs itself"]);
        check(base().step(echo("a").timeout(MAX_TIMEOUT)), &[]);
        check(
            base().step(echo("a").timeout(Duration::from_secs(u64::MAX))),
            &["`timeout` must be at most 3660d"],
        );
        check(
            base()
                .step(echo("a").needs(["c"]))
                .step(echo("b").needs(["a"]))
                .step(echo("c").needs(["b"])),
            &["cycle: a needs c needs b needs a"],
        );
        check(
            base().step(StepSpec::new("a", "echo").with(json!({"value": "{{steps.nope.output}}"}))),
            &["reads `nope`, which is not a step"],
        );
        check(
            base().step(StepSpec::new("a", "echo").with(json!({"value": "{{steps.a}}"}))),
            &["templates read"],
        );
        check(base().step(StepSpec::new("a", "shell")), &["`with.command` is missing"]);
        check(
            base().step(echo("a").with(json!({"value": 1, "extra": 1}))),
            &["`with.extra` is not a parameter of `echo` (parameters: value)"],
        );
        check(
            base().step(
                StepSpec::new("a", "wait_signal").with(json!({"name": "go", "timout": "1s"})),
            ),
            &["`with.timout` is not a parameter of `wait_signal` (parameters: name, timeout)"],
        );
        check(
            base().step(StepSpec::new("a", "shell").with(json!({"tiemout": "1s"}))),
            &["`with.tiemout` is not a parameter of `shell`", "`with.command` is missing"],
        );
        let sleep = || StepSpec::new("a", "sleep").with(json!({"for": "4s"}));
        let signal = || StepSpec::new("a", "wait_signal").with(json!({"name": "go"}));
        check(base().step(sleep()), &[]);
        check(
            base().step(sleep().timeout(Duration::from_secs(1))),
            &["a `sleep` step takes no `timeout`: it only waits"],
        );
        check(
            base().step(sleep().retry(RetryPolicy::default())),
            &["a `sleep` step takes no `retry`: it only waits"],
        );
        check(
            base().step(signal().timeout(Duration::from_secs(1))),
            &["a `wait_signal` step takes no `timeout`: it only waits for its signal, so there \
               is nothing to stop or try again; `with.timeout` says how long it may wait"],
        );
        check(
            base().step(signal().retry(RetryPolicy { max_attempts: 3, backoff_ms: 10 })),
            &["a `wait_signal` step takes no `retry`: it only waits for its signal"],
        );
        check(
            base().step(echo("a").timeout(Duration::from_secs(1)).retry(RetryPolicy::never())),
            &[],
        );
        check(
            base().step(echo("a").retry(RetryPolicy { max_attempts: 0, backoff_ms: 1 })),
            &["max_attempts"],
        );
        check(base().concurrency(0).step(echo("a")), &["concurrency"]);
        let named = |name: &str| FlowSpec { name: name.to_owned(), ..base().step(echo("a")) };
        check(named(&"x".repeat(201)), &["flow name must be 1 to 200 characters"]);
        check(named("two\nlines"), &["flow name must be 1 to 200 characters"]);
        // Input of megabytes is quoted by its start: each problem stays a line.
        let long = "x".repeat(1_000_000);
        let huge = base()
            .step(echo(&long))
            .step(StepSpec::new("b", &long))
            .step(echo("c").needs([long.as_str()]));
        let found = errors(huge);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|problem| problem.len() < 400 && problem.contains("xxx…")));
    }

    #[test]
    fn each_problem_names_its_place_in_the_spec_as_json() {
        let check = |spec: FlowSpec, expected: &[&str]| {
            let found = spec.plan(&crate::builtin_actions()).map(drop).unwrap_err();
            let paths: Vec<String> = found.iter().map(SpecError::path).collect();
            assert_eq!(paths, expected);
        };
        let base = || FlowSpec::new("p");
        check(base(), &["steps"]);
        check(FlowSpec::new(" ").step(echo("a")), &["name"]);
        check(base().step(echo("a")).step(StepSpec::new("b", "teleport")), &["steps[1].action"]);
        check(base().step(echo("a")).step(echo("a")), &["steps[1].id"]);
        check(base().step(echo("a")).step(echo("b").needs(["a", "zz"])), &["steps[1].needs[1]"]);
        check(base().step(StepSpec::new("a", "shell")), &["steps[0].with"]);
        check(base().step(StepSpec::new("a", "echo").with(json!("text"))), &["steps[0].with"; 2]);
        check(base().step(echo("a").with(json!({"value": 1, "x": 2}))), &["steps[0].with"]);
        let sleep = StepSpec::new("a", "sleep").with(json!({"for": "1s"}));
        let limited = sleep.timeout(Duration::from_secs(1)).retry(RetryPolicy::default());
        check(base().step(limited), &["steps[0].timeout", "steps[0].retry"]);
        check(base().concurrency(0).step(echo("a")), &["concurrency"]);
        let named = |name: &str| FlowSpec { name: name.to_owned(), ..base().step(echo("a")) };
        check(named(&"x".repeat(201)), &["name"]);
        check(named("two\nlines"), &["name"]);
    }

    #[test]
    fn templates_are_dependencies_and_sinks_are_the_result() {
        let spec = FlowSpec::new("p")
            .step(echo("a"))
            .step(StepSpec::new("b", "echo").with(json!({"value": "{{steps.a.output}}"})))
            .step(echo("c").needs(["a"]));
        let plan = spec.plan(&Actions::builtin()).unwrap();
        assert_eq!(plan.deps, vec![vec![], vec![0], vec![0]]);
        assert_eq!(plan.sinks(), vec![1, 2]);
        assert_eq!(plan.position("c"), Some(2));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_ceiling() {
        let policy = RetryPolicy { max_attempts: 5, backoff_ms: 100 };
        fn check(policy: RetryPolicy, failed: u32, unit: f64, millis: u64) {
            assert_eq!(
                policy.backoff(failed, unit),
                Duration::from_millis(millis),
                "{failed} {unit}"
            );
        }
        check(policy, 1, 0.0, 50);
        check(policy, 1, 0.5, 75);
        check(policy, 2, 0.0, 100);
        check(policy, 3, 0.5, 300);
        check(policy, 40, 0.0, 30_000);
    }

    #[test]
    fn durations() {
        fn check(text: &str, expected: Result<u64, &str>) {
            match (duration_text::parse(text), expected) {
                (Ok(found), Ok(millis)) => assert_eq!(found, Duration::from_millis(millis)),
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{error}"),
                (found, expected) => panic!("{text}: {found:?} vs {expected:?}"),
            }
        }
        check("250ms", Ok(250));
        check("1.5s", Ok(1500));
        check("2", Ok(2000));
        check("5m", Ok(300_000));
        check("1h", Ok(3_600_000));
        check("3 days", Err("unknown unit"));
        check("soon", Err("not a duration"));
        check("3660d", Ok(3660 * 86_400_000));
        check("3661d", Err("longer than taskflow keeps (at most 3660d)"));
        check("99999999999999d", Err("longer than taskflow keeps"));
    }

    /// A step's `timeout` as a body (JSON) or a file (TOML) writes it: the number of seconds,
    /// or text; anything else names what a duration is.
    #[test]
    fn a_timeout_is_written_as_seconds_or_as_text() {
        fn check(written: Value, expected: Result<Option<u64>, &str>) {
            let step = json!({"id": "a", "action": "echo", "timeout": written});
            let found = serde_json::from_value::<StepSpec>(step)
                .map(|step| step.timeout.map(|timeout| timeout.as_millis() as u64))
                .map_err(|error| error.to_string());
            match (found, expected) {
                (Ok(found), Ok(millis)) => assert_eq!(found, millis, "{written}"),
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{error}"),
                (found, expected) => panic!("{written}: {found:?} vs {expected:?}"),
            }
        }
        check(json!(30), Ok(Some(30_000)));
        check(json!(1.5), Ok(Some(1500)));
        check(json!("250ms"), Ok(Some(250)));
        check(Value::Null, Ok(None));
        check(json!(-5), Err("a duration cannot be negative (-5)"));
        check(json!(-0.5), Err("cannot be negative"));
        check(json!("soon"), Err("`soon` is not a duration"));
        check(json!(true), Err("expected a duration: seconds, or text such as 500ms"));
        check(json!({"s": 1}), Err("expected a duration"));
        let file: StepSpec = toml::from_str("id = \"a\"\naction = \"echo\"\ntimeout = 2").unwrap();
        assert_eq!(file.timeout, Some(Duration::from_secs(2)));
        let refused = toml::from_str::<StepSpec>("id = \"a\"\naction = \"echo\"\ntimeout = -2");
        assert!(refused.unwrap_err().to_string().contains("cannot be negative"));
    }

    #[test]
    fn a_spec_round_trips_through_json() {
        let spec = FlowSpec::new("p")
            .base_dir("/tmp/x")
            .step(echo("a").retry(RetryPolicy::never()).timeout(Duration::from_millis(1500)));
        let value = spec.to_value();
        assert_eq!(value["steps"][0]["timeout"], "1500ms");
        assert_eq!(FlowSpec::from_value(&value).unwrap(), spec);
    }
}
