//! One connection to one MCP server, through the official SDK (rmcp): started (a child process
//! over stdio, or streamable HTTP), initialized and its tools listed within the server's
//! `startup_timeout_sec`, and shut down cleanly. A child process runs in its own process group
//! (a Ctrl-C at the terminal is taskflow's to handle, not the server's), dies with taskflow on
//! Linux (no orphan after a kill -9), and writes its stderr to a log file, never the terminal.
//! The bearer token of an HTTP server is read from its variable when connecting and kept only
//! in the transport. A server is refused when its tools cannot all be told apart by the names
//! a model sees, or when `enabled_tools` / `disabled_tools` name a tool it does not have: a typo
//! there would offer what was meant to be hidden, or hide what was meant to be offered.

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, Tool as ServerTool};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use tokio::io::AsyncWriteExt;

use super::config::{McpServer, McpTransport};
use super::stdio::{StdioTransport, Stopped};
use super::tool::clash;

/// How long a server gets to shut down before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a server could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MCP server `{server}` {problem}")]
pub struct McpError {
    pub server: String,
    /// What went wrong, said after the server's name ("cannot start: …").
    pub problem: String,
}

/// A connected server.
pub struct McpConnection {
    pub(crate) name: String,
    pub(crate) server: McpServer,
    service: RunningService<RoleClient, ClientConfig>,
    /// Every tool the server lists, in its order.
    pub(crate) tools: Vec<ServerTool>,
    /// How a stdio server stopped, once it has.
    pub(crate) stopped: Arc<Stopped>,
}

impl std::fmt::Debug for McpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConnection").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The log file of a server's stderr in `logs`, as an absolute path: the messages that name it
/// (a flow's error, `mcp list`) are read away from the folder taskflow ran in.
pub fn log_path(logs: &Path, name: &str) -> PathBuf {
    let log = logs.join(format!("{name}.log"));
    std::path::absolute(&log).unwrap_or(log)
}

impl McpConnection {
    /// Starts or reaches server `name`, initializes it and lists its tools, all within its
    /// startup timeout. A stdio server's stderr is appended to `log_path(logs, name)`, after a
    /// line naming `purpose` (the flow it serves, or the command that lists it).
    pub async fn connect(
        name: &str,
        server: &McpServer,
        logs: &Path,
        purpose: &str,
    ) -> Result<McpConnection, McpError> {
        let fail = |problem: String| McpError { server: name.to_owned(), problem };
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("taskflow", env!("CARGO_PKG_VERSION")),
        );
        let limit = server.startup_timeout;
        let (initialized, log, stopped) = match &server.transport {
            McpTransport::Stdio { command, args, env, cwd } => {
                let log = log_path(logs, name);
                let stopped = Arc::new(Stopped::new(Some(log.clone())));
                let stderr =
                    open_log(logs, &log, command, args, purpose).await.map_err(|error| {
                        fail(format!("cannot write its log {}: {error}", log.display()))
                    })?;
                let mut child = tokio::process::Command::new(command);
                child.args(args).envs(env).process_group(0);
                if let Some(cwd) = cwd {
                    child.current_dir(cwd);
                }
                crate::process::die_with_parent(&mut child);
                crate::process::keep_database_server_off(&mut child);
                let (transport, pipe) = StdioTransport::spawn(name, child, stopped.clone())
                    .map_err(|error| fail(format!("cannot start `{command}`: {error}")))?;
                if let Some(mut pipe) = pipe {
                    let mut stderr = stderr;
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut pipe, &mut stderr).await;
                        let _ = stderr.flush().await;
                    });
                }
                // A server that died says more by how it ended than the SDK's "closed".
                let initialized = initialize(client.serve(transport), limit).await.map_err(
                    |problem| match stopped.how() {
                        Some(how) => format!("stopped before it answered `initialize`: {how}"),
                        None => problem,
                    },
                );
                (initialized, Some(log), stopped)
            }
            McpTransport::Http { url, bearer_token_env_var } => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(variable) = bearer_token_env_var {
                    let token = std::env::var(variable).ok().filter(|token| !token.is_empty());
                    let token = token.ok_or_else(|| {
                        fail(format!(
                            "needs its bearer token in the environment variable `{variable}` \
                             (bearer_token_env_var), which is not set"
                        ))
                    })?;
                    config = config.auth_header(token);
                }
                install_crypto();
                let transport = StreamableHttpClientTransport::from_config(config);
                let initialized = initialize(client.serve(transport), limit)
                    .await
                    .map_err(|problem| format!("at {url} {problem}"));
                (initialized, None, Arc::default())
            }
        };
        let see_log = |problem: String| match &log {
            Some(log) => fail(format!("{problem} (its stderr is in {})", log.display())),
            None => fail(problem),
        };
        let service = initialized.map_err(see_log)?;
        let tools = match tokio::time::timeout(limit, service.list_all_tools()).await {
            Ok(Ok(tools)) => tools,
            Ok(Err(error)) => {
                let _ = service.cancel().await;
                return Err(see_log(format!("cannot list its tools: {error}")));
            }
            Err(_) => {
                let _ = service.cancel().await;
                return Err(see_log(format!(
                    "did not list its tools within {} s (startup_timeout_sec)",
                    limit.as_secs_f64()
                )));
            }
        };
        let connection = McpConnection {
            name: name.to_owned(),
            server: server.clone(),
            service,
            tools,
            stopped,
        };
        match connection.refusal() {
            None => Ok(connection),
            Some(error) => {
                connection.shutdown().await;
                Err(error)
            }
        }
    }

    /// Why the server's tools cannot be offered as its table says: `enabled_tools` or
    /// `disabled_tools` names a tool it does not list, or two of its tools would have one name.
    fn refusal(&self) -> Option<McpError> {
        let listed: Vec<&str> = self.tools.iter().map(|tool| tool.name.as_ref()).collect();
        let keys = [
            ("enabled_tools", self.server.enabled_tools.as_deref().unwrap_or_default()),
            ("disabled_tools", self.server.disabled_tools.as_slice()),
        ];
        for (key, names) in keys {
            if let Some(unknown) = names.iter().find(|name| !listed.contains(&name.as_str())) {
                return Some(McpError {
                    server: self.name.clone(),
                    problem: format!(
                        "has no tool `{unknown}`, which `{key}` of [mcp_servers.{}] names (its \
                         tools: {})",
                        self.name,
                        listed.join(", ")
                    ),
                });
            }
        }
        clash(self.offered_names())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn server(&self) -> &McpServer {
        &self.server
    }

    pub(crate) fn peer(&self) -> rmcp::Peer<RoleClient> {
        self.service.peer().clone()
    }

    /// Ends the session: a child process gets its stdin closed, then SIGTERM, then SIGKILL; an
    /// HTTP session is deleted.
    pub async fn shutdown(self) {
        let mut service = self.service;
        let _ = service.close_with_timeout(SHUTDOWN_GRACE).await;
    }
}

