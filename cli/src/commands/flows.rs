//! `taskflow flows list | inspect | history | graph | cancel | signal | approve | resume |
//! fork`: the flow store seen through the owner's handle, as aligned tables or, with `--json`,
//! as the documents of DESIGN §6. The read, cancel, signal and approve commands never create a
//! database: a missing file simply holds no flows. `resume` and `fork` run the flow with the
//! engine, like `taskflow run`.

use std::io::Write;

use clap::{Args, Subcommand};
use taskflow_api::graph::{self, Graph};
use taskflow_api::{Durability, approvals, control, database};
use taskflow_engine::agent::Budget;
use taskflow_engine::{
    ApprovalDecision, FlowId, ListQuery, OwnerHandle, StatusFilter, SyncMode, Timestamp,
};

use crate::drive::{Origin, RunnerArgs, drive, engine_error, engine_with, open_engine, runtime};
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::render::{self, ListFilter};
use crate::watch::{self, Watch};

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
        /// The flow's id, as `flows list` shows it
        id: String,
    },
    /// The revision timeline of a flow, oldest first
    History {
        /// The flow's id
        id: String,
    },
    /// Sticky cancel: record the request now (it survives restarts), schedule nothing new; the
    /// flow becomes cancelled once its running steps and children have settled, at once when
    /// its runner is gone
    Cancel {
        /// The flow's id
        id: String,
        /// Refuse if the flow is no longer at this revision (see `flows inspect`)
        #[arg(long, value_name = "N")]
        expected_revision: Option<u64>,
    },
    /// Deliver a signal to a flow: stored before this returns and kept until a `wait_signal`
    /// step of that name takes it (one sent before the step is reached waits for it); a flow
    /// waiting for it runs on (serve runs it, or the `taskflow run` that waits for it)
    Signal {
        /// The flow's id
        id: String,
        /// The signal's name, as the step's `with.name` says it
        name: String,
        /// The payload, any JSON (the output of the step that takes it) [default: null]
        #[arg(long, value_name = "JSON")]
        data: Option<String>,
    },
    /// Decide a tool call an agent run waits for: approve it (it runs) or, with --deny, refuse
    /// it (the model reads "denied: REASON"). Recorded before this returns, once: a second
    /// decision is refused. The flow runs on (serve or a worker runs it, or `flows resume`)
    Approve {
        /// The flow's id
        id: String,
        /// The call's id, as `flows inspect` shows it [default: the one call the flow waits
        /// for]
        call_id: Option<String>,
        /// Refuse the call instead: it is not run
        #[arg(long)]
        deny: bool,
        /// Why (the model reads it after a denial)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Continue a flow from its last checkpoint: done steps keep their output, the step in
    /// flight runs again with the same idempotency key, a failed step is tried again
    Resume {
        /// The flow's id
        id: String,
        /// An agent run's or a pipeline's token budget from now on (a flow blocked by its
        /// budget goes on); also spelled --budget-tokens, as on `taskflow agent` and `run`
        #[arg(long, value_name = "N", alias = "budget-tokens",
              value_parser = clap::value_parser!(u64).range(1..))]
        max_tokens: Option<u64>,
        /// An agent run's or a pipeline's cost budget in dollars from now on (a pipeline's
        /// needs the prices it started with a cost budget); also spelled --budget-cost
        #[arg(long, value_name = "USD", alias = "budget-cost",
              value_parser = crate::commands::agent::parse_dollars)]
        max_cost: Option<f64>,
        /// An agent run's turn limit from now on: a run that used its turns goes on (given
        /// alone, not with a budget)
        #[arg(long, value_name = "N", conflicts_with_all = ["max_tokens", "max_cost"],
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        max_turns: Option<u32>,
        #[command(flatten)]
        runner: RunnerArgs,
    },
    /// Copy an ended flow's journal before step N into a new flow and run it from there
    Fork {
        /// The flow's id
        id: String,
        /// The first step to run again: its seq (as `flows inspect` shows it) or its name. One
        /// past the last seq keeps every succeeded step and runs only what the journal has not
        /// reached (the rest of a cancelled pipeline)
        #[arg(long, value_name = "N")]
        from_step: String,
        #[command(flatten)]
        runner: RunnerArgs,
    },
    /// The flow's steps as a picture, each in its status: SVG (default), Graphviz DOT or
    /// Mermaid; with --json, the nodes and edges
    Graph {
        /// The flow's id
        id: String,
        /// What to write
        #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
        format: GraphFormat,
        /// Write it into FILE instead of stdout
        #[arg(long, short, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Remove flows that ended long ago, with their journals and children, in batches; never a
    /// flow that has not ended
    Prune(crate::prune::PruneArgs),
    /// Show changes as they are committed: a table that redraws on a terminal, one JSON line
    /// per change when piped or with --json
    Watch {
        /// Only this flow's changes
        id: Option<String>,
        /// Read them from a running `taskflow serve` at URL (e.g. http://127.0.0.1:7878)
        /// instead of the database; a stream that ends is resumed where it stopped, serve
        /// tried again for up to 60 s [TASKFLOW_CONNECT_TIMEOUT_MS bounds each connect]
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// The environment variable holding the serve's token
        #[arg(long, value_name = "VAR", requires = "server")]
        token_env: Option<String>,
        /// Changes after this event id, instead of from now on (an id past the newest event: from
        /// the newest)
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
    },
}

