//! The HTTP side: `POST /v1/chat/completions` read and rewritten, every other request (another
//! path, or another method on that one: a CORS preflight, a `GET`) passed through as it is,
//! client tokens checked, the exchange log written. Answers stream to the client as they
//! arrive; when the client goes away its response body is dropped, which drops the upstream
//! request with it. Redirects are the client's to follow, not the proxy's: followed, they
//! would take the upstream key to wherever the upstream points.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use taskflow_providers::ApiKey;
use tokio::net::TcpListener;

use crate::config::{DIAGNOSTICS_HEADER, IDS_HEADER, IdMode, ProxyConfig};
use crate::error::ProxyError;
use crate::fault::Fault;
use crate::forward::{client_headers, has_token, upstream_headers};
use crate::log::{Exchange, ExchangeLog};
use crate::redact::{client_body, without_key};
use crate::request::{self, Changes};
use crate::rewrite::{Completion, NOT_JSON, Reading, Report, StreamRewriter, rewrite_completion};
use crate::sse;

/// The largest request body taken (long conversations are large).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

struct Shared {
    config: ProxyConfig,
    client: reqwest::Client,
    log: Option<ExchangeLog>,
}

/// A proxy bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Checks the configuration and binds the listening socket.
    pub async fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        config.check_listen()?;
        let log = config.log.as_deref().map(ExchangeLog::open).transpose()?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .map_err(|error| ProxyError::Client(error.to_string()))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ProxyError::Listen { addr: config.listen, source })?;
        Ok(Self { listener, shared: Arc::new(Shared { config, client, log }) })
    }

    /// The address it listens on (the port chosen when `:0` was asked).
    pub fn local_addr(&self) -> Result<std::net::SocketAddr, ProxyError> {
        self.listener
            .local_addr()
            .map_err(|source| ProxyError::Listen { addr: self.shared.config.listen, source })
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ProxyError> {
        let app = Router::new()
            .route("/v1/chat/completions", post(chat).fallback(pass_through))
            .fallback(pass_through)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self.shared);
        // Streamed chunks go out when written (the loop turns Nagle's algorithm off).
        let options = taskflow_http_server::Options::default();
        taskflow_http_server::serve(self.listener, app, options, shutdown)
            .await
            .map_err(ProxyError::Serve)
    }
}

/// An OpenAI-style error answer.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "code": null}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The exchange's log line, written once when it is dropped: when the answer is complete, or
/// when the client left before.
struct Logged {
    shared: Arc<Shared>,
    exchange: Exchange,
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(log) = &self.shared.log {
            self.exchange.end();
            log.write(&self.exchange);
        }
    }
}

impl Logged {
    fn begin(shared: &Arc<Shared>, method: &Method, path: &str) -> Self {
        let mut exchange = Exchange::begin(method.as_str(), path);
        // Until the answer is handed over, the exchange counts as left by its client.
        exchange.client_left = true;
        Self { shared: shared.clone(), exchange }
    }

    fn answer(mut self, response: Response) -> Response {
        self.exchange.status = response.status().as_u16();
        self.exchange.client_left = false;
        response
    }

    fn fail(mut self, status: StatusCode, kind: &str, message: String) -> Response {
        self.exchange.error = Some(message.clone());
        self.answer(error(status, kind, &message))
    }

    /// The upstream gave no answer to pass on.
    fn fault(self, fault: Fault) -> Response {
        self.fail(fault.kind.status(), fault.kind.name(), fault.message)
    }
}

/// Refuses a client without the token, where one is required. A CORS preflight is let through
/// without it (browsers send a preflight without credentials, so it cannot carry the token),
/// and goes on without the upstream key too.
fn refuse(shared: &Shared, request: &Request) -> Option<Response> {
    let token = shared.config.client_token.as_ref()?;
    if has_token(request.headers(), token) || is_preflight(request) {
        return None;
    }
    Some(error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "this proxy needs `Authorization: Bearer TOKEN` with its client token",
    ))
}

fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn path_and_query(request: &Request) -> String {
    request.uri().path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
}

