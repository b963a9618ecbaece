//! Pipeline files: TOML read into a [`FlowSpec`], keeping where each value was written so that
//! every problem, from bad TOML to an unknown action, a cycle in `needs` or a template reading
//! a step that does not exist, is reported as `FILE:LINE:COLUMN: message` before anything runs.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::spec::{FlowSpec, Plan, RetryPolicy, SpecError, SpecField, StepSpec, duration_text};
use taskflow_tools::{Actions, Budget};

/// One problem of a pipeline file, at a line and column (both from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.message)
    }
}

/// Every problem found in a pipeline file, in the order of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PipelineErrors(pub Vec<PipelineError>);

impl fmt::Display for PipelineErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Spanned<String>,
    #[serde(default)]
    output_dir: Option<Spanned<String>>,
    #[serde(default)]
    concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    budget: Option<Spanned<RawBudget>>,
    #[serde(default)]
    steps: Vec<RawStep>,
    /// When the pipeline runs on its own: read by `schedules apply` (`crate::schedule::table`),
    /// not by a run.
    #[serde(default, rename = "schedule")]
    _schedule: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    action: Spanned<String>,
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    /// Its keys keep where they were written, so that a key the action does not take is
    /// pointed at (and not a word of a value that happens to spell it).
    #[serde(default)]
    with: Option<Spanned<BTreeMap<Spanned<String>, toml::Value>>>,
    #[serde(default)]
    retry: Option<Spanned<RetryPolicy>>,
    #[serde(default)]
    timeout: Option<Spanned<RawDuration>>,
}

/// `[budget]`: what the pipeline's model calls may spend in all.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    #[serde(default)]
    max_tokens: Option<Spanned<u64>>,
    #[serde(default)]
    max_cost_usd: Option<Spanned<f64>>,
}

/// A step's `timeout` as written: seconds, or text read by [`duration_text`], as a pipeline
/// given as JSON reads it.
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration: seconds (30) or text (\"500ms\", \"30s\", \"5m\", \"1h\")")
            }

            fn visit_u64<E: serde::de::Error>(self, seconds: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(seconds))
            }

            fn visit_i64<E: serde::de::Error>(self, seconds: i64) -> Result<RawDuration, E> {
                u64::try_from(seconds)
                    .map(RawDuration::Seconds)
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({seconds})")))
            }

            fn visit_f64<E: serde::de::Error>(self, seconds: f64) -> Result<RawDuration, E> {
                // As a pipeline given as JSON reads it (`duration_text`): seconds with a fraction.
                if seconds < 0.0 {
                    return Err(E::custom(format!("a duration cannot be negative ({seconds})")));
                }
                Ok(RawDuration::Text(seconds.to_string()))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(text.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Reads and checks the pipeline file at `path`. Relative paths in it (file URLs,
/// `output_dir`) are relative to the file's folder.
pub fn load(path: &Path, actions: &Actions) -> Result<Plan, PipelineErrors> {
    let source = std::fs::read_to_string(path).map_err(|error| {
        let message = if path.is_dir() {
            let inside = path.join("pipeline.toml");
            match inside.is_file() {
                true => format!(
                    "cannot read the pipeline: this is a folder; its pipeline is {}",
                    inside.display()
                ),
                false => "cannot read the pipeline: this is a folder, not a file".to_owned(),
            }
        } else {
            format!("cannot read the pipeline: {error}")
        };
        PipelineErrors(vec![PipelineError { path: path.to_owned(), line: 1, column: 1, message }])
    })?;
    let base = path
        .parent()
        .map(|dir| if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
        .and_then(|dir| dir.canonicalize().ok());
    parse(&source, path, base, actions)
}

/// Reads and checks pipeline text; `path` is only used in messages.
pub fn parse(
    source: &str,
    path: &Path,
    base_dir: Option<PathBuf>,
    actions: &Actions,
) -> Result<Plan, PipelineErrors> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_column(source, span.start);
        PipelineError { path: path.to_owned(), line, column, message }
    };
    let raw: RawPipeline = toml::from_str(source).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        PipelineErrors(vec![at(span, error.message().trim().to_owned())])
    })?;
    let mut errors = Vec::new();
    let mut steps = Vec::with_capacity(raw.steps.len());
    for step in &raw.steps {
        let timeout = match &step.timeout {
            None => None,
            Some(timeout) => match timeout.get_ref() {
                RawDuration::Seconds(seconds) => Some(std::time::Duration::from_secs(*seconds)),
                RawDuration::Text(text) => match duration_text::parse(text) {
                    Ok(duration) => Some(duration),
                    Err(message) => {
                        errors.push(at(timeout.span(), message));
                        None
                    }
                },
            },
        };
        let with = match &step.with {
            Some(with) => serde_json::to_value(with.get_ref()).unwrap_or(Value::Null),
            None => Value::Object(serde_json::Map::new()),
        };
        steps.push(StepSpec {
            id: step.id.get_ref().clone(),
            action: step.action.get_ref().clone(),
            needs: step.needs.iter().map(|need| need.get_ref().clone()).collect(),
            with,
            retry: step.retry.as_ref().map(|retry| *retry.get_ref()),
            timeout,
        });
    }
    let spec = FlowSpec {
        name: raw.name.get_ref().clone(),
        base_dir,
        output_dir: raw.output_dir.as_ref().map(|dir| PathBuf::from(dir.get_ref())),
        concurrency: raw.concurrency.as_ref().map(|limit| *limit.get_ref()),
        prices: Default::default(),
        budget: raw.budget.as_ref().map_or_else(Budget::default, |budget| Budget {
            max_tokens: budget.get_ref().max_tokens.as_ref().map(|max| *max.get_ref()),
            max_cost: budget.get_ref().max_cost_usd.as_ref().map(|max| *max.get_ref()),
        }),
        steps,
    };
    match spec.into_plan(actions) {
        Ok(plan) if errors.is_empty() => Ok(plan),
        Ok(_) => Err(PipelineErrors(errors)),
        Err(found) => {
            errors.extend(
                found.iter().map(|error| at(span_of(&raw, source, error), error.message.clone())),
            );
            errors.sort_by_key(|error| (error.line, error.column));
            Err(PipelineErrors(errors))
        }
    }
}

