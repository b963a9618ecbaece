//! `taskflow doctor`: an audit of the flow database. It lists what no longer tells the truth
//! (a running flow nobody runs, a waiting flow nothing can wake, a cancel that never settled, a
//! child left by its parent, a schema left behind, a damaged file), each with a code and one
//! line saying why, and with `--fix` makes the safe repairs through the normal rules, each a
//! revision whose actor is `doctor`. Without `--fix` it writes nothing, not even a migration.

use std::path::Path;

use serde_json::{Value, json};
use taskflow_api::database;
use taskflow_engine::{Finding, FindingCode, OwnerHandle, TaskFlow};

use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

/// The actor of every repair.
const ACTOR: &str = "doctor";

#[derive(Debug, clap::Args)]
#[command(after_help = "Codes:\n  \
    stale_running         running, but its runner is gone or its lease expired\n  \
    waiting_without_wake  waiting, but nothing could ever wake it\n  \
    cancel_stuck          a cancel asked for long ago has not settled\n  \
    orphan_child          a child left running by a parent that ended, or a parent still \
    waiting on a child that ended\n  \
    schema                the database's schema is older than this taskflow's\n  \
    integrity             the database file fails SQLite's quick_check\n\n\
    Exit code: 0 when nothing is (left) wrong, 1 otherwise.")]
pub struct DoctorArgs {
    /// Make the safe repairs: give dead leases back, settle stuck cancels, end orphaned
    /// children as their parent's end would have, migrate an old schema
    #[arg(long)]
    pub fix: bool,

    /// Check every owner's flows, not only yours
    #[arg(long)]
    pub all_owners: bool,
}

/// A finding and, with `--fix`, what was done about it.
struct Row {
    finding: Finding,
    fixed: Option<String>,
}

pub fn run(global: &GlobalArgs, args: &DoctorArgs) -> CliResult {
    let path = database::location(global.db.as_deref())?;
    let Some((version, current)) = schema_versions(&path)? else {
        return print(global.json, &path, &[], "no flow database there: nothing to check");
    };
    let mut rows = Vec::new();
    if version < current {
        let finding = Finding {
            code: FindingCode::Schema,
            flow: None,
            owner: None,
            reason: format!(
                "schema version {version}, this taskflow writes {current}: migrations pending"
            ),
            repair: Some("migrate it, as any other command that opens it would".to_owned()),
        };
        if !args.fix {
            rows.push(Row { finding, fixed: None });
            let note = "the other checks need the current schema: `taskflow doctor --fix` \
                        migrates it first";
            print(global.json, &path, &rows, note)?;
            return verdict(&rows);
        }
        rows.push(Row { finding, fixed: Some(format!("migrated to schema version {current}")) });
    }
    let Some(taskflow) = database::open_existing(&path)? else {
        return print(global.json, &path, &rows, "no flow database there: nothing to check");
    };
    let owner = global.owner();
    let handle = taskflow.bind(owner.as_str())?;
    for problem in handle.integrity_check()? {
        let finding = Finding {
            code: FindingCode::Integrity,
            flow: None,
            owner: None,
            reason: problem,
            repair: None,
        };
        rows.push(Row { finding, fixed: None });
    }
    let damaged = rows.iter().any(|row| row.finding.code == FindingCode::Integrity);
    let findings = match handle.audit(args.all_owners) {
        Ok(findings) => findings,
        // A damaged file may fail the flow checks too: say what was found, and why no more.
        Err(error) if damaged => {
            let note = format!("the flow checks could not run on the damaged file: {error}");
            print(global.json, &path, &rows, &note)?;
            return verdict(&rows);
        }
        Err(error) => return Err(error.into()),
    };
    for finding in findings {
        let fixed = match (&finding.repair, args.fix) {
            (Some(_), true) => repair(&taskflow, &finding)?,
            _ => None,
        };
        rows.push(Row { finding, fixed });
    }
    print(global.json, &path, &rows, "")?;
    verdict(&rows)
}

/// The schema version of the database at `path` and the one this taskflow writes, read without
/// migrating anything; `None` where there is no flow database yet (no file, or a PostgreSQL
/// database without taskflow's tables).
fn schema_versions(path: &Path) -> CliResult<Option<(i64, i64)>> {
    if let Some(url) = database::postgres_url(path) {
        let options = taskflow_store_postgres::OpenOptions {
            retry_for: database::busy_timeout(),
            ..taskflow_store_postgres::OpenOptions::default()
        };
        let version = taskflow_store_postgres::schema_version_of(url, &options)?;
        return Ok((version > 0).then_some((version, taskflow_store_postgres::SCHEMA_VERSION)));
    }
    if !path.exists() {
        return Ok(None);
    }
    let version = taskflow_store_sqlite::schema_version_of(path)?;
    Ok(Some((version, taskflow_store_sqlite::SCHEMA_VERSION)))
}

/// Repairs one finding as `doctor`, through a handle of the finding's owner.
fn repair(taskflow: &TaskFlow, finding: &Finding) -> CliResult<Option<String>> {
    let Some(owner) = &finding.owner else { return Ok(None) };
    let handle: OwnerHandle = taskflow.bind(owner.as_str())?.with_actor(ACTOR);
    let done = handle.repair(finding)?;
    Ok(Some(done.unwrap_or_else(|| "nothing left to repair".to_owned())))
}

/// Exit 1 while something is left wrong.
fn verdict(rows: &[Row]) -> CliResult {
    let left = rows.iter().filter(|row| row.fixed.is_none()).count();
    if left == 0 {
        return Ok(());
    }
    let fixable = rows.iter().filter(|row| row.fixed.is_none() && row.finding.repair.is_some());
    let fixable = fixable.count();
    let error = CliError::failure(format!("{left} problem(s) found"));
    Err(if fixable > 0 {
        error.with_hint(format!("`taskflow doctor --fix` repairs {fixable} of them"))
    } else {
        error
    })
}

fn print(json: bool, path: &Path, rows: &[Row], note: &str) -> CliResult {
    if json {
        let findings: Vec<Value> = rows
            .iter()
            .map(|row| {
                let Finding { code, flow, owner, reason, repair } = &row.finding;
                json!({
                    "code": code.as_str(), "flow": flow, "owner": owner, "reason": reason,
                    "repair": repair, "fixed": row.fixed,
                })
            })
            .collect();
        let note = (!note.is_empty()).then_some(note);
        let database = database::shown(path);
        println!("{}", json!({ "database": database, "findings": findings, "note": note }));
        return Ok(());
    }
    if rows.is_empty() && note.is_empty() {
        println!("{}: nothing wrong found", database::shown(path));
    }
    for row in rows {
        let Finding { code, flow, reason, repair, .. } = &row.finding;
        let about = flow.as_ref().map_or_else(|| "database".to_owned(), ToString::to_string);
        println!("{:<21} {about}  {reason}", code.as_str());
        match (&row.fixed, repair) {
            (Some(done), _) => println!("{:<21} fixed: {done}", ""),
            (None, Some(repair)) => println!("{:<21} --fix would {repair}", ""),
            (None, None) => {}
        }
    }
    if !note.is_empty() {
        println!("{note}");
    }
    Ok(())
}
