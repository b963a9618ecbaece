//! Schedules over HTTP: read them (`GET /v1/schedules`, `GET /v1/schedules/{name}` with its
//! recent slots) and pause, resume or trigger one. Adding and changing schedules stays with
//! `taskflow schedules`, which checks a pipeline file against the actions.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use taskflow_api::schedule_documents;
use utoipa::IntoParams;

use super::{Answer, Nothing, Path, blocking};
use crate::actions;
use crate::auth::Owner;
use crate::error::{ErrorBody, HttpError};
use crate::schedule_bodies::{ScheduleEnvelope, ScheduleListDoc, ScheduleShowDoc, SlotEnvelope};
use crate::state::AppState;

/// `GET /v1/schedules/{name}`'s options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowParams {
    /// At most this many slots, newest first [default: 20].
    #[param(minimum = 1, maximum = 1000)]
    pub slots: Option<u32>,
}

/// The caller's schedules by name, each with its latest slot.
#[utoipa::path(get, path = "/v1/schedules", operation_id = "list_schedules", responses(
    (status = 200, body = ScheduleListDoc),
    (status = 400, description = "a query parameter, which the route does not take", body = ErrorBody),
    (status = 401, body = ErrorBody),
))]
pub async fn list(State(state): State<AppState>, Owner(owner): Owner, _nothing: Nothing) -> Answer {
    let handle = state.handle(&owner)?;
    let schedules = blocking(move || handle.schedules()).await?;
    let document = serde_json::to_value(schedule_documents::schedules_list(&schedules))
        .map_err(|error| HttpError::refused(error.to_string()))?;
    Ok((StatusCode::OK, Json(document)))
}

/// A schedule and its recent slots, newest first: fired (with the flow and its status),
/// skipped, missed, gated, buffered or failed, each with its reason.
#[utoipa::path(get, path = "/v1/schedules/{name}", operation_id = "show_schedule",
    params(("name" = String, Path, description = "The schedule's name"), ShowParams),
    responses(
        (status = 200, body = ScheduleShowDoc),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(name): Path<String>,
    params: Result<Query<ShowParams>, QueryRejection>,
) -> Answer {
    let Query(params) = params.map_err(|error| HttpError::bad_request(error.body_text()))?;
    let limit = params.slots.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request("`slots` must be 1 to 1000"));
    }
    let handle = state.handle(&owner)?;
    let (schedule, slots) = blocking(move || handle.schedule(&name, None, limit)).await?;
    Ok((StatusCode::OK, Json(schedule_documents::schedule_show(&schedule, &slots))))
}

/// Pauses a schedule: no slot fires until it is resumed.
#[utoipa::path(post, path = "/v1/schedules/{name}/pause", operation_id = "pause_schedule",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, body = ScheduleEnvelope),
        (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(name): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let schedule = actions::pause_schedule(&state, &owner, name).await?;
    Ok((StatusCode::OK, Json(json!({ "schedule": schedule_documents::schedule(&schedule) }))))
}

/// Resumes a paused schedule; the slots that came meanwhile are recorded as one `missed`.
#[utoipa::path(post, path = "/v1/schedules/{name}/resume", operation_id = "resume_schedule",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, body = ScheduleEnvelope),
        (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(name): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let schedule = actions::resume_schedule(&state, &owner, name).await?;
    Ok((StatusCode::OK, Json(json!({ "schedule": schedule_documents::schedule(&schedule) }))))
}

/// Fires a slot now (to the second), whatever the timing and the gates say; serve runs its
/// flow `NAME@SLOT`. 201 when this request fired it, 200 with the slot when a trigger within
/// the same second had.
#[utoipa::path(post, path = "/v1/schedules/{name}/trigger", operation_id = "trigger_schedule",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 201, description = "the slot fired", body = SlotEnvelope),
        (status = 200, description = "a trigger within the same second had fired the slot, which keeps its flow; or the slot was skipped (another flow holds its flow's id), its record saying why", body = SlotEnvelope),
        (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn trigger(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(name): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let triggered = actions::trigger_schedule(&state, &owner, name).await?;
    let status = if triggered.fired { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "slot": schedule_documents::slot(&triggered.slot) }))))
}
