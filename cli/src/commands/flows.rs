//! `taskflow flows list | inspect | history | cancel | resume | fork`: the flow store seen
//! through the owner's handle, as aligned tables or, with `--json`, as the documents of
//! DESIGN §6. The read and cancel commands never create a database: a missing file simply holds
//! no flows. `resume` and `fork` run the flow with the engine, like `taskflow run`.

use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};
use serde_json::{Map, Value, json};
use taskflow_orchestrator::{
    CancelOutcome, Flow, FlowId, FlowStatus, FlowSummary, Inspection, ListQuery, OwnerHandle,
    Revision, Step, SyncMode, Timestamp,
};
use taskflow_store_sqlite::OpenOptions;

use crate::GlobalArgs;
use crate::commands::run::{RunnerArgs, drive, engine_error, open_engine, runtime};
use crate::error::{CliError, CliResult};

/// How long to wait for another process's write lock, in milliseconds.
const BUSY_TIMEOUT_ENV: &str = "TASKFLOW_BUSY_TIMEOUT_MS";
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(after_help = "The owner is --owner, else TASKFLOW_OWNER, else the OS user ($USER), \
    else \"local\"; another owner's flows are not visible.\n\
    TASKFLOW_BUSY_TIMEOUT_MS sets how long to wait for another process's write lock \
    (default 5000).")]
pub struct FlowsArgs {
    #[command(subcommand)]
    pub command: FlowsCommand,
}

