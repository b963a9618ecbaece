//! What a schedule is, as its owner writes it: the options of `taskflow schedules add`, or the
//! `[schedule]` table of a pipeline file (the same names, without the dashes: `catch_up` for
//! `--catch-up`). [`ScheduleInput::spec`] checks it into the [`ScheduleSpec`] the store keeps,
//! each problem naming the option it is about.
//!
//! Defaults: zone `UTC`, overlap `skip`, catch-up `latest` within a day, at most one late slot,
//! no jitter, no timeout; a slot with `after` waits `within` (required) and then does what
//! `otherwise` says (`skip` by default).

use serde::Deserialize;
use taskflow_store::{CatchUp, Otherwise, Overlap, ScheduleSpec, Timestamp, Timing};

use super::clock::SlotClock;
use crate::pipeline::spec::duration_text;

/// The default catch-up window: a day.
const DEFAULT_CATCH_UP_WINDOW_MS: u64 = 24 * 3_600_000;

/// A schedule as written; every field as text, checked by [`ScheduleInput::spec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// The schedule's name (in a `[schedule]` table; on the command line it is the argument).
    pub name: Option<String>,
    pub cron: Option<String>,
    pub every: Option<String>,
    pub zone: Option<String>,
    #[serde(default)]
    pub after: Vec<String>,
    pub within: Option<String>,
    pub otherwise: Option<String>,
    pub overlap: Option<String>,
    pub catch_up: Option<String>,
    pub catch_up_window: Option<String>,
    pub max_catch_up: Option<u32>,
    pub jitter: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub paused: bool,
}

/// A problem of a schedule as written: the option (`cron`, `within`, …) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    /// The option, as the `[schedule]` table names it.
    pub field: &'static str,
    pub message: String,
}

fn problem(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError { field, message: message.into() }
}

impl ScheduleInput {
    /// The schedule the store keeps, checked: a cron expression or an interval (one of the
    /// two), a zone that exists, durations, policies by their names, and `within` for `after`.
    pub fn spec(&self) -> Result<ScheduleSpec, ScheduleError> {
        let timing = match (&self.cron, &self.every) {
            (Some(cron), None) => Timing::Cron(cron.trim().to_owned()),
            (None, Some(every)) => Timing::EveryMs(millis("every", every)?),
            (Some(_), Some(_)) => return Err(problem("every", "give `cron` or `every`, not both")),
            (None, None) => {
                return Err(problem(
                    "cron",
                    "a schedule needs `cron` (e.g. \"0 7 * * *\") or `every` (e.g. \"10m\")",
                ));
            }
        };
        let zone = self.zone.clone().unwrap_or_else(|| "UTC".to_owned());
        if matches!(timing, Timing::EveryMs(_)) && zone != "UTC" {
            return Err(problem(
                "zone",
                "a zone applies to `cron`: `every` slots are whole intervals since \
                 1970-01-01T00:00:00Z, in any zone (for local times, use `cron`)",
            ));
        }
        let clock = SlotClock::new(&timing, &zone).map_err(|error| {
            let field = match error {
                super::clock::ClockError::Cron { .. } => "cron",
                super::clock::ClockError::Zone(_) => "zone",
                super::clock::ClockError::Interval => "every",
            };
            problem(field, error.to_string())
        })?;
        if let Timing::Cron(expression) = &timing
            && clock.next_after(Timestamp::now()).is_none()
        {
            return Err(problem(
                "cron",
                format!(
                    "`{expression}` matches no date to come (such as February 30): it would never fire"
                ),
            ));
        }
        let within_ms = self.within.as_deref().map(|text| millis("within", text)).transpose()?;
        if !self.after.is_empty() && within_ms.is_none() {
            return Err(problem(
                "within",
                "a schedule that runs after others says how long a slot waits for them (e.g. \"2h\")",
            ));
        }
        if self.after.is_empty() && (within_ms.is_some() || self.otherwise.is_some()) {
            return Err(problem("after", "`within` and `otherwise` go with `after`"));
        }
        let jitter_ms = self.jitter.as_deref().map(|text| millis("jitter", text)).transpose()?;
        if let (Timing::EveryMs(period), Some(jitter)) = (&timing, jitter_ms)
            && jitter >= *period
        {
            return Err(problem("jitter", "the jitter must be shorter than the interval"));
        }
        if let (Timing::Cron(_), Some(jitter)) = (&timing, jitter_ms)
            && let Some(gap) = shortest_gap(&clock)
            && jitter >= gap
        {
            let gap = duration_text::human(std::time::Duration::from_millis(gap));
            return Err(problem(
                "jitter",
                format!("the jitter must be shorter than the shortest gap between slots ({gap})"),
            ));
        }
        let catch_up_window_ms = match &self.catch_up_window {
            Some(text) => not_zero(
                "catch_up_window",
                millis("catch_up_window", text)?,
                "a window of 0 misses every late slot: that is catch-up `none`",
            )?,
            None => DEFAULT_CATCH_UP_WINDOW_MS,
        };
        let timeout_ms = match &self.timeout {
            Some(text) => Some(not_zero(
                "timeout",
                millis("timeout", text)?,
                "a timeout of 0 would cancel every run as it starts",
            )?),
            None => None,
        };
        Ok(ScheduleSpec {
            timing,
            zone,
            after: once_each(&self.after),
            within_ms,
            otherwise: named("otherwise", self.otherwise.as_deref())?,
            overlap: named("overlap", self.overlap.as_deref())?,
            catch_up: named("catch_up", self.catch_up.as_deref())?,
            catch_up_window_ms,
            max_catch_up: self.max_catch_up.unwrap_or(1),
            jitter_ms: jitter_ms.unwrap_or(0),
            timeout_ms,
        })
    }
}

