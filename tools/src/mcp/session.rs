//! The MCP servers of one agent run: connected together before the first model call (each
//! within its own startup timeout), their offered tools registered under their runtime names,
//! and shut down together when the run ends, however it ends. One server that cannot be used
//! makes the whole session an error, after the others are shut down again; so do two servers
//! offering tools a model would see under one name. Once connected, the session says which
//! names of its servers' tools there are, for the checks of what a run names them by.

use std::path::Path;

use futures_util::future::join_all;

use super::config::McpServer;
use super::connection::{McpConnection, McpError};
use super::tool::{McpTool, clash, runtime_name};
use crate::tool::Tools;

/// Connected servers.
#[derive(Debug, Default)]
pub struct McpSession {
    connections: Vec<McpConnection>,
}

impl McpConnection {
    /// The server's tools the model is offered (`enabled_tools`, `disabled_tools`).
    pub fn offered(&self) -> impl Iterator<Item = McpTool> + '_ {
        self.tools.iter().filter(|tool| self.server.offers(&tool.name)).map(|tool| {
            McpTool::new(&self.name, tool, self.server.tool_timeout, self.peer(), &self.stopped)
        })
    }

    /// The server's name and its own name of each tool the model is offered.
    pub(crate) fn offered_names(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        let offered = self.tools.iter().filter(|tool| self.server.offers(&tool.name));
        offered.map(|tool| (self.name.as_str(), tool.name.as_ref()))
    }

    /// Every tool the server lists: its own name, the name a model would see, its description
    /// and input schema, and whether it is offered.
    pub fn listed(&self) -> Vec<ListedTool> {
        self.tools
            .iter()
            .map(|tool| ListedTool {
                tool: tool.name.to_string(),
                name: runtime_name(&self.name, &tool.name),
                description: tool.description.as_deref().unwrap_or_default().to_owned(),
                input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
                offered: self.server.offers(&tool.name),
            })
            .collect()
    }
}

/// A server's tool as `taskflow mcp list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListedTool {
    /// The name a model sees (`SERVER__TOOL`).
    pub name: String,
    /// The server's name for it.
    pub tool: String,
    pub description: String,
    pub input_schema: serde_json::Value,
    /// Whether a model is offered it (`enabled_tools` / `disabled_tools`).
    pub offered: bool,
}

impl McpSession {
    /// Connects `servers`; `purpose` heads their log entries.
    pub async fn connect(
        servers: &[(String, McpServer)],
        logs: &Path,
        purpose: &str,
    ) -> Result<McpSession, McpError> {
        let attempts = join_all(
            servers
                .iter()
                .map(|(name, server)| McpConnection::connect(name, server, logs, purpose)),
        )
        .await;
        let mut session = McpSession::default();
        let mut failure = None;
        for attempt in attempts {
            match attempt {
                Ok(connection) => session.connections.push(connection),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        let failure = failure
            .or_else(|| clash(session.connections.iter().flat_map(McpConnection::offered_names)));
        match failure {
            None => Ok(session),
            Some(error) => {
                session.shutdown().await;
                Err(error)
            }
        }
    }

    /// For a name of a tool of one of the session's servers (`SERVER__…`) that none of its
    /// tools has: that server, and the names of its tools as a model sees them. `None` for a
    /// name of a tool there is, or of no server of the session.
    pub fn unknown_tool(&self, name: &str) -> Option<(&str, Vec<String>)> {
        let names = |connection: &McpConnection| -> Vec<String> {
            let tools = connection.tools.iter();
            tools.map(|tool| runtime_name(&connection.name, &tool.name)).collect()
        };
        let prefixed: Vec<&McpConnection> = (self.connections.iter())
            .filter(|connection| name.starts_with(&format!("{}__", connection.name)))
            .collect();
        if prefixed.iter().any(|connection| names(connection).iter().any(|tool| tool == name)) {
            return None;
        }
        prefixed.first().map(|connection| (connection.name(), names(connection)))
    }

    /// Registers every offered tool of every server on `tools`.
    pub fn register(&self, tools: &mut Tools) {
        for connection in &self.connections {
            for tool in connection.offered() {
                tools.register(tool);
            }
        }
    }

    /// Shuts every server down.
    pub async fn shutdown(self) {
        join_all(self.connections.into_iter().map(McpConnection::shutdown)).await;
    }
}
