//! Flows: list, submit (managed or mirrored), inspect, history.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use taskflow_api::{
    ApiError, Hold, Submitted, create_or_continue, create_or_find_mirrored, documents,
    prepare_model_steps, step_reaching_host,
};
use taskflow_engine::pipeline::SpecError;
use taskflow_engine::pipeline::spec::duration_text;
use taskflow_engine::waits::instant;
use taskflow_engine::{EngineError, FlowSpec};
use taskflow_store::excerpt::excerpt;
use taskflow_store::{FlowId, ListQuery, NewFlow, StatusFilter, Timestamp};
use utoipa::IntoParams;

use super::{Answer, Nothing, Object, Path, blocking, flow_id};
use crate::auth::{HostAccess, Owner};
use crate::bodies::{
    CreateFlow, DURATION_UNITS, FlowEnvelope, FlowListDoc, HistoryDoc, InspectionDoc, NewFlowBody,
    SyncModeBody, whole,
};
use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// `GET /v1/flows`'s filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only flows with this status, or `stalled` (running flows that no live runner holds).
    #[param(schema_with = crate::bodies::status_filter)]
    pub status: Option<String>,
    /// Only flows with this name.
    pub name: Option<String>,
    /// Only the flows schedule `NAME` fired (their ids are `NAME@SLOT`).
    #[param(pattern = "^[A-Za-z0-9._-]{1,100}$")]
    pub schedule: Option<String>,
    /// Only flows created at most this long ago (`90m`, `24h`, `7d`); an RFC 3339 instant
    /// (`2026-12-05T07:00:00Z`) is taken too.
    #[param(schema_with = crate::bodies::time_ago_or_instant)]
    pub since: Option<String>,
    /// Only flows created more than this long ago (or before an RFC 3339 instant).
    #[param(schema_with = crate::bodies::time_ago_or_instant)]
    pub until: Option<String>,
    /// At most this many flows [default: 50].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Where the previous page ended (its `next_cursor`).
    #[param(pattern = "^-?[0-9]{1,18}:[A-Za-z0-9._:@-]{1,128}$")]
    pub cursor: Option<String>,
}

/// The caller's flows, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/flows", params(ListParams), responses(
    (status = 200, body = FlowListDoc),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
))]
pub async fn list(
    State(state): State<AppState>,
    Owner(owner): Owner,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(params) = params.map_err(|error| HttpError::bad_request(error.body_text()))?;
    let now = Timestamp::now();
    let query = list_query(params, now)?;
    let limit = query.limit;
    let handle = state.handle(&owner)?;
    let flows = blocking(move || handle.list(&query)).await?;
    let next = (flows.len() == limit as usize)
        .then(|| flows.last().map(|flow| format!("{}:{}", flow.created_at.as_millis(), flow.id)))
        .flatten();
    let mut document = documents::flows_list(&flows, now);
    document["next_cursor"] = json!(next);
    Ok((StatusCode::OK, Json(document)))
}

/// The store's query for a list's filters, each checked (the dashboard's list reads the same).
pub(crate) fn list_query(params: ListParams, now: Timestamp) -> Result<ListQuery, HttpError> {
    let filter = match &params.status {
        Some(text) => Some(
            text.parse::<StatusFilter>()
                .map_err(|error| HttpError::bad_request(error.to_string()))?,
        ),
        None => None,
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(HttpError::bad_request("`limit` must be 1 to 1000"));
    }
    if let Some(name) = &params.schedule {
        taskflow_store::schedule::check_name(name)
            .map_err(|error| HttpError::bad_request(format!("`schedule`: {error}")))?;
    }
    let instant = |key: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| since_text(text, now))
            .transpose()
            .map_err(|error| HttpError::bad_request(format!("`{key}`: {error}")))
    };
    Ok(ListQuery {
        name: params.name,
        schedule: params.schedule,
        since: instant("since", &params.since)?,
        until: instant("until", &params.until)?,
        before: params.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
        ..ListQuery::filtered(filter)
    })
}

