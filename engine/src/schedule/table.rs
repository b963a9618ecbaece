//! The `[schedule]` table of a pipeline file: the schedule that runs the pipeline, declared
//! beside it and applied with `taskflow schedules apply FILE`. Its keys are the options of
//! `schedules add` without their dashes (`catch_up` for `--catch-up`), plus `name`; every
//! problem is reported at its line and column, like the pipeline's own.
//!
//! ```toml
//! [schedule]
//! name = "draft"
//! cron = "0 7 * * *"
//! zone = "Europe/Paris"
//! after = ["scrape"]
//! within = "2h"
//! otherwise = "skip"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use taskflow_store::ScheduleSpec;
use taskflow_store::schedule::check_name;
use toml::Spanned;

use super::declare::ScheduleInput;
use crate::pipeline::file::line_column;
use crate::pipeline::{PipelineError, PipelineErrors, Plan};
use taskflow_tools::Actions;

/// The keys a `[schedule]` table may hold.
const KEYS: [&str; 14] = [
    "name",
    "cron",
    "every",
    "zone",
    "after",
    "within",
    "otherwise",
    "overlap",
    "catch_up",
    "catch_up_window",
    "max_catch_up",
    "jitter",
    "timeout",
    "paused",
];

#[derive(Deserialize)]
struct Only {
    schedule: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
}

/// A pipeline file's schedule: its name, what it is, whether it starts paused, and where each of
/// its keys is written (for what the database refuses later).
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub name: String,
    pub spec: ScheduleSpec,
    pub paused: bool,
    path: PathBuf,
    /// The line and column of the `[schedule]` table, and of each key's value.
    table_at: (usize, usize),
    keys_at: BTreeMap<String, (usize, usize)>,
}

impl Declared {
    /// A problem of the declaration the database found when it was applied (an `after` naming
    /// no schedule of the owner's, or a schedule that waits for this one), reported at the
    /// value of `key` like the file's other problems (at the table when the key is not written).
    pub fn problem(&self, key: &str, message: String) -> PipelineErrors {
        let (line, column) = self.keys_at.get(key).copied().unwrap_or(self.table_at);
        PipelineErrors(vec![PipelineError { path: self.path.clone(), line, column, message }])
    }
}

/// Reads the pipeline file at `path` (checked as `taskflow run` checks it) and its
/// `[schedule]` table, which it must have.
pub fn load(path: &Path, actions: &Actions) -> Result<(Plan, Declared), PipelineErrors> {
    let plan = crate::pipeline::load(path, actions)?;
    let source = std::fs::read_to_string(path).map_err(|error| {
        PipelineErrors(vec![error_at(path, "", 0, format!("cannot read the pipeline: {error}"))])
    })?;
    let declared = read(&source, path)?;
    Ok((plan, declared))
}

/// The `[schedule]` table of pipeline text; `path` is only used in messages.
pub fn read(source: &str, path: &Path) -> Result<Declared, PipelineErrors> {
    let one = |offset: usize, message: String| {
        PipelineErrors(vec![error_at(path, source, offset, message)])
    };
    let only: Only = toml::from_str(source).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        one(offset, error.message().trim().to_owned())
    })?;
    let Some(table) = only.schedule else {
        return Err(one(
            0,
            "the pipeline has no `[schedule]` table (e.g. `[schedule]` with `name` and `cron`)"
                .to_owned(),
        ));
    };
    let mut plain = toml::Table::new();
    let mut spans = BTreeMap::new();
    for (key, value) in table.get_ref() {
        if !KEYS.contains(&key.get_ref().as_str()) {
            return Err(one(
                key.span().start,
                format!(
                    "unknown key `{}` in [schedule] (keys: {})",
                    key.get_ref(),
                    KEYS.join(", ")
                ),
            ));
        }
        // Each value on its own first, so that one of the wrong type is found where it is.
        let mut single = toml::Table::new();
        single.insert(key.get_ref().clone(), value.get_ref().clone());
        if let Err(error) = ScheduleInput::deserialize(toml::Value::Table(single)) {
            let message = format!("`{}`: {}", key.get_ref(), error.message().trim());
            return Err(one(value.span().start, message));
        }
        spans.insert(key.get_ref().clone(), value.span().start);
        plain.insert(key.get_ref().clone(), value.get_ref().clone());
    }
    let at = |field: &str| spans.get(field).copied().unwrap_or(table.span().start);
    let input = ScheduleInput::deserialize(toml::Value::Table(plain))
        .map_err(|error| one(table.span().start, error.message().trim().to_owned()))?;
    let Some(name) = input.name.clone() else {
        return Err(one(
            table.span().start,
            "[schedule] needs `name`, the schedule's name".to_owned(),
        ));
    };
    check_name(&name).map_err(|error| one(at("name"), error.to_string()))?;
    let spec = input.spec().map_err(|error| one(at(error.field), error.message))?;
    for gate in &spec.after {
        check_name(gate).map_err(|error| one(at("after"), format!("`after`: {error}")))?;
    }
    let position = |offset: usize| line_column(source, offset);
    Ok(Declared {
        name,
        spec,
        paused: input.paused,
        path: path.to_owned(),
        table_at: position(table.span().start),
        keys_at: spans.into_iter().map(|(key, offset)| (key, position(offset))).collect(),
    })
}

