//! Durable timers and signals as pipeline actions (DESIGN §9): `sleep` and `wait_signal`. A
//! step of either ends at once when its wait is over; otherwise it answers
//! [`ActionError::Waiting`](taskflow_tools::ActionError::Waiting), and its flow waits for it
//! without a process once nothing else of the flow runs (`engine/runner.rs`). Every engine
//! has both ([`actions`]).
//!
//! So an attempt of either ends at once, and a step's own `timeout` and `retry` would mean
//! nothing: they are refused when the pipeline is loaded (`Action::step_limits`); how long a
//! step waits is in its `with`.

mod sleep;
mod wait_signal;

pub use sleep::Sleep;
pub use wait_signal::WaitSignal;

use std::sync::Arc;

use serde_json::Value;
use taskflow_store::time::Timestamp;
use taskflow_tools::Action;

use crate::pipeline::spec::duration_text;

/// `sleep` and `wait_signal`, by name.
pub fn actions() -> [(&'static str, Arc<dyn Action>); 2] {
    [("sleep", Arc::new(Sleep)), ("wait_signal", Arc::new(WaitSignal))]
}

/// Whether `value` is a template, filled in only when the step begins (checked then).
fn is_template(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.contains("{{"))
}

/// `with.KEY` as a duration (`10m`, `6h`, `1d`), if present.
fn duration(with: &Value, key: &str) -> Result<Option<std::time::Duration>, String> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) if is_template(value) => Ok(None),
        Some(Value::String(text)) => {
            duration_text::parse(text).map(Some).map_err(|error| format!("`with.{key}`: {error}"))
        }
        Some(other) => Err(format!("`with.{key}` must be a duration such as \"10m\", not {other}")),
    }
}

/// `text` as an instant: RFC 3339 with an offset (`2026-12-05T07:00:00Z`,
/// `2026-12-05T08:00:00+01:00`).
pub fn instant(text: &str) -> Result<Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|at| Timestamp::from_millis(at.timestamp_millis()))
        .map_err(|error| {
            format!("`{text}` is not an RFC 3339 instant such as 2026-12-05T07:00:00Z ({error})")
        })
}