/// An instant written as RFC 3339, or as a time before `now`: whole units (`90m`, `24h`).
fn since_text(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let unit = &text[digits..];
    if (1..=9).contains(&digits) && DURATION_UNITS.contains(&unit) {
        return duration_text::parse(text).map(|ago| now.minus(ago));
    }
    instant(text).map_err(|_| {
        format!(
            "`{text}` is neither an RFC 3339 instant (2026-12-05T07:00:00Z) nor a time ago (24h)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_ago_in_whole_units_or_an_instant() {
        let now = Timestamp::from_millis(100_000_000);
        let check = |text: &str, expected: Option<i64>| {
            assert_eq!(since_text(text, now).ok().map(Timestamp::as_millis), expected, "{text}");
        };
        check("90m", Some(100_000_000 - 5_400_000));
        check("1d", Some(100_000_000 - 86_400_000));
        check("1970-01-01T00:00:01Z", Some(1000));
        for wrong in ["0.5", "5", "", "h", "yesterday", "1 h", "1234567890s", "-1h"] {
            check(wrong, None);
        }
    }
}

/// A cursor is `MILLIS:ID` of the last flow of a page.
fn parse_cursor(text: &str) -> Result<(Timestamp, FlowId), HttpError> {
    let invalid =
        || HttpError::bad_request(format!("`cursor` {text:?} is not one this server gave"));
    let (at, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = at.parse::<i64>().map_err(|_| invalid())?;
    let id = FlowId::parse(id).map_err(|_| invalid())?;
    Ok((Timestamp::from_millis(at), id))
}

/// Submits a flow: a managed flow (its pipeline in `spec`), queued and run by serve, or a
/// mirrored one the caller drives. The same id with the same body again finds the flow.
#[utoipa::path(post, path = "/v1/flows", request_body = NewFlowBody, responses(
    (status = 201, description = "created", body = FlowEnvelope),
    (status = 200, description = "the flow submitted earlier with this id and body", body = FlowEnvelope),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    (status = 422, body = ErrorBody),
))]
pub async fn create(
    State(state): State<AppState>,
    Owner(owner): Owner,
    HostAccess(host): HostAccess,
    body: Result<Object<CreateFlow>, HttpError>,
) -> Answer {
    let Object(body) = body?;
    let submitted = submit(&state, &owner, host, body).await?;
    let status = if submitted.is_new() { StatusCode::CREATED } else { StatusCode::OK };
    let flow = submitted.flow().clone();
    if flow.sync_mode == taskflow_store::SyncMode::Managed && !flow.status.is_terminal() {
        state.runs().start(&owner, &flow.id);
    }
    Ok((status, Json(json!({ "flow": documents::flow(&flow, None, Timestamp::now()) }))))
}

/// Creates or finds the flow `body` describes, for `owner`; `host` says whether its pipeline
/// may reach serve's host.
pub(super) async fn submit(
    state: &AppState,
    owner: &str,
    host: bool,
    body: CreateFlow,
) -> Result<Submitted, HttpError> {
    let id = match &body.id {
        Some(text) => {
            Some(FlowId::parse(text).map_err(|error| HttpError::bad_request(error.to_string()))?)
        }
        None => None,
    };
    match body.sync_mode {
        SyncModeBody::Managed => {
            if body.controller.is_some() || body.state.is_some() {
                return Err(HttpError::bad_request(
                    "`controller` and `state` are for mirrored flows; a managed flow's state is \
                     its runner's",
                ));
            }
            let mut spec = pipeline(&body)?;
            let engine = state.engine(owner)?;
            // What a token may not do is said first, before its steps' providers are checked.
            if !host && let Some((at, why)) = step_reaching_host(&engine, &spec) {
                return Err(HttpError::refused(format!(
                    "{why}; a token's pipelines stay off serve's host unless the token has \
                     `host = true` in `[serve.tokens]`"
                ))
                .with("field", json!(format!("spec.steps[{at}]")))
                .with("step", json!(spec.steps[at].id)));
            }
            prepare_model_steps(&mut spec).map_err(|error| match error {
                ApiError::Engine(EngineError::Spec(problems)) => refused_spec(&spec, &problems),
                other => other.into(),
            })?;
            let submitted = create_or_continue(&engine, &spec, id, body.goal, Hold::Queue).await;
            submitted.map_err(|error| match error {
                ApiError::Engine(EngineError::Spec(problems)) => refused_spec(&spec, &problems),
                other => other.into(),
            })
        }
        SyncModeBody::Mirrored => {
            if body.spec.is_some() {
                return Err(HttpError::bad_request(
                    "`spec` is for managed flows: a mirrored flow's owner does the work",
                ));
            }
            let controller = body.controller.clone().unwrap_or_else(|| owner.to_owned());
            let mut new = NewFlow::mirrored(body.name, controller);
            new.id = id;
            new.goal = body.goal;
            new.state = body.state.filter(|state| !state.is_null());
            let handle = state.handle(owner)?;
            tokio::task::spawn_blocking(move || create_or_find_mirrored(&handle, new))
                .await
                .map_err(|_| HttpError::refused("the submission stopped"))?
                .map_err(HttpError::from)
        }
    }
}