/// The picture `flows graph` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// A standalone SVG document (open it in a browser)
    Svg,
    /// Graphviz's DOT language (`dot -Tpng`)
    Dot,
    /// A Mermaid flowchart (drawn in place by Markdown renderers)
    Mermaid,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only flows with this status, or `stalled`: running flows that no live runner holds
    /// (their runner was killed or its lease expired; `flows resume` continues them)
    #[arg(long, value_name = "S", value_parser = parse_status)]
    pub status: Option<StatusFilter>,

    /// At most this many flows
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,

    /// Every owner's flows, not only yours
    #[arg(long)]
    pub all_owners: bool,
}

fn parse_status(text: &str) -> Result<StatusFilter, String> {
    text.parse().map_err(|error: taskflow_store::status::UnknownStatus| error.to_string())
}

pub fn run(global: &GlobalArgs, args: &FlowsArgs) -> CliResult {
    match &args.command {
        FlowsCommand::Resume { id, max_tokens, max_cost, max_turns, runner } => {
            let raise = Budget { max_tokens: *max_tokens, max_cost: *max_cost };
            return resume(global, id, raise, *max_turns, runner);
        }
        FlowsCommand::Fork { id, from_step, runner } => return fork(global, id, from_step, runner),
        FlowsCommand::Prune(prune) => return crate::prune::run(global, prune),
        FlowsCommand::Watch { id, server, token_env, after } => {
            let flow = id.as_deref().map(flow_id).transpose()?;
            let watch =
                Watch { flow, server: server.clone(), token_env: token_env.clone(), after: *after };
            return watch::run(global, watch);
        }
        _ => {}
    }
    let owner = global.owner();
    let path = database::location(global.db.as_deref())?;
    let handle = match database::open_existing(&path)? {
        Some(taskflow) => Some(taskflow.bind(owner.as_str())?),
        None => None,
    };
    match &args.command {
        FlowsCommand::List(list) => {
            let query = ListQuery {
                limit: list.limit,
                all_owners: list.all_owners,
                ..ListQuery::filtered(list.status)
            };
            let flows = match &handle {
                Some(handle) => handle.list(&query)?,
                None => Vec::new(),
            };
            let filter = ListFilter { status: list.status, all_owners: list.all_owners };
            render::flows(&flows, &owner, &filter, global.json);
            Ok(())
        }
        FlowsCommand::Inspect { id } => {
            let handle = require(handle, id)?;
            render::inspection(&handle.inspect(&flow_id(id)?)?, global.json);
            Ok(())
        }
        FlowsCommand::Graph { id, format, output } => {
            let handle = require(handle, id)?;
            let id = flow_id(id)?;
            let graph = Graph::of(&handle.flow(&id)?, &handle.steps(&id)?);
            if global.json {
                render::print_json(&graph);
                return Ok(());
            }
            let text = match format {
                GraphFormat::Svg => graph::svg::write(&graph).map_err(|too_many| {
                    CliError::failure(too_many.to_string())
                        .with_hint("`--format dot` or `--format mermaid` draws it with other tools")
                })?,
                GraphFormat::Dot => graph::dot::write(&graph),
                GraphFormat::Mermaid => graph::mermaid::write(&graph),
            };
            match output {
                Some(path) => std::fs::write(path, text).map_err(|error| {
                    CliError::failure(format!("cannot write {}: {error}", path.display()))
                        .with_hint("check that its folder exists and can be written")
                }),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        FlowsCommand::History { id } => {
            let handle = require(handle, id)?;
            render::history(&handle.history(&flow_id(id)?)?, global.json);
            Ok(())
        }
        FlowsCommand::Cancel { id, expected_revision } => {
            let handle = require(handle, id)?;
            let id = flow_id(id)?;
            let mut outcome = handle.request_cancel(&id, *expected_revision)?;
            // A flow whose runner is gone has nobody to settle its cancel: it is finished here,
            // as a resume finishes it (its running step's attempt recorded cancelled).
            let flow = &outcome.flow;
            if flow.sync_mode == SyncMode::Managed
                && !flow.status.is_terminal()
                && flow.stall(Timestamp::now()).is_some()
            {
                let engine = engine_with(global, Durability::default())?;
                if let Ok(settled) = runtime()?.block_on(engine.run(&id)) {
                    outcome.flow = settled;
                    outcome.active_steps = 0;
                }
            }
            render::cancel(&outcome, global.json);
            Ok(())
        }
        FlowsCommand::Signal { id, name, data } => {
            let payload = match data {
                Some(text) => serde_json::from_str(text).map_err(|error| {
                    CliError::usage(format!(
                        "--data is not JSON (line {}, column {}): {error}",
                        error.line(),
                        error.column()
                    ))
                    .with_hint("quote it for the shell, e.g. --data '{\"ok\": true}'")
                })?,
                None => serde_json::Value::Null,
            };
            let handle = require(handle, id)?;
            let (signal, flow) = control::send_signal(&handle, &flow_id(id)?, name, payload)?;
            render::signal_sent(&signal, &flow, global.json);
            Ok(())
        }
        FlowsCommand::Approve { id, call_id, deny, reason } => {
            let handle = require(handle, id)?;
            let (id, call_id) =
                approvals::deciding_call(&handle, &flow_id(id)?, call_id.as_deref())?;
            let decision = ApprovalDecision { approved: !deny, reason: reason.clone() };
            let (signal, flow) = handle
                .decide_approval(&id, &call_id, &decision)
                .map_err(|error| approval_error(error, &id))?;
            render::approval_decided(&call_id, &signal, &flow, global.json);
            Ok(())
        }
        FlowsCommand::Resume { .. }
        | FlowsCommand::Fork { .. }
        | FlowsCommand::Watch { .. }
        | FlowsCommand::Prune(_) => Ok(()),
    }
}

/// `flows resume ID`: runs the flow on from its journal, under the budget `raise` or the turn
/// limit `max_turns` sets first (a revision of the flow). Refused while another runner holds
/// it, and for mirrored or ended (other than failed) flows.
fn resume(
    global: &GlobalArgs,
    id: &str,
    raise: Budget,
    max_turns: Option<u32>,
    runner: &RunnerArgs,
) -> CliResult {
    let id = flow_id(id)?;
    let engine = open_engine(global, runner)?;
    runtime()?.block_on(async {
        let origin = match max_turns {
            Some(turns) => {
                Origin::Held(engine.raise_turns_held(&id, turns).await.map_err(engine_error)?)
            }
            None if raise.is_empty() => Origin::Asked,
            None => Origin::Held(engine.raise_budget_held(&id, raise).await.map_err(engine_error)?),
        };
        drive(&engine, id, global.json, runner.detach, origin).await
    })
}

/// `flows fork ID --from-step N`: a new flow with the steps before N done, run to its end.
fn fork(global: &GlobalArgs, id: &str, from_step: &str, runner: &RunnerArgs) -> CliResult {
    let id = flow_id(id)?;
    let engine = open_engine(global, runner)?;
    let from_seq = match from_step.parse::<u32>() {
        Ok(seq) => seq,
        Err(_) => control::fork_step_named(engine.handle(), &id, from_step)?.ok_or_else(|| {
            CliError::failure(format!("flow {id} has no step `{from_step}`"))
                .with_hint(format!("`taskflow flows inspect {id}` lists its steps"))
        })?,
    };
    runtime()?.block_on(async {
        let (fork, lease) = engine.fork_held(&id, from_seq).await.map_err(engine_error)?;
        if !global.json {
            // Said before the run, which goes on whether anyone still reads the output or not:
            // ending here would leave the fork held by a process that is gone.
            let said = format!("flow {} forked from flow {id} at step {from_seq}", fork.id);
            let _ = writeln!(std::io::stdout(), "{said}");
        }
        drive(&engine, fork.id, global.json, runner.detach, Origin::Held(lease)).await
    })
}

/// A decision the store refused, with what to do about it.
fn approval_error(error: taskflow_engine::Error, id: &FlowId) -> CliError {
    let hint = match &error {
        taskflow_engine::Error::AlreadyDecided { .. } => Some(format!(
            "a call is decided once; `taskflow flows history {id}` shows the decision"
        )),
        taskflow_engine::Error::NoApproval { .. } => {
            Some(format!("`taskflow flows inspect {id}` shows what the flow waits for"))
        }
        _ => None,
    };
    let cli: CliError = error.into();
    match hint {
        Some(hint) => cli.with_hint(hint),
        None => cli,
    }
}

/// A command about one flow needs a store; without one, the flow is not found.
fn require(handle: Option<OwnerHandle>, id: &str) -> CliResult<OwnerHandle> {
    handle.ok_or_else(|| taskflow_engine::Error::NotFound { id: id.to_owned() }.into())
}

fn flow_id(text: &str) -> CliResult<FlowId> {
    FlowId::parse(text).map_err(|_| taskflow_engine::Error::NotFound { id: text.to_owned() }.into())
}
