//! Rows as the store's records: the column lists every query selects, and the decoding of a
//! row into a [`Flow`], a [`Step`] or a [`Signal`]. The lists are SQLite's (`store-sqlite`'s
//! `rows.rs`) in the same order, so a flow reads the same on both backends.

use std::str::FromStr;

use serde_json::Value;
use taskflow_store::{
    Error, Flow, LeaseHolder, LeaseInfo, Result, Revision, Signal, Step, StorageError,
    StorageErrorKind, Timestamp, revision,
};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::error::Pg;
use crate::transaction::Transaction;

/// The flow columns in the order [`flow_from_row`] reads them, from `flows` (no alias; other
/// tables of the query may have columns of the same names).
macro_rules! flow_columns {
    ($spec:literal) => {
        concat!(
            "flows.id, flows.owner, flows.name, flows.sync_mode, flows.controller, ",
            "flows.status, flows.revision, flows.goal, ",
            "CASE flows.sync_mode WHEN 'managed' THEN ",
            "(SELECT s.name FROM steps s WHERE s.flow_id = flows.id ORDER BY s.seq DESC LIMIT 1) ",
            "ELSE flows.current_step END, flows.state, flows.wait, ",
            $spec,
            ", flows.parent_flow_id, flows.cancel_requested_at, flows.lease_token, ",
            "flows.lease_host, flows.lease_pid, flows.lease_process_start, ",
            "flows.lease_expires_at, flows.created_at, flows.updated_at, flows.ended_at, ",
            "flows.error, flows.wake_at"
        )
    };
}
pub(crate) use flow_columns;

/// The step columns in the order [`step_from_row`] reads them.
macro_rules! step_columns {
    () => {
        "flow_id, seq, name, kind, status, attempt, idempotency_key, input, output, error, \
         started_at, ended_at, child_flow_id"
    };
}
pub(crate) use step_columns;

macro_rules! signal_columns {
    () => {
        "id, flow_id, name, payload, sent_at, taken_by, taken_at"
    };
}
pub(crate) use signal_columns;

/// A value of a row that is not one the store writes.
pub(crate) fn bad_column(index: usize, error: impl std::fmt::Display) -> Error {
    Error::Storage(StorageError::new(
        StorageErrorKind::Corrupt,
        "",
        format!("column {index} holds a value taskflow does not write: {error}"),
    ))
}

pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).pg()
}

pub(crate) fn parse<T>(row: &Row, index: usize) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text: &str = get(row, index)?;
    text.parse().map_err(|error| bad_column(index, error))
}

pub(crate) fn parse_optional<T>(row: &Row, index: usize) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get::<Option<&str>>(row, index)? {
        Some(text) => text.parse().map(Some).map_err(|error| bad_column(index, error)),
        None => Ok(None),
    }
}

pub(crate) fn json(row: &Row, index: usize) -> Result<Option<Value>> {
    match get::<Option<&str>>(row, index)? {
        Some(text) => {
            serde_json::from_str(text).map(Some).map_err(|error| bad_column(index, error))
        }
        None => Ok(None),
    }
}

pub(crate) fn timestamp(row: &Row, index: usize) -> Result<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, index)?.map(Timestamp::from_millis))
}

pub(crate) fn millis(row: &Row, index: usize) -> Result<Timestamp> {
    Ok(Timestamp::from_millis(get(row, index)?))
}

pub(crate) fn count(row: &Row, index: usize) -> Result<u64> {
    Ok(get::<i64>(row, index)? as u64)
}

pub(crate) fn small(row: &Row, index: usize) -> Result<u32> {
    let value: i64 = get(row, index)?;
    u32::try_from(value).map_err(|error| bad_column(index, error))
}

/// The lease in four columns from `at`: `lease_host, lease_pid, lease_process_start,
/// lease_expires_at` (none when it has no expiry).
pub(crate) fn lease(row: &Row, at: usize) -> Result<Option<LeaseInfo>> {
    let Some(expires_at) = get::<Option<i64>>(row, at + 3)? else { return Ok(None) };
    Ok(Some(LeaseInfo {
        holder: LeaseHolder {
            host: get::<Option<String>>(row, at)?.unwrap_or_default(),
            pid: get::<Option<i64>>(row, at + 1)?.unwrap_or_default() as u32,
            process_start: get::<Option<i64>>(row, at + 2)?.map(|start| start as u64),
        },
        expires_at: Timestamp::from_millis(expires_at),
    }))
}

