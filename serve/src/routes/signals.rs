//! Signals delivered over HTTP: `POST /v1/flows/{id}/signals/{name}` stores the signal (its body,
//! any JSON or nothing, is the payload) and answers only once it is durable. A flow waiting for
//! it is due at once, and this serve runs it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use taskflow_api::documents;
use taskflow_store::Timestamp;

use super::{Answer, Path, flow_id};
use crate::actions;
use crate::auth::Owner;
use crate::bodies::SignalSentDoc;
use crate::error::{ErrorBody, HttpError};
use crate::state::AppState;

/// Delivers signal `name` to a managed flow that has not ended. The body is its JSON payload
/// (none: `null`), the output of the `wait_signal` step that takes it. A signal sent before the
/// step is reached is kept for it; one no `wait_signal` step of the pipeline waits for is
/// refused, as is any to an agent run (its decisions are approvals).
#[utoipa::path(post, path = "/v1/flows/{id}/signals/{name}",
    params(("id" = String, Path, description = "The flow's id"),
           ("name" = String, Path, description = "The signal's name")),
    request_body(content = Option<serde_json::Value>, description = "The payload: any JSON, or an empty body", content_type = "application/json"),
    responses(
        (status = 201, description = "stored", body = SignalSentDoc),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "mirrored, ended, an agent run, or no step of its pipeline waits for the name", body = ErrorBody),
    ))]
pub async fn send(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let id = flow_id(&id)?;
    let payload = payload(&body)?;
    let (signal, flow) = actions::signal(&state, &owner, id, name, payload).await?;
    Ok((StatusCode::CREATED, Json(documents::signal_sent(&signal, &flow, Timestamp::now()))))
}

/// The body as JSON (also a dashboard form's payload): none (or only whitespace) is `null`; text that is not JSON is refused with
/// where it goes wrong.
pub fn payload(body: &[u8]) -> Result<Value, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|error| {
        HttpError::bad_request(format!(
            "the body is not JSON (line {}, column {}): {error}",
            error.line(),
            error.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::payload;
    use serde_json::{Value, json};

    #[test]
    fn a_payload_is_any_json_or_nothing() {
        fn check(body: &str, expected: Result<Value, &str>) {
            match (payload(body.as_bytes()), expected) {
                (Ok(value), Ok(expected)) => assert_eq!(value, expected, "{body:?}"),
                (Err(error), Err(fragment)) => {
                    assert!(error.message.contains(fragment), "{body:?}: {}", error.message)
                }
                (result, expected) => panic!("{body:?}: {result:?} vs {expected:?}"),
            }
        }
        check("", Ok(Value::Null));
        check(" \n", Ok(Value::Null));
        check("{\"by\": \"bob\"}", Ok(json!({"by": "bob"})));
        check("\"yes\"", Ok(json!("yes")));
        check("{\"by\": }", Err("line 1, column 8"));
    }
}
