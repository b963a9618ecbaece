//! MCP servers as tools (client side), through the official Rust SDK (rmcp). The config file's
//! `[mcp_servers.NAME]` tables ([`McpServers`]) say how to reach each server; an agent run names
//! the servers it uses, connects them for the length of the run ([`McpSession`]), and offers
//! their tools to the model as `NAME__TOOL` ([`McpTool`]), each call a step of the run like any
//! other tool's. [`McpConnection`] is one server, for a run or for `taskflow mcp list`; a stdio
//! server talks through a transport of taskflow's (`stdio`), which reports a reply it cannot
//! read and how a server that stopped ended.

mod config;
mod connection;
mod session;
mod stdio;
mod tool;

use std::path::PathBuf;

pub use config::{
    DEFAULT_STARTUP_TIMEOUT, DEFAULT_TOOL_TIMEOUT, McpServer, McpServers, McpTransport,
    valid_server_name,
};
pub use connection::{McpConnection, McpError, log_path};
pub use session::{ListedTool, McpSession};
pub use stdio::MAX_REPLY_BYTES;
pub use tool::{IDEMPOTENCY_META_KEY, MAX_RESULT_BYTES, McpTool, runtime_name};

/// What a process that runs agents knows about MCP servers: the configured ones, and the
/// folder their stderr logs go to.
#[derive(Debug, Clone, Default)]
pub struct McpSettings {
    pub servers: McpServers,
    /// Where `NAME.log` files are written; the system's temporary folder when not set.
    pub logs: Option<PathBuf>,
}

impl McpSettings {
    /// The folder of the servers' logs.
    pub fn log_dir(&self) -> PathBuf {
        self.logs.clone().unwrap_or_else(|| std::env::temp_dir().join("taskflow-mcp-logs"))
    }
}
