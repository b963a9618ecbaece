//! Every error of the API in its one shape, `{"error": {"code", "message"}}`, including those
//! the HTTP layers answer before a handler runs: 405 for a method a route does not take, 408
//! from the request timeout, 413 or 415 from an extractor. Those come with an empty or plain
//! text body; this rewrites them, keeping their status and headers. Every 413 is rewritten to
//! name the body limit.

use axum::body::{Body, to_bytes};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;

/// The most of a plain error body that is read to become the message.
const PLAIN_LIMIT: usize = 4096;

/// `response` in the API's error shape if it is an error in another; `body_limit` is the limit
/// a 413 names.
pub async fn rewrite(response: Response, body_limit: usize) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    // A 413 says the limit, whoever refused the body first (a layer or an extractor).
    let too_large = status == StatusCode::PAYLOAD_TOO_LARGE;
    if !too_large && (json || !(status.is_client_error() || status.is_server_error())) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, PLAIN_LIMIT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => match parts.headers.get("allow") {
            Some(allowed) => format!("this route takes {}", allowed.to_str().unwrap_or("?")),
            None => "this route does not take that method (/openapi.json lists them)".into(),
        },
        StatusCode::REQUEST_TIMEOUT => "the request took longer than the request timeout".into(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is larger than serve's limit of {}", size(body_limit))
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("refused").to_owned(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    };
    let rewritten = HttpError::new(status, code, message).into_response();
    let (fresh, body) = rewritten.into_parts();
    for (name, value) in &fresh.headers {
        parts.headers.insert(name, value.clone());
    }
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::new(body))
}

/// `bytes` in MiB when it is a whole number of them, else in bytes.
fn size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}
