//! Writing a flow's changes: the one place where a flow row is updated and its revision row
//! appended, so that every accepted change bumps the revision and is recorded in the same
//! transaction.
//!
//! Only the columns that changed are written: a column left out of the `UPDATE` is neither
//! re-encoded nor re-checked, and `status`, which is indexed, keeps its index entry. A step that
//! begins or ends is not a change to the flow and never comes here.

use std::sync::OnceLock;

use rusqlite::{OptionalExtension, ToSql, params};
use serde_json::{Map, Value, json};

use super::transaction::Transaction;
use crate::error::{Error, Result};
use crate::model::{FieldChange, Flow, FlowId};
use crate::time::Timestamp;

/// Writes `after` over `before` if anything changed: bumps the revision, stamps `updated_at`,
/// and appends one revision row listing each changed field (plus `extra`, the changes that live
/// outside the flow row, such as a step's). A `new_token` replaces the lease token. Lease
/// renewals (the expiry alone) are not changes and are not written here.
pub(super) fn commit(
    tx: &Transaction<'_>,
    before: &Flow,
    mut after: Flow,
    extra: Vec<FieldChange>,
    actor: &str,
    now: Timestamp,
    new_token: Option<&str>,
) -> Result<Flow> {
    let fields = FieldSet::between(before, &after, new_token);
    let mut changes: Vec<FieldChange> = fields
        .iter()
        .filter(|field| field.is_revision_change(before, &after, new_token))
        .map(|field| field.change(before, &after))
        .collect();
    changes.extend(extra);
    if changes.is_empty() {
        return Ok(after);
    }
    after.revision = before.revision + 1;
    after.updated_at = now;
    let mut update = tx.prepare_cached(fields.update_sql())?;
    let mut index = 0;
    let mut bind = |value: &dyn ToSql| {
        index += 1;
        update.raw_bind_parameter(index, value)
    };
    for field in fields.iter() {
        field.bind(&after, new_token, &mut bind)?;
    }
    bind(&(after.revision as i64))?;
    bind(&now.as_millis())?;
    bind(&after.id.to_string())?;
    bind(&(before.revision as i64))?;
    let updated = update.raw_execute()?;
    drop(update);
    if updated != 1 {
        let current: Option<i64> = tx
            .prepare_cached("SELECT revision FROM flows WHERE id = ?1")?
            .query_row([after.id.to_string()], |row| row.get(0))
            .optional()?;
        return Err(match current {
            Some(current) => {
                Error::RevisionConflict { expected: before.revision, current: current as u64 }
            }
            None => Error::NotFound { id: after.id.to_string() },
        });
    }
    insert(tx, &after.id, after.revision, now, actor, &changes)?;
    tx.flow_written(after.id);
    Ok(after)
}

/// Appends revision `revision` of flow `id`.
pub(super) fn insert(
    tx: &Transaction<'_>,
    id: &FlowId,
    revision: u64,
    at: Timestamp,
    actor: &str,
    changes: &[FieldChange],
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO revisions (flow_id, revision, at, actor, change) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id.to_string(),
        revision as i64,
        at.as_millis(),
        actor,
        to_json(changes)
    ])?;
    Ok(())
}

