//! `taskflow schedules add | list | show | history | pause | resume | trigger | remove |
//! backfill | apply`: schedules with dependencies (DESIGN §9), read and written in the flow
//! database directly, so they work whether or not `taskflow serve` runs; serve is what fires
//! their slots. Reading commands never create a database.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use taskflow_api::{database, schedules};
use taskflow_engine::schedule::ScheduleInput;
use taskflow_engine::schedule::table;
use taskflow_engine::waits::instant;
use taskflow_engine::{FlowSpec, OwnerHandle, Timestamp, builtin_actions, pipeline};

use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::schedule_render;

#[derive(Debug, Args)]
#[command(after_help = "Each slot of a schedule is a flow with the id NAME@SLOT (the slot's \
    instant, RFC 3339 UTC): creating it is the only way a slot fires, so no slot ever runs \
    twice. `taskflow serve` fires the slots; these commands work with or without it.")]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: SchedulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Add a schedule that runs a pipeline at each slot
    Add(Box<AddArgs>),
    /// Your schedules: timing, zone, next slot, last slot and its status, paused
    List,
    /// A schedule and its slots, newest first: fired (flow and status), skipped, missed,
    /// gated or buffered, with the reason
    Show {
        /// The schedule's name
        name: String,
        /// At most this many slots
        #[arg(long, value_name = "N", default_value_t = 50,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// The revisions of a schedule, oldest first
    History {
        /// The schedule's name
        name: String,
    },
    /// Stop firing slots; those that come while paused are recorded as missed on resume
    Pause {
        /// The schedule's name
        name: String,
    },
    /// Fire slots again from the next one on; those that came while paused are recorded as
    /// missed
    Resume {
        /// The schedule's name
        name: String,
    },
    /// Fire a slot now, whatever the timing and gates say (serve runs its flow)
    Trigger {
        /// The schedule's name
        name: String,
    },
    /// Remove a schedule and its slot records (the flows its slots ran stay)
    Remove {
        /// The schedule's name
        name: String,
    },
    /// Fire every slot of a past range (a slot that fired already keeps its flow)
    Backfill {
        /// The schedule's name
        name: String,
        /// The first instant, RFC 3339 (e.g. 2026-12-01T00:00:00Z)
        #[arg(long, value_name = "T", value_parser = parse_instant)]
        from: Timestamp,
        /// The last instant, included
        #[arg(long, value_name = "T", value_parser = parse_instant)]
        to: Timestamp,
    },
    /// Create or update the schedule a pipeline file declares in its `[schedule]` table
    /// (the same file again changes nothing)
    Apply {
        /// The pipeline file (TOML) with a `[schedule]` table
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("timing").required(true).args(["cron", "every"])))]
#[command(after_help = "DST: a wall time that occurs twice (the clocks go back) fires once, at \
    its first occurrence; a wall time the clocks skip fires at the first instant after the gap.\n\
    Durations: 500ms, 30s, 10m, 6h, 1d.")]
pub struct AddArgs {
    /// The schedule's name: 1 to 100 letters, digits, `.`, `_` or `-`
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The pipeline each slot runs (checked now, stored with the schedule)
    #[arg(long, value_name = "FILE")]
    pub pipeline: PathBuf,
    /// A cron expression: 5 fields, or 6 with seconds first; names (MON, JAN); @daily, @hourly
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// A fixed interval instead, counted from the Unix epoch (2s, 10m, 1h)
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
    /// The IANA time zone the cron expression is read in [default: UTC] (`--every` takes none:
    /// its slots are whole intervals since the epoch)
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Run each slot only once these schedules' latest slots at or before it succeeded
    #[arg(long, value_name = "SCHEDULE,..", value_delimiter = ',', requires = "within")]
    pub after: Vec<String>,
    /// How long a slot waits for the schedules it runs after (needed with --after)
    #[arg(long, value_name = "DURATION", requires = "after")]
    pub within: Option<String>,
    /// What a slot does once its gate cannot open: skip, run or fail [default: skip]
    #[arg(long, value_name = "POLICY", requires = "after")]
    pub otherwise: Option<String>,
    /// A slot due while the last run still goes: skip, buffer-one, buffer-all, cancel-other,
    /// allow [default: skip]
    #[arg(long, value_name = "POLICY")]
    pub overlap: Option<String>,
    /// Slots that came while no scheduler ran: none, latest, all [default: latest]
    #[arg(long, value_name = "POLICY")]
    pub catch_up: Option<String>,
    /// Late slots older than this are missed [default: 1d]
    #[arg(long, value_name = "DURATION")]
    pub catch_up_window: Option<String>,
    /// How many late slots run at most [default: 1]
    #[arg(long, value_name = "N")]
    pub max_catch_up: Option<u32>,
    /// Fire each slot up to this long after its instant (the same delay every time)
    #[arg(long, value_name = "DURATION")]
    pub jitter: Option<String>,
    /// Cancel a run still going this long after its slot fired
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Add it paused
    #[arg(long)]
    pub paused: bool,
}

fn parse_name(text: &str) -> Result<String, String> {
    taskflow_store::schedule::check_name(text).map_err(|error| error.to_string())?;
    Ok(text.to_owned())
}

fn parse_instant(text: &str) -> Result<Timestamp, String> {
    instant(text)
}