/// The shortest time between two of the schedule's next slots (a year of daily slots; hours of
/// slots a minute apart), in milliseconds: a jitter at least as long would let slots fire out of
/// order.
fn shortest_gap(clock: &SlotClock) -> Option<u64> {
    let mut at = clock.next_after(taskflow_store::Timestamp::now())?;
    let mut shortest = None::<u64>;
    for _ in 0..400 {
        let Some(next) = clock.next_after(at) else { break };
        let gap = (next.as_millis() - at.as_millis()).max(0) as u64;
        shortest = Some(shortest.map_or(gap, |shortest| shortest.min(gap)));
        at = next;
    }
    shortest
}

/// A duration such as `10m` in milliseconds.
fn millis(field: &'static str, text: &str) -> Result<u64, ScheduleError> {
    let duration = duration_text::parse(text).map_err(|message| problem(field, message))?;
    u64::try_from(duration.as_millis()).map_err(|_| problem(field, "too long"))
}

/// `ms`, unless it is zero (then the problem `why`).
fn not_zero(field: &'static str, ms: u64, why: &str) -> Result<u64, ScheduleError> {
    if ms == 0 { Err(problem(field, why)) } else { Ok(ms) }
}

/// A policy by its name, or its default.
fn named<T>(field: &'static str, text: Option<&str>) -> Result<T, ScheduleError>
where
    T: std::str::FromStr<Err = taskflow_store::Error> + Default,
{
    match text {
        None => Ok(T::default()),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|error: taskflow_store::Error| problem(field, error.to_string())),
    }
}

/// The policies' names, for `--help`.
pub fn policy_names() -> [(&'static str, Vec<&'static str>); 3] {
    [
        ("overlap", Overlap::ALL.iter().map(|value| value.as_str()).collect()),
        ("catch_up", CatchUp::ALL.iter().map(|value| value.as_str()).collect()),
        ("otherwise", Otherwise::ALL.iter().map(|value| value.as_str()).collect()),
    ]
}

