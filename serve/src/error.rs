//! How serve answers a request it cannot do: `{"error": {"code", "message", …}}` with the status
//! that says why (400 bad input, 401 no or wrong token, 404 not found or another owner's, 409 a
//! conflict, 413 too large, 422 refused by the rules, 500 the store failed). The code is a
//! stable word a client can match; the message is for people.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::header::{CONNECTION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use taskflow_api::{ApiError, ErrorCode};
use taskflow_engine::EngineError;
use taskflow_store::Error;
use taskflow_store::excerpt::shorten;
use utoipa::ToSchema;

/// An answer that is an error.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More keys of the error object (`current_revision` of a conflict, `step` and `field` of a
    /// refused spec).
    pub details: Map<String, Value>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// A stable word: `bad_request`, `unauthorized`, `forbidden` (a change sent from another
    /// site's page), `not_found`, `method_not_allowed`, `timeout`, `conflict`, `too_large`,
    /// `misdirected` (a name other than loopback's, with no tokens configured), `refused`,
    /// `unavailable` or `internal`.
    pub code: String,
    pub message: String,
    /// A conflict's revision of the flow now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<u64>,
    /// The field of the body a refusal is about (`spec.steps[1].action`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The id of the pipeline's step a refused spec is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// An illegal transition's status before, and the status asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The calls an approval-waiting flow waits for, when a decision named another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Vec<String>>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError { status, code, message: message.into(), details: Map::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        HttpError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer TOKEN` with a token of this server",
        )
    }

    pub fn refused(message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        HttpError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// An error of kind `code`, with the status that says it.
    pub fn of(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError::new(status, code.as_str(), message)
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }
}

/// The longest message an answer carries: parsers' errors name what they read (an unknown
/// field, a variant), and a request of megabytes must not come back whole.
const MESSAGE_KEPT: usize = 1000;

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".to_owned(), json!(self.code));
        error.insert("message".to_owned(), json!(shorten(&self.message, MESSAGE_KEPT)));
        error.extend(self.details);
        let mut answer = (self.status, Json(json!({ "error": error }))).into_response();
        if refused_unread(self.status) {
            answer.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: the scheme a 401 asks for.
            answer.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        answer
    }
}

/// Whether an answer of `status` may be given before the request's body was read (a wrong
/// token, a body past the limit). The connection then closes once the answer is sent, since
/// the rest of the body may still be on its way; the answer says so, so that the client does
/// not send its next request on a connection that is closing.
fn refused_unread(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::PAYLOAD_TOO_LARGE
}

impl From<Error> for HttpError {
    fn from(error: Error) -> Self {
        let code = ErrorCode::of_store(&error);
        let answer = HttpError::of(code, error.to_string());
        match error {
            Error::RevisionConflict { current, .. } => {
                answer.with("current_revision", json!(current))
            }
            Error::NoApproval { pending, .. } => answer.with("pending", json!(pending)),
            Error::IllegalTransition { from, to } => {
                answer.with("from", json!(from.as_str())).with("to", json!(to.as_str()))
            }
            _ => answer,
        }
    }
}

impl From<EngineError> for HttpError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(error) => error.into(),
            EngineError::Spec(errors) => {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                HttpError::refused(first)
            }
            other => HttpError::refused(other.to_string()),
        }
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Store(error) => error.into(),
            ApiError::Engine(error) => error.into(),
            other => HttpError::of(other.code(), other.to_string()),
        }
    }
}

impl HttpError {
    /// A body an extractor refused with `status`: too large (413), else bad input.
    pub fn rejected(status: StatusCode, message: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return HttpError::new(status, "too_large", message);
        }
        HttpError::bad_request(message)
    }
}

impl From<JsonRejection> for HttpError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            // curl's `-d` sends a form's content type.
            JsonRejection::MissingJsonContentType(_) => HttpError::bad_request(
                "the body is JSON: send it with `Content-Type: application/json`",
            ),
            rejection => HttpError::rejected(rejection.status(), rejection.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closes(error: HttpError) -> bool {
        let answer = error.into_response();
        answer.headers().get(CONNECTION).is_some_and(|value| value == "close")
    }

    #[test]
    fn a_refusal_before_the_body_is_read_says_the_connection_closes() {
        assert!(closes(HttpError::unauthorized()));
        assert!(closes(HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "8 MiB")));
        assert!(!closes(HttpError::not_found("flow f")));
        assert!(!closes(HttpError::refused("an illegal transition")));
    }

    #[test]
    fn a_401_names_the_scheme_it_wants() {
        let answer = HttpError::unauthorized().into_response();
        assert_eq!(answer.headers().get(WWW_AUTHENTICATE).unwrap(), "Bearer");
        let answer = HttpError::not_found("flow f").into_response();
        assert!(answer.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
