//! The schedules pages: `/schedules` lists the owner's schedules (timing, the schedules each
//! waits for, when it fires next, its latest slot), `/schedules/{name}` one schedule with its
//! recent slots (fired with their flow, or skipped, missed, gated… with the reason), each
//! with the buttons to pause, resume or trigger it. Both follow the change feed, since a slot
//! that fires is a flow created.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use taskflow_api::graph;
use taskflow_api::schedule_documents::timing_text;
use taskflow_store::{Schedule, ScheduleSummary, Slot};

use super::html::{self, action_form, query_value, text};
use super::viewer::{Viewer, refusal};
use crate::blocking::blocking;
use crate::state::AppState;

/// How many slots a schedule's page shows.
const RECENT_SLOTS: u32 = 30;

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    /// `live`: only the sections that change.
    pub part: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Response {
    let part = params.ok().and_then(|Query(params)| params.part);
    let seen = match crate::feed::tail(state.taskflow()).await {
        Ok(seen) => seen,
        Err(error) => return refusal(error.status, &error.message),
    };
    // The gates' picture is laid out with the read: laying it out takes time.
    let read = match state.handle(&viewer.owner) {
        Ok(handle) => {
            blocking(move || {
                let schedules = handle.schedules()?;
                let picture = gates(&schedules);
                Ok::<_, taskflow_store::Error>((schedules, picture))
            })
            .await
        }
        Err(error) => Err(error.into()),
    };
    let (schedules, picture) = match read {
        Ok(read) => read,
        Err(error) => return refusal(error.status, &error.message),
    };
    let live = format!(
        "<section id=\"schedules\" data-live>{picture}{}</section>",
        table(&viewer, &schedules)
    );
    if part.as_deref() == Some("live") {
        return viewer.html(StatusCode::OK, live);
    }
    let body_data = format!(
        "data-page=\"schedules\" data-events=\"/v1/events?after={seen}\" \
         data-live=\"/schedules?part=live\""
    );
    let frame = viewer.page("Schedules", "schedules", body_data);
    viewer.html(StatusCode::OK, frame.render(&format!("<h1>Schedules</h1>{live}")))
}

