//! The server over streamable HTTP, for a host that serves HTTP already (`taskflow serve`
//! mounts it at `/mcp`). The host authenticates each request and puts its owner into the
//! request's extensions as a [`RequestOwner`](crate::RequestOwner); every session shares one
//! [`FlowServer`], so a session opened with one token never acts for another token's owner.

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::server::FlowServer;

/// How the HTTP service is set up by its host.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The largest request body.
    pub body_limit: usize,
    /// Whether only loopback host names are accepted in `Host` (a guard against DNS rebinding
    /// for a server on loopback; one reachable beyond this host is guarded by its tokens).
    pub loopback_only: bool,
    /// Fired, every session ends and open event streams close (the host shuts down).
    pub stop: CancellationToken,
}

/// The MCP endpoint as a tower service that serves `server`.
pub fn service(
    server: FlowServer,
    options: HttpOptions,
) -> StreamableHttpService<FlowServer, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(options.body_limit)
        .with_cancellation_token(options.stop);
    if !options.loopback_only {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config)
}
