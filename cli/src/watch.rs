//! `taskflow flows watch [ID]`: the owner's changes as they are committed, read from the flow
//! database's change feed, or from a running serve (`--server URL`, its event stream resumed
//! with `Last-Event-ID` when the connection drops, and while serve restarts: for up to
//! [`RECONNECT_FOR`]). On a terminal a table of the flows that changed redraws in place, as many
//! of the latest as the screen holds; piped, or with `--json`, each change is one JSON line. A
//! reader that goes away (`| head`) ends the watch quietly.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use taskflow_api::database;
use taskflow_engine::{FlowId, OwnerHandle};
use taskflow_serve::{AFTER_HEADER, EventData};
use taskflow_store::EventQuery;
use taskflow_store::excerpt::{excerpt, quoted};

use crate::drive::runtime;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

use crate::shown::shown;

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

/// Why a watch, which goes on for ever otherwise, ends.
enum End {
    Failed(CliError),
    /// Whoever read the changes went away.
    OutputClosed,
}

impl From<CliError> for End {
    fn from(error: CliError) -> Self {
        End::Failed(error)
    }
}

impl From<taskflow_api::ApiError> for End {
    fn from(error: taskflow_api::ApiError) -> Self {
        End::Failed(error.into())
    }
}

impl From<taskflow_engine::Error> for End {
    fn from(error: taskflow_engine::Error) -> Self {
        End::Failed(error.into())
    }
}

impl From<io::Error> for End {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::BrokenPipe => End::OutputClosed,
            _ => End::Failed(CliError::failure(format!("writing the changes failed: {error}"))),
        }
    }
}

pub fn run(global: &GlobalArgs, watch: Watch) -> CliResult {
    let mut out = Output::new(global.json || !std::io::stdout().is_terminal());
    let ended = runtime()?.block_on(async {
        match &watch.server {
            Some(server) => from_server(server, &watch, &mut out).await,
            None => from_database(global, &watch, &mut out).await,
        }
    });
    match ended {
        Ok(never) => match never {},
        Err(End::OutputClosed) => Ok(()),
        Err(End::Failed(error)) => Err(error),
    }
}