/// Where in the file a spec error points.
fn span_of(raw: &RawPipeline, source: &str, error: &SpecError) -> Range<usize> {
    let Some(step) = error.step.and_then(|at| raw.steps.get(at)) else {
        return match error.field {
            SpecField::Name => raw.name.span(),
            SpecField::Concurrency => raw.concurrency.as_ref().map_or(0..0, Spanned::span),
            SpecField::Budget => budget_span(raw, &error.message),
            _ => 0..0,
        };
    };
    match &error.field {
        SpecField::Action => step.action.span(),
        SpecField::Needs(n) => step.needs.get(*n).map_or(step.id.span(), Spanned::span),
        SpecField::With(fragment) => match &step.with {
            Some(with) => {
                let span = with.span();
                let key = |fragment: &str| {
                    let keys = with.get_ref().keys();
                    keys.into_iter()
                        .find(|key| key.get_ref() == fragment)
                        .map(|key| key.span().start)
                };
                let inner = fragment.as_deref().and_then(|fragment| {
                    key(fragment).or_else(|| {
                        source.get(span.clone())?.find(fragment).map(|offset| span.start + offset)
                    })
                });
                inner.map_or(span.clone(), |start| start..start)
            }
            None => step.id.span(),
        },
        SpecField::Retry => step.retry.as_ref().map_or(step.id.span(), Spanned::span),
        SpecField::Timeout => step.timeout.as_ref().map_or(step.id.span(), Spanned::span),
        _ => step.id.span(),
    }
}

/// Where a problem of `[budget]` points: the limit it names.
fn budget_span(raw: &RawPipeline, message: &str) -> Range<usize> {
    let Some(budget) = &raw.budget else { return 0..0 };
    let limit = if message.contains("max_tokens") {
        budget.get_ref().max_tokens.as_ref().map(Spanned::span)
    } else {
        budget.get_ref().max_cost_usd.as_ref().map(Spanned::span)
    };
    limit.unwrap_or_else(|| budget.span())
}

