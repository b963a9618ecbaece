//! `GET /v1/events`: the caller's changes as server-sent events, live. Each event's `id` is its
//! place in the durable change feed, so a client that reconnects with `Last-Event-ID` (or
//! `?after=`) gets every event it missed, in order, and none twice; without either it gets what
//! happens from now on, and the answer's `Taskflow-After` header says after which event that
//! begins, so that it can resume from there before it has seen one.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::Stream;
use serde::Deserialize;
use taskflow_store::FlowId;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use crate::auth::Owner;
use crate::blocking::blocking;
use crate::bodies::EventDoc;
use crate::error::{ErrorBody, HttpError};
use crate::feed;
use crate::state::AppState;

/// The answer's header naming the event the stream follows on from.
pub const AFTER_HEADER: &str = "taskflow-after";

/// A comment line goes out when no event has for this long.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/events`'s filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only this flow's events.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub flow: Option<String>,
    /// Events after this id (as `Last-Event-ID`, which wins when both are given).
    pub after: Option<u64>,
}

/// `GET /v1/events`'s header, described to the document (the handler reads it from the map).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct EventHeaders {
    /// The id of the last event seen: the stream goes on after it.
    #[param(rename = "Last-Event-ID", value_type = u64, required = false)]
    pub last_event_id: Option<u64>,
}

/// The caller's changes as `text/event-stream`: one event per accepted change (`event: flow`:
/// revision, status, current step, the fields changed; `event: step`: seq, name, status,
/// attempt), each with its durable `id`.
#[utoipa::path(get, path = "/v1/events", params(EventParams, EventHeaders), responses(
    (status = 200, description = "server-sent events", content_type = "text/event-stream", body = EventDoc,
     headers(("Taskflow-After" = u64, description = "The id of the event the stream follows on from: a client that has seen no event yet resumes after it (with `Last-Event-ID`), so that it misses none of what happened since it connected"))),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, description = "`flow` names no flow of the caller's", body = ErrorBody),
    (status = 503, description = "where \"from now on\" begins cannot be read now", body = ErrorBody),
))]
pub async fn events(
    State(state): State<AppState>,
    Owner(owner): Owner,
    headers: HeaderMap,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(params) = params.map_err(|error| HttpError::bad_request(error.body_text()))?;
    let flow = match &params.flow {
        Some(text) => {
            Some(FlowId::parse(text).map_err(|error| HttpError::bad_request(error.to_string()))?)
        }
        None => None,
    };
    // Event ids are the feed's row ids: 64-bit signed, as the document's `int64` says.
    let event_id = |id: &u64| i64::try_from(*id).is_ok();
    if params.after.is_some_and(|after| !event_id(&after)) {
        return Err(HttpError::bad_request("`after` must be an event's id"));
    }
    let last_seen = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(event_id)
                .ok_or_else(|| HttpError::bad_request("`Last-Event-ID` must be an event's id"))?,
        ),
        None => params.after,
    };
    // An id past the newest event names none that exists (a feed begun again in a new
    // database): the events that will take the ids up to it are still to be sent.
    let newest = feed::tail(state.taskflow()).await?;
    let after = last_seen.map_or(newest, |seen| seen.min(newest));
    let handle = state.handle(&owner)?;
    if let Some(id) = flow.clone() {
        // A flow that is not there, or another owner's, is said so, as by every flow route.
        let handle = handle.clone();
        blocking(move || handle.flow_without_spec(&id)).await?;
    }
    let (sender, receiver) = mpsc::channel(16);
    let watcher = state.feed().clone();
    tokio::spawn(async move { watcher.watch(handle, after, flow, sender).await });
    let body = Body::from_stream(stream(receiver));
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static(AFTER_HEADER), HeaderValue::from(after)),
    ];
    Ok((headers, body).into_response())
}

/// The events as they come, and a comment line when none has come for a while, so that
/// proxies and clients keep the connection. It ends when the watcher stops.
fn stream(receiver: mpsc::Receiver<Bytes>) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let text = tokio::select! {
            text = receiver.recv() => text?,
            () = tokio::time::sleep(KEEP_ALIVE) => Bytes::from_static(b":\n\n"),
        };
        Some((Ok(text), receiver))
    })
}