/// The request's body, whole; or the status and message refusing it (413 past the limit).
async fn read_body(request: Request) -> Result<Bytes, (StatusCode, String)> {
    Bytes::from_request(request, &()).await.map_err(|rejection| {
        let message = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => format!(
                "the request body is larger than the {} MiB the proxy takes",
                BODY_LIMIT >> 20
            ),
            _ => format!("cannot read the request body: {}", rejection.body_text()),
        };
        (rejection.status(), message)
    })
}

async fn chat(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = path_and_query(&request);
    let mut logged = Logged::begin(&shared, request.method(), request.uri().path());
    if let Some(refusal) = refuse(&shared, &request) {
        return logged.answer(refusal);
    }
    let ids = match request.headers().get(IDS_HEADER) {
        Some(value) => match value.to_str().ok().and_then(IdMode::parse) {
            Some(ids) => ids,
            None => {
                let message = format!("the `{IDS_HEADER}` header takes `keep` or `safe`");
                return logged.fail(StatusCode::BAD_REQUEST, "invalid_request_error", message);
            }
        },
        None => shared.config.ids,
    };
    let config = &shared.config;
    let headers = upstream_headers(
        request.headers(),
        config.api_key.as_ref(),
        config.client_token.is_some(),
        true,
    );
    let body = match read_body(request).await {
        Ok(body) => body,
        Err((status, message)) => return logged.fail(status, "invalid_request_error", message),
    };
    let changes = Changes {
        ids,
        tools_in_prompt: shared.config.tools_in_prompt,
        format: shared.config.format,
    };
    let chat = match request::prepare(body, changes) {
        Ok(chat) => chat,
        Err(bad) => return logged.fail(StatusCode::BAD_REQUEST, "invalid_request_error", bad.0),
    };
    logged.exchange.model = Some(chat.model.clone()).filter(|m| !m.is_empty());
    logged.exchange.stream = chat.stream;
    let sent = shared
        .client
        .post(config.upstream.url(&path))
        .headers(headers)
        .body(chat.body)
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(failure) => return logged.fault(Fault::sending(config, &failure)),
    };
    logged.exchange.upstream_answered(upstream.status().as_u16());
    if !upstream.status().is_success() {
        return pass_on(logged, &shared, upstream);
    }
    let reading = Reading { format: config.format_for(&chat.model), tools: chat.tools, ids };
    if is_event_stream(upstream.headers()) {
        stream_answer(logged, &shared, upstream, reading)
    } else {
        complete_answer(logged, &shared, upstream, reading).await
    }
}

/// Whether an answer is an event stream (SSE).
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"))
}

/// The upstream's answer as it came (an error status, a redirect with its `Location`, another
/// path's answer), streamed, with the upstream key taken out (of the texts an event stream's
/// chunks join too, unless it came compressed).
fn pass_on(mut logged: Logged, shared: &Shared, upstream: reqwest::Response) -> Response {
    let status = upstream.status();
    if status.is_client_error() || status.is_server_error() {
        logged.exchange.error = Some(format!("the upstream answered {status}"));
    }
    let key = shared.config.api_key.as_ref();
    let headers = client_headers(upstream.headers(), false, key);
    let events = is_event_stream(upstream.headers())
        && !upstream.headers().contains_key(header::CONTENT_ENCODING);
    let mut response = Response::new(client_body(key, upstream.bytes_stream(), events));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    logged.answer(response)
}

