//! Provider errors, classified so that callers know what to do: transient ones (rate limits,
//! server errors, timeouts, dropped connections) are retried with backoff, permanent ones
//! (authentication, bad requests, context length, bad responses) are reported at once.

use std::fmt;
use std::time::Duration;

/// What kind of failure a provider call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The key is missing, wrong or not allowed (401, 403).
    Auth,
    /// Too many requests (429); `retry_after` says how long the server asked to wait.
    RateLimited,
    /// The server failed (5xx, 408, an overload error event).
    Server,
    /// No answer in time: connect timeout, or no bytes for longer than the read timeout.
    Timeout,
    /// The server could not be reached.
    Connect,
    /// The connection broke in the middle of a streamed answer.
    Interrupted,
    /// The server answered with something that is not the protocol (a snippet is kept).
    BadResponse,
    /// The conversation is longer than the model's context.
    ContextLength,
    /// The server refused the request as malformed (other 4xx).
    BadRequest,
    /// The provider is not set up right (unknown preset, missing key, bad script).
    Config,
    /// The replay script has no turn for this request.
    ScriptExhausted,
}

impl ErrorKind {
    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Server | Self::Timeout | Self::Connect | Self::Interrupted
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::RateLimited => "rate_limited",
            Self::Server => "server",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Interrupted => "interrupted",
            Self::BadResponse => "bad_response",
            Self::ContextLength => "context_length",
            Self::BadRequest => "bad_request",
            Self::Config => "config",
            Self::ScriptExhausted => "script_exhausted",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed provider call. The message never holds an API key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    pub message: String,
    /// The HTTP status, when the server answered with one.
    pub status: Option<u16>,
    /// How long the server asked to wait before trying again.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), status: None, retry_after: None }
    }

    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// Classifies an HTTP error answer from its status and body.
    pub fn from_status(status: u16, body: &str, retry_after: Option<Duration>) -> Self {
        let snippet = snippet(body);
        let lower = body.to_ascii_lowercase();
        let kind = match status {
            401 | 403 => ErrorKind::Auth,
            429 => ErrorKind::RateLimited,
            408 | 500..=599 => ErrorKind::Server,
            400 | 413 | 422 if mentions_context_length(&lower) => ErrorKind::ContextLength,
            _ => ErrorKind::BadRequest,
        };
        let what = match kind {
            ErrorKind::Auth => "the server refused the API key",
            ErrorKind::RateLimited => "the server is rate limiting requests",
            ErrorKind::Server => "the server failed",
            ErrorKind::ContextLength => "the conversation is longer than the model's context",
            _ => "the server refused the request",
        };
        Self {
            kind,
            message: format!("{what} (HTTP {status}): {snippet}"),
            status: Some(status),
            retry_after,
        }
    }

    /// A reply that does not follow the protocol; keeps a snippet of it.
    pub fn bad_response(what: impl fmt::Display, body: &str) -> Self {
        Self::new(ErrorKind::BadResponse, format!("{what}: {}", snippet(body)))
    }
}

fn mentions_context_length(body: &str) -> bool {
    ["context_length", "context length", "maximum context", "prompt is too long", "too many tokens"]
        .iter()
        .any(|hint| body.contains(hint))
}

/// The first 200 characters of a body, on one line.
pub(crate) fn snippet(body: &str) -> String {
    const LIMIT: usize = 200;
    let flat: String = body.trim().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match flat.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None if flat.is_empty() => "(empty body)".to_owned(),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, kind: ErrorKind) {
        assert_eq!(ProviderError::from_status(status, body, None).kind, kind, "{status} {body}");
    }

    #[test]
    fn statuses_are_classified() {
        check(401, "{}", ErrorKind::Auth);
        check(403, "{}", ErrorKind::Auth);
        check(429, "{}", ErrorKind::RateLimited);
        check(500, "{}", ErrorKind::Server);
        check(503, "{}", ErrorKind::Server);
        check(408, "{}", ErrorKind::Server);
        check(400, r#"{"error": {"code": "context_length_exceeded"}}"#, ErrorKind::ContextLength);
        check(400, "prompt is too long: 300000 tokens > 200000 maximum", ErrorKind::ContextLength);
        check(400, r#"{"error": "bad field"}"#, ErrorKind::BadRequest);
        check(404, "not found", ErrorKind::BadRequest);
    }

    #[test]
    fn transient_kinds() {
        let transient: Vec<_> = [
            ErrorKind::Auth,
            ErrorKind::RateLimited,
            ErrorKind::Server,
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Interrupted,
            ErrorKind::BadResponse,
            ErrorKind::ContextLength,
            ErrorKind::BadRequest,
            ErrorKind::Config,
            ErrorKind::ScriptExhausted,
        ]
        .into_iter()
        .filter(|kind| kind.is_transient())
        .collect();
        assert_eq!(
            transient,
            [
                ErrorKind::RateLimited,
                ErrorKind::Server,
                ErrorKind::Timeout,
                ErrorKind::Connect,
                ErrorKind::Interrupted
            ]
        );
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet(""), "(empty body)");
        assert_eq!(snippet("a\nb"), "a b");
        let long = "x".repeat(500);
        assert_eq!(snippet(&long).chars().count(), 201);
    }
}
