//! A mirrored flow's owner reports its state and steps. Reports go to the store's writer, so
//! many owners' reports arriving together share one commit.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use taskflow_api::documents::{FlowAnswer, FlowDocument};
use taskflow_store::{FlowStatus, StateReport, StepReport, StepStatus, Timestamp};
use tokio::sync::oneshot;

use super::{Object, Path, flow_id};
use crate::auth::Owner;
use crate::bodies::{FlowEnvelope, ReportBody};
use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// Records a mirrored flow's report: its status (checked against the transition table), step,
/// state, wait, goal, error and steps, as one revision.
#[utoipa::path(post, path = "/v1/flows/{id}/report", request_body = ReportBody, params(("id" = String, Path, description = "The flow's id")), responses(
    (status = 200, body = FlowEnvelope),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "`expected_revision` is stale", body = ErrorBody),
    (status = 413, body = ErrorBody),
    (status = 422, description = "refused by the rules (an illegal transition, a managed flow)", body = ErrorBody),
))]
pub async fn report(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    body: Result<Object<ReportBody>, HttpError>,
) -> Result<Response, HttpError> {
    let id = flow_id(&id)?;
    let Object(body) = body?;
    let status = match &body.status {
        Some(text) => Some(
            text.parse::<FlowStatus>()
                .map_err(|error| HttpError::bad_request(format!("status: {error}")))?,
        ),
        None => None,
    };
    let steps =
        body.steps
            .into_iter()
            .enumerate()
            .map(|(at, step)| {
                let status = step.status.parse::<StepStatus>().map_err(|error| {
                    HttpError::bad_request(format!("steps[{at}].status: {error}"))
                })?;
                Ok(StepReport { name: step.name, status, output: step.output, error: step.error })
            })
            .collect::<Result<Vec<_>, HttpError>>()?;
    let report = StateReport {
        status,
        current_step: body.current_step,
        state: body.state,
        wait: body.wait,
        goal: body.goal,
        error: body.error,
        steps,
    };
    let handle = state.handle(&owner)?;
    let (reply, answer) = oneshot::channel();
    handle.submit_report(
        &id,
        report,
        body.expected_revision,
        Box::new(move |flow| {
            let _ = reply.send(flow);
        }),
    );
    let flow = answer.await.map_err(|_| {
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store's writer stopped")
    })??;
    // Written straight from the flow: the one answer every report waits for.
    let flow = FlowDocument::new(&flow, None, Timestamp::now());
    Ok((StatusCode::OK, Json(FlowAnswer { flow })).into_response())
}
