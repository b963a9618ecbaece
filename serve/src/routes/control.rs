//! What a caller asks of one flow: a sticky cancel, a resume or a fork (serve runs them), a
//! child flow.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use taskflow_api::documents;
use taskflow_store::{SyncMode, Timestamp, rules};

use crate::actions::{self, FromStep};

use super::{Answer, Nothing, Object, Path, blocking, flow_id};
use crate::auth::Owner;
use crate::bodies::{CancelDoc, CreateFlow, FlowEnvelope, ForkBody, NewFlowBody, whole};
use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// Sticky cancel: recorded at once, nothing new is scheduled, the flow becomes `cancelled` once
/// its running steps and children have settled (a mirrored flow's owner reports it).
#[utoipa::path(post, path = "/v1/flows/{id}/cancel", params(("id" = String, Path, description = "The flow's id")), responses(
    (status = 200, body = CancelDoc),
    (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
))]
pub async fn cancel(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let outcome = actions::cancel(&state, &owner, flow_id(&id)?).await?;
    Ok((StatusCode::OK, Json(documents::cancel(&outcome, Timestamp::now()))))
}

/// Runs a managed flow on from its last checkpoint (a failed one from the step that failed).
#[utoipa::path(post, path = "/v1/flows/{id}/resume", params(("id" = String, Path, description = "The flow's id")), responses(
    (status = 202, description = "serve runs it", body = FlowEnvelope),
    (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "another live runner holds it", body = ErrorBody),
    (status = 422, description = "mirrored, or ended", body = ErrorBody),
))]
pub async fn resume(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let flow = actions::resume(&state, &owner, flow_id(&id)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "flow": documents::flow(&flow, None, Timestamp::now()) })),
    ))
}

/// A new flow with an ended flow's steps before `from_step` done; serve runs it from there. A
/// step the flow does not have is 422 (the flow is there: 404 is for a flow).
#[utoipa::path(post, path = "/v1/flows/{id}/fork", request_body = ForkBody, params(("id" = String, Path, description = "The flow's id")), responses(
    (status = 201, body = FlowEnvelope),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn fork(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    body: Result<Object<ForkBody>, HttpError>,
) -> Answer {
    let id = flow_id(&id)?;
    let Object(body) = body?;
    let from = match body.from_step {
        Value::Number(seq) => {
            FromStep::Seq(whole(&seq).and_then(|seq| u32::try_from(seq).ok()).ok_or_else(|| {
                HttpError::bad_request("`from_step` must be a step's seq or name")
            })?)
        }
        // Digits are a seq, as `flows fork --from-step` reads them.
        Value::String(text) => match text.parse::<u32>() {
            Ok(seq) => FromStep::Seq(seq),
            Err(_) => FromStep::Name(text),
        },
        _ => return Err(HttpError::bad_request("`from_step` must be a step's seq or name")),
    };
    let forked = actions::fork(&state, &owner, id, from).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "flow": documents::flow(&forked, None, Timestamp::now()) })),
    ))
}

/// A child flow under this one, refused as the store refuses it: a mirrored parent, an ended
/// one and one with a cancel request take no children, and a managed parent's children are
/// spawned by its own steps, which hold its lease.
#[utoipa::path(post, path = "/v1/flows/{id}/children", request_body = NewFlowBody, params(("id" = String, Path, description = "The parent flow's id")), responses(
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn children(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    body: Result<Object<CreateFlow>, HttpError>,
) -> Answer {
    let id = flow_id(&id)?;
    let Object(_) = body?;
    let handle = state.handle(&owner)?;
    let parent = blocking(move || handle.flow_without_spec(&id)).await?;
    rules::check_spawn(&parent)?;
    debug_assert_eq!(parent.sync_mode, SyncMode::Managed);
    Err(HttpError::refused(format!(
        "flow {} is managed: its children are spawned by its own steps (an `agent` step), \
         which hold its lease",
        parent.id
    )))
}
