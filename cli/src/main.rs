//! The `taskflow` binary: parses the command line and hands each command to its module under
//! `commands/`. Presentation only; the work is done by the library crates.

mod agent_display;
mod commands;
mod drive;
mod environment;
mod error;
mod global;
mod provider_args;
mod prune;
mod render;
mod schedule_render;
mod shown;
mod shutdown;
mod tools_file;
mod watch;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::CliError;
use crate::global::GlobalArgs;

/// Durable LLM agent runs and pipelines.
#[derive(Debug, Parser)]
#[command(name = "taskflow", version = env!("TASKFLOW_VERSION"), long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent (a model with tools) as a durable flow
    Agent(commands::agent::AgentArgs),
    /// Send one request to a model and show the reply and any tool calls (not run)
    Chat(commands::chat::ChatArgs),
    /// Print the shell completion script for bash, zsh, fish, powershell or elvish
    Completions(commands::completions::CompletionsArgs),
    /// Audit the flow database: flows whose records no longer tell the truth, the schema, the
    /// file; --fix makes the safe repairs
    Doctor(commands::doctor::DoctorArgs),
    /// List, inspect, show the history of, cancel, signal, resume and fork flows
    Flows(commands::flows::FlowsArgs),
    /// Print the manual page, or write one page per command into a folder
    Man(commands::man::ManArgs),
    /// MCP: list the configured servers and their tools, or serve your flows to other agents
    Mcp(commands::mcp::McpArgs),
    /// Turn tagged tool-call text (stdin by default) into the normalized message, as JSON
    Parse(commands::parse::ParseArgs),
    /// Serve an OpenAI-compatible endpoint in front of a model server that turns tool calls
    /// written as tagged text into structured ones
    Proxy(commands::proxy::ProxyArgs),
    /// Run a pipeline file as a durable flow: show progress, print the flow id and its end
    Run(commands::run::RunArgs),
    /// Schedules with dependencies: add, list, show, pause, resume, trigger, remove, backfill,
    /// apply
    Schedules(commands::schedules::SchedulesArgs),
    /// The local gateway: an HTTP API for flows, live events, recovery of every flow
    Serve(commands::serve::ServeArgs),
    /// Run the flows of a PostgreSQL database shared by workers on many hosts
    ///
    /// The database must be PostgreSQL's: --db (or TASKFLOW_DB) postgres://USER@HOST/DB, not
    /// the default SQLite file (`taskflow serve` runs a SQLite file's flows). A worker runs
    /// every owner's flows: --owner does not apply to it, and TASKFLOW_OWNER is ignored.
    Worker(commands::worker::WorkerArgs),
}

fn main() -> ExitCode {
    // A reader that stops early (`taskflow flows inspect ID | head -1`) closes the output: the
    // command has nothing more to say to anyone, so it ends quietly, as other tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_output(info.payload()) {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(run) {
        Ok(code) => code,
        Err(payload) if is_closed_output(payload.as_ref()) => ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Whether a panic is `println!`'s on an output whose reader has gone.
fn is_closed_output(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(message), _) => message.as_str(),
        (None, Some(message)) => message,
        (None, None) => return false,
    };
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

fn run() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(error) => return report(&error),
    };
    let result = match &cli.command {
        Command::Agent(args) => commands::agent::run(&cli.global, args),
        Command::Chat(args) => commands::chat::run(&cli.global, args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Doctor(args) => commands::doctor::run(&cli.global, args),
        Command::Flows(args) => commands::flows::run(&cli.global, args),
        Command::Man(args) => commands::man::run(&cli.global, args),
        Command::Mcp(args) => commands::mcp::run(&cli.global, args),
        Command::Parse(args) => commands::parse::run(&cli.global, args),
        Command::Proxy(args) => commands::proxy::run(&cli.global, args),
        Command::Run(args) => commands::run::run(&cli.global, args),
        Command::Schedules(args) => commands::schedules::run(&cli.global, args),
        Command::Serve(args) => commands::serve::run(&cli.global, args),
        Command::Worker(args) => commands::worker::run(&cli.global, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

/// The command line, the variables behind its options read as [`global`] says, and the
/// variables of waits checked.
fn parse() -> Result<Cli, CliError> {
    let matches = global::unbind_blank_variables(Cli::command()).get_matches();
    let mut cli = Cli::from_arg_matches(&matches)
        .unwrap_or_else(|error| error.format(&mut Cli::command()).exit());
    cli.global.settle(&matches)?;
    environment::check()?;
    Ok(cli)
}

fn report(error: &CliError) -> ExitCode {
    if error.is_quiet() {
        return ExitCode::SUCCESS;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", shown::shown(&error.to_string()));
    if let Some(hint) = error.hint() {
        let _ = writeln!(stderr, "hint: {}", shown::shown(hint));
    }
    ExitCode::from(error.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which commands take which options of a run: only a run in the foreground can detach.
    #[test]
    fn only_commands_that_wait_for_a_flow_take_detach() {
        let parses = |args: &[&str]| Cli::try_parse_from(args).is_ok();
        assert!(parses(&["taskflow", "run", "f.toml", "--detach"]));
        assert!(parses(&["taskflow", "flows", "resume", "x", "--detach"]));
        assert!(parses(&["taskflow", "serve", "--durability", "normal"]));
        assert!(parses(&["taskflow", "mcp", "serve", "--durability", "normal"]));
        assert!(!parses(&["taskflow", "serve", "--detach"]));
        assert!(!parses(&["taskflow", "mcp", "serve", "--detach"]));
    }
}
