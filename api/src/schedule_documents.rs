//! The JSON documents of schedules: what `schedules list | show | add | … --json` print, and what
//! a server answers. One definition of each shape, like [`crate::documents`] for flows.
//!
//! A slot is `{"at", "status", "flow_id", "flow_status", "reason", "last_at", "count",
//! "decided_at"}`: a slot that fired has its flow's id and status (`status` is `running` while
//! the flow runs, `ended` once it ended), one that did not run says why (`skipped`, `missed`,
//! `failed`), one that waits says for what (`gated`, `buffered`); a range of missed slots has
//! its last instant and how many it holds.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use serde_json::{Value, json};
use taskflow_store::{Revision, Schedule, ScheduleSpec, ScheduleSummary, Slot, Timing};

use taskflow_engine::pipeline::spec::duration_text;

use crate::documents;

/// `{"schedules": [{"name", "timing", "zone", "after", "paused", "revision", "next_slot",
/// "next_fire", "last_slot"}]}`, by name: what `schedules list` shows (`show` has the whole
/// spec). Serialized straight from the records, since a list can hold many thousands.
pub fn schedules_list(schedules: &[ScheduleSummary]) -> ScheduleList<'_> {
    ScheduleList { schedules: schedules.iter().map(ListRow).collect() }
}

/// The document of [`schedules_list`].
#[derive(Serialize)]
pub struct ScheduleList<'a> {
    schedules: Vec<ListRow<'a>>,
}

struct ListRow<'a>(&'a ScheduleSummary);

impl Serialize for ListRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ScheduleSummary { schedule, last_slot } = self.0;
        let mut row = serializer.serialize_struct("Schedule", 9)?;
        row.serialize_field("name", &schedule.name)?;
        row.serialize_field("timing", &timing_text(&schedule.spec.timing))?;
        row.serialize_field("zone", &schedule.spec.zone)?;
        row.serialize_field("after", &schedule.spec.after)?;
        row.serialize_field("paused", &schedule.paused)?;
        row.serialize_field("revision", &schedule.revision)?;
        row.serialize_field("next_slot", &schedule.next_slot)?;
        row.serialize_field("next_fire", &schedule.next_fire)?;
        row.serialize_field("last_slot", &last_slot.as_ref().map(SlotRow))?;
        row.end()
    }
}

struct SlotRow<'a>(&'a Slot);

impl Serialize for SlotRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let slot = self.0;
        let mut row = serializer.serialize_struct("Slot", 8)?;
        row.serialize_field("at", &slot.at)?;
        row.serialize_field("status", slot.status.as_str())?;
        row.serialize_field("flow_id", &slot.flow_id)?;
        row.serialize_field("flow_status", &slot.flow_status.map(|status| status.as_str()))?;
        row.serialize_field("reason", &slot.reason)?;
        row.serialize_field("last_at", &slot.last_at)?;
        row.serialize_field("count", &slot.count)?;
        row.serialize_field("decided_at", &slot.decided_at)?;
        row.end()
    }
}

/// `{"schedule", "slots"}`, the slots newest first.
pub fn schedule_show(record: &Schedule, slots: &[Slot]) -> Value {
    json!({ "schedule": schedule(record), "slots": slots.iter().map(slot).collect::<Vec<_>>() })
}

/// One schedule: what it is, and where its scheduler stands.
pub fn schedule(schedule: &Schedule) -> Value {
    json!({
        "name": schedule.name,
        "owner": schedule.owner,
        "revision": schedule.revision,
        "timing": timing_text(&schedule.spec.timing),
        "spec": spec(&schedule.spec),
        "paused": schedule.paused,
        "next_slot": schedule.next_slot,
        "next_fire": schedule.next_fire,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    })
}

/// What a schedule is, with durations as text (`2h`).
pub fn spec(spec: &ScheduleSpec) -> Value {
    let (cron, every) = match &spec.timing {
        Timing::Cron(cron) => (Some(cron.clone()), None),
        Timing::EveryMs(ms) => (None, Some(duration(*ms))),
    };
    json!({
        "cron": cron,
        "every": every,
        "zone": spec.zone,
        "after": spec.after,
        "within": spec.within_ms.map(duration),
        "otherwise": (!spec.after.is_empty()).then(|| spec.otherwise.as_str()),
        "overlap": spec.overlap.as_str(),
        "catch_up": spec.catch_up.as_str(),
        "catch_up_window": duration(spec.catch_up_window_ms),
        "max_catch_up": spec.max_catch_up,
        "jitter": duration(spec.jitter_ms),
        "timeout": spec.timeout_ms.map(duration),
    })
}

/// One slot, or a range of missed slots.
pub fn slot(slot: &Slot) -> Value {
    json!({
        "at": slot.at,
        "status": slot.status.as_str(),
        "flow_id": slot.flow_id,
        "flow_status": slot.flow_status.map(|status| status.as_str()),
        "reason": slot.reason,
        "last_at": slot.last_at,
        "count": slot.count,
        "decided_at": slot.decided_at,
    })
}

/// `{"revisions": [...]}` of a schedule, oldest first.
pub fn history(revisions: &[Revision]) -> Value {
    documents::history(revisions)
}

/// `cron 0 7 * * *` or `every 2s`: a schedule's timing in one phrase.
pub fn timing_text(timing: &Timing) -> String {
    match timing {
        Timing::Cron(cron) => cron.clone(),
        Timing::EveryMs(ms) => format!("every {}", duration(*ms)),
    }
}

/// Milliseconds in the largest unit that divides them: `1d`, `2h`, `30m`, `90s`, `1500ms`.
pub fn duration(ms: u64) -> String {
    duration_text::human(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_in_their_largest_whole_unit() {
        for (ms, text) in [
            (0, "0s"),
            (1500, "1500ms"),
            (90_000, "90s"),
            (1_800_000, "30m"),
            (7_200_000, "2h"),
            (86_400_000, "1d"),
            (90 * 60_000, "90m"),
        ] {
            assert_eq!(duration(ms), text, "{ms}");
        }
    }
}
