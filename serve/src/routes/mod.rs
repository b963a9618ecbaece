//! The handlers of the HTTP API, one module per group of routes, and what they share.

pub mod approvals;
pub mod control;
pub mod events;
pub mod flows;
pub mod graph;
pub mod mcp;
pub mod meta;
pub mod mirrored;
pub mod schedules;
pub mod signals;

use axum::Json;
use axum::http::StatusCode;
use serde_json::Value;
use taskflow_store::FlowId;

pub(crate) use crate::blocking::blocking;
use crate::error::HttpError;

/// A handler's answer: a status and a JSON document, or an error.
pub type Answer = Result<(StatusCode, Json<Value>), HttpError>;

/// The flow a path names; text that cannot be an id names no flow.
pub(crate) fn flow_id(text: &str) -> Result<FlowId, HttpError> {
    FlowId::parse(text).map_err(|_| HttpError::not_found(format!("no flow `{text}`")))
}
