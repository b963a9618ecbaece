//! How the CLI shows schedules: a table of schedules, a schedule's fields and its slots, or with
//! `--json` the api's schedule documents.

use taskflow_api::schedule_documents::{self as documents, duration, timing_text};
use taskflow_engine::{Revision, Schedule, ScheduleSummary, Slot, SlotStatus, Timestamp};

use crate::render::{print_json, table};

/// `schedules list`.
pub fn list(schedules: &[ScheduleSummary], owner: &str, json: bool) {
    if json {
        print_json(&documents::schedules_list(schedules));
        return;
    }
    if schedules.is_empty() {
        println!("no schedules for owner `{owner}`");
        return;
    }
    let rows = schedules.iter().map(|summary| {
        let schedule = &summary.schedule;
        let (last, status) = match &summary.last_slot {
            Some(slot) => (at_text(slot.at), slot_status(slot)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        vec![
            schedule.name.clone(),
            timing_text(&schedule.spec.timing),
            schedule.spec.zone.clone(),
            next(schedule),
            last,
            status,
            if schedule.paused { "yes".to_owned() } else { "no".to_owned() },
        ]
    });
    let header = ["NAME", "TIMING", "ZONE", "NEXT", "LAST SLOT", "STATUS", "PAUSED"];
    print!("{}", table(&header, rows));
}

/// `schedules show`: the schedule's fields, then its slots newest first.
pub fn show(schedule: &Schedule, slots: &[Slot], json: bool) {
    if json {
        print_json(&documents::schedule_show(schedule, slots));
        return;
    }
    let spec = &schedule.spec;
    let mut fields = vec![
        ("schedule", schedule.name.clone()),
        ("owner", schedule.owner.clone()),
        ("timing", timing_text(&spec.timing)),
        ("zone", spec.zone.clone()),
        ("revision", schedule.revision.to_string()),
        ("paused", schedule.paused.to_string()),
        ("next", next(schedule)),
        ("overlap", spec.overlap.to_string()),
        (
            "catch-up",
            format!(
                "{} within {}, at most {}",
                spec.catch_up,
                duration(spec.catch_up_window_ms),
                spec.max_catch_up
            ),
        ),
    ];
    if !spec.after.is_empty() {
        let within = spec.within_ms.map(duration).unwrap_or_default();
        fields.push((
            "after",
            format!("{} within {within}, otherwise {}", spec.after.join(", "), spec.otherwise),
        ));
    }
    if spec.jitter_ms > 0 {
        fields.push(("jitter", duration(spec.jitter_ms)));
    }
    if let Some(timeout) = spec.timeout_ms {
        fields.push(("timeout", duration(timeout)));
    }
    let width = fields.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in fields {
        println!("{label:<width$}  {value}");
    }
    println!();
    if slots.is_empty() {
        println!("no slots yet");
        return;
    }
    let rows = slots.iter().map(|slot| {
        let at = match (slot.last_at, slot.count) {
            (Some(last), count) => {
                format!("{} … {} ({count} slots)", at_text(slot.at), at_text(last))
            }
            _ => at_text(slot.at),
        };
        vec![
            at,
            slot_status(slot),
            slot.flow_id.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".to_owned()),
            slot.reason.clone().unwrap_or_default(),
        ]
    });
    print!("{}", table(&["SLOT", "STATUS", "FLOW", "REASON"], rows));
}

/// `schedules history`.
pub fn history(revisions: &[Revision], json: bool) {
    if json {
        print_json(&documents::history(revisions));
        return;
    }
    crate::render::history(revisions, false);
}

/// What a command did to a schedule: `schedule NAME added …`.
pub fn changed(schedule: &Schedule, what: &str, json: bool) {
    if json {
        print_json(
            &serde_json::json!({ "schedule": documents::schedule(schedule), "change": what }),
        );
        return;
    }
    let paused = if schedule.paused { ", paused" } else { "" };
    println!(
        "schedule {} {what}: {} ({}), next slot {}{paused}",
        schedule.name,
        timing_text(&schedule.spec.timing),
        schedule.spec.zone,
        next(schedule)
    );
}

/// Slots fired by hand.
pub fn fired(name: &str, slots: &[Slot], json: bool) {
    if json {
        let slots: Vec<_> = slots.iter().map(documents::slot).collect();
        print_json(&serde_json::json!({ "schedule": name, "slots": slots }));
        return;
    }
    if slots.is_empty() {
        println!("schedule {name} has no slot in that range");
        return;
    }
    for slot in slots {
        let at = at_text(slot.at);
        match (&slot.flow_id, &slot.reason) {
            (Some(flow), _) => println!("slot {at} of {name}: flow {flow} ({})", slot_status(slot)),
            (None, Some(reason)) => println!("slot {at} of {name}: {}, {reason}", slot.status),
            (None, None) => println!("slot {at} of {name}: {}", slot.status),
        }
    }
    if slots.iter().any(|slot| slot.flow_id.is_some()) {
        println!(
            "a running `taskflow serve` or `taskflow worker` runs them (or `taskflow flows \
             resume ID`)"
        );
    }
}

/// The slot a trigger fired; within the second of an earlier trigger, that slot, said to have
/// fired already; or the slot skipped, and why. With `--json`, `fired` says whether this
/// trigger made the slot's flow.
pub fn triggered(name: &str, slot: &Slot, now: bool, json: bool) {
    if json {
        let slots = [documents::slot(slot)];
        print_json(&serde_json::json!({ "schedule": name, "slots": slots, "fired": now }));
        return;
    }
    if !now && slot.flow_id.is_some() {
        println!(
            "slot {} of {name} had fired already (a trigger names a second)",
            at_text(slot.at)
        );
    }
    fired(name, std::slice::from_ref(slot), json);
}

/// An instant as slots are: to the second when it is a whole second.
fn at_text(at: Timestamp) -> String {
    let text = at.to_string();
    match text.strip_suffix(".000Z") {
        Some(seconds) => format!("{seconds}Z"),
        None => text,
    }
}

/// A slot's status as a person reads it: a fired slot is its flow's status.
fn slot_status(slot: &Slot) -> String {
    match (slot.status, slot.flow_status) {
        (SlotStatus::Running | SlotStatus::Ended, Some(flow)) => format!("fired, {flow}"),
        (status, _) => status.to_string(),
    }
}

fn next(schedule: &Schedule) -> String {
    // A paused schedule's cursor stays where the pause found it: no slot of it is next.
    if schedule.paused {
        return "- (paused)".to_owned();
    }
    match (schedule.next_slot, schedule.next_fire) {
        (Some(slot), Some(fire)) if fire != slot => {
            format!("{} (fires {})", at_text(slot), at_text(fire))
        }
        (Some(slot), _) => at_text(slot),
        _ => "-".to_owned(),
    }
}
