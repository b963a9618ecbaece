//! What a client is told when the upstream does not give it a whole answer. Three cases ask
//! different things of the operator, so each has its own error type: an upstream that cannot be
//! reached (is it running? `upstream_unreachable`, 502), one that was reached but sent nothing
//! for the read timeout (a slow model: raise the timeout; `upstream_timeout`, 504), and one
//! whose answer broke off (`upstream_interrupted`, 502). Messages name the upstream by its base
//! without credentials, and never hold the upstream key.

use std::time::Duration;

use axum::http::StatusCode;

use crate::config::ProxyConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Unreachable,
    Timeout,
    Interrupted,
}

impl FaultKind {
    /// The error's `type` (and `code`) in the body the client gets.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FaultKind::Unreachable => "upstream_unreachable",
            FaultKind::Timeout => "upstream_timeout",
            FaultKind::Interrupted => "upstream_interrupted",
        }
    }

    /// The status of an answer that fails before anything of it was sent.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            FaultKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            FaultKind::Unreachable | FaultKind::Interrupted => StatusCode::BAD_GATEWAY,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

impl Fault {
    /// The request failed before the answer's head came.
    pub(crate) fn sending(config: &ProxyConfig, failure: &reqwest::Error) -> Self {
        let base = config.upstream.base();
        if silent(failure) {
            let waited = shown(config.read_timeout);
            return Self::timeout(format!(
                "the upstream {base} was reached but did not answer within {waited}"
            ));
        }
        let message = format!("cannot reach the upstream {base}: {}", detail(config, failure));
        Self { kind: FaultKind::Unreachable, message }
    }

    /// The answer's body broke off after its head came.
    pub(crate) fn reading(config: &ProxyConfig, failure: &reqwest::Error) -> Self {
        if silent(failure) {
            let (base, waited) = (config.upstream.base(), shown(config.read_timeout));
            return Self::timeout(format!(
                "the upstream {base} was reached but sent nothing for {waited} before its answer \
                 was complete"
            ));
        }
        Self::interrupted(format!(
            "the upstream's connection broke before the answer was complete: {}",
            detail(config, failure)
        ))
    }

    pub(crate) fn interrupted(message: String) -> Self {
        Self { kind: FaultKind::Interrupted, message }
    }

    fn timeout(what: String) -> Self {
        let message = format!(
            "{what} (the proxy's read timeout; raise --read-timeout-ms for slower answers)"
        );
        Self { kind: FaultKind::Timeout, message }
    }
}

/// Whether the upstream was reached and then sent nothing for the read timeout (a connect
/// timeout is an upstream that cannot be reached).
fn silent(failure: &reqwest::Error) -> bool {
    failure.is_timeout() && !failure.is_connect()
}

/// The failure and its causes, without the upstream key.
fn detail(config: &ProxyConfig, failure: &reqwest::Error) -> String {
    let mut detail = failure.to_string();
    let mut source = std::error::Error::source(failure);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    match &config.api_key {
        Some(key) => key.redact(&detail),
        None => detail,
    }
}

/// A timeout as a person reads it: whole seconds in seconds, else milliseconds.
fn shown(timeout: Duration) -> String {
    match timeout.as_millis() {
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_in_seconds_when_whole() {
        let cases = [(600_000, "600 s"), (1_000, "1 s"), (300, "300 ms"), (1_500, "1500 ms")];
        for (ms, text) in cases {
            assert_eq!(shown(Duration::from_millis(ms)), text);
        }
    }
}