async fn from_database(
    global: &GlobalArgs,
    watch: &Watch,
    out: &mut Output,
) -> Result<Infallible, End> {
    let path = database::location(global.db.as_deref())?;
    let Some(taskflow) = database::open_existing(&path)? else {
        return Err(CliError::failure(format!(
            "there is no flow database at {}",
            database::shown(&path)
        ))
        .with_hint("a run or `taskflow serve` creates it; --db (or TASKFLOW_DB) names another")
        .into());
    };
    let handle = taskflow.bind(global.owner())?;
    if let Some(id) = watch.flow.clone() {
        // A flow that is not there (or another owner's) is said so, as by every `flows`
        // command, not watched in silence for ever.
        blocking(&handle, move |handle| handle.flow_without_spec(&id)).await?;
    }
    // An id past the newest event (of another database, or pruned and made again) starts
    // from the newest, as serve's stream does, instead of waiting for ids to reach it.
    let newest = taskflow.last_event_id()?;
    let mut after = watch.after.map_or(newest, |after| after.min(newest));
    loop {
        let query = EventQuery { after, flow: watch.flow.clone(), limit: 1000 };
        let events = blocking(&handle, move |handle| handle.events(&query)).await?;
        for event in &events {
            after = event.id;
            let data = serde_json::to_value(EventData::of(event)).unwrap_or_default();
            out.event(change(event.id, event.change.kind(), data))?;
        }
        out.flush()?;
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

async fn from_server(server: &str, watch: &Watch, out: &mut Output) -> Result<Infallible, End> {
    let parsed = reqwest::Url::parse(server).ok();
    if !parsed.is_some_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host()) {
        return Err(CliError::usage(format!(
            "--server {}: not an http:// or https:// URL",
            quoted(server)
        ))
        .with_hint("the address `taskflow serve` printed, e.g. --server http://127.0.0.1:7878")
        .into());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(crate::environment::connect_timeout(None)?)
        // The token is for this server alone.
        .redirect(reqwest::redirect::Policy::none())
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
        let mut asked = client.get(format!("{}/v1/flows/{flow}", server.trim_end_matches('/')));
        if let Some(token) = &token {
            asked = asked.bearer_auth(token);
        }
        if asked.send().await.is_ok_and(|answer| answer.status() == reqwest::StatusCode::NOT_FOUND)
        {
            return Err(CliError::failure(format!("no flow `{flow}`"))
                .with_hint("`taskflow flows list` shows your flows; --owner (or TASKFLOW_OWNER) picks whose")
                .into());
        }
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
                let hint = "is `taskflow serve` running there?";
                return Err(CliError::failure(message).with_hint(hint).into());
            }
        };
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            // serve's error, or the start of what another server answered, on one line.
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| excerpt(&body.split_whitespace().collect::<Vec<_>>().join(" ")));
            return Err(CliError::failure(format!("{server} answered {status}: {message}")).into());
        }
        if lost.take().is_some() {
            eprintln!("watching {server} again");
        }
        // Until an event comes, the place to resume from is where serve began the stream: the
        // id asked for, or the newest event when that was none or past the newest.
        let began = response.headers().get(AFTER_HEADER);
        if let Some(began) = began.and_then(|value| value.to_str().ok()?.parse::<u64>().ok()) {
            last = Some(began);
        }
        let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
        while let Some(Ok(event)) = events.next().await {
            let Ok(id) = event.id.parse::<u64>() else { continue };
            last = Some(id);
            if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
                for change in changes(id, &event.event, data) {
                    out.event(change)?;
                }
                out.flush()?;
            }
        }
        // The stream ended (serve stopped or restarts, the connection dropped): resume after
        // the last event seen.
        eprintln!("the stream from {server} ended; reconnecting");
        lost = Some(Instant::now());
        tokio::time::sleep(RECONNECT_EVERY).await;
    }
}

/// The changes one of serve's events holds, as the watch prints them: the steps that came with
/// a flow's revision (its `steps`, each with its own id) first, then the revision.
fn changes(id: u64, kind: &str, mut data: Value) -> Vec<Value> {
    let steps = match data.as_object_mut().and_then(|data| data.remove("steps")) {
        Some(Value::Array(steps)) => steps,
        _ => Vec::new(),
    };
    let mut changes = Vec::with_capacity(steps.len() + 1);
    for mut step in steps {
        let Some(fields) = step.as_object_mut() else { continue };
        let Some(step_id) = fields.remove("id").and_then(|id| id.as_u64()) else { continue };
        for shared in ["flow_id", "at"] {
            fields.insert(shared.to_owned(), data[shared].clone());
        }
        changes.push(change(step_id, "step", step));
    }
    changes.push(change(id, kind, data));
    changes
}

/// One change as the watch prints it: its id and kind (which serve's stream sends as the
/// event's own lines) with its data, the same from the database and from a serve.
fn change(id: u64, kind: &str, data: Value) -> Value {
    let mut change = serde_json::Map::new();
    change.insert("id".to_owned(), id.into());
    change.insert("kind".to_owned(), kind.into());
    if let Value::Object(fields) = data {
        change.extend(fields);
    }
    Value::Object(change)
}

/// Prints changes: one JSON line each, or a table of the flows that changed, redrawn when
/// something changed.
struct Output {
    lines: bool,
    flows: BTreeMap<String, Row>,
    /// How many changes it has seen: a row's `changed` is the count at its latest.
    changes: u64,
    /// The changes that the table last drawn showed.
    drawn_at: u64,
    /// The lines the table last drawn took.
    drawn: usize,
}

/// What the table shows of one flow.
#[derive(Default)]
struct Row {
    status: String,
    revision: String,
    step: String,
    at: String,
    changed: u64,
}

/// The screen's lines when they cannot be read.
const SCREEN_LINES: usize = 24;

