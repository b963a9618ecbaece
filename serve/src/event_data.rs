//! What a reader of the change feed is sent of an event, as the `data:` of its server-sent
//! event: the change, and neither what the event's own lines say (its `id:` and its `event:`,
//! the change's kind) nor what the reader already knows (the owner: a watch sees only its own
//! owner's events). A hundred watchers get every event, so each byte left out of it is a
//! hundred bytes fewer through the sockets per change.
//!
//! The steps a change wrote with its flow's revision (a report's steps, a checkpoint's ended
//! and begun steps) travel inside that revision's event, as its `steps`, each with its own
//! event id: one server-sent event per accepted change, without a frame, a flow id and a time
//! repeated for each of its steps.

use std::ops::Range;

use serde::Serialize;
use taskflow_store::{Change, Event, FlowId, FlowStatus, StepStatus, Timestamp};

/// An event's data: `{"flow_id", "at"}` with, for a flow, `revision`, `status`, `current_step`
/// and `fields` (and `steps`, when steps came with the revision); for a step, `seq`, `name`,
/// `status` and `attempt`.
#[derive(Debug, Serialize)]
pub struct EventData<'a> {
    flow_id: &'a FlowId,
    at: &'a Timestamp,
    #[serde(flatten)]
    change: ChangeData<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    steps: Vec<StepEntry<'a>>,
}

/// A step that came with a flow's revision: its event's id and its change.
#[derive(Debug, Serialize)]
struct StepEntry<'a> {
    id: u64,
    #[serde(flatten)]
    change: ChangeData<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ChangeData<'a> {
    Flow {
        revision: u64,
        status: FlowStatus,
        current_step: &'a Option<String>,
        fields: &'a [String],
    },
    Step {
        seq: u32,
        name: &'a str,
        status: StepStatus,
        attempt: u32,
    },
}

impl<'a> ChangeData<'a> {
    fn of(change: &'a Change) -> Self {
        match change {
            Change::Flow { revision, status, current_step, fields } => {
                ChangeData::Flow { revision: *revision, status: *status, current_step, fields }
            }
            Change::Step { seq, name, status, attempt } => {
                ChangeData::Step { seq: *seq, name, status: *status, attempt: *attempt }
            }
        }
    }
}

impl<'a> EventData<'a> {
    /// The data of one event, on its own.
    pub fn of(event: &'a Event) -> Self {
        Self::packed(&[], event)
    }

    /// The data of `event` carrying `steps`, the step events that came just before it with the
    /// same flow and time (see [`units`]).
    pub fn packed(steps: &'a [Event], event: &'a Event) -> Self {
        let steps = steps
            .iter()
            .map(|step| StepEntry { id: step.id, change: ChangeData::of(&step.change) })
            .collect();
        EventData {
            flow_id: &event.flow_id,
            at: &event.at,
            change: ChangeData::of(&event.change),
            steps,
        }
    }
}

