//! `taskflow mcp serve`: the MCP server (`taskflow-mcp-server`) over stdin and stdout for the
//! resolved owner. Stdout carries only the protocol; warnings go to stderr. The flows its tools
//! start run in this process while the session lasts; when the client ends it (or on SIGTERM
//! or Ctrl-C) their running steps reach a checkpoint and the flows are given back.

use std::time::Duration;

use clap::Args;
use taskflow_api::{Config, ProviderSettings, database};
use taskflow_engine::{Actions, Engine, EngineOptions, Runs};
use taskflow_mcp_server::{FlowServer, Flows, OwnerBinding, serve_stdio};

use crate::drive::DurabilityArgs;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::shutdown::shutdown;

#[derive(Debug, Args)]
#[command(after_help = "The tools act for one owner: --owner, else TASKFLOW_OWNER, else the OS \
    user; the MCP client cannot choose another. Tools: list_flows, inspect_flow, flow_history, \
    run_pipeline, resume_flow, cancel_flow, signal_flow, decide_approval.\n\n\
    A flow started through a tool runs in this process until it ends or waits (as with \
    `taskflow run --detach`); one left when the session ends, or one waiting for a timer, is \
    continued by `taskflow serve`, `taskflow worker` (on PostgreSQL) or `taskflow flows \
    resume`.\n\n\
    Where `taskflow serve` runs, the same tools are at its /mcp endpoint (streamable HTTP).")]
pub struct McpServeArgs {
    /// At most this many flows run at once in this process; more stay queued for `taskflow
    /// serve`, `taskflow worker` (on PostgreSQL) or `flows resume`
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub workers: u64,

    /// When the session ends, how long running steps get to reach their checkpoint, in
    /// milliseconds; then they are stopped (and run again when the flow is resumed). MCP
    /// clients give a server about 2 s after closing its stdin before they kill it
    #[arg(long, value_name = "MS", default_value_t = 1_500)]
    pub grace_ms: u64,

    #[command(flatten)]
    pub checkpoints: DurabilityArgs,
}

pub fn run(global: &GlobalArgs, args: &McpServeArgs) -> CliResult {
    let path = database::location(global.db.as_deref())?;
    let taskflow = database::open_for_running(&path, args.checkpoints.durability)?;
    let owner = global.owner();
    let mcp = Config::load()?.mcp_settings(&path);
    let (providers, warnings) = ProviderSettings::default().factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::failure(format!("cannot start the async runtime: {error}")))?;
    let served = runtime.block_on(async {
        let engine = Engine::new(
            taskflow.bind(owner.clone())?,
            Actions::builtin(),
            EngineOptions::default(),
        )
        .with_providers(providers)
        .with_mcp(mcp);
        let runs = Runs::new(taskflow.clone(), engine.clone(), args.workers as usize);
        runs.warn_on_failure();
        let flows = Flows { taskflow, engine, runs: runs.clone(), files: true };
        let server = FlowServer::new(flows, OwnerBinding::Fixed(owner));
        let grace = Duration::from_millis(args.grace_ms);
        serve_stdio(server, runs, grace, shutdown()).await.map_err(|error| {
            CliError::failure(error.to_string()).with_hint(
                "`taskflow mcp serve` is started by an MCP client (an agent), which speaks \
                 JSON-RPC on its stdin",
            )
        })
    });
    // A read of stdin may still be blocked in its thread: it is not waited for.
    runtime.shutdown_background();
    served
}