pub fn run(global: &GlobalArgs, args: &SchedulesArgs) -> CliResult {
    let now = Timestamp::now();
    match &args.command {
        SchedulesCommand::Add(add) => {
            let handle = writable(global)?;
            let pipeline = load_pipeline(&add.pipeline)?;
            let input = ScheduleInput {
                name: None,
                cron: add.cron.clone(),
                every: add.every.clone(),
                zone: add.tz.clone(),
                after: add.after.clone(),
                within: add.within.clone(),
                otherwise: add.otherwise.clone(),
                overlap: add.overlap.clone(),
                catch_up: add.catch_up.clone(),
                catch_up_window: add.catch_up_window.clone(),
                max_catch_up: add.max_catch_up,
                jitter: add.jitter.clone(),
                timeout: add.timeout.clone(),
                paused: add.paused,
            };
            let spec = schedules::spec_of(&input).map_err(|error| {
                CliError::from(error).with_hint("`taskflow schedules add --help`")
            })?;
            let added = schedules::add(&handle, &add.name, spec, &pipeline, add.paused, now)?;
            schedule_render::changed(&added, "added", global.json);
            Ok(())
        }
        SchedulesCommand::Apply { file } => {
            let handle = writable(global)?;
            let (plan, declared) = table::load(file, &builtin_actions()).map_err(pipeline_error)?;
            let put = schedules::apply(&handle, &declared, &plan.spec, now)
                .map_err(|error| refused_declaration(&declared, error))?;
            let what = match (put.created, put.changed) {
                (true, _) => "created",
                (false, true) => "updated",
                (false, false) => "unchanged",
            };
            schedule_render::changed(&put.schedule, what, global.json);
            Ok(())
        }
        SchedulesCommand::List => {
            let list = match readable(global)? {
                Some(handle) => handle.schedules()?,
                None => Vec::new(),
            };
            schedule_render::list(&list, &global.owner(), global.json);
            Ok(())
        }
        SchedulesCommand::Show { name, limit } => {
            let (schedule, slots) = existing(global, name)?.schedule(name, None, *limit)?;
            schedule_render::show(&schedule, &slots, global.json);
            Ok(())
        }
        SchedulesCommand::History { name } => {
            let revisions = existing(global, name)?.schedule_history(name)?;
            schedule_render::history(&revisions, global.json);
            Ok(())
        }
        SchedulesCommand::Pause { name } => {
            let paused = existing(global, name)?.pause_schedule(name)?;
            schedule_render::changed(&paused, "paused", global.json);
            Ok(())
        }
        SchedulesCommand::Resume { name } => {
            let resumed = schedules::resume(&existing(global, name)?, name, now)?;
            schedule_render::changed(&resumed, "resumed", global.json);
            Ok(())
        }
        SchedulesCommand::Trigger { name } => {
            let triggered = schedules::trigger(&existing(global, name)?, name, now)?;
            schedule_render::triggered(name, &triggered.slot, triggered.fired, global.json);
            Ok(())
        }
        SchedulesCommand::Remove { name } => {
            let removed = existing(global, name)?.remove_schedule(name)?;
            schedule_render::changed(
                &removed,
                "removed (the flows its slots ran stay)",
                global.json,
            );
            Ok(())
        }
        SchedulesCommand::Backfill { name, from, to } => {
            let slots = schedules::backfill(&existing(global, name)?, name, *from, *to, now)?;
            schedule_render::fired(name, &slots, global.json);
            Ok(())
        }
    }
}

/// The pipeline of a schedule, checked as `taskflow run` checks it.
fn load_pipeline(path: &Path) -> CliResult<FlowSpec> {
    Ok(pipeline::load(path, &builtin_actions()).map_err(pipeline_error)?.spec)
}

fn pipeline_error(errors: pipeline::PipelineErrors) -> CliError {
    file_error(errors, "nothing was changed; fix the file and try again")
}

/// A file's problems, one `error:` line each, and `hint`. A file with errors fails as `taskflow
/// run` of it does (exit 1): the command was right.
fn file_error(errors: pipeline::PipelineErrors, hint: &str) -> CliError {
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    CliError::failure(lines.join("\nerror: ")).with_hint(hint)
}

/// What the database refused of a file's schedule, as a problem of the file at the key it is
/// about: its gates (`after` naming no schedule of yours, or one that waits for this one), its
/// name (another owner's). Anything else is the database's own error.
fn refused_declaration(declared: &table::Declared, error: taskflow_api::ApiError) -> CliError {
    use taskflow_engine::Error;
    let at = |key: &str, message: String| {
        let hint = "the schedule was not changed; fix the file and apply it again";
        file_error(declared.problem(key, message), hint)
    };
    match error {
        taskflow_api::ApiError::Store(Error::InvalidInput(message)) => at("after", message),
        taskflow_api::ApiError::Store(taken @ Error::ScheduleNameTaken { .. }) => {
            at("name", taken.to_string())
        }
        other => other.into(),
    }
}

/// The owner's handle on the database, created if missing.
fn writable(global: &GlobalArgs) -> CliResult<OwnerHandle> {
    let path = database::location(global.db.as_deref())?;
    let taskflow = database::open_for_running(&path, taskflow_api::Durability::Full)?;
    Ok(taskflow.bind(global.owner())?)
}

/// The owner's handle on the database, if there is one.
fn readable(global: &GlobalArgs) -> CliResult<Option<OwnerHandle>> {
    let path = database::location(global.db.as_deref())?;
    match database::open_existing(&path)? {
        Some(taskflow) => Ok(Some(taskflow.bind(global.owner())?)),
        None => Ok(None),
    }
}

/// A command about one schedule needs a database; without one, it is not found.
fn existing(global: &GlobalArgs, name: &str) -> CliResult<OwnerHandle> {
    readable(global)?
        .ok_or_else(|| taskflow_engine::Error::ScheduleNotFound { name: name.to_owned() }.into())
}