async fn complete_answer(
    mut logged: Logged,
    shared: &Shared,
    upstream: reqwest::Response,
    reading: Reading,
) -> Response {
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let body = match upstream.bytes().await {
        Ok(body) => body,
        Err(failure) => return logged.fault(Fault::reading(&shared.config, &failure)),
    };
    let key = shared.config.api_key.as_ref();
    let mut report = Report::default();
    let rewritten = rewrite_completion(&body, &reading, &mut report);
    logged.exchange.report(&mut report);
    let (body, rewritten) = match rewritten {
        Completion::Unchanged => (body, false),
        Completion::Rewritten(body) => (Bytes::from(body), true),
    };
    let (body, redacted) = without_key(key, body);
    let mut headers = client_headers(&upstream_headers, rewritten || redacted, key);
    if let Some(value) = diagnostics_header(&report, shared.log.is_some(), key) {
        headers.insert(DIAGNOSTICS_HEADER, value);
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    logged.answer(response)
}

/// The most the diagnostics header holds, in bytes. Clients refuse an answer whose headers are
/// long, and then get nothing at all: Node's http takes 16 KB for all the headers together,
/// Python's http.client and curl refuse a header line of 64 KB or more (an answer with a
/// thousand notes makes one of 95 KB). The notes that do not fit are counted at its end; the
/// exchange log (`--log`) has every one.
const DIAGNOSTICS_HEADER_LIMIT: usize = 4096;

/// Room kept at the end of the diagnostics header to say how many notes were left out.
const LEFT_OUT_ROOM: usize = 96;

/// The parsers' notes as one header value: `KIND: MESSAGE` joined by `; `, in visible ASCII,
/// at most [`DIAGNOSTICS_HEADER_LIMIT`] bytes, without the upstream `key` (a note may quote
/// the answer). The notes that do not fit, in order, are left out and counted (`logged`: the
/// exchange log has them).
fn diagnostics_header(report: &Report, logged: bool, key: Option<&ApiKey>) -> Option<HeaderValue> {
    let parsers = report.notes.iter().map(|note| format!("{}: {}", note.kind, note.message));
    let unread = report.unreadable.iter().map(|why| format!("{NOT_JSON}: {why}"));
    let redacted = |note: String| match key {
        Some(key) => key.redact(&note),
        None => note,
    };
    let notes = report.notes.len() + usize::from(report.unreadable.is_some());
    let mut text = String::new();
    let mut held = 0;
    let room = DIAGNOSTICS_HEADER_LIMIT - LEFT_OUT_ROOM;
    for note in parsers.chain(unread).map(redacted) {
        let separator = if text.is_empty() { "" } else { "; " };
        if text.len() + separator.len() + note.len() <= room {
            text.push_str(separator);
            text.push_str(&note);
        } else if text.is_empty() {
            // A first note too long for the header alone: its start, cut.
            let mut cut = room - "...".len();
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            text.push_str(&note[..cut]);
            text.push_str("...");
        } else {
            break;
        }
        held += 1;
    }
    if text.is_empty() {
        return None;
    }
    let left_out = notes - held;
    if left_out > 0 {
        let where_all = if logged { "; the log has them all" } else { "" };
        text.push_str(&format!(
            "; and {left_out} more notes left out (this header stays under \
             {DIAGNOSTICS_HEADER_LIMIT} bytes{where_all})"
        ));
    }
    let visible: String =
        text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    HeaderValue::from_str(&visible).ok()
}

/// A streamed answer: the upstream's events read as they come, rewritten, and sent on at once.
fn stream_answer(
    mut logged: Logged,
    shared: &Arc<Shared>,
    upstream: reqwest::Response,
    reading: Reading,
) -> Response {
    let status = upstream.status();
    let key = shared.config.api_key.as_ref();
    let headers = client_headers(upstream.headers(), true, key);
    logged.exchange.status = status.as_u16();
    let state = Streaming {
        upstream: Box::pin(upstream.bytes_stream()),
        events: sse::Reader::default(),
        rewriter: StreamRewriter::new(reading, key),
        shared: shared.clone(),
        logged: Some(logged),
    };
    let body = futures_util::stream::unfold(state, Streaming::next);
    let mut response = Response::new(client_body(key, body, false));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

struct Streaming {
    upstream: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    events: sse::Reader,
    rewriter: StreamRewriter,
    shared: Arc<Shared>,
    /// The log line, written when the stream ends or is dropped with its client.
    logged: Option<Logged>,
}

impl Streaming {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        loop {
            self.logged.as_ref()?;
            let mut out = Vec::new();
            match self.upstream.next().await {
                Some(Ok(bytes)) => {
                    let mut items = Vec::new();
                    self.events.feed(&bytes, &mut items);
                    for item in &items {
                        self.rewriter.item(item, &mut out);
                    }
                }
                Some(Err(failure)) => {
                    let fault = Fault::reading(&self.shared.config, &failure);
                    self.rewriter.end(Some(&fault), &mut out);
                    self.close(Some(fault.message));
                }
                None => {
                    let complete = self.rewriter.complete();
                    self.rewriter.end(None, &mut out);
                    let error = (!complete).then(|| "the upstream stream ended early".to_owned());
                    self.close(error);
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), self));
            }
        }
    }

    /// The upstream's stream is over: the exchange is logged as complete.
    fn close(&mut self, error: Option<String>) {
        if let Some(mut logged) = self.logged.take() {
            logged.exchange.error = error;
            logged.exchange.client_left = false;
            logged.exchange.report(&mut self.rewriter.report);
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(logged) = &mut self.logged {
            logged.exchange.report(&mut self.rewriter.report);
        }
    }
}

