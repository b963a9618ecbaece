//! What the benches of the checkpoint cost share (the engine's on SQLite, the CLI's on
//! PostgreSQL): the flow they time, a chain of `echo` steps in which each step's outcome and the
//! next step's start are one commit; how a rate is taken over a window; and the median of
//! interleaved rounds.
#![allow(dead_code)]

use std::time::Instant;

use serde_json::json;
use taskflow_engine::{FlowSpec, StepSpec};

/// A flow of `steps` `echo` steps, each needing the one before.
pub fn chain(name: &str, steps: usize) -> FlowSpec {
    let mut spec = FlowSpec::new(name);
    for n in 0..steps {
        let step = StepSpec::new(format!("s{n}"), "echo").with(json!({ "value": n }));
        spec = spec.step(if n == 0 { step } else { step.needs([format!("s{}", n - 1)]) });
    }
    spec
}

/// How often `commit` runs per second, over `seconds`.
pub fn commits_per_sec(seconds: f64, mut commit: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        commit();
        commits += 1;
    }
    commits as f64 / started.elapsed().as_secs_f64()
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
