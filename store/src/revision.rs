//! What a change to a flow record is: which fields differ between the flow before and after,
//! which of those differences the history records, and how a revision shows them. Every backend
//! writes a change from this one diff (the semantics bump the revision and append its row; the
//! backend writes the columns of the [`FieldSet`]), so all of them record the same history.

use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::model::{FieldChange, Flow};
use crate::time::Timestamp;

/// A revision's change as stored: `[{"field", "before", "after"}, …]` in the order applied.
pub fn changes_to_json(changes: &[FieldChange]) -> String {
    serde_json::to_string(changes).unwrap_or_else(|_| "[]".to_owned())
}

pub fn changes_from_json(text: &str) -> Result<Vec<FieldChange>> {
    let items: Vec<Map<String, Value>> = serde_json::from_str(text)?;
    Ok(items
        .into_iter()
        .map(|mut item| FieldChange {
            field: item
                .remove("field")
                .and_then(|f| f.as_str().map(str::to_owned))
                .unwrap_or_default(),
            before: item.remove("before").unwrap_or(Value::Null),
            after: item.remove("after").unwrap_or(Value::Null),
        })
        .collect())
}

/// The parts of a flow row a change can touch, in the order revisions list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Status,
    Goal,
    CurrentStep,
    State,
    Wait,
    /// When a waiting flow is due to run again.
    WakeAt,
    Error,
    CancelRequestedAt,
    EndedAt,
    /// Holder, token and expiry.
    Lease,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Status,
        Field::Goal,
        Field::CurrentStep,
        Field::State,
        Field::Wait,
        Field::WakeAt,
        Field::Error,
        Field::CancelRequestedAt,
        Field::EndedAt,
        Field::Lease,
    ];

    /// Whether the row's columns for this field must be written.
    pub fn differs(self, before: &Flow, after: &Flow, new_token: Option<&str>) -> bool {
        match self {
            Field::Status => before.status != after.status,
            Field::Goal => before.goal != after.goal,
            Field::CurrentStep => before.current_step != after.current_step,
            // An absent value and a JSON `null` are the same: both show as `null`.
            Field::State => json_or_null(&before.state) != json_or_null(&after.state),
            Field::Wait => json_or_null(&before.wait) != json_or_null(&after.wait),
            Field::WakeAt => before.wake_at != after.wake_at,
            Field::Error => before.error != after.error,
            Field::CancelRequestedAt => before.cancel_requested_at != after.cancel_requested_at,
            Field::EndedAt => before.ended_at != after.ended_at,
            Field::Lease => before.lease != after.lease || new_token.is_some(),
        }
    }

    /// Whether the difference is a change the revision records: for the lease, a new holder or
    /// a new token, not a new expiry.
    pub fn is_revision_change(self, before: &Flow, after: &Flow, new_token: Option<&str>) -> bool {
        match self {
            Field::Lease => {
                new_token.is_some()
                    || before.lease.as_ref().map(|lease| &lease.holder)
                        != after.lease.as_ref().map(|lease| &lease.holder)
            }
            _ => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Field::Status => "status",
            Field::Goal => "goal",
            Field::CurrentStep => "current_step",
            Field::State => "state",
            Field::Wait => "wait",
            Field::WakeAt => "wake_at",
            Field::Error => "error",
            Field::CancelRequestedAt => "cancel_requested_at",
            Field::EndedAt => "ended_at",
            Field::Lease => "lease",
        }
    }

    /// The field as a revision shows it.
    pub fn shown(self, flow: &Flow) -> Value {
        fn text(value: Option<&str>) -> Value {
            value.map_or(Value::Null, |text| json!(text))
        }
        fn time(value: Option<Timestamp>) -> Value {
            value.map_or(Value::Null, |at| json!(at.to_string()))
        }
        match self {
            Field::Status => json!(flow.status.as_str()),
            Field::Goal => text(flow.goal.as_deref()),
            Field::CurrentStep => text(flow.current_step.as_deref()),
            Field::State => flow.state.clone().unwrap_or(Value::Null),
            Field::Wait => flow.wait.clone().unwrap_or(Value::Null),
            Field::WakeAt => time(flow.wake_at),
            Field::Error => text(flow.error.as_deref()),
            Field::CancelRequestedAt => time(flow.cancel_requested_at),
            Field::EndedAt => time(flow.ended_at),
            Field::Lease => {
                flow.lease.as_ref().map_or(Value::Null, |lease| json!(lease.holder.to_string()))
            }
        }
    }

    pub fn change(self, before: &Flow, after: &Flow) -> FieldChange {
        FieldChange {
            field: self.name().to_owned(),
            before: self.shown(before),
            after: self.shown(after),
        }
    }
}

fn json_or_null(value: &Option<Value>) -> &Value {
    value.as_ref().unwrap_or(&Value::Null)
}

/// The fields one change touches, as a bit set over [`Field::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSet(u16);

impl FieldSet {
    pub fn between(before: &Flow, after: &Flow, new_token: Option<&str>) -> Self {
        let mut bits = 0;
        for (bit, field) in Field::ALL.into_iter().enumerate() {
            if field.differs(before, after, new_token) {
                bits |= 1 << bit;
            }
        }
        FieldSet(bits)
    }

    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL
            .into_iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, field)| field)
    }

    /// The set as bits over [`Field::ALL`] (bit `i` is `Field::ALL[i]`), e.g. to index
    /// statements prepared per set.
    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn from_bits(bits: u16) -> Self {
        FieldSet(bits & ((1 << Field::ALL.len()) - 1))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}
