//! `taskflow mcp`: taskflow and the Model Context Protocol. Each subcommand lives in its own
//! module; this one only names them.

use clap::{Args, Subcommand};

use crate::error::CliResult;
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: McpCommand,
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Serve your flows to other agents as MCP tools over stdin/stdout (add it to Claude
    /// Code, Codex or Kimi CLI as a stdio MCP server)
    Serve(super::mcp_serve::McpServeArgs),
}

pub fn run(global: &GlobalArgs, args: &McpArgs) -> CliResult {
    match &args.command {
        McpCommand::Serve(serve) => super::mcp_serve::run(global, serve),
    }
}
