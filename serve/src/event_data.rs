//! What a reader of the change feed is sent of an event, as the `data:` of its server-sent
//! event: the change, and neither what the event's own lines say (its `id:` and its `event:`,
//! the change's kind) nor what the reader already knows (the owner: a watch sees only its own
//! owner's events). A hundred watchers get every event, so each byte left out of it is a
//! hundred bytes fewer through the sockets per change.

use serde::Serialize;
use taskflow_store::{Change, Event, FlowId, FlowStatus, StepStatus, Timestamp};

/// An event's data: `{"flow_id", "at"}` with, for a flow, `revision`, `status`, `current_step`
/// and `fields`; for a step, `seq`, `name`, `status` and `attempt`.
#[derive(Debug, Serialize)]
pub struct EventData<'a> {
    flow_id: &'a FlowId,
    at: &'a Timestamp,
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

impl<'a> EventData<'a> {
    pub fn of(event: &'a Event) -> Self {
        let change = match &event.change {
            Change::Flow { revision, status, current_step, fields } => {
                ChangeData::Flow { revision: *revision, status: *status, current_step, fields }
            }
            Change::Step { seq, name, status, attempt } => {
                ChangeData::Step { seq: *seq, name, status: *status, attempt: *attempt }
            }
        };
        EventData { flow_id: &event.flow_id, at: &event.at, change }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(change: Change) -> serde_json::Value {
        let event = Event {
            id: 7,
            flow_id: "f".parse().unwrap(),
            owner: "alice".into(),
            at: Timestamp::from_millis(1_000),
            change,
        };
        serde_json::to_value(EventData::of(&event)).unwrap()
    }

    #[test]
    fn the_data_holds_the_change_and_not_what_the_frame_or_the_reader_knows() {
        let flow = Change::Flow {
            revision: 2,
            status: FlowStatus::Running,
            current_step: Some("fetch".into()),
            fields: vec!["current_step".into()],
        };
        assert_eq!(
            data(flow),
            json!({"flow_id": "f", "at": "1970-01-01T00:00:01.000Z", "revision": 2,
                   "status": "running", "current_step": "fetch", "fields": ["current_step"]})
        );
        let step = Change::Step {
            seq: 3,
            name: "fetch".into(),
            status: StepStatus::Succeeded,
            attempt: 1,
        };
        assert_eq!(
            data(step),
            json!({"flow_id": "f", "at": "1970-01-01T00:00:01.000Z", "seq": 3, "name": "fetch",
                   "status": "succeeded", "attempt": 1})
        );
    }
}
