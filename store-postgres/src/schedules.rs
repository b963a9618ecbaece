//! Schedules, their history and their slots as SQL: the rows of `schedules`,
//! `schedule_revisions` and `slots`, read with the status of each slot's flow. In a write
//! transaction a schedule is loaded `FOR NO KEY UPDATE`, so its writers take turns like a
//! flow's.

use taskflow_store::{
    FieldChange, FlowId, Result, Revision, Schedule, ScheduleSummary, Slot, Timestamp,
};
use tokio_postgres::Row;

use crate::rows::{
    all, bad_column, count, get, json_encoded, millis, millis_of, parse, parse_optional, timestamp,
};
use crate::transaction::Transaction;

macro_rules! schedule_columns {
    ($prefix:literal, $pipeline:literal) => {
        concat!(
            $prefix,
            "name, ",
            $prefix,
            "owner, ",
            $prefix,
            "revision, ",
            $prefix,
            "spec, ",
            $pipeline,
            ", ",
            $prefix,
            "paused, ",
            $prefix,
            "next_slot, ",
            $prefix,
            "next_fire, ",
            $prefix,
            "created_at, ",
            $prefix,
            "updated_at"
        )
    };
}

/// A slot's columns, with its flow's status (`f`).
macro_rules! slot_columns {
    () => {
        "s.schedule, s.at, s.status, s.flow_id, f.status, s.reason, s.last_at, s.count, \
         s.decided_at"
    };
}

fn schedule_from_row(row: &Row) -> Result<Schedule> {
    let json = |index: usize| -> Result<serde_json::Value> {
        serde_json::from_str(get::<&str>(row, index)?).map_err(|error| bad_column(index, error))
    };
    Ok(Schedule {
        name: get(row, 0)?,
        owner: get(row, 1)?,
        revision: count(row, 2)?,
        spec: serde_json::from_value(json(3)?).map_err(|error| bad_column(3, error))?,
        pipeline: json(4)?,
        paused: get(row, 5)?,
        next_slot: timestamp(row, 6)?,
        next_fire: timestamp(row, 7)?,
        created_at: millis(row, 8)?,
        updated_at: millis(row, 9)?,
    })
}

/// A slot whose columns start at column `first`.
fn slot_at(row: &Row, first: usize) -> Result<Slot> {
    Ok(Slot {
        schedule: get(row, first)?,
        at: millis(row, first + 1)?,
        status: parse(row, first + 2)?,
        flow_id: parse_optional::<FlowId>(row, first + 3)?,
        flow_status: parse_optional(row, first + 4)?,
        reason: get(row, first + 5)?,
        last_at: timestamp(row, first + 6)?,
        count: count(row, first + 7)?,
        decided_at: millis(row, first + 8)?,
    })
}

fn slot_from_row(row: &Row) -> Result<Slot> {
    slot_at(row, 0)
}

fn texts(schedule: &Schedule) -> Result<(String, String)> {
    let spec = serde_json::to_string(&schedule.spec)?;
    Ok((spec, json_encoded(&schedule.pipeline)))
}

pub(crate) fn load(
    tx: &Transaction<'_>,
    owner: Option<&str>,
    name: &str,
) -> Result<Option<Schedule>> {
    const READ: &str = concat!(
        "SELECT ",
        schedule_columns!("", "pipeline"),
        " FROM schedules WHERE name = $1 AND ($2::text IS NULL OR owner = $2)"
    );
    const LOCK: &str = concat!(
        "SELECT ",
        schedule_columns!("", "pipeline"),
        " FROM schedules WHERE name = $1 AND ($2::text IS NULL OR owner = $2) FOR NO KEY UPDATE"
    );
    let sql = if tx.is_write() { LOCK } else { READ };
    tx.query_opt(sql, &[&name, &owner])?.as_ref().map(schedule_from_row).transpose()
}