impl Output {
    fn new(lines: bool) -> Self {
        Output { lines, flows: BTreeMap::new(), changes: 0, drawn_at: 0, drawn: 0 }
    }

    fn event(&mut self, change: Value) -> io::Result<()> {
        if self.lines {
            return writeln!(io::stdout().lock(), "{change}");
        }
        self.changes += 1;
        let text = |key: &str| change[key].as_str().unwrap_or_default().to_owned();
        let row = self.flows.entry(text("flow_id")).or_default();
        row.at = text("at");
        row.changed = self.changes;
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
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.lines {
            return io::stdout().flush();
        }
        let screen = terminal_size::terminal_size()
            .map_or(SCREEN_LINES, |(_, terminal_size::Height(lines))| usize::from(lines));
        let Some(text) = self.redraw(screen) else { return Ok(()) };
        let mut stdout = io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()
    }

    /// The table again if something changed since it was drawn.
    fn redraw(&mut self, screen: usize) -> Option<String> {
        if self.changes == self.drawn_at {
            return None;
        }
        self.drawn_at = self.changes;
        Some(self.table(screen))
    }

    /// The table to draw over the one drawn before, in at most `screen - 1` lines (moving up
    /// past the top of the screen is not possible): the flows that changed last, in id order.
    fn table(&mut self, screen: usize) -> String {
        let room = screen.saturating_sub(3).max(1);
        let mut latest: Vec<(&String, &Row)> = self.flows.iter().collect();
        latest.sort_by_key(|(_, row)| std::cmp::Reverse(row.changed));
        let hidden = latest.len().saturating_sub(room);
        latest.truncate(room);
        latest.sort_by_key(|(flow, _)| *flow);
        let mut text = String::new();
        if self.drawn > 0 {
            // Back to where the table began, and clear what follows.
            text.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        let width = latest.iter().map(|(flow, _)| flow.len()).max().unwrap_or(4).max(4);
        text.push_str(&format!(
            "{:<width$}  {:<10}  {:>4}  {:<40}  AT\n",
            "FLOW", "STATUS", "REV", "STEP"
        ));
        for (flow, row) in &latest {
            // What the events say comes from others (a serve, a step's name): shown escaped.
            let (status, step) = (shown(&row.status), shown(&row.step));
            text.push_str(&format!(
                "{flow:<width$}  {status:<10}  {:>4}  {step:<40}  {}\n",
                row.revision, row.at
            ));
        }
        if hidden > 0 {
            text.push_str(&format!("… and {hidden} more flows that changed earlier\n"));
        }
        self.drawn = latest.len() + 1 + usize::from(hidden > 0);
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(flow: &str, seq: u32) -> Value {
        json!({"kind": "step", "flow_id": flow, "seq": seq, "name": "fetch",
               "status": "running", "at": "2026-12-07T00:00:00Z"})
    }

    #[test]
    fn the_table_holds_the_flows_that_changed_last_within_the_screen() {
        let mut out = Output::new(false);
        for flow in ["a", "b", "c", "d", "e"] {
            out.event(step(flow, 1)).unwrap();
        }
        out.event(step("a", 2)).unwrap();
        let table = out.table(6);
        let flows: Vec<&str> =
            table.lines().skip(1).map(|line| line.split(' ').next().unwrap()).collect();
        assert_eq!(flows, ["a", "d", "e", "…"], "{table}");
        assert!(table.ends_with("… and 2 more flows that changed earlier\n"), "{table}");
        assert_eq!(out.drawn, 5, "within the screen's 6 lines");
        // The next table is drawn over this one.
        assert!(out.table(6).starts_with("\x1b[5F\x1b[J"));
    }

    #[test]
    fn nothing_is_drawn_again_until_something_changes() {
        let mut out = Output::new(false);
        out.event(step("a", 1)).unwrap();
        assert!(out.redraw(24).is_some());
        assert_eq!(out.redraw(24), None);
        out.event(step("a", 2)).unwrap();
        assert!(out.redraw(24).unwrap().contains("2 fetch (running)"));
    }
}
