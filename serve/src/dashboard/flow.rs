//! The flow page (`/flows/{id}`): the flow and why it is where it is, the buttons that apply
//! to it, its steps as the graph `taskflow flows graph` draws, a timeline of its steps'
//! attempts, each step's input, output and error (cut when large, with a link to the whole
//! value), its parent and children, and its revisions. The live parts are `<section
//! data-live>`s the script fetches again (`?part=live`) when the change feed names the flow.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use taskflow_api::graph::svg::TooMany;
use taskflow_api::graph::{self, Graph};
use taskflow_store::{Flow, FlowId, FlowStatus, Inspection, Revision, Step, SyncMode, Timestamp};

use super::html::{self, action_form, query_value, text};
use super::viewer::{Viewer, refusal};
use crate::blocking::blocking;
use crate::state::AppState;

/// Values longer than this many characters are cut on the page.
const SHOWN_CHARS: usize = 2000;

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    /// `live`: only the sections that change.
    pub part: Option<String>,
}

/// What the page shows, read in one go.
struct Read {
    inspection: Inspection,
    revisions: Vec<Revision>,
    /// The graph, drawn with the read (laying it out takes time: not on the server's tasks).
    picture: Result<String, TooMany>,
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return refusal(StatusCode::BAD_REQUEST, "unknown query");
    };
    let Ok(id) = FlowId::parse(&id) else {
        return refusal(StatusCode::NOT_FOUND, &format!("There is no flow `{id}`."));
    };
    // The feed's position before the read: the page's script follows on from it, so a change
    // committed while the page is on its way is not missed.
    let seen = match crate::feed::tail(state.taskflow()).await {
        Ok(seen) => seen,
        Err(error) => return refusal(error.status, &error.message),
    };
    let read = match state.handle(&viewer.owner) {
        Ok(handle) => {
            blocking(move || {
                let inspection = handle.inspect(&id)?;
                let picture = graph::svg::inline(&Graph::of(&inspection.flow, &inspection.steps));
                Ok::<_, taskflow_store::Error>(Read {
                    inspection,
                    revisions: handle.history(&id)?,
                    picture,
                })
            })
            .await
        }
        Err(error) => Err(error.into()),
    };
    let read = match read {
        Ok(read) => read,
        Err(error) => return refusal(error.status, &error.message),
    };
    let now = Timestamp::now();
    let live = live_sections(&viewer, &read, now);
    if params.part.as_deref() == Some("live") {
        return viewer.html(StatusCode::OK, live);
    }
    let flow = &read.inspection.flow;
    let path = format!("/flows/{}", query_value(flow.id.as_str()));
    let body_data = format!(
        "data-page=\"flow\" data-flow-id=\"{id}\" data-events=\"/v1/events?flow={q}&amp;after={seen}\" \
         data-live=\"{path}?part=live\"",
        id = text(flow.id.as_str()),
        q = text(&query_value(flow.id.as_str())),
        path = text(&path),
    );
    let title = format!("{} {}", flow.name, flow.id);
    let frame = viewer.page(&title, "flows", body_data);
    viewer.html(StatusCode::OK, frame.render(&format!("<a href=\"/\">← Flows</a>{live}")))
}

fn live_sections(viewer: &Viewer, read: &Read, now: Timestamp) -> String {
    let Inspection { flow, steps, children, .. } = &read.inspection;
    let picture = match &read.picture {
        Ok(svg) => svg.clone(),
        Err(too_many) => format!(
            "<p class=\"note\">{}: <a href=\"/v1/flows/{}/graph?format=dot\">DOT</a>, \
             <a href=\"/v1/flows/{}/graph?format=mermaid\">Mermaid</a>.</p>",
            text(&too_many.to_string()),
            query_value(flow.id.as_str()),
            query_value(flow.id.as_str())
        ),
    };
    let mut out = String::new();
    out.push_str(&section("summary", "", &summary(flow, now)));
    out.push_str(&section("actions", "Actions", &actions(viewer, flow, steps)));
    out.push_str(&section(
        "graph",
        "Graph",
        &format!(
            "<figure class=\"graph\">{}<figcaption>Each step in its status; arrows point to the \
             steps that wait for it.</figcaption></figure>",
            picture
        ),
    ));
    out.push_str(&section("timeline", "Timeline", &timeline(flow, steps, now)));
    out.push_str(&section("steps", "Steps", &steps_part(flow, steps, now)));
    let family = family(flow.parent_flow_id.as_ref(), children, now);
    out.push_str(&section("family", "Parent and children", &family));
    out.push_str(&section("history", "Revisions", &history(&read.revisions)));
    out
}

