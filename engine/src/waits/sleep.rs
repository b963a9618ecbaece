//! `sleep`: a durable timer. `with.for = "10m"` waits that long from when the step began (its
//! first attempt, so a restart does not start the timer again); `with.until` waits until an
//! RFC 3339 instant. The output is the instant it waited until.

use serde_json::{Value, json};
use taskflow_store::time::Timestamp;
use taskflow_tools::{Action, ActionError, ActionFuture, StepContext, Wait};

use super::{duration, instant, is_template};

pub struct Sleep;

impl Action for Sleep {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        let until = deadline(&input, context.started_at);
        Box::pin(async move {
            let until = until.map_err(ActionError::permanent)?;
            if Timestamp::now() >= until {
                return Ok(json!(until.to_string()));
            }
            Err(ActionError::Waiting(Wait { until: Some(until), signal: None, child: None }))
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        match (with.get("for"), with.get("until")) {
            (Some(_), Some(_)) => Err("give `with.for` or `with.until`, not both".to_owned()),
            (None, None) => Err("`sleep` needs `with.for` (e.g. \"10m\") or `with.until` \
                                 (e.g. \"2026-12-05T07:00:00Z\")"
                .to_owned()),
            (Some(_), None) => duration(with, "for").map(|_| ()),
            (None, Some(until)) if is_template(until) => Ok(()),
            (None, Some(Value::String(until))) => {
                instant(until).map(|_| ()).map_err(|error| format!("`with.until`: {error}"))
            }
            (None, Some(other)) => {
                Err(format!("`with.until` must be an RFC 3339 text, not {other}"))
            }
        }
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["for", "until"])
    }

    fn step_limits(&self) -> Result<(), String> {
        Err("it only waits, so there is nothing to stop or try again; `with.for` or `with.until` \
             says how long"
            .to_owned())
    }

    /// A sleep only waits.
    fn off_host(&self, _with: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// The instant the step waits until: `for` after it began, or `until`.
fn deadline(input: &Value, started_at: Timestamp) -> Result<Timestamp, String> {
    if let Some(until) = input.get("until") {
        let text = until.as_str().ok_or("`with.until` must be an RFC 3339 text")?;
        return instant(text).map_err(|error| format!("`with.until`: {error}"));
    }
    let span = duration(input, "for")?.ok_or("`sleep` needs `with.for` or `with.until`")?;
    Ok(started_at.plus(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(with: Value, expected: Result<(), &str>) {
        match (Sleep.check(&with), expected) {
            (Ok(()), Ok(())) => {}
            (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{with}: {error}"),
            (result, expected) => panic!("{with}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn a_sleep_is_for_a_duration_or_until_an_instant() {
        check(json!({"for": "10m"}), Ok(()));
        check(json!({"for": "1d"}), Ok(()));
        check(json!({"until": "2026-12-05T07:00:00Z"}), Ok(()));
        check(json!({"until": "2026-12-05T08:00:00+01:00"}), Ok(()));
        check(json!({"until": "{{steps.plan.output}}"}), Ok(()));
        check(json!({}), Err("needs `with.for`"));
        check(json!({"for": "10m", "until": "2026-12-05T07:00:00Z"}), Err("not both"));
        check(json!({"for": "ten minutes"}), Err("`with.for`"));
        check(json!({"for": 10}), Err("must be a duration"));
        check(json!({"until": "tomorrow"}), Err("not an RFC 3339 instant"));
    }

    #[test]
    fn the_deadline_counts_from_when_the_step_began() {
        let began = Timestamp::from_millis(1_000_000);
        assert_eq!(deadline(&json!({"for": "2s"}), began), Ok(Timestamp::from_millis(1_002_000)));
        let until = deadline(&json!({"until": "1970-01-01T01:00:00+01:00"}), began);
        assert_eq!(until, Ok(Timestamp::from_millis(0)));
    }
}
