//! `echo`: returns `with.value` as the step's output. For tests, demos and benchmarks: it
//! touches nothing, so what it costs is the engine's own work.

use serde_json::Value;

use crate::action::Action;
use crate::step::{ActionError, ActionFuture, StepContext};

pub struct Echo;

impl Action for Echo {
    fn run(&self, input: Value, _context: StepContext) -> ActionFuture {
        let output = input
            .get("value")
            .cloned()
            .ok_or_else(|| ActionError::permanent("`with.value` is missing"));
        Box::pin(std::future::ready(output))
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        with.get("value").map(|_| ()).ok_or_else(|| "`with.value` is missing".to_owned())
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["value"])
    }

    fn off_host(&self, _with: &Value) -> Result<(), String> {
        Ok(())
    }
}
