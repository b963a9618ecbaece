//! The HTTP API, the MCP endpoint and the dashboard as one router: every route, the body
//! limit, the timeout of every request but the event stream and MCP's (a slow client cannot
//! hold a request, or the engine, for longer), the API's query parameters checked against its
//! OpenAPI document, and the refusal of other sites' requests.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Router, middleware};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;

use crate::error::HttpError;
use crate::openapi::{self, ApiDoc};
use crate::query::{self, QueryParams};
use crate::routes::{
    approvals, control, events, flows, graph, mcp, meta, mirrored, schedules, signals,
};
use crate::state::AppState;
use crate::{dashboard, guard, json_errors};

/// How the router is set up.
pub struct RouterOptions {
    pub body_limit: usize,
    /// The longest a request may take (the event stream and MCP's streams excepted).
    pub timeout: Duration,
    /// Serve listens on loopback (MCP then accepts only loopback host names).
    pub loopback: bool,
    /// Fired, the MCP sessions end.
    pub mcp_stop: CancellationToken,
}

/// The API, with the body limit on request bodies and the timeout on every request but the
/// event stream and MCP's (a slow client cannot hold a request, or the engine, for longer).
pub fn router(state: AppState, options: RouterOptions) -> Router {
    let RouterOptions { body_limit, timeout, loopback, mcp_stop } = options;
    let mcp = mcp::endpoint(&state, body_limit, loopback, mcp_stop);
    let requests = Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/flows", get(flows::list).post(flows::create))
        .route("/v1/flows/{id}", get(flows::inspect))
        .route("/v1/flows/{id}/history", get(flows::history))
        .route("/v1/flows/{id}/graph", get(graph::graph))
        .route("/v1/flows/{id}/report", post(mirrored::report))
        .route("/v1/flows/{id}/cancel", post(control::cancel))
        .route("/v1/flows/{id}/resume", post(control::resume))
        .route("/v1/flows/{id}/fork", post(control::fork))
        .route("/v1/flows/{id}/children", post(control::children))
        .route("/v1/flows/{id}/signals/{name}", post(signals::send))
        .route("/v1/flows/{id}/approvals/{call_id}", post(approvals::decide))
        .route("/v1/schedules", get(schedules::list))
        .route("/v1/schedules/{name}", get(schedules::show))
        .route("/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/v1/schedules/{name}/trigger", post(schedules::trigger))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .route("/v1/events", get(events::events))
        .route_layer(middleware::from_fn_with_state(
            QueryParams::of(&ApiDoc::openapi()),
            query::refuse_unknown,
        ))
        .layer(middleware::map_response(move |response| {
            json_errors::rewrite(response, body_limit)
        }));
    Router::new()
        .merge(mcp)
        .merge(requests)
        .merge(
            dashboard::router()
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout)),
        )
        .fallback(|| async { HttpError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard::same_origin))
        .with_state(state)
}