/// Any other request: it goes on as it came and the answer comes back as it is.
async fn pass_through(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = path_and_query(&request);
    let mut logged = Logged::begin(&shared, request.method(), request.uri().path());
    if let Some(refusal) = refuse(&shared, &request) {
        return logged.answer(refusal);
    }
    let config = &shared.config;
    // A preflight may come without the client token: it must not carry the upstream key.
    let key = if is_preflight(&request) { None } else { config.api_key.as_ref() };
    let headers = upstream_headers(request.headers(), key, config.client_token.is_some(), false);
    let method = request.method().clone();
    let body = match read_body(request).await {
        Ok(body) => body,
        Err((status, message)) => return logged.fail(status, "invalid_request_error", message),
    };
    let sent = shared
        .client
        .request(method, config.upstream.url(&path))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(failure) => return logged.fault(Fault::sending(config, &failure)),
    };
    logged.exchange.upstream_answered(upstream.status().as_u16());
    pass_on(logged, &shared, upstream)
}

#[cfg(test)]
mod tests {
    use taskflow_parsers::{Diagnostic, DiagnosticKind};

    use super::*;

    fn report(notes: usize, message: &str) -> Report {
        let note = Diagnostic {
            kind: DiagnosticKind::UnresolvedName,
            call_index: None,
            offset: 0,
            message: message.to_owned(),
            text: None,
        };
        Report { notes: vec![note; notes], ..Report::default() }
    }

    /// How many notes a header value holds, and how many it says it left out.
    fn counted(header: &str) -> (usize, usize) {
        let held = header.matches("unresolved_name: ").count();
        let left_out = header
            .split_once("; and ")
            .and_then(|(_, tail)| tail.split(' ').next()?.parse().ok())
            .unwrap_or(0);
        (held, left_out)
    }

    #[test]
    fn the_diagnostics_header_stays_short_and_counts_what_it_leaves_out() {
        let message = "the call `7` names no tool and no declared tool fits its arguments: it \
                       is not a tool call, its text is kept as written";
        for notes in [0, 1, 25, 250, 1000] {
            let report = report(notes, message);
            for logged in [false, true] {
                let Some(header) = diagnostics_header(&report, logged, None) else {
                    assert_eq!(notes, 0);
                    continue;
                };
                let header = header.to_str().unwrap();
                assert!(header.len() <= DIAGNOSTICS_HEADER_LIMIT, "{notes}: {}", header.len());
                let (held, left_out) = counted(header);
                assert_eq!(held + left_out, notes, "{header}");
                // Each note is `unresolved_name: MESSAGE`, after the first behind `; `.
                let all_fit =
                    notes * (message.len() + 19) - 2 <= DIAGNOSTICS_HEADER_LIMIT - LEFT_OUT_ROOM;
                assert_eq!(left_out == 0, all_fit, "{notes}: {header}");
                assert_eq!(header.contains("the log has them all"), logged && !all_fit);
            }
        }
        // A note too long for the header on its own is cut.
        let header = diagnostics_header(&report(1, &"é".repeat(50_000)), false, None).unwrap();
        let header = header.to_str().unwrap();
        assert!(header.len() <= DIAGNOSTICS_HEADER_LIMIT && header.ends_with("??..."), "{header}");
    }
}