#[derive(Debug, Subcommand)]
pub enum FlowsCommand {
    /// Table of flows, newest first
    List(ListArgs),
    /// A flow, its steps, its children and its current revision
    Inspect {
        /// The flow's id (a ULID, as `flows list` shows it)
        id: String,
    },
    /// The revision timeline of a flow, oldest first
    History {
        /// The flow's id
        id: String,
    },
    /// Sticky cancel: record the request now (it survives restarts), schedule nothing new; the
    /// flow becomes cancelled once its running steps and children have settled
    Cancel {
        /// The flow's id
        id: String,
        /// Refuse if the flow is no longer at this revision (see `flows inspect`)
        #[arg(long, value_name = "N")]
        expected_revision: Option<u64>,
    },
    /// Continue a flow from its last checkpoint: done steps keep their output, the step in
    /// flight runs again with the same idempotency key, a failed step is tried again
    Resume {
        /// The flow's id
        id: String,
        #[command(flatten)]
        runner: RunnerArgs,
    },
    /// Copy an ended flow's journal before step N into a new flow and run it from there
    Fork {
        /// The flow's id
        id: String,
        /// The first step to run again: its seq (as `flows inspect` shows it) or its name
        #[arg(long, value_name = "N")]
        from_step: String,
        #[command(flatten)]
        runner: RunnerArgs,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only flows with this status
    #[arg(long, value_name = "S", value_parser = parse_status)]
    pub status: Option<FlowStatus>,

    /// At most this many flows
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,

    /// Every owner's flows, not only yours
    #[arg(long)]
    pub all_owners: bool,
}

fn parse_status(text: &str) -> Result<FlowStatus, String> {
    text.parse().map_err(|error: taskflow_store::status::UnknownStatus| error.to_string())
}

pub fn run(global: &GlobalArgs, args: &FlowsArgs) -> CliResult {
    match &args.command {
        FlowsCommand::Resume { id, runner } => return resume(global, id, runner),
        FlowsCommand::Fork { id, from_step, runner } => return fork(global, id, from_step, runner),
        _ => {}
    }
    let owner = resolve_owner(global.owner.as_deref());
    let path = match &global.db {
        Some(path) => path.clone(),
        None => taskflow_store_sqlite::default_path()?,
    };
    let handle = open(&path, &owner)?;
    match &args.command {
        FlowsCommand::List(list) => list_flows(handle.as_ref(), &owner, list, global.json),
        FlowsCommand::Inspect { id } => {
            let handle = require(handle, id)?;
            let inspection = handle.inspect(&flow_id(id)?)?;
            print_inspection(&inspection, global.json);
            Ok(())
        }
        FlowsCommand::History { id } => {
            let handle = require(handle, id)?;
            let history = handle.history(&flow_id(id)?)?;
            print_history(&history, global.json);
            Ok(())
        }
        FlowsCommand::Cancel { id, expected_revision } => {
            let handle = require(handle, id)?;
            let outcome = handle.request_cancel(&flow_id(id)?, *expected_revision)?;
            print_cancel(&outcome, global.json);
            Ok(())
        }
        FlowsCommand::Resume { .. } | FlowsCommand::Fork { .. } => Ok(()),
    }
}

/// `flows resume ID`: runs the flow on from its journal. Refused while another runner holds
/// it, and for mirrored or ended (other than failed) flows.
fn resume(global: &GlobalArgs, id: &str, runner: &RunnerArgs) -> CliResult {
    let id = flow_id(id)?;
    let engine = open_engine(global, runner)?;
    runtime()?.block_on(drive(&engine, id, global.json))
}

/// `flows fork ID --from-step N`: a new flow with the steps before N done, run to its end.
fn fork(global: &GlobalArgs, id: &str, from_step: &str, runner: &RunnerArgs) -> CliResult {
    let id = flow_id(id)?;
    let engine = open_engine(global, runner)?;
    let from_seq = match from_step.parse::<u32>() {
        Ok(seq) => seq,
        Err(_) => {
            let steps = engine.handle().steps(&id)?;
            steps.iter().find(|step| step.name == from_step).map(|step| step.seq).ok_or_else(
                || {
                    CliError::usage(format!("flow {id} has no step `{from_step}`"))
                        .with_hint(format!("`taskflow flows inspect {id}` lists its steps"))
                },
            )?
        }
    };
    runtime()?.block_on(async {
        let fork = engine.fork(&id, from_seq).await.map_err(engine_error)?;
        if !global.json {
            println!("flow {} forked from flow {id} at step {from_seq}", fork.id);
        }
        drive(&engine, fork.id, global.json).await
    })
}

/// `--owner` (or `TASKFLOW_OWNER`), else the OS user, else `local`.
pub(crate) fn resolve_owner(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .map(|owner| owner.trim().to_owned())
        .filter(|owner| !owner.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}

/// Opens the store if its file exists; `None` means there are no flows yet.
fn open(path: &std::path::Path, owner: &str) -> CliResult<Option<OwnerHandle>> {
    if !path.exists() {
        return Ok(None);
    }
    let options =
        OpenOptions { busy_timeout: busy_timeout(), create: false, ..OpenOptions::default() };
    let taskflow = taskflow_store_sqlite::open(path, &options)?;
    Ok(Some(taskflow.bind(owner)?))
}

/// `TASKFLOW_BUSY_TIMEOUT_MS`, else five seconds.
pub(crate) fn busy_timeout() -> Duration {
    std::env::var(BUSY_TIMEOUT_ENV)
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(DEFAULT_BUSY_TIMEOUT, Duration::from_millis)
}

/// A command about one flow needs a store; without one, the flow is not found.
fn require(handle: Option<OwnerHandle>, id: &str) -> CliResult<OwnerHandle> {
    handle.ok_or_else(|| taskflow_orchestrator::Error::NotFound { id: id.to_owned() }.into())
}

fn flow_id(text: &str) -> CliResult<FlowId> {
    Ok(text.parse()?)
}

fn list_flows(handle: Option<&OwnerHandle>, owner: &str, args: &ListArgs, json: bool) -> CliResult {
    let query = ListQuery { status: args.status, limit: args.limit, all_owners: args.all_owners };
    let flows = match handle {
        Some(handle) => handle.list(&query)?,
        None => Vec::new(),
    };
    let now = Timestamp::now();
    if json {
        let flows: Vec<Value> = flows.iter().map(|flow| summary_json(flow, now)).collect();
        print_json(&json!({ "flows": flows }));
        return Ok(());
    }
    if flows.is_empty() {
        let whose =
            if args.all_owners { "any owner".to_owned() } else { format!("owner `{owner}`") };
        let which = args.status.map(|s| format!("{s} ")).unwrap_or_default();
        println!("no {which}flows for {whose}");
        return Ok(());
    }
    let mut header = vec!["ID", "NAME", "STATUS", "REV", "STEPS", "AGE"];
    if args.all_owners {
        header.push("OWNER");
    }
    let rows = flows.iter().map(|flow| {
        let mut row = vec![
            flow.id.to_string(),
            flow.name.clone(),
            status_text(flow.status, flow.is_stalled(now), flow.cancel_requested_at),
            flow.revision.to_string(),
            format!("{}/{}", flow.steps_done, flow.steps_total),
            age(flow.created_at, now),
        ];
        if args.all_owners {
            row.push(flow.owner.clone());
        }
        row
    });
    print!("{}", table(&header, rows));
    Ok(())
}

pub(crate) fn print_inspection(inspection: &Inspection, json: bool) {
    let Inspection { flow, steps, children } = inspection;
    let now = Timestamp::now();
    if json {
        let document = json!({
            "flow": flow_json(flow, steps, now),
            "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
            "children": children
                .iter()
                .map(|child| json!({"id": child.id, "name": child.name, "status": child.status.as_str()}))
                .collect::<Vec<_>>(),
        });
        print_json(&document);
        return;
    }
    let (done, total) = step_counts(steps);
    let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let when =
        |at: Option<Timestamp>| optional(at.map(|at| format!("{at} ({} ago)", age(at, now))));
    let mut fields = vec![
        ("flow", flow.id.to_string()),
        ("name", flow.name.clone()),
        ("owner", flow.owner.clone()),
        ("status", status_text(flow.status, flow.is_stalled(now), flow.cancel_requested_at)),
        ("sync mode", flow.sync_mode.to_string()),
        ("revision", flow.revision.to_string()),
        ("steps", format!("{done}/{total} done")),
        ("goal", optional(flow.goal.clone())),
        ("current step", optional(flow.current_step.clone())),
        ("created", when(Some(flow.created_at))),
        ("updated", when(Some(flow.updated_at))),
        ("ended", when(flow.ended_at)),
        ("parent", optional(flow.parent_flow_id.map(|id| id.to_string()))),
        ("cancel requested", when(flow.cancel_requested_at)),
        (
            "lease",
            optional(
                flow.lease
                    .as_ref()
                    .map(|lease| format!("{} until {}", lease.holder, lease.expires_at)),
            ),
        ),
        ("error", optional(flow.error.clone())),
    ];
    if flow.sync_mode == SyncMode::Mirrored {
        fields.insert(5, ("controller", optional(flow.controller.clone())));
    }
    if let Some(wait) = &flow.wait {
        fields.push(("waiting for", wait.to_string()));
    }
    let width = fields.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in fields {
        println!("{label:<width$}  {value}");
    }
    println!();
    if steps.is_empty() {
        println!("no steps");
    } else {
        let rows = steps.iter().map(|step| {
            vec![
                step.seq.to_string(),
                step.name.clone(),
                step.kind.to_string(),
                step.status.to_string(),
                step.attempt.to_string(),
                step.ended_at.map_or_else(
                    || age(step.started_at, now),
                    |end| duration(end.as_millis() - step.started_at.as_millis()),
                ),
                step.error
                    .clone()
                    .or_else(|| step.child_flow_id.map(|id| format!("child {id}")))
                    .unwrap_or_default(),
            ]
        });
        let header = ["SEQ", "STEP", "KIND", "STATUS", "ATTEMPT", "TIME", "NOTE"];
        print!("{}", table(&header, rows));
    }
    if !children.is_empty() {
        println!();
        let rows = children
            .iter()
            .map(|child| vec![child.id.to_string(), child.name.clone(), child.status.to_string()]);
        print!("{}", table(&["CHILD", "NAME", "STATUS"], rows));
    }
}

fn print_history(history: &[Revision], json: bool) {
    if json {
        let revisions: Vec<Value> = history
            .iter()
            .map(|revision| {
                let change: Map<String, Value> = revision
                    .change
                    .iter()
                    .map(|c| (c.field.clone(), json!({"before": c.before, "after": c.after})))
                    .collect();
                json!({
                    "revision": revision.revision,
                    "at": revision.at,
                    "actor": revision.actor,
                    "change": change,
                })
            })
            .collect();
        print_json(&json!({ "revisions": revisions }));
        return;
    }
    let rows = history.iter().map(|revision| {
        let change = revision
            .change
            .iter()
            .map(|c| format!("{}: {} → {}", c.field, value_text(&c.before), value_text(&c.after)))
            .collect::<Vec<_>>()
            .join("; ");
        vec![revision.revision.to_string(), revision.at.to_string(), revision.actor.clone(), change]
    });
    print!("{}", table(&["REV", "AT", "ACTOR", "CHANGE"], rows));
}

fn print_cancel(outcome: &CancelOutcome, json: bool) {
    let flow = &outcome.flow;
    if json {
        let document = json!({
            "flow": flow_json(flow, &[], Timestamp::now()),
            "already_requested": outcome.already_requested,
            "active_steps": outcome.active_steps,
        });
        print_json(&document);
        return;
    }
    let requested = flow.cancel_requested_at.map(|at| at.to_string()).unwrap_or_default();
    if flow.status == FlowStatus::Cancelled {
        println!("flow {} cancelled (revision {})", flow.id, flow.revision);
    } else if outcome.already_requested {
        println!(
            "flow {} already has a cancel request (since {requested}); it is still {}",
            flow.id, flow.status
        );
    } else if flow.sync_mode == SyncMode::Mirrored {
        println!(
            "cancel requested for flow {} (revision {}); its owner{} stops it and reports it cancelled",
            flow.id,
            flow.revision,
            flow.controller.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
        );
    } else {
        println!(
            "cancel requested for flow {} (revision {}); it becomes cancelled once its {} \
             running step(s) have settled",
            flow.id, flow.revision, outcome.active_steps
        );
    }
}

fn summary_json(flow: &FlowSummary, now: Timestamp) -> Value {
    json!({
        "id": flow.id,
        "name": flow.name,
        "status": flow.status.as_str(),
        "sync_mode": flow.sync_mode.as_str(),
        "owner": flow.owner,
        "revision": flow.revision,
        "steps_done": flow.steps_done,
        "steps_total": flow.steps_total,
        "created_at": flow.created_at,
        "updated_at": flow.updated_at,
        "cancel_requested_at": flow.cancel_requested_at,
        "stalled": flow.is_stalled(now),
    })
}

fn flow_json(flow: &Flow, steps: &[Step], now: Timestamp) -> Value {
    let (done, total) = step_counts(steps);
    json!({
        "id": flow.id,
        "name": flow.name,
        "status": flow.status.as_str(),
        "sync_mode": flow.sync_mode.as_str(),
        "owner": flow.owner,
        "revision": flow.revision,
        "steps_done": done,
        "steps_total": total,
        "created_at": flow.created_at,
        "updated_at": flow.updated_at,
        "ended_at": flow.ended_at,
        "error": flow.error,
        "cancel_requested_at": flow.cancel_requested_at,
        "parent_flow_id": flow.parent_flow_id,
        "controller": flow.controller,
        "goal": flow.goal,
        "current_step": flow.current_step,
        "state": flow.state,
        "wait": flow.wait,
        "spec": flow.spec,
        "lease": flow.lease.as_ref().map(|lease| json!({
            "holder": lease.holder.to_string(),
            "expires_at": lease.expires_at,
        })),
        "stalled": flow.is_stalled(now),
    })
}

fn step_json(step: &Step) -> Value {
    json!({
        "seq": step.seq,
        "name": step.name,
        "kind": step.kind.as_str(),
        "status": step.status.as_str(),
        "attempt": step.attempt,
        "idempotency_key": step.idempotency_key,
        "input": step.input,
        "output": step.output,
        "error": step.error,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "child_flow_id": step.child_flow_id,
    })
}

fn step_counts(steps: &[Step]) -> (usize, usize) {
    let done = steps.iter().filter(|s| s.status == taskflow_orchestrator::StepStatus::Succeeded);
    (done.count(), steps.len())
}

fn status_text(status: FlowStatus, stalled: bool, cancel: Option<Timestamp>) -> String {
    if stalled {
        format!("{status} (stalled)")
    } else if cancel.is_some() && !status.is_terminal() {
        format!("{status} (cancelling)")
    } else {
        status.to_string()
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// How long ago `then` was, in the largest whole unit: `42s`, `5m`, `3h`, `12d`.
fn age(then: Timestamp, now: Timestamp) -> String {
    duration(then.age(now).as_millis() as i64)
}

fn duration(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// An aligned, borderless table, one line per row, no trailing blanks.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}
