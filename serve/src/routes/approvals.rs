//! Approvals decided over HTTP: `POST /v1/flows/{id}/approvals/{call_id}` records the decision
//! about a tool call an agent run waits for (`{"approve": true|false, "reason"?}`) and answers
//! once it is durable. A call is decided once: a second decision is 409, a call the flow does
//! not wait for 422. The flow is due at once, and this serve runs it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use taskflow_api::documents;
use taskflow_store::{ApprovalDecision, Timestamp};

use super::{Answer, Object, Path, flow_id};
use crate::actions;
use crate::auth::Owner;
use crate::bodies::{ApprovalBody, ApprovalDecidedDoc};
use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// Decides tool call `call_id`, which the flow waits for: approved, it runs; denied, it does
/// not, and the model reads "denied: REASON". Recorded once.
#[utoipa::path(post, path = "/v1/flows/{id}/approvals/{call_id}",
    request_body = ApprovalBody,
    params(("id" = String, Path, description = "The flow's id"),
           ("call_id" = String, Path, description = "The call's id, as the flow's `wait.approval` names it")),
    responses(
        (status = 201, description = "recorded", body = ApprovalDecidedDoc),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the call was decided already", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "the flow does not wait for this call, or is mirrored or ended", body = ErrorBody),
    ))]
pub async fn decide(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path((id, call_id)): Path<(String, String)>,
    body: Result<Object<ApprovalBody>, HttpError>,
) -> Answer {
    let id = flow_id(&id)?;
    let Object(body) = body?;
    let decision = ApprovalDecision { approved: body.approve, reason: body.reason };
    let (signal, flow) = actions::decide(&state, &owner, id, call_id.clone(), decision).await?;
    let document = documents::approval_decided(&call_id, &signal, &flow, Timestamp::now());
    Ok((StatusCode::CREATED, Json(document)))
}