/// A revision's change as stored: `[{"field", "before", "after"}, …]` in the order applied.
fn to_json(changes: &[FieldChange]) -> String {
    serde_json::to_string(changes).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) fn changes_from_json(text: &str) -> Result<Vec<FieldChange>> {
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
enum Field {
    Status,
    Goal,
    CurrentStep,
    State,
    Wait,
    Error,
    CancelRequestedAt,
    EndedAt,
    /// Holder, token and expiry.
    Lease,
}

impl Field {
    const ALL: [Field; 9] = [
        Field::Status,
        Field::Goal,
        Field::CurrentStep,
        Field::State,
        Field::Wait,
        Field::Error,
        Field::CancelRequestedAt,
        Field::EndedAt,
        Field::Lease,
    ];

    /// Whether the row's columns for this field must be written.
    fn differs(self, before: &Flow, after: &Flow, new_token: Option<&str>) -> bool {
        match self {
            Field::Status => before.status != after.status,
            Field::Goal => before.goal != after.goal,
            Field::CurrentStep => before.current_step != after.current_step,
            // An absent value and a JSON `null` are the same: both show as `null`.
            Field::State => json_or_null(&before.state) != json_or_null(&after.state),
            Field::Wait => json_or_null(&before.wait) != json_or_null(&after.wait),
            Field::Error => before.error != after.error,
            Field::CancelRequestedAt => before.cancel_requested_at != after.cancel_requested_at,
            Field::EndedAt => before.ended_at != after.ended_at,
            Field::Lease => before.lease != after.lease || new_token.is_some(),
        }
    }

    /// Whether the difference is a change the revision records: for the lease, a new holder or
    /// a new token, not a new expiry.
    fn is_revision_change(self, before: &Flow, after: &Flow, new_token: Option<&str>) -> bool {
        match self {
            Field::Lease => {
                new_token.is_some()
                    || before.lease.as_ref().map(|lease| &lease.holder)
                        != after.lease.as_ref().map(|lease| &lease.holder)
            }
            _ => true,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Status => "status",
            Field::Goal => "goal",
            Field::CurrentStep => "current_step",
            Field::State => "state",
            Field::Wait => "wait",
            Field::Error => "error",
            Field::CancelRequestedAt => "cancel_requested_at",
            Field::EndedAt => "ended_at",
            Field::Lease => "lease",
        }
    }

    /// The field as a revision shows it.
    fn shown(self, flow: &Flow) -> Value {
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
            Field::Error => text(flow.error.as_deref()),
            Field::CancelRequestedAt => time(flow.cancel_requested_at),
            Field::EndedAt => time(flow.ended_at),
            Field::Lease => {
                flow.lease.as_ref().map_or(Value::Null, |lease| json!(lease.holder.to_string()))
            }
        }
    }

    fn change(self, before: &Flow, after: &Flow) -> FieldChange {
        FieldChange {
            field: self.name().to_owned(),
            before: self.shown(before),
            after: self.shown(after),
        }
    }

    /// `column = ?, …` for this field, in an `UPDATE`'s `SET` list.
    fn assignment(self) -> &'static str {
        match self {
            Field::Status => "status = ?, ",
            Field::Goal => "goal = ?, ",
            Field::CurrentStep => "current_step = ?, ",
            Field::State => "state = ?, ",
            Field::Wait => "wait = ?, ",
            Field::Error => "error = ?, ",
            Field::CancelRequestedAt => "cancel_requested_at = ?, ",
            Field::EndedAt => "ended_at = ?, ",
            // Without a lease there is no token; with one, a new token replaces the stored one
            // and otherwise the stored one stays.
            Field::Lease => {
                "lease_token = CASE WHEN ? IS NULL THEN NULL ELSE coalesce(?, lease_token) END, \
                 lease_host = ?, lease_pid = ?, lease_process_start = ?, lease_expires_at = ?, "
            }
        }
    }

    /// Binds the values of [`Self::assignment`]'s parameters, in order.
    fn bind(
        self,
        flow: &Flow,
        new_token: Option<&str>,
        bind: &mut impl FnMut(&dyn ToSql) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
        match self {
            Field::Status => bind(&flow.status.as_str()),
            Field::Goal => bind(&flow.goal),
            Field::CurrentStep => bind(&flow.current_step),
            Field::State => bind(&json(&flow.state)),
            Field::Wait => bind(&json(&flow.wait)),
            Field::Error => bind(&flow.error),
            Field::CancelRequestedAt => bind(&flow.cancel_requested_at.map(Timestamp::as_millis)),
            Field::EndedAt => bind(&flow.ended_at.map(Timestamp::as_millis)),
            Field::Lease => {
                let lease = flow.lease.as_ref();
                let expires = lease.map(|lease| lease.expires_at.as_millis());
                bind(&expires)?;
                bind(&new_token)?;
                bind(&lease.map(|lease| lease.holder.host.as_str()))?;
                bind(&lease.map(|lease| lease.holder.pid))?;
                bind(
                    &lease.and_then(|lease| lease.holder.process_start).map(|start| start as i64),
                )?;
                bind(&expires)
            }
        }
    }
}

fn json_or_null(value: &Option<Value>) -> &Value {
    value.as_ref().unwrap_or(&Value::Null)
}

/// The fields one change touches, as a bit set over [`Field::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldSet(u16);

impl FieldSet {
    fn between(before: &Flow, after: &Flow, new_token: Option<&str>) -> Self {
        let mut bits = 0;
        for (bit, field) in Field::ALL.into_iter().enumerate() {
            if field.differs(before, after, new_token) {
                bits |= 1 << bit;
            }
        }
        FieldSet(bits)
    }

    fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL
            .into_iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, field)| field)
    }

    /// The `UPDATE` that writes these fields, the revision and `updated_at`; each text is
    /// built once, so the statement cache finds it by the same key every time.
    fn update_sql(self) -> &'static str {
        static SQL: OnceLock<Vec<String>> = OnceLock::new();
        let all = SQL.get_or_init(|| {
            (0..1u16 << Field::ALL.len())
                .map(|bits| {
                    let mut sql = String::from("UPDATE flows SET ");
                    for field in FieldSet(bits).iter() {
                        sql.push_str(field.assignment());
                    }
                    sql.push_str("revision = ?, updated_at = ? WHERE id = ? AND revision = ?");
                    sql
                })
                .collect()
        });
        &all[usize::from(self.0)]
    }
}
