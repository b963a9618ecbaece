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
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use taskflow_store::FlowId;
use taskflow_store::excerpt::excerpt;

pub(crate) use crate::blocking::blocking;
use crate::error::HttpError;

/// A handler's answer: a status and a JSON document, or an error.
pub type Answer = Result<(StatusCode, Json<Value>), HttpError>;

/// The flow a path names; text that cannot be an id names no flow.
pub(crate) fn flow_id(text: &str) -> Result<FlowId, HttpError> {
    FlowId::parse(text).map_err(|_| HttpError::not_found(format!("no flow `{text}`")))
}

/// The path's parameters, as axum's `Path` reads them, refused as any other bad input is: a
/// JSON error (a segment that is not UTF-8, a seq that is not a number), never axum's text.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(HttpError::bad_request(rejection.body_text())),
        }
    }
}

/// A JSON body, read as axum's `Json` reads it (its content type, the body limit, an error naming
/// the field's path), that must be an object: serde reads an array as a struct's fields in
/// order, so `["x", "managed"]` would pass for `{"name": "x", "sync_mode": "managed"}`.
pub struct Object<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Object<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, HttpError> {
        let (parts, body) = request.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|rejection| {
                    HttpError::rejected(rejection.status(), rejection.body_text())
                })?;
        let starts = bytes.iter().find(|byte| !byte.is_ascii_whitespace()).copied();
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        let Json(value) = Json::<T>::from_request(request, state).await?;
        if starts != Some(b'{') {
            return Err(HttpError::bad_request("the body must be a JSON object"));
        }
        Ok(Object(value))
    }
}

/// What a route that takes no body accepts: nothing (an empty body, or `{}`). A body field it
/// would ignore is refused, naming it, as the other routes refuse what they do not know (and
/// every route a query parameter, in `query.rs`): whoever sent it expected it to count.
pub struct Nothing;

impl<S: Send + Sync> FromRequest<S> for Nothing {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, HttpError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| HttpError::rejected(rejection.status(), rejection.body_text()))?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Nothing);
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(fields)) => match fields.keys().next() {
                None => Ok(Nothing),
                Some(field) => Err(HttpError::bad_request(format!(
                    "unknown field `{}`: this route takes no body",
                    excerpt(field)
                ))),
            },
            Ok(_) => Err(HttpError::bad_request("this route takes no body (or `{}`)")),
            Err(error) => Err(HttpError::bad_request(format!("the body is not JSON: {error}"))),
        }
    }
}
