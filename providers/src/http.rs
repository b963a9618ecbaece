//! The HTTP side shared by the adapters: one client per provider with the connect and read
//! timeouts, JSON POSTs whose error answers become classified [`ProviderError`]s (with any key
//! removed from the body), and server-sent events.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;

use crate::config::ProviderConfig;
use crate::error::{ErrorKind, ProviderError};
use crate::request::ChatRequest;
use crate::retry::RetryPolicy;
use crate::secret::ApiKey;

/// Where an HTTP adapter sends its requests, and how: the part every wire shares.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub name: &'static str,
    client: reqwest::Client,
    url: String,
    pub api_key: Option<ApiKey>,
    model: String,
    pub retry: RetryPolicy,
}

impl Endpoint {
    /// The endpoint at `path` under the configured base URL.
    pub(crate) fn new(config: &ProviderConfig, path: &str) -> Result<Self, ProviderError> {
        Ok(Self {
            name: config.preset.name,
            client: client(config.connect_timeout, config.read_timeout)?,
            url: format!("{}/{path}", config.base_url.trim().trim_end_matches('/')),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            retry: config.retry,
        })
    }

    /// The request's model, or the configured one.
    pub(crate) fn model<'a>(&'a self, request: &'a ChatRequest) -> &'a str {
        if request.model.is_empty() { &self.model } else { &request.model }
    }

    /// A whole JSON answer, with the text it was read from (scrubbed of the key) for the
    /// snippet of an answer that turns out to say nothing: `send` is one attempt at the
    /// request, tried again on transient failures.
    pub(crate) async fn answer_json<T, F, Fut>(&self, send: F) -> Result<(T, String), ProviderError>
    where
        T: serde::de::DeserializeOwned,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Response, ProviderError>>,
    {
        self.retry.run(|_| async { read_json(send().await?, self.api_key.as_ref()).await }).await
    }

    /// One attempt at POSTing `body`; `authorize` adds the wire's headers (and the key).
    pub(crate) async fn send(
        &self,
        body: &Value,
        authorize: impl FnOnce(reqwest::RequestBuilder, Option<&ApiKey>) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        let post = authorize(self.client.post(&self.url), self.api_key.as_ref());
        post_json(post, body, self.api_key.as_ref()).await
    }
}

fn client(
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        // A redirect would carry the key (`x-api-key` is no header reqwest drops) elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| {
            ProviderError::new(ErrorKind::Config, format!("cannot set up HTTP: {error}"))
        })
}

/// POSTs `body` to `url` and returns the response if its status is a success.
async fn post_json(
    request: reqwest::RequestBuilder,
    body: &Value,
    key: Option<&ApiKey>,
) -> Result<reqwest::Response, ProviderError> {
    let response = request.json(body).send().await.map_err(|error| transport_error(&error, key))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.is_redirection() {
        let to = response.headers().get(LOCATION).and_then(|to| to.to_str().ok()).unwrap_or("");
        let to = key.map_or_else(|| to.to_owned(), |key| key.redact(to));
        return Err(ProviderError::new(
            ErrorKind::Config,
            format!(
                "the server redirected the request (HTTP {}) to `{}`, which taskflow does not \
                 follow, so that the key goes nowhere else: give that address as the base URL",
                status.as_u16(),
                crate::error::snippet(&to)
            ),
        ));
    }
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let text = match key {
        Some(key) => key.redact(&text),
        None => text,
    };
    Err(ProviderError::from_status(status.as_u16(), &text, retry_after))
}

/// Reads a whole JSON answer, and the text it was read from.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    key: Option<&ApiKey>,
) -> Result<(T, String), ProviderError> {
    let text = response.text().await.map_err(|error| transport_error(&error, key))?;
    let text = match key {
        Some(key) => key.redact(&text),
        None => text,
    };
    match serde_json::from_str(&text) {
        Ok(answer) => Ok((answer, text)),
        Err(error) => Err(ProviderError::bad_response(
            format_args!("the answer is not the expected JSON ({error})"),
            &text,
        )),
    }
}

/// A failure below HTTP: no connection, a timeout, a connection dropped while reading.
pub(crate) fn transport_error(error: &reqwest::Error, key: Option<&ApiKey>) -> ProviderError {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Connect
    } else if error.is_body() || error.is_decode() {
        ErrorKind::Interrupted
    } else {
        ErrorKind::Connect
    };
    let what = match kind {
        ErrorKind::Timeout => "the server did not answer in time",
        ErrorKind::Interrupted => "the connection broke while reading the answer",
        _ => "cannot reach the server",
    };
    let detail = error_chain(error);
    let detail = match key {
        Some(key) => key.redact(&detail),
        None => detail,
    };
    ProviderError::new(kind, format!("{what}: {detail}"))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `Retry-After` in seconds (the HTTP-date form is not used by model servers); absurd values
/// are capped at a day (the retry policy caps the wait further).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    const A_DAY: f64 = 86_400.0;
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds = value.parse::<f64>().ok().filter(|secs| !secs.is_nan() && *secs >= 0.0)?;
    Some(Duration::from_secs_f64(seconds.min(A_DAY)))
}

pub(crate) type SseStream = Pin<Box<dyn Stream<Item = Result<Event, ProviderError>> + Send>>;

/// The server-sent events of a streamed answer.
pub(crate) fn sse(response: reqwest::Response, key: Option<ApiKey>) -> SseStream {
    Box::pin(response.bytes_stream().eventsource().map(move |item| {
        // Whatever the server sends back is scrubbed of the key before anything reads it.
        let item = item.map(|mut event| {
            if let Some(key) = &key {
                event.data = key.redact(&event.data);
            }
            event
        });
        item.map_err(|error| match error {
            EventStreamError::Transport(error) => transport_error(&error, key.as_ref()),
            EventStreamError::Utf8(error) => ProviderError::new(
                ErrorKind::BadResponse,
                format!("the event stream is not UTF-8: {error}"),
            ),
            EventStreamError::Parser(error) => ProviderError::new(
                ErrorKind::BadResponse,
                format!("the event stream is malformed: {error}"),
            ),
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(500)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1e20"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(86_400)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("inf"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(86_400)));
    }
}

/// The start of what a stream sent, kept for the snippet of a bad answer: each event's data on
/// a line, until about [`Received::KEPT`] bytes.
#[derive(Debug, Default)]
pub(crate) struct Received(String);

impl Received {
    const KEPT: usize = 1024;

    /// Keeps `data`, an event's, while there is room.
    pub(crate) fn keep(&mut self, data: &str) {
        if self.0.len() < Self::KEPT {
            self.0.push_str(data.trim());
            self.0.push('\n');
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}
