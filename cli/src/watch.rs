//! `taskflow flows watch [ID]`: the owner's changes as they are committed, read from the flow
//! database's change feed, or from a running serve (`--server URL`, its event stream resumed
//! with `Last-Event-ID` when the connection drops, and while serve restarts: for up to
//! [`RECONNECT_FOR`]). On a terminal a table of the flows that changed redraws in place; piped,
//! or with `--json`, each change is one JSON line.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use taskflow_api::database;
use taskflow_engine::{FlowId, OwnerHandle};
use taskflow_providers::{CONNECT_TIMEOUT_ENV, resolve_connect_timeout};
use taskflow_store::EventQuery;

use crate::drive::runtime;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

/// How often the database is read for new changes.
const POLL: Duration = Duration::from_millis(200);
/// How long a serve whose stream ended is tried again before watching gives up (a restart
/// drains its runs first, for up to its grace period).
const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// The wait between tries.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// Where the changes come from, and which.
pub struct Watch {
    pub flow: Option<FlowId>,
    /// A serve's address; the database when `None`.
    pub server: Option<String>,
    /// The variable holding the serve's token.
    pub token_env: Option<String>,
    /// Changes after this event id; from now on when `None`.
    pub after: Option<u64>,
}

pub fn run(global: &GlobalArgs, watch: Watch) -> CliResult {
    let mut out = Output::new(global.json || !std::io::stdout().is_terminal());
    runtime()?.block_on(async {
        match &watch.server {
            Some(server) => from_server(server, &watch, &mut out).await,
            None => from_database(global, &watch, &mut out).await,
        }
    })
}

async fn from_database(global: &GlobalArgs, watch: &Watch, out: &mut Output) -> CliResult {
    let path = database::location(global.db.as_deref())?;
    let Some(taskflow) = database::open_existing(&path)? else {
        return Err(CliError::failure(format!(
            "there is no flow database at {}",
            database::shown(&path)
        ))
        .with_hint("a run or `taskflow serve` creates it; --db (or TASKFLOW_DB) names another"));
    };
    let handle = taskflow.bind(global.owner())?;
    let mut after = match watch.after {
        Some(after) => after,
        None => taskflow.last_event_id()?,
    };
    loop {
        let query = EventQuery { after, flow: watch.flow.clone(), limit: 1000 };
        let events = blocking(&handle, move |handle| handle.events(&query)).await?;
        for event in &events {
            after = event.id;
            out.event(serde_json::to_value(event).unwrap_or_default());
        }
        out.flush();
        if events.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn blocking<T: Send + 'static>(
    handle: &OwnerHandle,
    work: impl FnOnce(&OwnerHandle) -> taskflow_engine::Result<T> + Send + 'static,
) -> CliResult<T> {
    let handle = handle.clone();
    tokio::task::spawn_blocking(move || work(&handle))
        .await
        .map_err(|error| CliError::failure(format!("reading the database stopped: {error}")))?
        .map_err(CliError::from)
}

async fn from_server(server: &str, watch: &Watch, out: &mut Output) -> CliResult {
    let env_timeout = std::env::var(CONNECT_TIMEOUT_ENV).ok();
    let (connect_timeout, warning) = resolve_connect_timeout(None, env_timeout.as_deref());
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|error| CliError::failure(format!("cannot make an HTTP client: {error}")))?;
    let token = match &watch.token_env {
        Some(variable) => Some(std::env::var(variable).map_err(|_| {
            CliError::usage(format!("--token-env {variable}: the variable is not set"))
        })?),
        None => None,
    };
    let mut url = format!("{}/v1/events", server.trim_end_matches('/'));
    if let Some(flow) = &watch.flow {
        url.push_str(&format!("?flow={flow}"));
    }
    let mut last = watch.after;
    // Since when the stream has been lost, once one was open.
    let mut lost: Option<Instant> = None;
    loop {
        let mut request = client.get(&url).header("accept", "text/event-stream");
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                if lost.is_some_and(|since| since.elapsed() < RECONNECT_FOR) {
                    tokio::time::sleep(RECONNECT_EVERY).await;
                    continue;
                }
                let message = match lost {
                    Some(_) => format!("lost {server} for {} s: {error}", RECONNECT_FOR.as_secs()),
                    None => format!("cannot reach {server}: {error}"),
                };
                return Err(
                    CliError::failure(message).with_hint("is `taskflow serve` running there?")
                );
            }
        };
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            return Err(CliError::failure(format!("{server} answered {status}: {message}")));
        }
        if lost.take().is_some() {
            eprintln!("watching {server} again");
        }
        let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
        while let Some(Ok(event)) = events.next().await {
            if let Ok(id) = event.id.parse::<u64>() {
                last = Some(id);
            }
            if let Ok(change) = serde_json::from_str::<Value>(&event.data) {
                out.event(change);
                out.flush();
            }
        }
        // The stream ended (serve stopped or restarts, the connection dropped): resume after
        // the last event seen.
        eprintln!("the stream from {server} ended; reconnecting");
        lost = Some(Instant::now());
        tokio::time::sleep(RECONNECT_EVERY).await;
    }
}

/// Prints changes: one JSON line each, or a table of the flows that changed, redrawn.
struct Output {
    lines: bool,
    flows: BTreeMap<String, Row>,
    drawn: usize,
}

/// What the table shows of one flow.
#[derive(Default)]
struct Row {
    status: String,
    revision: String,
    step: String,
    at: String,
}

impl Output {
    fn new(lines: bool) -> Self {
        Output { lines, flows: BTreeMap::new(), drawn: 0 }
    }

    fn event(&mut self, change: Value) {
        if self.lines {
            println!("{change}");
            return;
        }
        let text = |key: &str| change[key].as_str().unwrap_or_default().to_owned();
        let row = self.flows.entry(text("flow_id")).or_default();
        row.at = text("at");
        match change["kind"].as_str() {
            Some("flow") => {
                row.status = text("status");
                row.revision = change["revision"].to_string();
                if let Some(step) = change["current_step"].as_str() {
                    row.step = step.to_owned();
                }
            }
            Some("step") => {
                row.step = format!("{} {} ({})", change["seq"], text("name"), text("status"));
            }
            _ => {}
        }
    }

    fn flush(&mut self) {
        if self.lines || self.flows.is_empty() {
            let _ = std::io::stdout().flush();
            return;
        }
        let mut text = String::new();
        if self.drawn > 0 {
            // Back to where the table began, and clear what follows.
            text.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        let width = self.flows.keys().map(String::len).max().unwrap_or(4).max(4);
        text.push_str(&format!(
            "{:<width$}  {:<10}  {:>4}  {:<40}  AT\n",
            "FLOW", "STATUS", "REV", "STEP"
        ));
        for (flow, row) in &self.flows {
            text.push_str(&format!(
                "{flow:<width$}  {:<10}  {:>4}  {:<40}  {}\n",
                row.status, row.revision, row.step, row.at
            ));
        }
        self.drawn = self.flows.len() + 1;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}
