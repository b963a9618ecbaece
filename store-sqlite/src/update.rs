//! Writing a change to a flow row: the `UPDATE` of exactly the columns of the fields that
//! changed (a column left out is neither re-encoded nor re-checked, and `status`, which is
//! indexed, keeps its index entry), one statement text per [`FieldSet`], built once so that the
//! statement cache finds it by the same key every time.

use std::sync::OnceLock;

use rusqlite::ToSql;
use serde_json::Value;
use taskflow_store::revision::{Field, FieldSet};
use taskflow_store::{Flow, Timestamp};

/// The `UPDATE` that writes `fields`, the revision and `updated_at` of one flow whose revision
/// is still the one read: `SET …, revision = ?, updated_at = ? WHERE id = ? AND revision = ?`.
pub(crate) fn update_sql(fields: FieldSet) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..1u16 << Field::ALL.len())
            .map(|bits| {
                let mut sql = String::from("UPDATE flows SET ");
                for field in FieldSet::from_bits(bits).iter() {
                    sql.push_str(assignment(field));
                }
                sql.push_str("revision = ?, updated_at = ? WHERE id = ? AND revision = ?");
                sql
            })
            .collect()
    });
    &all[usize::from(fields.bits())]
}

/// `column = ?, …` for `field`, in an `UPDATE`'s `SET` list.
fn assignment(field: Field) -> &'static str {
    match field {
        Field::Status => "status = ?, ",
        Field::Goal => "goal = ?, ",
        Field::CurrentStep => "current_step = ?, ",
        Field::State => "state = ?, ",
        Field::Wait => "wait = ?, ",
        Field::WakeAt => "wake_at = ?, ",
        Field::Error => "error = ?, ",
        Field::CancelRequestedAt => "cancel_requested_at = ?, ",
        Field::EndedAt => "ended_at = ?, ",
        // Without a lease there is no token; with one, a new token replaces the stored one and
        // otherwise the stored one stays.
        Field::Lease => {
            "lease_token = CASE WHEN ? IS NULL THEN NULL ELSE coalesce(?, lease_token) END, \
             lease_host = ?, lease_pid = ?, lease_process_start = ?, lease_expires_at = ?, "
        }
    }
}

/// Binds the values of [`assignment`]'s parameters for `field` of `flow`, in order.
pub(crate) fn bind(
    field: Field,
    flow: &Flow,
    new_token: Option<&str>,
    bind: &mut impl FnMut(&dyn ToSql) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    match field {
        Field::Status => bind(&flow.status.as_str()),
        Field::Goal => bind(&flow.goal),
        Field::CurrentStep => bind(&flow.current_step),
        Field::State => bind(&json(&flow.state)),
        Field::Wait => bind(&json(&flow.wait)),
        Field::WakeAt => bind(&flow.wake_at.map(Timestamp::as_millis)),
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
            bind(&lease.and_then(|lease| lease.holder.process_start).map(|start| start as i64))?;
            bind(&expires)
        }
    }
}
