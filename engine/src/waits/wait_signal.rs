//! `wait_signal`: waits for a signal delivered to the step's flow (`taskflow flows signal ID
//! NAME`, `POST /v1/flows/{id}/signals/{name}`). `with.name` names it; the signal's JSON payload
//! is the step's output. A signal sent before the step was reached is kept for it. With
//! `with.timeout` (from when the step began), a signal that has not arrived by then fails the
//! step.

use serde_json::Value;
use taskflow_store::rules;
use taskflow_store::time::Timestamp;
use taskflow_tools::{Action, ActionError, ActionFuture, StepContext, Wait};

use super::{duration, is_template};
use crate::pipeline::spec::duration_text;

pub struct WaitSignal;

impl Action for WaitSignal {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        Box::pin(async move {
            let (name, timeout) = read(&input).map_err(ActionError::permanent)?;
            let signals = context.signals.clone().ok_or_else(|| {
                ActionError::permanent(
                    "`wait_signal` steps run only in an engine that keeps signals",
                )
            })?;
            if let Some(payload) = signals.take(&name, &context).await? {
                return Ok(payload);
            }
            let until = timeout.map(|timeout| context.started_at.plus(timeout));
            if let (Some(until), Some(timeout)) = (until, timeout)
                && Timestamp::now() >= until
            {
                return Err(ActionError::permanent(format!(
                    "no signal `{name}` arrived within {}",
                    duration_text::format(timeout)
                )));
            }
            Err(ActionError::Waiting(Wait { until, signal: Some(name), child: None }))
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        match with.get("name") {
            Some(name) if is_template(name) => timeout(with).map(|_| ()),
            _ => read(with).map(|_| ()),
        }
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["name", "timeout"])
    }

    fn step_limits(&self) -> Result<(), String> {
        Err("it only waits for its signal, so there is nothing to stop or try again; \
             `with.timeout` says how long it may wait"
            .to_owned())
    }

    /// It waits for a signal of its own flow, which only the flow's owner sends.
    fn off_host(&self, _with: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// The signal's name and the timeout, if any.
fn read(with: &Value) -> Result<(String, Option<std::time::Duration>), String> {
    let name = match with.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        _ => return Err("`wait_signal` needs `with.name`, the signal's name".to_owned()),
    };
    sendable(&name)?;
    Ok((name, timeout(with)?))
}

/// `with.timeout`, if given: not zero, which would fail the step as it begins.
fn timeout(with: &Value) -> Result<Option<std::time::Duration>, String> {
    match duration(with, "timeout")? {
        Some(timeout) if timeout.is_zero() => Err(
            "`with.timeout` of 0 would fail the step as it begins; leave it out to wait for ever"
                .to_owned(),
        ),
        timeout => Ok(timeout),
    }
}

/// Whether a signal can carry `name` (the store's rule for the names signals are delivered
/// under), so that no step waits for a signal nobody can send.
fn sendable(name: &str) -> Result<(), String> {
    rules::check_signal_name(name).map_err(|refused| format!("`with.name`: {refused}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(with: Value, expected: Result<(), &str>) {
        match (WaitSignal.check(&with), expected) {
            (Ok(()), Ok(())) => {}
            (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{with}: {error}"),
            (result, expected) => panic!("{with}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn a_signal_is_named_and_its_timeout_is_a_duration() {
        check(json!({"name": "approve"}), Ok(()));
        check(json!({"name": "approve", "timeout": "2h"}), Ok(()));
        check(json!({"name": "{{steps.ask.output}}"}), Ok(()));
        check(json!({}), Err("needs `with.name`"));
        check(json!({"name": " "}), Err("needs `with.name`"));
        check(json!({"name": 3}), Err("needs `with.name`"));
        check(json!({"name": "approve", "timeout": "soon"}), Err("`with.timeout`"));
        let zero = "`with.timeout` of 0 would fail the step as it begins";
        check(json!({"name": "approve", "timeout": "0s"}), Err(zero));
        check(json!({"name": "{{steps.ask.output}}", "timeout": "0ms"}), Err(zero));
        // Only names a signal can carry, as `taskflow flows signal` and the HTTP route take.
        let printable = "`with.name`: signal name must be 1 to 200 characters of printable text";
        check(json!({"name": "a\nb"}), Err(printable));
        check(json!({"name": "x".repeat(200)}), Ok(()));
        check(json!({"name": "x".repeat(201)}), Err(printable));
        check(json!({"name": "approval:call-1"}), Err("begin with `approval:`"));
        // A template is checked when the step begins, once it is filled in.
        check(json!({"name": "{{steps.ask.output}}\n"}), Ok(()));
        assert!(read(&json!({"name": "a\tb"})).unwrap_err().contains(printable));
    }
}