pub(crate) fn insert(tx: &Transaction<'_>, schedule: &Schedule) -> Result<()> {
    let (spec, pipeline) = texts(schedule)?;
    tx.execute(
        "INSERT INTO schedules (name, owner, revision, spec, pipeline, paused, next_slot, \
         next_fire, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &schedule.name,
            &schedule.owner,
            &(schedule.revision as i64),
            &spec,
            &pipeline,
            &schedule.paused,
            &millis_of(schedule.next_slot),
            &millis_of(schedule.next_fire),
            &schedule.created_at.as_millis(),
            &schedule.updated_at.as_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn update(tx: &Transaction<'_>, schedule: &Schedule, revision: u64) -> Result<bool> {
    let (spec, pipeline) = texts(schedule)?;
    let updated = tx.execute(
        "UPDATE schedules SET revision = $1, spec = $2, pipeline = $3, paused = $4, \
         next_slot = $5, next_fire = $6, updated_at = $7 WHERE name = $8 AND revision = $9",
        &[
            &(schedule.revision as i64),
            &spec,
            &pipeline,
            &schedule.paused,
            &millis_of(schedule.next_slot),
            &millis_of(schedule.next_fire),
            &schedule.updated_at.as_millis(),
            &schedule.name,
            &(revision as i64),
        ],
    )?;
    Ok(updated == 1)
}

pub(crate) fn move_cursor(
    tx: &Transaction<'_>,
    name: &str,
    next_slot: Option<Timestamp>,
    next_fire: Option<Timestamp>,
) -> Result<()> {
    tx.execute(
        "UPDATE schedules SET next_slot = $1, next_fire = $2 WHERE name = $3",
        &[&millis_of(next_slot), &millis_of(next_fire), &name],
    )?;
    Ok(())
}

pub(crate) fn delete(tx: &Transaction<'_>, name: &str) -> Result<()> {
    tx.execute("DELETE FROM slots WHERE schedule = $1", &[&name])?;
    tx.execute("DELETE FROM schedule_revisions WHERE name = $1", &[&name])?;
    tx.execute("DELETE FROM schedules WHERE name = $1", &[&name])?;
    Ok(())
}

pub(crate) fn insert_revision(
    tx: &Transaction<'_>,
    name: &str,
    revision: u64,
    at: Timestamp,
    actor: &str,
    changes: &[FieldChange],
) -> Result<()> {
    crate::rows::insert_revision(
        tx,
        "INSERT INTO schedule_revisions (name, revision, at, actor, change) \
         VALUES ($1, $2, $3, $4, $5)",
        name,
        revision,
        at,
        actor,
        changes,
    )
}

pub(crate) fn history(tx: &Transaction<'_>, name: &str) -> Result<Vec<Revision>> {
    crate::rows::revisions(
        tx,
        "SELECT revision, at, actor, change FROM schedule_revisions WHERE name = $1 \
         ORDER BY revision",
        name,
    )
}

pub(crate) fn list(tx: &Transaction<'_>, owner: Option<&str>) -> Result<Vec<Schedule>> {
    const SQL: &str = concat!(
        "SELECT ",
        schedule_columns!("", "pipeline"),
        " FROM schedules WHERE $1::text IS NULL OR owner = $1 ORDER BY name"
    );
    all(tx.query(SQL, &[&owner])?, schedule_from_row)
}

/// `schedules list`: the owner's schedules by name, each with its newest slot and that slot's
/// flow's status, without their pipelines.
pub(crate) fn summaries(tx: &Transaction<'_>, owner: &str) -> Result<Vec<ScheduleSummary>> {
    const SQL: &str = concat!(
        "SELECT ",
        schedule_columns!("d.", "'null'"),
        ", ",
        slot_columns!(),
        " FROM schedules d \
         LEFT JOIN slots s ON s.schedule = d.name \
             AND s.at = (SELECT max(at) FROM slots WHERE schedule = d.name) \
         LEFT JOIN flows f ON f.id = s.flow_id \
         WHERE d.owner = $1 ORDER BY d.name"
    );
    all(tx.query(SQL, &[&owner])?, |row| {
        let schedule = schedule_from_row(row)?;
        let last_slot = match get::<Option<&str>>(row, 10)? {
            Some(_) => Some(slot_at(row, 10)?),
            None => None,
        };
        Ok(ScheduleSummary { schedule, last_slot })
    })
}

pub(crate) fn due(tx: &Transaction<'_>, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
    const SQL: &str = concat!(
        "SELECT ",
        schedule_columns!("", "pipeline"),
        " FROM schedules WHERE NOT paused AND next_fire IS NOT NULL AND next_fire <= $1 \
         ORDER BY next_fire LIMIT $2"
    );
    all(tx.query(SQL, &[&now.as_millis(), &i64::from(limit)])?, schedule_from_row)
}

pub(crate) fn next_fire(tx: &Transaction<'_>) -> Result<Option<Timestamp>> {
    let row = tx.query_one(
        "SELECT min(next_fire) FROM schedules WHERE NOT paused AND next_fire IS NOT NULL",
        &[],
    )?;
    timestamp(&row, 0)
}

pub(crate) fn slot(tx: &Transaction<'_>, name: &str, at: Timestamp) -> Result<Option<Slot>> {
    const SQL: &str = concat!(
        "SELECT ",
        slot_columns!(),
        " FROM slots s LEFT JOIN flows f ON f.id = s.flow_id WHERE s.schedule = $1 AND s.at = $2"
    );
    tx.query_opt(SQL, &[&name, &at.as_millis()])?.as_ref().map(slot_from_row).transpose()
}

pub(crate) fn slots(
    tx: &Transaction<'_>,
    name: &str,
    before: Option<Timestamp>,
    limit: u32,
) -> Result<Vec<Slot>> {
    const SQL: &str = concat!(
        "SELECT ",
        slot_columns!(),
        " FROM slots s LEFT JOIN flows f ON f.id = s.flow_id \
         WHERE s.schedule = $1 AND s.at < $2 ORDER BY s.at DESC LIMIT $3"
    );
    let before = before.map_or(i64::MAX, Timestamp::as_millis);
    all(tx.query(SQL, &[&name, &before, &i64::from(limit)])?, slot_from_row)
}

pub(crate) fn put(tx: &Transaction<'_>, slot: &Slot) -> Result<()> {
    tx.execute(
        "INSERT INTO slots (schedule, at, status, flow_id, reason, last_at, count, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (schedule, at) DO UPDATE SET status = EXCLUDED.status, \
         flow_id = EXCLUDED.flow_id, reason = EXCLUDED.reason, last_at = EXCLUDED.last_at, \
         count = EXCLUDED.count, decided_at = EXCLUDED.decided_at",
        &[
            &slot.schedule,
            &slot.at.as_millis(),
            &slot.status.as_str(),
            &slot.flow_id.as_ref().map(FlowId::as_str),
            &slot.reason,
            &millis_of(slot.last_at),
            &(slot.count as i64),
            &slot.decided_at.as_millis(),
        ],
    )?;
    Ok(())
}

pub(crate) fn open(tx: &Transaction<'_>, limit: u32) -> Result<Vec<Slot>> {
    const SQL: &str = concat!(
        "SELECT ",
        slot_columns!(),
        " FROM slots s LEFT JOIN flows f ON f.id = s.flow_id \
         WHERE s.status IN ('running', 'gated', 'buffered') ORDER BY s.at LIMIT $1"
    );
    all(tx.query(SQL, &[&i64::from(limit)])?, slot_from_row)
}

pub(crate) fn flow_settled(
    tx: &Transaction<'_>,
    id: &FlowId,
    ended: bool,
    at: Timestamp,
) -> Result<()> {
    let status = if ended { "ended" } else { "running" };
    tx.execute(
        "UPDATE slots SET status = $1, decided_at = $2 WHERE flow_id = $3 AND status <> $1",
        &[&status, &at.as_millis(), &id.as_str()],
    )?;
    Ok(())
}