fn section(id: &str, heading: &str, body: &str) -> String {
    let heading = if heading.is_empty() { String::new() } else { format!("<h2>{heading}</h2>") };
    format!("<section id=\"{id}\" data-live>{heading}{body}</section>")
}

fn summary(flow: &Flow, now: Timestamp) -> String {
    let mut out = format!(
        "<h1>{name} {badge}</h1><dl class=\"facts\"><dt>Id</dt><dd><code>{id}</code></dd>\
         <dt>Mode</dt><dd>{mode}</dd><dt>Revision</dt><dd>{revision}</dd>\
         <dt>Created</dt><dd>{created}</dd><dt>Updated</dt><dd>{updated}</dd>\
         <dt>Ended</dt><dd>{ended}</dd>",
        name = text(&flow.name),
        badge = html::status(flow.status.as_str()),
        id = text(flow.id.as_str()),
        mode = flow.sync_mode.as_str(),
        revision = flow.revision,
        created = html::time(flow.created_at),
        updated = html::time(flow.updated_at),
        ended = html::maybe_time(flow.ended_at),
    );
    if let Some(step) = &flow.current_step {
        out.push_str(&format!("<dt>Current step</dt><dd>{}</dd>", text(step)));
    }
    if let Some(parent) = &flow.parent_flow_id {
        out.push_str(&format!(
            "<dt>Parent</dt><dd><a href=\"/flows/{}\" data-flow-id=\"{p}\" rel=\"up\">{p}</a></dd>",
            text(&query_value(parent.as_str())),
            p = text(parent.as_str())
        ));
    }
    if let Some(at) = flow.cancel_requested_at {
        out.push_str(&format!("<dt>Cancel requested</dt><dd>{}</dd>", html::time(at)));
    }
    if let Some(stall) = flow.stall(now) {
        out.push_str(&format!(
            "<dt>Stalled</dt><dd>⚠ {} — resume it to run it on</dd>",
            text(stall.reason.as_str())
        ));
    }
    if let Some(wait) = &flow.wait {
        out.push_str(&format!("<dt>Waits for</dt><dd>{}</dd>", waits_for(wait, flow.wake_at)));
    }
    out.push_str("</dl>");
    if let Some(error) = &flow.error {
        out.push_str(&format!(
            "<p class=\"flow-error\" role=\"alert\"><strong>Error:</strong> {}</p>",
            text(error)
        ));
    }
    out
}

/// What a waiting flow waits for, in words.
fn waits_for(wait: &Value, wake_at: Option<Timestamp>) -> String {
    let mut parts = Vec::new();
    let signals: Vec<&str> = wait
        .get("signals")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (approvals, signals): (Vec<&str>, Vec<&str>) = signals
        .into_iter()
        .partition(|name| name.starts_with(taskflow_store::wait::APPROVAL_PREFIX));
    if !signals.is_empty() {
        let names: Vec<String> =
            signals.iter().map(|name| format!("<code>{}</code>", text(name))).collect();
        parts.push(format!("signal {}", names.join(", ")));
    }
    if !approvals.is_empty() {
        parts.push("a decision about a tool call (below)".to_owned());
    }
    for child in taskflow_store::wait::waited_children(Some(wait)) {
        parts.push(format!(
            "its child flow <a href=\"/flows/{}\"><code>{}</code></a>, which waits for a \
             decision about a tool call",
            text(&query_value(&child)),
            text(&child)
        ));
    }
    if let Some(at) = wake_at.or_else(|| {
        wait.get("until")
            .and_then(Value::as_str)
            .and_then(|text| taskflow_engine::waits::instant(text).ok())
    }) {
        parts.push(format!("a timer, {}", html::time(at)));
    }
    if parts.is_empty() { "–".to_owned() } else { parts.join("; ") }
}

