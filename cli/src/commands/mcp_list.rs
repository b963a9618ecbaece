//! `taskflow mcp list [NAME…]`: the MCP servers of the config file, each with its transport and
//! the tools it lists, as the model would see them (`NAME__TOOL`) and whether they are offered
//! (`enabled_tools`, `disabled_tools`). Every server is started (or reached) at once, asked,
//! and shut down again; one that cannot be used shows its error while the others are still
//! listed, and the command then exits 1. A stdio server's stderr goes to its log beside the
//! database, as in a run. Nothing is written to the database.

use futures_util::future::join_all;
use serde::Serialize;
use taskflow_api::{Config, database};
use taskflow_engine::tools::mcp::{ListedTool, McpConnection, McpServer, McpTransport, log_path};

use crate::drive::runtime;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::render;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only these servers [default: all]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

/// One server as listed.
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    #[serde(flatten)]
    server: McpServer,
    /// Where a stdio server's stderr goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    tools: Vec<ListedTool>,
    /// Why it could not be used (`null` when it could, or when it is disabled).
    error: Option<String>,
}

pub fn run(global: &GlobalArgs, args: &ListArgs) -> CliResult {
    let config = Config::load()?;
    let path = database::location(global.db.as_deref())?;
    let settings = config.mcp_settings(&path);
    if let Some(unknown) = args.names.iter().find(|name| settings.servers.get(name).is_none()) {
        let known: Vec<&String> = settings.servers.0.keys().collect();
        return Err(CliError::usage(format!(
            "there is no MCP server `{unknown}` in the config file"
        ))
        .with_hint(format!(
            "configured: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.iter().map(|name| name.as_str()).collect::<Vec<_>>().join(", ")
            }
        )));
    }
    let logs = settings.log_dir();
    let chosen = settings
        .servers
        .0
        .iter()
        .filter(|(name, _)| args.names.is_empty() || args.names.contains(name));
    let listed: Vec<Listed> = runtime()?.block_on(join_all(chosen.map(|(name, server)| {
        let logs = logs.clone();
        async move {
            let log = matches!(server.transport, McpTransport::Stdio { .. })
                .then(|| log_path(&logs, name).display().to_string());
            let mut listed = Listed {
                name: name.clone(),
                server: server.clone(),
                log,
                tools: vec![],
                error: None,
            };
            if server.enabled {
                match McpConnection::connect(name, server, &logs, "taskflow mcp list").await {
                    Ok(connection) => {
                        listed.tools = connection.listed();
                        connection.shutdown().await;
                    }
                    Err(error) => listed.error = Some(error.to_string()),
                }
            }
            listed
        }
    })));
    if global.json {
        render::print_json(&serde_json::json!({ "servers": listed }));
    } else {
        print_text(&listed);
    }
    let failed: Vec<&str> =
        listed.iter().filter(|server| server.error.is_some()).map(|s| s.name.as_str()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "{} of {} MCP servers cannot be used: {}",
            failed.len(),
            listed.len(),
            failed.join(", ")
        )))
    }
}

fn print_text(listed: &[Listed]) {
    if listed.is_empty() {
        let file = Config::path().map_or("the config file".to_owned(), |p| p.display().to_string());
        println!("no MCP servers are configured (add [mcp_servers.NAME] tables to {file})");
        return;
    }
    for (at, server) in listed.iter().enumerate() {
        if at > 0 {
            println!();
        }
        let target = match &server.server.transport {
            McpTransport::Stdio { command, args, .. } => {
                std::iter::once(command).chain(args).cloned().collect::<Vec<_>>().join(" ")
            }
            McpTransport::Http { url, bearer_token_env_var: Some(variable) } => {
                format!("{url} (bearer token from ${variable})")
            }
            McpTransport::Http { url, bearer_token_env_var: None } => url.clone(),
        };
        println!("{}  {}  {target}", server.name, server.server.transport.kind());
        if !server.server.enabled {
            println!("  disabled (enabled = false)");
        } else if let Some(error) = &server.error {
            println!("  error: {error}");
        } else if server.tools.is_empty() {
            println!("  no tools");
        } else {
            let rows = server.tools.iter().map(|tool| {
                let first = tool.description.lines().next().unwrap_or_default().to_owned();
                let offered = if tool.offered { "yes" } else { "no" };
                vec![format!("  {}", tool.name), offered.to_owned(), first]
            });
            print!("{}", render::table(&["  TOOL", "OFFERED", "DESCRIPTION"], rows));
        }
    }
}