/// A flow and its lease token.
pub(crate) fn flow_from_row(row: &Row) -> Result<(Flow, Option<String>)> {
    let flow = Flow {
        id: parse(row, 0)?,
        owner: get(row, 1)?,
        name: get(row, 2)?,
        sync_mode: parse(row, 3)?,
        controller: get(row, 4)?,
        status: parse(row, 5)?,
        revision: count(row, 6)?,
        goal: get(row, 7)?,
        current_step: get(row, 8)?,
        state: json(row, 9)?,
        wait: json(row, 10)?,
        wake_at: timestamp(row, 23)?,
        spec: json(row, 11)?,
        parent_flow_id: parse_optional(row, 12)?,
        cancel_requested_at: timestamp(row, 13)?,
        lease: lease(row, 15)?,
        created_at: millis(row, 19)?,
        updated_at: millis(row, 20)?,
        ended_at: timestamp(row, 21)?,
        error: get(row, 22)?,
    };
    Ok((flow, get(row, 14)?))
}

pub(crate) fn step_from_row(row: &Row) -> Result<Step> {
    Ok(Step {
        flow_id: parse(row, 0)?,
        seq: small(row, 1)?,
        name: get(row, 2)?,
        kind: parse(row, 3)?,
        status: parse(row, 4)?,
        attempt: small(row, 5)?,
        idempotency_key: get(row, 6)?,
        input: json(row, 7)?,
        output: json(row, 8)?,
        error: get(row, 9)?,
        started_at: millis(row, 10)?,
        ended_at: timestamp(row, 11)?,
        child_flow_id: parse_optional(row, 12)?,
    })
}

pub(crate) fn signal_from_row(row: &Row) -> Result<Signal> {
    Ok(Signal {
        id: count(row, 0)?,
        flow_id: parse(row, 1)?,
        name: get(row, 2)?,
        payload: json(row, 3)?.unwrap_or(Value::Null),
        sent_at: millis(row, 4)?,
        taken_by: get::<Option<i64>>(row, 5)?.map(|seq| seq as u32),
        taken_at: timestamp(row, 6)?,
    })
}

/// Decodes every row with `decode`.
pub(crate) fn all<T>(rows: Vec<Row>, decode: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(decode).collect()
}

/// The revisions `sql` selects for `key` (`revision, at, actor, change`, oldest first): a
/// flow's or a schedule's history, read the same way.
pub(crate) fn revisions(
    tx: &Transaction<'_>,
    sql: &'static str,
    key: &str,
) -> Result<Vec<Revision>> {
    all(tx.query(sql, &[&key])?, |row| {
        Ok(Revision {
            revision: count(row, 0)?,
            at: millis(row, 1)?,
            actor: get(row, 2)?,
            change: revision::changes_from_json(get(row, 3)?)?,
        })
    })
}

/// Writes one revision of `key` with `sql` (`INSERT … (KEY, revision, at, actor, change)`),
/// queued: nothing waits for its answer, and its failure fails the transaction.
pub(crate) fn insert_revision(
    tx: &Transaction<'_>,
    sql: &'static str,
    key: &str,
    revision: u64,
    at: Timestamp,
    actor: &str,
    changes: &[taskflow_store::FieldChange],
) -> Result<()> {
    let change = revision::changes_to_json(changes);
    tx.queue(
        sql,
        vec![
            Box::new(key.to_owned()),
            Box::new(revision as i64),
            Box::new(at.as_millis()),
            Box::new(actor.to_owned()),
            Box::new(change),
        ],
    );
    Ok(())
}

/// `value` as JSON text.
pub(crate) fn json_encoded(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

pub(crate) fn json_text(value: Option<&Value>) -> Option<String> {
    value.map(json_encoded)
}

pub(crate) fn millis_of(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::as_millis)
}
