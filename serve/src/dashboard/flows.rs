//! The flows page (`/`): the owner's flows newest first, filtered by status, name, schedule and
//! creation time, a page at a time (the same query and cursor as `GET /v1/flows`); its rows
//! follow the change feed without a reload (`?part=rows` is what the script fetches); and
//! cancel or resume of every flow the filters match, one flow at a time through the actions
//! the API uses.

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Form, extract::rejection::QueryRejection};
use serde::Deserialize;
use taskflow_store::{FlowStatus, FlowSummary, ListQuery, Timestamp};

use super::html::{self, query_value, text};
use super::viewer::{Viewer, refusal};
use crate::actions;
use crate::blocking::blocking;
use crate::error::HttpError;
use crate::routes::flows::{ListParams, list_query};
use crate::sessions::Notice;
use crate::state::AppState;

/// Rows per page.
const PAGE: u32 = 50;
/// The most flows one bulk action goes through.
const MAX_BULK: usize = 1000;

/// The filters, as the form sends them (an empty field is no filter).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    pub status: Option<String>,
    pub name: Option<String>,
    pub schedule: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Filters {
    fn cleaned(self) -> Filters {
        let keep = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
        Filters {
            status: keep(self.status),
            name: keep(self.name),
            schedule: keep(self.schedule).map(|name| name.trim().to_owned()),
            since: keep(self.since),
            until: keep(self.until),
        }
    }

    /// The store's query for a page of `limit` after `cursor`.
    fn query(&self, cursor: Option<String>, limit: u32) -> Result<ListQuery, HttpError> {
        let params = ListParams {
            status: self.status.clone(),
            name: self.name.clone(),
            schedule: self.schedule.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            limit: Some(limit),
            cursor,
        };
        list_query(params, Timestamp::now())
    }

    /// The filters as a query string (`status=failed&name=…`), empty when there are none.
    fn query_string(&self) -> String {
        [
            ("status", &self.status),
            ("name", &self.name),
            ("schedule", &self.schedule),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter_map(|(key, value)| {
            value.as_ref().map(|value| format!("{key}={}", query_value(value)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The filters as hidden fields of a form.
    fn hidden_fields(&self) -> String {
        [
            ("status", &self.status),
            ("name", &self.name),
            ("schedule", &self.schedule),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .filter_map(|(key, value)| {
            value.as_ref().map(|value| {
                format!("<input type=\"hidden\" name=\"{key}\" value=\"{}\">", text(value))
            })
        })
        .collect()
    }
}

/// `/`'s query: the filters, where the page starts, and whether only the rows are wanted.
#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    #[serde(flatten)]
    pub filters: Filters,
    pub cursor: Option<String>,
    /// `rows`: only the table's rows (the live update).
    pub part: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Response {
    let params = match params {
        Ok(Query(params)) => params,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, &error.body_text()),
    };
    let filters = params.filters.cleaned();
    let cursor = params.cursor.filter(|cursor| !cursor.is_empty());
    let now = Timestamp::now();
    // The feed's position before the read: the page's script follows on from it.
    let seen = match crate::feed::tail(state.taskflow()).await {
        Ok(seen) => seen,
        Err(error) => return refusal(error.status, &error.message),
    };
    let listed = match filters.query(cursor.clone(), PAGE) {
        Ok(query) => match state.handle(&viewer.owner) {
            Ok(handle) => blocking(move || handle.list(&query)).await,
            Err(error) => Err(error.into()),
        },
        Err(error) => Err(error),
    };
    let (flows, problem) = match listed {
        Ok(flows) => (flows, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let rows = rows(&flows, now);
    if params.part.as_deref() == Some("rows") {
        return viewer.html(StatusCode::OK, format!("<tbody id=\"rows\" data-live>{rows}</tbody>"));
    }
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut live = filters.query_string();
    if let Some(cursor) = &cursor {
        live.push_str(&format!("&cursor={}", query_value(cursor)));
    }
    live.push_str("&part=rows");
    let body_data = format!(
        "data-page=\"flows\" data-events=\"/v1/events?after={seen}\" data-live=\"/?{}\"",
        text(live.trim_start_matches('&'))
    );
    let frame = viewer.page("Flows", "flows", body_data);
    let main = main(&viewer, &filters, &flows, &rows, cursor.is_some(), problem);
    viewer.html(status, frame.render(&main))
}

fn main(
    viewer: &Viewer,
    filters: &Filters,
    flows: &[FlowSummary],
    rows: &str,
    paged: bool,
    problem: Option<HttpError>,
) -> String {
    let mut out = String::from("<h1>Flows</h1>");
    out.push_str(&filter_form(filters));
    if let Some(problem) = problem {
        out.push_str(&format!(
            "<p class=\"notice error\" role=\"alert\">{}</p>",
            text(&problem.message)
        ));
    }
    let bulk = format!(
        "{}<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel every matching flow</button> \
         <button type=\"submit\" name=\"action\" value=\"resume\">Resume every matching flow</button>",
        filters.hidden_fields()
    );
    out.push_str(&format!(
        "<form method=\"post\" action=\"/flows/bulk\" class=\"bulk\">{}{bulk}</form>",
        html::csrf_field(&viewer.session)
    ));
    out.push_str(
        "<table class=\"flows\"><caption>Newest first; updates as flows change</caption><thead><tr>\
         <th scope=\"col\">Status</th><th scope=\"col\">Flow</th><th scope=\"col\">Name</th>\
         <th scope=\"col\">Steps</th><th scope=\"col\">Created</th><th scope=\"col\">Updated</th>\
         </tr></thead>",
    );
    out.push_str(&format!("<tbody id=\"rows\" data-live>{rows}</tbody></table>"));
    let filters_query = filters.query_string();
    let mut pages = Vec::new();
    if paged {
        pages.push(format!("<a href=\"/?{}\">Newest</a>", text(&filters_query)));
    }
    if flows.len() == PAGE as usize
        && let Some(last) = flows.last()
    {
        let cursor = format!("{}:{}", last.created_at.as_millis(), last.id);
        let href = format!("/?{filters_query}&cursor={}", query_value(&cursor));
        pages.push(format!("<a rel=\"next\" href=\"{}\">Older</a>", text(&href)));
    }
    out.push_str(&format!("<nav class=\"pages\" aria-label=\"Pages\">{}</nav>", pages.join(" ")));
    out
}

fn filter_form(filters: &Filters) -> String {
    let selected = filters.status.as_deref().unwrap_or("");
    let mut options = format!(
        "<option value=\"\"{}>any</option>",
        if selected.is_empty() { " selected" } else { "" }
    );
    for status in FlowStatus::ALL.iter().map(|status| status.as_str()).chain(["stalled"]) {
        let mark = if status == selected { " selected" } else { "" };
        options.push_str(&format!("<option value=\"{status}\"{mark}>{status}</option>"));
    }
    let field = |name: &str, label: &str, value: &Option<String>, hint: &str| {
        format!(
            "<label>{label} <input name=\"{name}\" value=\"{}\" placeholder=\"{hint}\"></label>",
            text(value.as_deref().unwrap_or(""))
        )
    };
    format!(
        "<form method=\"get\" action=\"/\" class=\"filters\" role=\"search\">\
         <label>Status <select name=\"status\">{options}</select></label>{}{}{}{}\
         <button type=\"submit\">Filter</button> <a href=\"/\">Clear</a></form>",
        field("name", "Name", &filters.name, "exact name"),
        field("schedule", "Schedule", &filters.schedule, "schedule name"),
        field("since", "Since", &filters.since, "24h or 2026-12-05T07:00:00Z"),
        field("until", "Until", &filters.until, "1h or an instant"),
    )
}

/// The table's rows: each carries its flow's id and status for scripts.
fn rows(flows: &[FlowSummary], now: Timestamp) -> String {
    if flows.is_empty() {
        return "<tr><td colspan=\"6\" class=\"empty\">No flows match.</td></tr>".to_owned();
    }
    let mut out = String::new();
    for flow in flows {
        let id = flow.id.as_str();
        let mut notes = String::new();
        if flow.is_stalled(now) {
            notes.push_str(" <span class=\"tag\">⚠ stalled</span>");
        }
        if flow.cancel_requested_at.is_some() && !flow.status.is_terminal() {
            notes.push_str(" <span class=\"tag\">cancel requested</span>");
        }
        out.push_str(&format!(
            "<tr data-flow-id=\"{id}\" data-status=\"{status}\"><td>{badge}{notes}</td>\
             <td><a href=\"/flows/{href}\">{id}</a></td><td>{name}</td><td>{done}/{total}</td>\
             <td>{created}</td><td>{updated}</td></tr>",
            id = text(id),
            status = flow.status.as_str(),
            badge = html::status(flow.status.as_str()),
            href = text(&query_value(id)),
            name = text(&flow.name),
            done = flow.steps_done,
            total = flow.steps_total,
            created = html::time(flow.created_at),
            updated = html::time(flow.updated_at),
        ));
    }
    out
}

/// The bulk form: the filters, and what to do with every flow they match.
#[derive(Debug, Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(flatten)]
    filters: Filters,
}

/// Cancels or resumes every flow the filters match (at most [`MAX_BULK`]), each through the
/// action the API uses; the outcome is shown on the list.
pub async fn bulk(
    State(state): State<AppState>,
    viewer: Viewer,
    form: Result<Form<BulkForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, &error.body_text()),
    };
    if let Err(refused) = viewer.check_csrf(&form.csrf) {
        return *refused;
    }
    let filters = form.filters.cleaned();
    let back = format!("/?{}", filters.query_string());
    let cancel = match form.action.as_str() {
        "cancel" => true,
        "resume" => false,
        other => {
            return viewer
                .failed(&back, HttpError::bad_request(format!("no bulk action `{other}`")));
        }
    };
    let flows = match matching(&state, &viewer.owner, &filters).await {
        Ok(flows) => flows,
        Err(error) => return viewer.failed(&back, error),
    };
    let now = Timestamp::now();
    let (mut done, mut refused, mut first_refusal, mut skipped) = (0, 0, None, 0);
    for flow in flows {
        let applies = if cancel {
            !flow.status.is_terminal() && flow.cancel_requested_at.is_none()
        } else {
            matches!(flow.status, FlowStatus::Failed | FlowStatus::Blocked | FlowStatus::Lost)
                || flow.is_stalled(now)
        };
        if !applies {
            skipped += 1;
            continue;
        }
        let outcome = if cancel {
            actions::cancel(&state, &viewer.owner, flow.id.clone()).await.map(drop)
        } else {
            actions::resume(&state, &viewer.owner, flow.id.clone()).await.map(drop)
        };
        match outcome {
            Ok(()) => done += 1,
            Err(error) => {
                refused += 1;
                first_refusal.get_or_insert(format!("{}: {}", flow.id, error.message));
            }
        }
    }
    let verb = if cancel { "Cancel asked for" } else { "Resumed" };
    let mut message = format!("{verb} {done} flow(s).");
    if let Some(first) = first_refusal {
        let end = if first.ends_with(['.', '!', '?']) { "" } else { "." };
        message.push_str(&format!(" {refused} refused, the first: {first}{end}"));
    }
    if skipped > 0 {
        let why = if cancel {
            "had ended or had a cancel asked for already"
        } else {
            "had nothing to resume (a resume takes a failed, blocked, lost or stalled flow)"
        };
        message.push_str(&format!(" {skipped} other matching flow(s) {why}."));
    }
    viewer.done(&back, Notice { text: message, is_error: refused > 0 })
}

/// Every flow the filters match, newest first, at most [`MAX_BULK`].
async fn matching(
    state: &AppState,
    owner: &str,
    filters: &Filters,
) -> Result<Vec<FlowSummary>, HttpError> {
    let mut query = filters.query(None, 500)?;
    let handle = state.handle(owner)?;
    let mut flows = Vec::new();
    while flows.len() < MAX_BULK {
        let (reading, page_query) = (handle.clone(), query.clone());
        let page = blocking(move || reading.list(&page_query)).await?;
        let full = page.len() == query.limit as usize;
        if let Some(last) = page.last() {
            query.before = Some((last.created_at, last.id.clone()));
        }
        flows.extend(page);
        if !full {
            break;
        }
    }
    flows.truncate(MAX_BULK);
    Ok(flows)
}
