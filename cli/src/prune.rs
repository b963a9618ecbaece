//! `taskflow flows prune`: ended flows and their journals removed in batches of one
//! transaction each, oldest first, each top-level flow with its children; a running, waiting or
//! otherwise unfinished flow is never touched. `--vacuum` then gives the space back.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::json;
use taskflow_api::database;
use taskflow_engine::{FlowStatus, PruneQuery, Timestamp};

use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

/// Top-level flows per transaction.
const BATCH: u32 = 200;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    taskflow flows prune --ended-before 30d\n  \
    taskflow flows prune --ended-before 7d --status succeeded --vacuum")]
pub struct PruneArgs {
    /// Remove flows that ended longer ago than this: 90m, 12h, 30d
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub ended_before: Duration,

    /// Only flows that ended with this status: succeeded, failed, cancelled or lost
    #[arg(long, value_name = "S", value_parser = parse_ended_status)]
    pub status: Option<FlowStatus>,

    /// Then give the space back to the file system (rewrites the file; takes a while on a large
    /// database, and needs that much free space)
    #[arg(long)]
    pub vacuum: bool,

    /// Every owner's flows, not only yours
    #[arg(long)]
    pub all_owners: bool,
}

fn parse_age(text: &str) -> Result<Duration, String> {
    taskflow_engine::pipeline::spec::duration_text::parse(text)
}

fn parse_ended_status(text: &str) -> Result<FlowStatus, String> {
    let status: FlowStatus =
        text.parse().map_err(|error: taskflow_store::status::UnknownStatus| error.to_string())?;
    if !status.is_terminal() {
        return Err(format!("`{text}` has not ended: only ended flows are removed"));
    }
    Ok(status)
}

pub fn run(global: &GlobalArgs, args: &PruneArgs) -> CliResult {
    let path = database::location(global.db.as_deref())?;
    let now = Timestamp::now();
    let ended_before = now.minus(args.ended_before);
    let Some(taskflow) = database::open_existing(&path)? else {
        return report(global.json, 0, 0, ended_before, false);
    };
    let handle = taskflow.bind(global.owner().as_str())?;
    let mut query = PruneQuery {
        ended_before,
        status: args.status,
        after: None,
        limit: BATCH,
        all_owners: args.all_owners,
    };
    let progress = !global.json && std::io::stderr().is_terminal();
    let (mut removed, mut kept) = (0, 0);
    loop {
        let batch = handle.prune(&query)?;
        removed += batch.removed;
        kept += batch.kept;
        if progress {
            eprint!("\rremoved {removed} flows");
        }
        match batch.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    if progress {
        eprintln!();
    }
    if args.vacuum {
        handle.compact().map_err(|error| {
            CliError::from(error).with_hint("VACUUM needs free space as large as the database")
        })?;
    }
    report(global.json, removed, kept, ended_before, args.vacuum)
}

fn report(json: bool, removed: u64, kept: u64, before: Timestamp, vacuumed: bool) -> CliResult {
    if json {
        let document = json!({
            "removed": removed, "kept_unfinished_trees": kept, "ended_before": before,
            "vacuumed": vacuumed,
        });
        println!("{document}");
        return Ok(());
    }
    println!("removed {removed} flows that ended before {before}");
    if kept > 0 {
        println!("kept {kept} ended flows whose children have not all ended");
    }
    if vacuumed {
        println!("vacuumed the database");
    }
    Ok(())
}