fn actions(viewer: &Viewer, flow: &Flow, steps: &[Step]) -> String {
    let session = &viewer.session;
    let path = format!("/flows/{}", query_value(flow.id.as_str()));
    let managed = flow.sync_mode == SyncMode::Managed;
    let ended = flow.status.is_terminal();
    let mut out = String::new();
    if !ended && flow.cancel_requested_at.is_none() {
        out.push_str(&action_form(session, &format!("{path}/cancel"), "", "Cancel"));
    }
    let resumable =
        matches!(flow.status, FlowStatus::Failed | FlowStatus::Blocked | FlowStatus::Lost)
            || flow.stall(Timestamp::now()).is_some();
    if managed && resumable {
        out.push_str(&action_form(session, &format!("{path}/resume"), "", "Resume"));
    }
    if managed && ended && !steps.is_empty() {
        let mut options = String::new();
        for step in steps {
            options.push_str(&format!(
                "<option value=\"{seq}\">{seq} · {name}</option>",
                seq = step.seq,
                name = text(&step.name)
            ));
        }
        let fields =
            format!("<label>Fork from step <select name=\"from_step\">{options}</select></label> ");
        out.push_str(&action_form(session, &format!("{path}/fork"), &fields, "Fork"));
    }
    for (request, _) in taskflow_store::wait::approvals(flow.wait.as_ref()) {
        let arguments = serde_json::to_string_pretty(&request.arguments).unwrap_or_default();
        let (shown, _) = html::cut(&arguments, SHOWN_CHARS);
        out.push_str(&format!(
            "<form method=\"post\" action=\"{action}\" class=\"approval\">{csrf}\
             <input type=\"hidden\" name=\"call_id\" value=\"{call}\">\
             <p>The run asks to call <strong>{tool}</strong> (<code>{call}</code>) with:</p>\
             <pre>{arguments}</pre><label>Reason <input name=\"reason\"></label> \
             <button type=\"submit\" name=\"approve\" value=\"true\">Approve</button> \
             <button type=\"submit\" name=\"approve\" value=\"false\">Deny</button></form>",
            action = text(&format!("{path}/approve")),
            csrf = html::csrf_field(session),
            call = text(&request.call_id),
            tool = text(&request.tool),
            arguments = text(shown),
        ));
    }
    if managed && !ended {
        let fields = "<label>Signal <input name=\"name\" required></label> \
             <label>Payload (JSON, may be empty) <textarea name=\"payload\" rows=\"1\"></textarea></label> ";
        out.push_str(&action_form(session, &format!("{path}/signal"), fields, "Send signal"));
    }
    if out.is_empty() {
        out.push_str("<p>Nothing to do: the flow has ended.</p>");
    }
    format!("<div class=\"actions\">{out}</div>")
}

/// The steps' attempts on one time axis, from the flow's creation to its end (or now).
fn timeline(flow: &Flow, steps: &[Step], now: Timestamp) -> String {
    if steps.is_empty() {
        return "<p>No step has started.</p>".to_owned();
    }
    const LABEL: f64 = 180.0;
    const WIDTH: f64 = 520.0;
    const ROW: f64 = 22.0;
    let start = flow.created_at.as_millis();
    let end = flow.ended_at.unwrap_or(now).as_millis().max(start + 1);
    let scale = WIDTH / (end - start) as f64;
    let height = ROW * steps.len() as f64 + 20.0;
    let mut out = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-label=\"Timeline of \
         the steps' attempts\">",
        LABEL + WIDTH + 10.0
    );
    for (row, step) in steps.iter().enumerate() {
        let y = row as f64 * ROW;
        let from = (step.started_at.as_millis() - start).max(0) as f64 * scale;
        let to = (step.ended_at.unwrap_or(now).as_millis() - start).max(0) as f64 * scale;
        let (label, _) = html::cut(&step.name, 24);
        let attempts =
            if step.attempt > 1 { format!(", attempt {}", step.attempt) } else { String::new() };
        out.push_str(&format!(
            "<g data-step=\"{name}\" data-status=\"{status}\"><title>{name}: {status}{attempts}, \
             {took}</title><text x=\"0\" y=\"{ty}\">{seq} {label}</text>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"3\"></rect></g>",
            name = text(&step.name),
            status = step.status.as_str(),
            took = html::duration(step.started_at, step.ended_at.unwrap_or(now)),
            ty = y + 15.0,
            seq = step.seq,
            label = text(label),
            x = LABEL + from,
            y = y + 3.0,
            w = (to - from).max(2.0),
            h = ROW - 6.0,
        ));
    }
    out.push_str(&format!(
        "<text x=\"{LABEL}\" y=\"{}\" class=\"axis\">{}</text>\
         <text x=\"{}\" y=\"{}\" class=\"axis end\">+{}</text></svg>",
        height - 4.0,
        html::cut(&flow.created_at.to_string().replace('T', " "), 19).0,
        LABEL + WIDTH,
        height - 4.0,
        html::duration(flow.created_at, Timestamp::from_millis(end)),
    ));
    out
}