fn table(viewer: &Viewer, schedules: &[ScheduleSummary]) -> String {
    if schedules.is_empty() {
        return "<p>No schedules. Add one with <code>taskflow schedules add</code>.</p>".to_owned();
    }
    let mut out = String::from(
        "<table class=\"schedules\"><thead><tr><th scope=\"col\">Schedule</th>\
         <th scope=\"col\">Timing</th><th scope=\"col\">Runs after</th><th scope=\"col\">Next fire</th>\
         <th scope=\"col\">Latest slot</th><th scope=\"col\">Actions</th></tr></thead><tbody>",
    );
    for ScheduleSummary { schedule, last_slot } in schedules {
        out.push_str(&format!(
            "<tr data-schedule=\"{name}\" data-paused=\"{paused}\"><td><a href=\"{href}\">{name}</a>{state}</td>\
             <td>{timing} <span class=\"zone\">{zone}</span></td><td>{after}</td><td>{next}</td>\
             <td>{slot}</td><td>{buttons}</td></tr>",
            name = text(&schedule.name),
            paused = schedule.paused,
            href = text(&schedule_page(&schedule.name)),
            state = if schedule.paused { " <span class=\"tag\">⏸ paused</span>" } else { "" },
            timing = text(&timing_text(&schedule.spec.timing)),
            zone = text(&schedule.spec.zone),
            after = after(schedule),
            next = if schedule.paused { "–".to_owned() } else { html::maybe_time(schedule.next_fire) },
            slot = last_slot.as_ref().map_or_else(|| "–".to_owned(), slot_summary),
            buttons = buttons(viewer, schedule),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// The picture of the gates between the schedules, when any waits for another.
fn gates(schedules: &[ScheduleSummary]) -> String {
    graph::schedules::inline_svg(schedules).map_or_else(String::new, |svg| {
        let svg = svg.unwrap_or_else(|too_many| {
            format!("<p class=\"note\">{}</p>", text(&too_many.to_string()))
        });
        format!(
            "<figure class=\"graph gates\">{svg}<figcaption>An arrow points from a schedule to the \
             schedules whose slots wait for it to succeed; each box is in the status of its \
             latest slot.</figcaption></figure>"
        )
    })
}

fn schedule_page(name: &str) -> String {
    format!("/schedules/{}", query_value(name))
}

/// The schedules a schedule's slots wait for, each a link to its page.
fn after(schedule: &Schedule) -> String {
    if schedule.spec.after.is_empty() {
        return "–".to_owned();
    }
    schedule
        .spec
        .after
        .iter()
        .map(|name| format!("⟵ <a href=\"{}\">{}</a>", text(&schedule_page(name)), text(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn buttons(viewer: &Viewer, schedule: &Schedule) -> String {
    let page = schedule_page(&schedule.name);
    let toggle = if schedule.paused {
        action_form(&viewer.session, &format!("{page}/resume"), "", "Resume")
    } else {
        action_form(&viewer.session, &format!("{page}/pause"), "", "Pause")
    };
    let trigger = action_form(&viewer.session, &format!("{page}/trigger"), "", "Trigger now");
    let flows = format!("<a href=\"/?schedule={}\">Flows</a>", text(&query_value(&schedule.name)));
    format!("{toggle} {trigger} {flows}")
}

/// A slot in a line: its status, its instant, its flow, and why.
fn slot_summary(slot: &Slot) -> String {
    let flow = match &slot.flow_id {
        Some(flow) => format!(
            " <a href=\"/flows/{}\" data-flow-id=\"{f}\">{f}</a> {}",
            text(&query_value(flow.as_str())),
            slot.flow_status.map(|status| html::status(status.as_str())).unwrap_or_default(),
            f = text(flow.as_str())
        ),
        None => String::new(),
    };
    let reason = slot
        .reason
        .as_ref()
        .map(|reason| format!(" <span class=\"reason\">{}</span>", text(reason)))
        .unwrap_or_default();
    format!("{} {}{flow}{reason}", html::status(slot.status.as_str()), html::time(slot.at))
}

pub async fn one(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Response {
    let part = params.ok().and_then(|Query(params)| params.part);
    let wanted = name.clone();
    let seen = match crate::feed::tail(state.taskflow()).await {
        Ok(seen) => seen,
        Err(error) => return refusal(error.status, &error.message),
    };
    let read = match state.handle(&viewer.owner) {
        Ok(handle) => blocking(move || handle.schedule(&wanted, None, RECENT_SLOTS)).await,
        Err(error) => Err(error.into()),
    };
    let (schedule, slots) = match read {
        Ok(read) => read,
        Err(error) => return refusal(error.status, &error.message),
    };
    let live = format!(
        "<section id=\"schedule\" data-live>{}</section><section id=\"slots\" data-live>\
         <h2>Recent slots</h2>{}</section>",
        facts(&viewer, &schedule),
        slots_table(&slots)
    );
    if part.as_deref() == Some("live") {
        return viewer.html(StatusCode::OK, live);
    }
    let page = schedule_page(&name);
    let body_data = format!(
        "data-page=\"schedule\" data-events=\"/v1/events?after={seen}\" data-live=\"{}\"",
        text(&format!("{page}?part=live"))
    );
    let title = format!("Schedule {name}");
    let frame = viewer.page(&title, "schedules", body_data);
    viewer.html(
        StatusCode::OK,
        frame.render(&format!("<a href=\"/schedules\">← Schedules</a>{live}")),
    )
}

fn facts(viewer: &Viewer, schedule: &Schedule) -> String {
    let spec = &schedule.spec;
    format!(
        "<h1>{name}{paused}</h1><dl class=\"facts\"><dt>Timing</dt><dd>{timing}</dd>\
         <dt>Zone</dt><dd>{zone}</dd><dt>Runs after</dt><dd>{after}</dd>\
         <dt>Overlap</dt><dd>{overlap}</dd><dt>Catch up</dt><dd>{catch_up}</dd>\
         <dt>Next slot</dt><dd>{next_slot}</dd><dt>Next fire</dt><dd>{next_fire}</dd>\
         <dt>Revision</dt><dd>{revision}</dd></dl><div class=\"actions\">{buttons}</div>",
        name = text(&schedule.name),
        paused = if schedule.paused { " <span class=\"tag\">⏸ paused</span>" } else { "" },
        timing = text(&timing_text(&spec.timing)),
        zone = text(&spec.zone),
        after = after(schedule),
        overlap = spec.overlap.as_str(),
        catch_up = spec.catch_up.as_str(),
        next_slot = html::maybe_time(schedule.next_slot),
        next_fire = if schedule.paused {
            "– (paused)".to_owned()
        } else {
            html::maybe_time(schedule.next_fire)
        },
        revision = schedule.revision,
        buttons = buttons(viewer, schedule),
    )
}

fn slots_table(slots: &[Slot]) -> String {
    if slots.is_empty() {
        return "<p>No slot has come yet.</p>".to_owned();
    }
    let mut out = String::from(
        "<table class=\"slots\"><thead><tr><th scope=\"col\">Slot</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">Flow</th><th scope=\"col\">Reason</th><th scope=\"col\">Decided</th>\
         </tr></thead><tbody>",
    );
    for slot in slots {
        let range = match slot.last_at {
            Some(last) => format!(" to {} ({} slots)", html::time(last), slot.count),
            None => String::new(),
        };
        let flow = match &slot.flow_id {
            Some(flow) => format!(
                "<a href=\"/flows/{}\" data-flow-id=\"{f}\">{f}</a> {}",
                text(&query_value(flow.as_str())),
                slot.flow_status.map(|status| html::status(status.as_str())).unwrap_or_default(),
                f = text(flow.as_str())
            ),
            None => "–".to_owned(),
        };
        out.push_str(&format!(
            "<tr data-status=\"{status}\"><td>{at}{range}</td><td>{badge}</td><td>{flow}</td>\
             <td>{reason}</td><td>{decided}</td></tr>",
            status = slot.status.as_str(),
            at = html::time(slot.at),
            badge = html::status(slot.status.as_str()),
            reason = text(slot.reason.as_deref().unwrap_or("–")),
            decided = html::time(slot.decided_at),
        ));
    }
    out.push_str("</tbody></table>");
    out
}
