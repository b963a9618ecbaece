//! The MCP endpoint, `/mcp`: the same MCP server as `taskflow mcp serve` (the tool set of
//! `taskflow-mcp-server`), over streamable HTTP, under the same authentication as the API: the
//! request's bearer token decides its owner (no token or a wrong one is 401 before the MCP
//! service sees the request), and without tokens every request acts for serve's owner. The
//! flows its tools start run in this serve. Its event streams end when serve shuts down.

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use taskflow_mcp_server::http::{self, HttpOptions};
use taskflow_mcp_server::{FlowServer, Flows, OwnerBinding, RequestHost, RequestOwner};
use tokio_util::sync::CancellationToken;

use crate::auth::{HostAccess, Owner};
use crate::state::AppState;

/// The `/mcp` route; `stop` ends its sessions.
pub fn endpoint(
    state: &AppState,
    body_limit: usize,
    loopback: bool,
    stop: CancellationToken,
) -> Router<AppState> {
    let flows = Flows {
        taskflow: state.taskflow().clone(),
        engine: state.any_engine().clone(),
        runs: state.runs().clone(),
        // Without tokens every caller is serve's own user, who may name a file of this
        // machine; a token's owner sends the pipeline itself.
        files: state.tokens().is_empty(),
    };
    let server = FlowServer::new(flows, OwnerBinding::PerRequest);
    let service = http::service(server, HttpOptions { body_limit, loopback_only: loopback, stop });
    Router::new()
        .route_service("/mcp", service)
        .layer(middleware::from_fn_with_state(state.clone(), with_owner))
}

/// Puts the owner the request's token names on the request, for the MCP server to read.
async fn with_owner(
    Owner(owner): Owner,
    HostAccess(host): HostAccess,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(RequestOwner(owner));
    request.extensions_mut().insert(RequestHost(host));
    next.run(request).await
}
