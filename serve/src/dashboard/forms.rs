//! The dashboard's buttons: each form is checked for the session's CSRF token, then does what
//! the API route of the same name does (through [`crate::actions`]) and goes back to the page
//! with the outcome shown there. Every form's `csrf` field (here, the bulk form's and the login
//! forms') is read as empty when missing, so that a form without it is refused as one with a
//! wrong token is (403), not as a malformed form.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use taskflow_api::schedules::Triggered;
use taskflow_store::{ApprovalDecision, FlowId};

use super::html::query_value;
use super::viewer::{Viewer, refusal};
use crate::actions::{self, FromStep};
use crate::routes::signals::payload;
use crate::sessions::Notice;
use crate::state::AppState;

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Plain {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct ForkForm {
    #[serde(default)]
    csrf: String,
    from_step: u32,
}

#[derive(Debug, Deserialize)]
pub struct SignalForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    payload: String,
}

#[derive(Debug, Deserialize)]
pub struct ApprovalForm {
    #[serde(default)]
    csrf: String,
    call_id: String,
    approve: bool,
    #[serde(default)]
    reason: String,
}

/// A form of a state-changing button: it carries the session's CSRF token.
trait Guarded {
    fn csrf(&self) -> &str;
}

impl Guarded for Plain {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Guarded for ForkForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Guarded for SignalForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Guarded for ApprovalForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The form, read and its CSRF token checked; otherwise the page that says why not.
fn read<T: Guarded>(
    viewer: &Viewer,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, Box<Response>> {
    let Form(form) =
        form.map_err(|error| Box::new(refusal(StatusCode::BAD_REQUEST, &error.body_text())))?;
    viewer.check_csrf(form.csrf())?;
    Ok(form)
}

/// The flow a path names, with its page; or the page that says there is none.
fn flow(text: &str) -> Result<(FlowId, String), Box<Response>> {
    let id = FlowId::parse(text).map_err(|_| {
        Box::new(refusal(StatusCode::NOT_FOUND, &format!("There is no flow `{text}`.")))
    })?;
    let page = format!("/flows/{}", query_value(text));
    Ok((id, page))
}

fn ok(text: impl Into<String>) -> Notice {
    Notice { text: text.into(), is_error: false }
}

pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<Plain>, FormRejection>,
) -> Response {
    let ((id, back), _) = match (flow(&id), read(&viewer, form)) {
        (Ok(flow), Ok(form)) => (flow, form),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    match actions::cancel(&state, &viewer.owner, id).await {
        Ok(outcome) if outcome.already_requested => {
            viewer.done(&back, ok("A cancel was asked for already."))
        }
        Ok(_) => viewer
            .done(&back, ok("Cancel asked for: the flow stops once its running steps settle.")),
        Err(error) => viewer.failed(&back, error),
    }
}

pub async fn resume(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<Plain>, FormRejection>,
) -> Response {
    let ((id, back), _) = match (flow(&id), read(&viewer, form)) {
        (Ok(flow), Ok(form)) => (flow, form),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    match actions::resume(&state, &viewer.owner, id).await {
        Ok(_) => viewer.done(&back, ok("Resumed: serve runs it from its last checkpoint.")),
        Err(error) => viewer.failed(&back, error),
    }
}

pub async fn fork(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<ForkForm>, FormRejection>,
) -> Response {
    let ((id, back), form) = match (flow(&id), read(&viewer, form)) {
        (Ok(flow), Ok(form)) => (flow, form),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    match actions::fork(&state, &viewer.owner, id.clone(), FromStep::Seq(form.from_step)).await {
        Ok(forked) => viewer.done(
            &format!("/flows/{}", query_value(forked.id.as_str())),
            ok(format!("Forked from {id} at step {}.", form.from_step)),
        ),
        Err(error) => viewer.failed(&back, error),
    }
}

pub async fn signal(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<SignalForm>, FormRejection>,
) -> Response {
    let ((id, back), form) = match (flow(&id), read(&viewer, form)) {
        (Ok(flow), Ok(form)) => (flow, form),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    let payload = match payload(form.payload.as_bytes()) {
        Ok(payload) => payload,
        Err(error) => return viewer.failed(&back, error),
    };
    let name = form.name.trim().to_owned();
    match actions::signal(&state, &viewer.owner, id, name.clone(), payload).await {
        Ok(_) => viewer.done(&back, ok(format!("Signal `{name}` delivered."))),
        Err(error) => viewer.failed(&back, error),
    }
}

pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    form: Result<Form<ApprovalForm>, FormRejection>,
) -> Response {
    let ((id, back), form) = match (flow(&id), read(&viewer, form)) {
        (Ok(flow), Ok(form)) => (flow, form),
        (Err(refused), _) | (_, Err(refused)) => return *refused,
    };
    let reason = Some(form.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
    let decision = ApprovalDecision { approved: form.approve, reason };
    let call = form.call_id.clone();
    match actions::decide(&state, &viewer.owner, id, form.call_id, decision).await {
        Ok(_) => {
            let verb = if form.approve { "approved" } else { "denied" };
            viewer.done(&back, ok(format!("Call `{call}` {verb}.")))
        }
        Err(error) => viewer.failed(&back, error),
    }
}

/// `POST /schedules/{name}/{pause|resume|trigger}`.
pub async fn schedule(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<Plain>, FormRejection>,
) -> Response {
    if let Err(refused) = read(&viewer, form) {
        return *refused;
    }
    let back = format!("/schedules/{}", query_value(&name));
    let owner = viewer.owner.clone();
    let outcome = match action.as_str() {
        "pause" => actions::pause_schedule(&state, &owner, name.clone())
            .await
            .map(|_| format!("Schedule `{name}` paused.")),
        "resume" => actions::resume_schedule(&state, &owner, name.clone())
            .await
            .map(|_| format!("Schedule `{name}` resumed.")),
        "trigger" => {
            actions::trigger_schedule(&state, &owner, name.clone()).await.map(|triggered| {
                let Triggered { slot, fired } = triggered;
                let verb = if fired { "fired" } else { "had fired already" };
                match slot.flow_id {
                    Some(flow) => {
                        format!("Schedule `{name}` {verb} slot {}: flow {flow}.", slot.at)
                    }
                    None => format!("Schedule `{name}` {verb} slot {}.", slot.at),
                }
            })
        }
        _ => return refusal(StatusCode::NOT_FOUND, "Ask to pause, resume or trigger."),
    };
    match outcome {
        Ok(message) => viewer.done(&back, ok(message)),
        Err(error) => viewer.failed(&back, error),
    }
}