fn steps_part(flow: &Flow, steps: &[Step], now: Timestamp) -> String {
    if steps.is_empty() {
        return "<p>No step has started.</p>".to_owned();
    }
    let mut table = String::from(
        "<table class=\"steps\"><thead><tr><th scope=\"col\">#</th><th scope=\"col\">Step</th>\
         <th scope=\"col\">Kind</th><th scope=\"col\">Status</th><th scope=\"col\">Attempt</th>\
         <th scope=\"col\">Started</th><th scope=\"col\">Took</th><th scope=\"col\">Child</th>\
         </tr></thead><tbody>",
    );
    let mut values = String::new();
    for step in steps {
        let child = step.child_flow_id.as_ref().map_or_else(String::new, |child| {
            format!(
                "<a href=\"/flows/{}\" data-flow-id=\"{c}\">{c}</a>",
                text(&query_value(child.as_str())),
                c = text(child.as_str())
            )
        });
        table.push_str(&format!(
            "<tr data-step=\"{name}\" data-status=\"{status}\"><td>{seq}</td>\
             <td><a href=\"#step-{seq}\">{name}</a></td><td>{kind}</td><td>{badge}</td>\
             <td>{attempt}</td><td>{started}</td><td>{took}</td><td>{child}</td></tr>",
            name = text(&step.name),
            status = step.status.as_str(),
            seq = step.seq,
            kind = step.kind.as_str(),
            badge = html::status(step.status.as_str()),
            attempt = step.attempt,
            started = html::time(step.started_at),
            took = html::duration(step.started_at, step.ended_at.unwrap_or(now)),
        ));
        values.push_str(&step_values(flow, step));
    }
    table.push_str("</tbody></table>");
    format!("{table}<div class=\"values\">{values}</div>")
}

fn step_values(flow: &Flow, step: &Step) -> String {
    let link =
        |part: &str| format!("/flows/{}/steps/{}/{part}", query_value(flow.id.as_str()), step.seq);
    let mut blocks = String::new();
    for (part, value) in [
        ("input", step.input.as_ref().map(value_text)),
        ("output", step.output.as_ref().map(value_text)),
        ("error", step.error.clone()),
    ] {
        let Some(value) = value else { continue };
        let (shown, was_cut) = html::cut(&value, SHOWN_CHARS);
        let whole = if was_cut {
            format!(
                " <a href=\"{}\">whole {part} ({} characters)</a>",
                text(&link(part)),
                value.chars().count()
            )
        } else {
            String::new()
        };
        let class = if part == "error" { " class=\"error\"" } else { "" };
        blocks.push_str(&format!(
            "<h4>{part}{whole}</h4><pre{class} data-part=\"{part}\">{}{}</pre>",
            text(shown),
            if was_cut { "…" } else { "" }
        ));
    }
    if blocks.is_empty() {
        blocks.push_str("<p>No input or output yet.</p>");
    }
    let open = if step.status.as_str() == "failed" { " open" } else { "" };
    format!(
        "<details id=\"step-{seq}\" data-step=\"{name}\"{open}><summary>{seq} · {name} {badge}</summary>{blocks}</details>",
        seq = step.seq,
        name = text(&step.name),
        badge = html::status(step.status.as_str()),
    )
}