fn error_at(path: &Path, source: &str, offset: usize, message: String) -> PipelineError {
    let (line, column) = line_column(source, offset);
    PipelineError { path: path.to_owned(), line, column, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(table: &str, expected: Result<&str, (usize, usize, &str)>) {
        let source =
            format!("name = \"digest\"\n\n[[steps]]\nid = \"a\"\naction = \"echo\"\n\n{table}");
        match (read(&source, Path::new("p.toml")), expected) {
            (Ok(declared), Ok(name)) => assert_eq!(declared.name, name),
            (Err(errors), Err((line, column, fragment))) => {
                let error = &errors.0[0];
                assert_eq!((error.line, error.column), (line, column), "{error}");
                assert!(error.message.contains(fragment), "{error}");
            }
            (result, expected) => panic!("{table}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn a_schedule_table_is_read_with_positions() {
        check("[schedule]\nname = \"digest\"\ncron = \"0 7 * * *\"\n", Ok("digest"));
        check(
            "[schedule]\nname = \"draft\"\ncron = \"0 7 * * *\"\nafter = [\"scrape\"]\nwithin = \"2h\"\n\
             otherwise = \"run\"\nzone = \"Europe/Paris\"\npaused = true\n",
            Ok("draft"),
        );
        check(
            "[schedule]\nname = \"x\"\ncron = \"0 25 * * *\"\n",
            Err((9, 8, "not a cron expression")),
        );
        check(
            "[schedule]\nname = \"x\"\ncron = \"0 7 * * *\"\ncolour = 1\n",
            Err((10, 1, "unknown key `colour`")),
        );
        check(
            "[schedule]\nname = \"x\"\ncron = \"0 7 * * *\"\nzone = \"Paris\"\n",
            Err((10, 8, "IANA")),
        );
        check("[schedule]\ncron = \"0 7 * * *\"\n", Err((7, 1, "needs `name`")));
        check(
            "[schedule]\nname = \"x\"\ncron = \"0 7 * * *\"\nmax_catch_up = \"one\"\n",
            Err((10, 16, "max_catch_up")),
        );
        check("", Err((1, 1, "no `[schedule]` table")));
        check(
            "[schedule]\nname = \"s 4\"\ncron = \"0 7 * * *\"\n",
            Err((8, 8, "`s 4` is not a schedule name: ' ' is not allowed")),
        );
        check(
            "[schedule]\nname = \"x\"\ncron = \"0 7 * * *\"\nafter = [\"a/b\"]\nwithin = \"1h\"\n",
            Err((10, 9, "`after`: `a/b` is not a schedule name")),
        );
    }

    /// What the database refuses of a declaration is placed at the key it is about, or at the
    /// table when that key is not written.
    #[test]
    fn a_refusal_of_the_database_is_placed_at_its_key() {
        let source = "name = \"d\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\n\n[schedule]\n\
                      name = \"x\"\ncron = \"0 7 * * *\"\nafter = [\"ghost\"]\nwithin = \"1h\"\n";
        let declared = read(source, Path::new("p.toml")).unwrap();
        let at = |key: &str| {
            let error = &declared.problem(key, "refused".to_owned()).0[0];
            (error.line, error.column, error.to_string())
        };
        assert_eq!(at("after"), (9, 9, "p.toml:9:9: refused".to_owned()));
        assert_eq!(at("zone"), (6, 1, "p.toml:6:1: refused".to_owned()));
    }
}