/// The schedules of `after`, trimmed, each once, in the order first named.
fn once_each(after: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(after.len());
    for name in after.iter().map(|name| name.trim()) {
        if !names.iter().any(|named| named == name) {
            names.push(name.to_owned());
        }
    }
    names
}
#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ScheduleInput {
        ScheduleInput { cron: Some("0 7 * * *".into()), ..ScheduleInput::default() }
    }

    fn check(input: ScheduleInput, expected: Result<(), (&str, &str)>) {
        match (input.spec(), expected) {
            (Ok(_), Ok(())) => {}
            (Err(error), Err((field, fragment))) => {
                assert_eq!(error.field, field, "{error}");
                assert!(error.message.contains(fragment), "{error}");
            }
            (result, expected) => panic!("{input:?}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn defaults_are_those_the_issue_names() {
        let spec = input().spec().unwrap();
        assert_eq!(spec.zone, "UTC");
        assert_eq!(
            (spec.overlap, spec.catch_up, spec.max_catch_up),
            (Overlap::Skip, CatchUp::Latest, 1)
        );
        assert_eq!(
            (spec.catch_up_window_ms, spec.jitter_ms, spec.timeout_ms),
            (86_400_000, 0, None)
        );
        let every = ScheduleInput { cron: None, every: Some("2s".into()), ..input() };
        assert_eq!(every.spec().unwrap().timing, Timing::EveryMs(2000));
    }

    #[test]
    fn a_schedule_named_twice_in_after_is_waited_for_once() {
        let input = ScheduleInput {
            after: vec!["scrape".into(), " send".into(), "scrape ".into()],
            within: Some("2h".into()),
            ..input()
        };
        assert_eq!(input.spec().unwrap().after, ["scrape", "send"]);
    }

    #[test]
    fn each_problem_names_its_option() {
        check(input(), Ok(()));
        check(ScheduleInput { cron: None, ..input() }, Err(("cron", "needs `cron`")));
        check(ScheduleInput { every: Some("1m".into()), ..input() }, Err(("every", "not both")));
        check(
            ScheduleInput { cron: Some("0 25 * * *".into()), ..input() },
            Err(("cron", "not a cron expression")),
        );
        check(
            ScheduleInput { zone: Some("Mars/Olympus".into()), ..input() },
            Err(("zone", "IANA")),
        );
        check(
            ScheduleInput { cron: None, every: Some("1500ms".into()), ..input() },
            Err(("every", "whole number")),
        );
        let every = |zone: &str| ScheduleInput {
            cron: None,
            every: Some("1d".into()),
            zone: Some(zone.into()),
            ..input()
        };
        check(every("Asia/Kolkata"), Err(("zone", "a zone applies to `cron`")));
        check(every("UTC"), Ok(()));
        check(
            ScheduleInput { cron: None, every: Some("often".into()), ..input() },
            Err(("every", "not a duration")),
        );
        check(
            ScheduleInput { after: vec!["scrape".into()], ..input() },
            Err(("within", "how long")),
        );
        check(
            ScheduleInput {
                after: vec!["scrape".into()],
                within: Some("2h".into()),
                otherwise: Some("maybe".into()),
                ..input()
            },
            Err(("otherwise", "skip, run, fail")),
        );
        check(
            ScheduleInput { within: Some("2h".into()), ..input() },
            Err(("after", "go with `after`")),
        );
        check(
            ScheduleInput { overlap: Some("queue".into()), ..input() },
            Err(("overlap", "buffer-one")),
        );
        check(
            ScheduleInput { catch_up: Some("some".into()), ..input() },
            Err(("catch_up", "latest")),
        );
        check(
            ScheduleInput {
                cron: None,
                every: Some("10s".into()),
                jitter: Some("10s".into()),
                ..input()
            },
            Err(("jitter", "shorter than the interval")),
        );
        check(ScheduleInput { jitter: Some("23h".into()), ..input() }, Ok(()));
        check(
            ScheduleInput { catch_up_window: Some("0s".into()), ..input() },
            Err(("catch_up_window", "catch-up `none`")),
        );
        check(
            ScheduleInput { timeout: Some("0ms".into()), ..input() },
            Err(("timeout", "cancel every run as it starts")),
        );
        check(ScheduleInput { timeout: Some("1s".into()), ..input() }, Ok(()));
        check(
            ScheduleInput { jitter: Some("1d".into()), ..input() },
            Err(("jitter", "shortest gap between slots (1d)")),
        );
        check(
            ScheduleInput {
                cron: Some("0 7,8 * * *".into()),
                jitter: Some("90m".into()),
                ..input()
            },
            Err(("jitter", "(1h)")),
        );
        check(
            ScheduleInput { timeout: Some("forever".into()), ..input() },
            Err(("timeout", "not a duration")),
        );
    }
}
