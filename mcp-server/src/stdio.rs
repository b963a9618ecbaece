//! The server over stdin and stdout, the way an agent (Claude Code, Codex, Kimi CLI) starts an
//! MCP server as its child: JSON-RPC lines in and out, nothing else on stdout. The flows its
//! tools start run in this process, in the background, while the session lasts (a run goes on
//! until its flow ends or waits, as with `taskflow run --detach`). When the client closes the
//! session (or `shutdown` fires), the runs are drained: their running steps get `grace` to
//! reach a checkpoint and the flows are given back, for `taskflow serve` or `taskflow flows
//! resume` to continue; nothing is lost.

use std::future::Future;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use taskflow_engine::Runs;

use crate::server::FlowServer;

/// Why the stdio server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// The client did not start an MCP session.
    #[error("the MCP session did not start: {0}")]
    Initialize(#[from] ServerInitializeError),
}

/// Serves `server` on stdin and stdout until the client closes the session or `shutdown`
/// completes, then drains `runs` (the runs `server` starts).
pub async fn serve_stdio(
    server: FlowServer,
    runs: Runs,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StdioError> {
    let session = async {
        let running = server.serve(rmcp::transport::stdio()).await?;
        // Its end, whatever the reason: the client is gone either way.
        let _ = running.waiting().await;
        Ok::<_, StdioError>(())
    };
    let ended = tokio::select! {
        ended = session => ended,
        () = shutdown => Ok(()),
    };
    runs.shut_down(grace).await;
    ended
}
