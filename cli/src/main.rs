//! The `taskflow` binary: parses the command line and hands each command to its module under
//! `commands/`. Presentation only; the work is done by the library crates.

mod commands;
mod config;
mod error;
mod provider_args;
mod tools_file;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Durable LLM agent runs and pipelines.
#[derive(Debug, Parser)]
#[command(name = "taskflow", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The flow database [default: $XDG_DATA_HOME/taskflow/flows.db]
    #[arg(long, global = true, env = "TASKFLOW_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Whose flows to see and change [default: the OS user ($USER), else "local"]
    #[arg(long, global = true, env = "TASKFLOW_OWNER", value_name = "NAME")]
    pub owner: Option<String>,

    /// Print one JSON document (JSON Lines where the output is a stream of events)
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an agent (a model with tools) as a durable flow
    Agent(commands::agent::AgentArgs),
    /// Send one request to a model and show the reply and any tool calls (not run)
    Chat(commands::chat::ChatArgs),
    /// List, inspect, show the history of, cancel, resume and fork flows
    Flows(commands::flows::FlowsArgs),
    /// Turn tagged tool-call text (stdin by default) into the normalized message, as JSON
    Parse(commands::parse::ParseArgs),
    /// Run a pipeline file as a durable flow: show progress, print the flow id and its end
    Run(commands::run::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Agent(args) => commands::agent::run(&cli.global, args),
        Command::Chat(args) => commands::chat::run(&cli.global, args),
        Command::Flows(args) => commands::flows::run(&cli.global, args),
        Command::Parse(args) => commands::parse::run(&cli.global, args),
        Command::Run(args) => commands::run::run(&cli.global, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

fn report(error: &CliError) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    if let Some(hint) = error.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    ExitCode::from(error.exit_code())
}
