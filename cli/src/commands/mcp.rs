//! `taskflow mcp`: taskflow and the Model Context Protocol, both ways. `list` shows the MCP
//! servers of the config file and the tools agents get from them (`mcp_list.rs`); `serve`
//! hands your flows to other agents as MCP tools (`mcp_serve.rs`). This module only names them.

use clap::{Args, Subcommand};

use super::{mcp_list, mcp_serve};
use crate::error::CliResult;
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
#[command(after_help = "MCP servers are configured in the config file, one [mcp_servers.NAME] \
    table each: `command`, `args`, `env`, `cwd` for a server started as a child process (stdio), \
    or `url` and `bearer_token_env_var` for streamable HTTP; `enabled_tools`, `disabled_tools`, \
    `startup_timeout_sec` (default 10), `tool_timeout_sec` (default 60). `taskflow agent --mcp \
    NAME` offers a server's tools to the model as NAME__TOOL.")]
pub struct McpArgs {
    #[command(subcommand)]
    pub command: McpCommand,
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// The configured MCP servers, their transport and their tools (each server is started or
    /// reached to ask it); exits 1 if any cannot be used
    List(mcp_list::ListArgs),
    /// Serve your flows to other agents as MCP tools over stdin/stdout (add it to Claude
    /// Code, Codex or Kimi CLI as a stdio MCP server)
    Serve(mcp_serve::McpServeArgs),
}

pub fn run(global: &GlobalArgs, args: &McpArgs) -> CliResult {
    match &args.command {
        McpCommand::List(list) => mcp_list::run(global, list),
        McpCommand::Serve(serve) => mcp_serve::run(global, serve),
    }
}