/// Line and column (from 1, columns in characters) of a byte offset.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `FILE:LINE:COLUMN: message` lines a pipeline of one step `a` is refused with; `rest`
    /// is the step's table after its id (line 4 on).
    fn check(rest: &str, expected: &[&str]) {
        let source = format!("name = \"p\"\n[[steps]]\nid = \"a\"\n{rest}\n");
        let found = match parse(&source, Path::new("p.toml"), None, &crate::builtin_actions()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(found, expected, "{source}");
    }

    #[test]
    fn a_key_the_action_does_not_take_is_pointed_at() {
        let extra = "`with.extra` is not a parameter of `echo` (parameters: value)";
        for (rest, at) in [
            ("action = \"echo\"\nwith = { value = 1, extra = 2 }", "5:21"),
            // The key, not a word of a value that spells it.
            ("action = \"echo\"\nwith = { value = \"extra = 1\", extra = 2 }", "5:31"),
            ("action = \"echo\"\nwith = { value = 1, \"extra\" = 2 }", "5:21"),
            ("action = \"echo\"\nwith = { value = 1, extra.x = 2 }", "5:21"),
            ("action = \"echo\"\n[steps.with]\nvalue = 1\nextra = 2", "7:1"),
        ] {
            check(rest, &[&format!("p.toml:{at}: {extra}")]);
        }
        check(
            "action = \"wait_signal\"\nwith = { name = \"go\", timout = \"1s\" }",
            &["p.toml:5:23: `with.timout` is not a parameter of `wait_signal` (parameters: name, \
               timeout)"],
        );
    }

    #[test]
    fn a_wait_takes_no_step_timeout_or_retry() {
        let sleep = "it only waits, so there is nothing to stop or try again; `with.for` or \
                     `with.until` says how long";
        let signal = "it only waits for its signal, so there is nothing to stop or try again; \
                      `with.timeout` says how long it may wait";
        for (rest, expected) in [
            (
                "action = \"sleep\"\nwith = { for = \"4s\" }\ntimeout = \"1s\"",
                format!("p.toml:6:11: a `sleep` step takes no `timeout`: {sleep}"),
            ),
            (
                "action = \"wait_signal\"\nwith = { name = \"go\" }\nretry = { max_attempts = 3 }",
                format!("p.toml:6:9: a `wait_signal` step takes no `retry`: {signal}"),
            ),
            (
                "action = \"wait_signal\"\nwith = { name = \"go\" }\ntimeout = 5",
                format!("p.toml:6:11: a `wait_signal` step takes no `timeout`: {signal}"),
            ),
        ] {
            check(rest, &[&expected]);
        }
    }

    #[test]
    fn a_folder_given_as_the_pipeline_says_where_its_pipeline_is() {
        let dir = tempfile::tempdir().unwrap();
        let message = |path: &Path| match load(path, &crate::builtin_actions()) {
            Ok(_) => panic!("{} loaded", path.display()),
            Err(errors) => errors.0[0].message.clone(),
        };
        assert_eq!(message(dir.path()), "cannot read the pipeline: this is a folder, not a file");
        let inside = dir.path().join("pipeline.toml");
        std::fs::write(&inside, "name = \"p\"\n").unwrap();
        assert_eq!(
            message(dir.path()),
            format!(
                "cannot read the pipeline: this is a folder; its pipeline is {}",
                inside.display()
            )
        );
    }

    #[test]
    fn a_timeout_is_seconds_or_duration_text() {
        let expected = "a duration: seconds (30) or text (\"500ms\", \"30s\", \"5m\", \"1h\")";
        for (timeout, error) in [
            ("30", None),
            ("\"1.5s\"", None),
            ("-1", Some("p.toml:6:11: a duration cannot be negative (-1)".to_owned())),
            ("1.5", None),
            ("-0.5", Some("p.toml:6:11: a duration cannot be negative (-0.5)".to_owned())),
            (
                "true",
                Some(format!("p.toml:6:11: invalid type: boolean `true`, expected {expected}")),
            ),
        ] {
            let rest = format!("action = \"echo\"\nwith = {{ value = 1 }}\ntimeout = {timeout}");
            check(&rest, error.as_deref().as_slice());
        }
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nx", 1 + 2), (2, 1));
    }
}
