//! Writing a change to a flow row: the `UPDATE` of exactly the columns of the fields that
//! changed, one statement text per [`FieldSet`], built once so each connection prepares it once.
//!
//! The update is guarded by the revision read, and fails (a division by zero: `error.rs` says
//! what it means; only the guards of a checkpoint from memory, `known.rs`, divide too, and they
//! run first) when it finds no such row.
//! The transaction holds the lock of the flow's tree from the read on, so that never happens,
//! and the update needs no answer: it is queued with the transaction's next statement or its
//! `COMMIT`, whose failure it would be.

use std::sync::OnceLock;

use serde_json::Value;
use taskflow_store::revision::{Field, FieldSet};
use taskflow_store::{Flow, Timestamp};

use crate::transaction::Owned;

/// The `UPDATE` that writes `fields`, the revision and `updated_at` of one flow whose revision
/// is still the one read, failing when there is none.
pub(crate) fn update_sql(fields: FieldSet) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..1u16 << Field::ALL.len())
            .map(|bits| {
                let mut sql = String::from("WITH changed AS (UPDATE flows SET ");
                let mut next = 1;
                for field in FieldSet::from_bits(bits).iter() {
                    sql.push_str(&assignment(field, &mut next));
                }
                let n = next;
                sql.push_str(&format!(
                    "revision = ${n}::bigint, updated_at = ${}::bigint \
                     WHERE id = ${}::text AND revision = ${}::bigint RETURNING 1) \
                     SELECT 1 / count(*)::int FROM changed",
                    n + 1,
                    n + 2,
                    n + 3
                ));
                sql
            })
            .collect()
    });
    &all[usize::from(fields.bits())]
}

/// `column = $n, …` for `field`, numbering its parameters from `next`.
fn assignment(field: Field, next: &mut usize) -> String {
    let mut param = |cast: &str| {
        let text = format!("${next}::{cast}");
        *next += 1;
        text
    };
    match field {
        Field::Status => format!("status = {}, ", param("text")),
        Field::Goal => format!("goal = {}, ", param("text")),
        Field::CurrentStep => format!("current_step = {}, ", param("text")),
        Field::State => format!("state = {}, ", param("text")),
        Field::Wait => format!("wait = {}, ", param("text")),
        Field::WakeAt => format!("wake_at = {}, ", param("bigint")),
        Field::Error => format!("error = {}, ", param("text")),
        Field::CancelRequestedAt => format!("cancel_requested_at = {}, ", param("bigint")),
        Field::EndedAt => format!("ended_at = {}, ", param("bigint")),
        // Without a lease there is no token; with one, a new token replaces the stored one and
        // otherwise the stored one stays.
        Field::Lease => {
            let (expires, token) = (param("bigint"), param("text"));
            let (host, pid, start, expiry) =
                (param("text"), param("bigint"), param("bigint"), param("bigint"));
            format!(
                "lease_token = CASE WHEN {expires} IS NULL THEN NULL \
                 ELSE coalesce({token}, lease_token) END, lease_host = {host}, \
                 lease_pid = {pid}, lease_process_start = {start}, lease_expires_at = {expiry}, "
            )
        }
    }
}

/// The values of [`assignment`]'s parameters for `field` of `flow`, in order.
pub(crate) fn values(field: Field, flow: &Flow, new_token: Option<&str>, out: &mut Vec<Owned>) {
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    match field {
        Field::Status => out.push(Box::new(flow.status.as_str().to_owned())),
        Field::Goal => out.push(Box::new(flow.goal.clone())),
        Field::CurrentStep => out.push(Box::new(flow.current_step.clone())),
        Field::State => out.push(Box::new(json(&flow.state))),
        Field::Wait => out.push(Box::new(json(&flow.wait))),
        Field::WakeAt => out.push(Box::new(flow.wake_at.map(Timestamp::as_millis))),
        Field::Error => out.push(Box::new(flow.error.clone())),
        Field::CancelRequestedAt => {
            out.push(Box::new(flow.cancel_requested_at.map(Timestamp::as_millis)))
        }
        Field::EndedAt => out.push(Box::new(flow.ended_at.map(Timestamp::as_millis))),
        Field::Lease => {
            let lease = flow.lease.as_ref();
            let expires = lease.map(|lease| lease.expires_at.as_millis());
            out.push(Box::new(expires));
            out.push(Box::new(new_token.map(str::to_owned)));
            out.push(Box::new(lease.map(|lease| lease.holder.host.clone())));
            out.push(Box::new(lease.map(|lease| i64::from(lease.holder.pid))));
            out.push(Box::new(
                lease.and_then(|lease| lease.holder.process_start).map(|s| s as i64),
            ));
            out.push(Box::new(expires));
        }
    }
}