/// How `events` (in id order) go out as server-sent events: the ranges of them that make one
/// each, in order. A flow's event makes one with the step events just before it of the same
/// flow and time (the steps its change wrote, which the store appends before the revision's
/// event); any other event makes one alone.
pub fn units(events: &[Event]) -> Vec<Range<usize>> {
    let mut units = Vec::with_capacity(events.len());
    // Where the step events that may come with the next flow event begin.
    let mut steps_from = 0;
    for (at, event) in events.iter().enumerate() {
        if let Change::Flow { .. } = event.change {
            let joins = |step: &Event| step.flow_id == event.flow_id && step.at == event.at;
            let apart = events[steps_from..at].iter().rposition(|step| !joins(step));
            let first = steps_from + apart.map_or(0, |apart| apart + 1);
            units.extend((steps_from..first).map(|alone| alone..alone + 1));
            units.push(first..at + 1);
            steps_from = at + 1;
        }
    }
    units.extend((steps_from..events.len()).map(|alone| alone..alone + 1));
    units
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow_change(revision: u64) -> Change {
        Change::Flow {
            revision,
            status: FlowStatus::Running,
            current_step: Some("fetch".into()),
            fields: vec!["current_step".into()],
        }
    }

    fn step_change(seq: u32) -> Change {
        Change::Step { seq, name: "fetch".into(), status: StepStatus::Succeeded, attempt: 1 }
    }

    /// Event `id` of flow `flow` at second `at`: a flow's change when `kind` is `'f'`, a step's
    /// otherwise.
    fn event(id: u64, kind: char, flow: &str, at: i64) -> Event {
        let change = if kind == 'f' { flow_change(id) } else { step_change(id as u32) };
        Event {
            id,
            flow_id: flow.parse().unwrap(),
            owner: "alice".into(),
            at: Timestamp::from_millis(at * 1_000),
            change,
        }
    }

    #[test]
    fn the_data_holds_the_change_and_not_what_the_frame_or_the_reader_knows() {
        let data = |event: &Event| serde_json::to_value(EventData::of(event)).unwrap();
        assert_eq!(
            data(&event(2, 'f', "f", 1)),
            json!({"flow_id": "f", "at": "1970-01-01T00:00:01.000Z", "revision": 2,
                   "status": "running", "current_step": "fetch", "fields": ["current_step"]})
        );
        assert_eq!(
            data(&event(3, 's', "f", 1)),
            json!({"flow_id": "f", "at": "1970-01-01T00:00:01.000Z", "seq": 3, "name": "fetch",
                   "status": "succeeded", "attempt": 1})
        );
    }

    #[test]
    fn a_flows_event_carries_the_steps_that_came_with_it_each_with_its_id() {
        let (steps, flow) = ([event(4, 's', "f", 1), event(5, 's', "f", 1)], event(6, 'f', "f", 1));
        assert_eq!(
            serde_json::to_value(EventData::packed(&steps, &flow)).unwrap(),
            json!({"flow_id": "f", "at": "1970-01-01T00:00:01.000Z", "revision": 6,
            "status": "running", "current_step": "fetch", "fields": ["current_step"],
            "steps": [
                {"id": 4, "seq": 4, "name": "fetch", "status": "succeeded", "attempt": 1},
                {"id": 5, "seq": 5, "name": "fetch", "status": "succeeded", "attempt": 1},
            ]})
        );
    }

    /// The server-sent events `events` (each `(id, kind, flow, second)`) make, as the ids each
    /// holds.
    fn check(events: &[(u64, char, &str, i64)], expected: &[&[u64]]) {
        let events: Vec<Event> =
            events.iter().map(|&(id, kind, flow, at)| event(id, kind, flow, at)).collect();
        let made: Vec<Vec<u64>> = units(&events)
            .into_iter()
            .map(|unit| events[unit].iter().map(|event| event.id).collect())
            .collect();
        assert_eq!(made, expected, "{events:?}");
    }

    #[test]
    fn a_flows_event_takes_the_steps_just_before_it_of_its_flow_and_time() {
        check(&[], &[]);
        check(&[(1, 'f', "a", 1)], &[&[1]]);
        check(&[(1, 's', "a", 1), (2, 's', "a", 1), (3, 'f', "a", 1)], &[&[1, 2, 3]]);
        // A step of another flow, or of another time, goes alone, and so do those before it.
        check(
            &[(1, 's', "a", 1), (2, 's', "b", 1), (3, 's', "a", 1), (4, 'f', "a", 1)],
            &[&[1], &[2], &[3, 4]],
        );
        check(&[(1, 's', "a", 1), (2, 's', "a", 2), (3, 'f', "a", 2)], &[&[1], &[2, 3]]);
        check(&[(1, 's', "a", 1), (2, 'f', "b", 1)], &[&[1], &[2]]);
        // Steps after the last flow's event, and flow events one after another, go alone.
        check(
            &[(1, 'f', "a", 1), (2, 'f', "a", 1), (3, 's', "a", 1), (4, 's', "a", 1)],
            &[&[1], &[2], &[3], &[4]],
        );
    }
}