/// A value as shown: a string as itself, anything else as indented JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The flow's parent and its children, each child's status as its own page shows it.
fn family(
    parent: Option<&FlowId>,
    children: &[taskflow_store::ChildSummary],
    now: Timestamp,
) -> String {
    let mut out = String::new();
    match parent {
        Some(parent) => out.push_str(&format!(
            "<p>Parent: <a href=\"/flows/{}\" data-flow-id=\"{p}\" rel=\"up\">{p}</a></p>",
            text(&query_value(parent.as_str())),
            p = text(parent.as_str())
        )),
        None => out.push_str("<p>No parent.</p>"),
    }
    if children.is_empty() {
        out.push_str("<p>No children.</p>");
        return out;
    }
    out.push_str("<ul class=\"children\">");
    for child in children {
        let stalled = child.stall(now).is_some();
        out.push_str(&format!(
            "<li data-flow-id=\"{c}\" data-status=\"{status}\"{data}><a href=\"/flows/{href}\">{c}</a> \
             {name} {badge}{tag}</li>",
            c = text(child.id.as_str()),
            status = child.status.as_str(),
            data = if stalled { " data-stalled=\"true\"" } else { "" },
            href = text(&query_value(child.id.as_str())),
            name = text(&child.name),
            badge = html::status(child.status.as_str()),
            tag = if stalled { " <span class=\"tag\">⚠ stalled</span>" } else { "" },
        ));
    }
    out.push_str("</ul>");
    out
}

fn history(revisions: &[Revision]) -> String {
    let mut out = String::from(
        "<table class=\"history\"><thead><tr><th scope=\"col\">Revision</th><th scope=\"col\">At</th>\
         <th scope=\"col\">By</th><th scope=\"col\">Change</th></tr></thead><tbody>",
    );
    for revision in revisions.iter().rev() {
        let mut changes = String::new();
        for change in &revision.change {
            let side = |value: &Value| {
                let whole = value_text(value);
                let (shown, was_cut) = html::cut(&whole, 120);
                format!("{}{}", text(shown), if was_cut { "…" } else { "" })
            };
            changes.push_str(&format!(
                "<li><code>{}</code>: {} → {}</li>",
                text(&change.field),
                side(&change.before),
                side(&change.after)
            ));
        }
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><ul class=\"changes\">{changes}</ul></td></tr>",
            revision.revision,
            html::time(revision.at),
            text(&revision.actor),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// `/flows/{id}/steps/{seq}/{part}`: a step's whole input, output or error, as plain text
/// that nothing runs.
pub async fn value(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, seq, part)): Path<(String, u32, String)>,
) -> Response {
    let Ok(id) = FlowId::parse(&id) else {
        return refusal(StatusCode::NOT_FOUND, "There is no such flow.");
    };
    let steps = match state.handle(&viewer.owner) {
        Ok(handle) => blocking(move || handle.steps(&id)).await,
        Err(error) => Err(error.into()),
    };
    let steps = match steps {
        Ok(steps) => steps,
        Err(error) => return refusal(error.status, &error.message),
    };
    let Some(step) = steps.into_iter().find(|step| step.seq == seq) else {
        return refusal(StatusCode::NOT_FOUND, &format!("The flow has no step {seq}."));
    };
    let value = match part.as_str() {
        "input" => step.input.as_ref().map(value_text),
        "output" => step.output.as_ref().map(value_text),
        "error" => step.error,
        _ => return refusal(StatusCode::NOT_FOUND, "Ask for `input`, `output` or `error`."),
    };
    let Some(value) = value else {
        return refusal(StatusCode::NOT_FOUND, &format!("Step {seq} has no {part}."));
    };
    let mut response = (StatusCode::OK, value).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    response
}

#[cfg(test)]
mod tests {
    use taskflow_store::{ChildSummary, LeaseHolder, LeaseInfo};

    use super::*;

    #[test]
    fn a_child_whose_runner_stopped_is_listed_stalled() {
        let child = |id: &str, expires_at| ChildSummary {
            id: id.parse().unwrap(),
            name: id.to_owned(),
            sync_mode: SyncMode::Managed,
            status: FlowStatus::Running,
            lease: Some(LeaseInfo {
                holder: LeaseHolder::current(),
                expires_at: Timestamp::from_millis(expires_at),
            }),
        };
        let now = Timestamp::from_millis(10_000);
        let html = family(None, &[child("live", 20_000), child("left", 5_000)], now);
        let items: Vec<&str> = html.split("<li ").skip(1).collect();
        assert_eq!(items.len(), 2, "{html}");
        assert!(!items[0].contains("stalled"), "{}", items[0]);
        assert!(items[1].contains("data-stalled=\"true\"") && items[1].contains("⚠ stalled"));
    }
}
