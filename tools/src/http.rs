//! Fetching a URL over HTTP, for the `fetch_urls` action and the `fetch_url` tool: the one
//! client setup (connect timeout, user agent, an optional bound on a whole request), the
//! request, and what went wrong sorted into kinds. Each caller words the kinds for its own
//! reader and decides which are worth another attempt.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;

/// How long connecting to a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client, made at its first use and kept, so that fetches share connections.
#[derive(Debug)]
pub(crate) struct Fetcher {
    client: OnceLock<reqwest::Client>,
    timeout: Option<Duration>,
}

impl Fetcher {
    /// `timeout` bounds a whole request, body included; without it, only connecting is bounded.
    pub(crate) const fn new(timeout: Option<Duration>) -> Self {
        Fetcher { client: OnceLock::new(), timeout }
    }

    /// The client (a clone shares its connections), for a future that outlives `self`.
    pub(crate) fn client(&self) -> reqwest::Client {
        self.client
            .get_or_init(|| {
                let mut builder = reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .user_agent(concat!("taskflow/", env!("CARGO_PKG_VERSION")));
                if let Some(timeout) = self.timeout {
                    builder = builder.timeout(timeout);
                }
                builder.build().unwrap_or_default()
            })
            .clone()
    }
}

/// Why a fetch gave no body.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// No answer: the connection, TLS or a timeout failed.
    Send(reqwest::Error),
    /// An answer whose status is not a success (its body is not read).
    Status(StatusCode),
    /// The body broke off, or is not text.
    Body(reqwest::Error),
}

impl FetchError {
    /// Whether another attempt may get through: no answer, a broken body, a 5xx or a 429.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            FetchError::Send(_) | FetchError::Body(_) => true,
            FetchError::Status(status) => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }
}

/// The body of `url` as text, read only after a success status.
pub(crate) async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, FetchError> {
    let response = client.get(url).send().await.map_err(FetchError::Send)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status));
    }
    response.text().await.map_err(FetchError::Body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_errors_and_rate_limits_are_worth_another_attempt() {
        for (status, transient) in
            [(503, true), (500, true), (429, true), (404, false), (403, false)]
        {
            let error = FetchError::Status(StatusCode::from_u16(status).unwrap());
            assert_eq!(error.is_transient(), transient, "{status}");
        }
    }
}
