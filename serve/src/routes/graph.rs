//! `GET /v1/flows/{id}/graph`: the flow's steps as a picture (SVG by default, Graphviz DOT or
//! Mermaid) or as nodes and edges in JSON, the same graph as `taskflow flows graph`. The SVG is
//! served as a document that may run nothing: its own Content Security Policy forbids scripts.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use taskflow_api::graph::{self, Graph};
use utoipa::IntoParams;

use super::{Path, blocking, flow_id};
use crate::auth::Owner;
use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// `GET /v1/flows/{id}/graph`'s choice of picture.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphParams {
    /// `svg` (default), `dot`, `mermaid` or `json`.
    #[param(pattern = "^(svg|dot|mermaid|json)$")]
    pub format: Option<String>,
}

/// The flow's steps as a graph, each step in its status.
#[utoipa::path(get, path = "/v1/flows/{id}/graph",
    params(("id" = String, Path, description = "The flow's id"), GraphParams),
    responses(
        (status = 200, description = "the picture", content(
            (String = "image/svg+xml"), (String = "text/vnd.graphviz"),
            (String = "text/plain"), (Object = "application/json"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "more steps than an SVG picture is drawn of", body = ErrorBody),
    ))]
pub async fn graph(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    params: Result<Query<GraphParams>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(params) = params.map_err(|error| HttpError::bad_request(error.body_text()))?;
    let format = params.format.unwrap_or_else(|| "svg".to_owned());
    if !["svg", "dot", "mermaid", "json"].contains(&format.as_str()) {
        return Err(HttpError::bad_request(format!(
            "unknown format `{format}` (svg, dot, mermaid or json)"
        )));
    }
    let id = flow_id(&id)?;
    let handle = state.handle(&owner)?;
    // Laying a picture out takes time: on a blocking thread, as the read.
    let drawn = blocking(move || {
        let graph = Graph::of(&handle.flow(&id)?, &handle.steps(&id)?);
        Ok::<_, taskflow_store::Error>(match format.as_str() {
            "dot" => Ok((graph::dot::write(&graph), "text/vnd.graphviz; charset=utf-8")),
            "mermaid" => Ok((graph::mermaid::write(&graph), "text/plain; charset=utf-8")),
            "json" => Ok((serde_json::to_string(&graph).unwrap_or_default(), "application/json")),
            _ => graph::svg::write(&graph).map(|svg| (svg, "image/svg+xml")),
        })
    })
    .await?;
    let (body, content_type) =
        drawn.map_err(|too_many| HttpError::refused(too_many.to_string()))?;
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    Ok(response)
}