/// The session once `initialize` is answered, within `limit`; otherwise what went wrong.
async fn initialize<E: std::error::Error>(
    serving: impl Future<Output = Result<RunningService<RoleClient, ClientConfig>, E>>,
    limit: Duration,
) -> Result<RunningService<RoleClient, ClientConfig>, String> {
    match tokio::time::timeout(limit, serving).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(error)) => Err(format!("failed to initialize: {}", causes(&error))),
        Err(_) => Err(format!(
            "did not answer `initialize` within {} s (startup_timeout_sec)",
            limit.as_secs_f64()
        )),
    }
}

/// The server's log file, opened for appending (its folder made private when new), with a
/// line saying who started it and why.
async fn open_log(
    logs: &Path,
    log: &Path,
    command: &str,
    args: &[String],
    purpose: &str,
) -> std::io::Result<tokio::fs::File> {
    if !logs.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(logs)?;
    }
    let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(log).await?;
    let line = format!(
        "== taskflow (pid {}) starts `{}` for {purpose} at {} ==\n",
        std::process::id(),
        std::iter::once(command)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        taskflow_store::time::Timestamp::now(),
    );
    file.write_all(line.as_bytes()).await?;
    Ok(file)
}

/// An error as one line. The SDK's outer messages name its transport types; the causes under
/// them say what happened ("Connection refused"), so they are what is shown when there are any.
fn causes(error: &dyn std::error::Error) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !messages.iter().any(|shown| shown.contains(&message)) {
            messages.push(message);
        }
        source = cause.source();
    }
    if messages.is_empty() { without_type_names(&error.to_string()) } else { messages.join(": ") }
}

/// `text` without the bracketed Rust type names the SDK writes into some messages
/// (`Transport [rmcp::transport::…] error`).
fn without_type_names(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(" [") {
        let Some(close) = rest[open..].find(']').map(|at| open + at) else { break };
        kept.push_str(&rest[..open]);
        if !rest[open..close].contains("::") {
            kept.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    kept.push_str(rest);
    kept
}

/// reqwest (as rmcp uses it) finds its TLS crypto in the process default: the ring provider
/// the rest of taskflow's HTTP already uses.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::without_type_names;

    #[test]
    fn messages_lose_the_sdks_type_names_and_nothing_else() {
        for (text, expected) in [
            (
                "Send message error Transport [rmcp::transport::worker::WorkerTransport<A<B>>] error: \
                 Client error: refused",
                "Send message error Transport error: Client error: refused",
            ),
            ("a list [1, 2] stays", "a list [1, 2] stays"),
            ("an open [bracket", "an open [bracket"),
        ] {
            assert_eq!(without_type_names(text), expected);
        }
    }
}