/// The 422 of a spec the engine refused: its first problem, named by its place in the body
/// (`field`, e.g. `spec.steps[1].action`) and by its step's id (`step`) when it is about one.
fn refused_spec(spec: &FlowSpec, problems: &[SpecError]) -> HttpError {
    let Some(first) = problems.first() else {
        return HttpError::refused("the pipeline was refused");
    };
    let field = format!("spec.{}", first.path());
    let step = first.step.and_then(|at| spec.steps.get(at)).map(|step| step.id.as_str());
    let message = match step {
        Some(id) => format!("{field} (step `{}`): {first}", excerpt(id)),
        None => format!("{field}: {first}"),
    };
    let refused = HttpError::refused(message).with("field", json!(field));
    match step {
        // A step's id is at most 64 characters; a longer one is what the problem is about.
        Some(id) if id.len() <= 64 => refused.with("step", json!(id)),
        Some(id) => refused.with("step", json!(excerpt(id))),
        None => refused,
    }
}

/// The managed flow's pipeline: `spec` read as a pipeline file is, its name the flow's.
fn pipeline(body: &CreateFlow) -> Result<FlowSpec, HttpError> {
    let mut spec = body
        .spec
        .clone()
        .ok_or_else(|| HttpError::bad_request("a managed flow needs `spec`, its pipeline"))?;
    let Some(fields) = spec.as_object_mut() else {
        return Err(HttpError::bad_request("`spec` must be an object: the pipeline"));
    };
    match fields.get("name") {
        None => {
            fields.insert("name".to_owned(), json!(body.name));
        }
        Some(Value::String(name)) if *name == body.name => {}
        Some(Value::String(other)) => {
            return Err(HttpError::refused(format!(
                "`spec.name` ({other:?}) differs from `name` ({:?}); leave it out",
                body.name
            ))
            .with("field", json!("spec.name")));
        }
        Some(other) => {
            return Err(HttpError::bad_request(format!(
                "spec.name: {other} is not a string; leave it out"
            )));
        }
    }
    whole_numbers(fields);
    if let Some(Value::Array(steps)) = fields.get("steps") {
        let not_an_object = |step: &Value| step.get("with").is_some_and(|with| !with.is_object());
        if let Some(at) = steps.iter().position(not_an_object) {
            return Err(HttpError::bad_request(format!(
                "spec.steps[{at}].with: expected an object, the step's input"
            )));
        }
    }
    serde_path_to_error::deserialize(spec).map_err(|error| {
        // The path of the spec itself is `.`.
        let field = match error.path().to_string() {
            path if path == "." => "spec".to_owned(),
            path => format!("spec.{path}"),
        };
        HttpError::bad_request(format!("{field}: {}", error.inner()))
    })
}

/// The pipeline's whole numbers written with a fraction (`2.0`) as integers, as the document's
/// `integer` allows them.
fn whole_numbers(spec: &mut Map<String, Value>) {
    fn integer(value: Option<&mut Value>) {
        if let Some(value @ Value::Number(_)) = value
            && let Some(whole) = value.as_number().and_then(whole)
        {
            *value = json!(whole);
        }
    }
    integer(spec.get_mut("concurrency"));
    let Some(Value::Array(steps)) = spec.get_mut("steps") else { return };
    for step in steps.iter_mut().filter_map(Value::as_object_mut) {
        integer(step.get_mut("timeout"));
        if let Some(Value::Object(retry)) = step.get_mut("retry") {
            retry.values_mut().for_each(|value| integer(Some(value)));
        }
    }
}

/// A flow, its steps and its children.
#[utoipa::path(get, path = "/v1/flows/{id}", params(("id" = String, Path, description = "The flow's id")), responses(
    (status = 200, body = InspectionDoc),
    (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn inspect(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let id = flow_id(&id)?;
    let handle = state.handle(&owner)?;
    let inspection = blocking(move || handle.inspect(&id)).await?;
    Ok((StatusCode::OK, Json(documents::inspection(&inspection, Timestamp::now()))))
}

/// A flow's revisions, oldest first.
#[utoipa::path(get, path = "/v1/flows/{id}/history", params(("id" = String, Path, description = "The flow's id")), responses(
    (status = 200, body = HistoryDoc),
    (status = 400, description = "a path segment that is not UTF-8; a query parameter or a body field, which the route does not take", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
pub async fn history(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(id): Path<String>,
    _nothing: Nothing,
) -> Answer {
    let id = flow_id(&id)?;
    let handle = state.handle(&owner)?;
    let revisions = blocking(move || handle.history(&id)).await?;
    Ok((StatusCode::OK, Json(documents::history(&revisions))))
}
