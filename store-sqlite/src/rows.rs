//! Flow and step rows as the store's records: the column lists every query selects, and the
//! decoding of a row into a [`Flow`] or a [`Step`].

use std::str::FromStr;

use rusqlite::Row;
use rusqlite::types::Type;
use serde_json::Value;
use taskflow_store::revision;
use taskflow_store::{Flow, LeaseHolder, LeaseInfo, Result, Revision, Signal, Step, Timestamp};

use crate::error::Sql;
use crate::transaction::Transaction;

/// The flow columns in the order [`flow_from_row`] reads them; the spec lives in `flow_specs`,
/// and a managed flow's current step is the last step of its journal (a mirrored flow's is what
/// its owner reported).
pub(crate) const FLOW_COLUMNS: &str = "id, owner, name, sync_mode, controller, status, revision, \
    goal, \
    CASE sync_mode WHEN 'managed' THEN \
        (SELECT name FROM steps WHERE flow_id = flows.id ORDER BY seq DESC LIMIT 1) \
        ELSE current_step END, \
    state, wait, (SELECT spec FROM flow_specs WHERE flow_id = flows.id), \
    parent_flow_id, cancel_requested_at, lease_token, \
    lease_host, lease_pid, lease_process_start, lease_expires_at, created_at, updated_at, \
    ended_at, error, wake_at";

/// [`FLOW_COLUMNS`] with `NULL` for the spec: a spec can be large (a pipeline of thousands of
/// steps) and no write changes it, so the step-by-step path neither reads nor parses it.
pub(crate) fn flow_columns_without_spec() -> &'static str {
    static COLUMNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        FLOW_COLUMNS.replacen("(SELECT spec FROM flow_specs WHERE flow_id = flows.id)", "NULL", 1)
    })
}

pub(crate) const STEP_COLUMNS: &str = "flow_id, seq, name, kind, status, attempt, \
    idempotency_key, input, output, error, started_at, ended_at, child_flow_id";

/// The lease in four columns from `at`: `lease_host, lease_pid, lease_process_start,
/// lease_expires_at` (none when it has no expiry).
pub(crate) fn lease_columns(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<LeaseInfo>> {
    let Some(expires_at) = row.get::<_, Option<i64>>(at + 3)? else { return Ok(None) };
    Ok(Some(LeaseInfo {
        holder: LeaseHolder {
            host: row.get(at)?,
            pid: row.get(at + 1)?,
            process_start: row.get::<_, Option<i64>>(at + 2)?.map(|start| start as u64),
        },
        expires_at: Timestamp::from_millis(expires_at),
    }))
}

pub(crate) const SIGNAL_COLUMNS: &str = "id, flow_id, name, payload, sent_at, taken_by, taken_at";

/// The revisions `sql` selects for `key` (`revision, at, actor, change`, oldest first): a flow's
/// or a schedule's history, read the same way.
pub(crate) fn revisions(tx: &Transaction<'_>, sql: &str, key: &str) -> Result<Vec<Revision>> {
    let mut statement = tx.prepare_cached(sql).sql()?;
    let rows = statement
        .query_map([key], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .sql()?;
    let mut revisions = Vec::new();
    for row in rows {
        let (revision, at, actor, change) = row.sql()?;
        revisions.push(Revision {
            revision: revision as u64,
            at: Timestamp::from_millis(at),
            actor,
            change: revision::changes_from_json(&change)?,
        });
    }
    Ok(revisions)
}

/// Writes one revision of `key` with `sql` (`INSERT … (KEY, revision, at, actor, change)`): a
/// flow's or a schedule's history, written the same way.
pub(crate) fn insert_revision(
    tx: &Transaction<'_>,
    sql: &str,
    key: &str,
    revision: u64,
    at: Timestamp,
    actor: &str,
    changes: &[taskflow_store::FieldChange],
) -> Result<()> {
    let change = revision::changes_to_json(changes);
    tx.prepare_cached(sql)
        .sql()?
        .execute(rusqlite::params![key, revision as i64, at.as_millis(), actor, change])
        .sql()?;
    Ok(())
}

pub(crate) fn signal_from_row(row: &Row<'_>) -> rusqlite::Result<Signal> {
    Ok(Signal {
        id: row.get::<_, i64>(0)? as u64,
        flow_id: parse_column(row, 1)?,
        name: row.get(2)?,
        payload: json_column(row, 3)?.unwrap_or(Value::Null),
        sent_at: Timestamp::from_millis(row.get(4)?),
        taken_by: row.get(5)?,
        taken_at: timestamp_column(row, 6)?,
    })
}

/// A flow and its lease token.
pub(crate) fn flow_from_row(row: &Row<'_>) -> rusqlite::Result<(Flow, Option<String>)> {
    let lease = lease_columns(row, 15)?;
    let flow = Flow {
        id: parse_column(row, 0)?,
        owner: row.get(1)?,
        name: row.get(2)?,
        sync_mode: parse_column(row, 3)?,
        controller: row.get(4)?,
        status: parse_column(row, 5)?,
        revision: row.get::<_, i64>(6)? as u64,
        goal: row.get(7)?,
        current_step: row.get(8)?,
        state: json_column(row, 9)?,
        wait: json_column(row, 10)?,
        wake_at: timestamp_column(row, 23)?,
        spec: json_column(row, 11)?,
        parent_flow_id: optional_parse_column(row, 12)?,
        cancel_requested_at: timestamp_column(row, 13)?,
        lease,
        created_at: Timestamp::from_millis(row.get(19)?),
        updated_at: Timestamp::from_millis(row.get(20)?),
        ended_at: timestamp_column(row, 21)?,
        error: row.get(22)?,
    };
    Ok((flow, row.get(14)?))
}

pub(crate) fn step_from_row(row: &Row<'_>) -> rusqlite::Result<Step> {
    Ok(Step {
        flow_id: parse_column(row, 0)?,
        seq: row.get(1)?,
        name: row.get(2)?,
        kind: parse_column(row, 3)?,
        status: parse_column(row, 4)?,
        attempt: row.get(5)?,
        idempotency_key: row.get(6)?,
        input: json_column(row, 7)?,
        output: json_column(row, 8)?,
        error: row.get(9)?,
        started_at: Timestamp::from_millis(row.get(10)?),
        ended_at: timestamp_column(row, 11)?,
        child_flow_id: optional_parse_column(row, 12)?,
    })
}

fn conversion_error(
    index: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
}

pub(crate) fn parse_column<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(index)?;
    text.parse().map_err(|error| conversion_error(index, error))
}

fn optional_parse_column<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match row.get::<_, Option<String>>(index)? {
        Some(text) => text.parse().map(Some).map_err(|error| conversion_error(index, error)),
        None => Ok(None),
    }
}

fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Value>> {
    match row.get_ref(index)?.as_bytes_or_null()? {
        Some(text) => {
            serde_json::from_slice(text).map(Some).map_err(|error| conversion_error(index, error))
        }
        None => Ok(None),
    }
}

pub(crate) fn timestamp_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp::from_millis))
}

/// `value` as JSON text. `serde_json::to_string` writes straight into the string; a value's
/// `Display` goes through a formatter adapter and costs about twice as much per step. Encoding
/// a `Value` cannot fail; `Display` stays as the fallback all the same.
pub(crate) fn json_encoded(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

pub(crate) fn json_text(value: Option<&Value>) -> Option<String> {
    value.map(json_encoded)
}
