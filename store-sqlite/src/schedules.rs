//! Schedules, their history and their slots as SQL: the rows of `schedules`,
//! `schedule_revisions` and `slots`, read with the status of each slot's flow.

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};
use taskflow_store::{
    FieldChange, FlowId, Result, Revision, Schedule, ScheduleSummary, Slot, Timestamp,
};

use crate::error::Sql;
use crate::rows::{json_encoded, parse_column, timestamp_column};
use crate::transaction::Transaction;

const SCHEDULE_COLUMNS: &str = "name, owner, revision, spec, pipeline, paused, next_slot, \
    next_fire, created_at, updated_at";

/// A slot's columns, with its flow's status (`f`).
const SLOT_COLUMNS: &str = "s.schedule, s.at, s.status, s.flow_id, f.status, s.reason, \
    s.last_at, s.count, s.decided_at";

fn conversion(index: usize, error: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
}

fn schedule_from_row(row: &Row<'_>) -> rusqlite::Result<Schedule> {
    // The JSON columns are read in place, not copied into strings first.
    let spec = row.get_ref(3)?.as_bytes()?;
    let spec = serde_json::from_slice(spec).map_err(|error| conversion(3, error))?;
    let pipeline = row.get_ref(4)?.as_bytes()?;
    let pipeline = serde_json::from_slice(pipeline).map_err(|error| conversion(4, error))?;
    Ok(Schedule {
        name: row.get(0)?,
        owner: row.get(1)?,
        revision: row.get::<_, i64>(2)? as u64,
        spec,
        pipeline,
        paused: row.get(5)?,
        next_slot: timestamp_column(row, 6)?,
        next_fire: timestamp_column(row, 7)?,
        created_at: Timestamp::from_millis(row.get(8)?),
        updated_at: Timestamp::from_millis(row.get(9)?),
    })
}

fn slot_from_row(row: &Row<'_>) -> rusqlite::Result<Slot> {
    slot_at(row, 0)
}

/// A slot whose [`SLOT_COLUMNS`] start at column `first`.
fn slot_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Slot> {
    let conversion = |index: usize, error: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, error)
    };
    let flow_id = row.get::<_, Option<String>>(first + 3)?;
    let flow_status = row.get::<_, Option<String>>(first + 4)?;
    Ok(Slot {
        schedule: row.get(first)?,
        at: Timestamp::from_millis(row.get(first + 1)?),
        status: parse_column(row, first + 2)?,
        flow_id: flow_id
            .map(|id| FlowId::parse(&id))
            .transpose()
            .map_err(|error| conversion(first + 3, Box::new(error)))?,
        flow_status: flow_status.map(|status| status.parse()).transpose().map_err(
            |error: taskflow_store::status::UnknownStatus| conversion(first + 4, Box::new(error)),
        )?,
        reason: row.get(first + 5)?,
        last_at: timestamp_column(row, first + 6)?,
        count: row.get::<_, i64>(first + 7)? as u64,
        decided_at: Timestamp::from_millis(row.get(first + 8)?),
    })
}

fn spec_text(schedule: &Schedule) -> Result<(String, String)> {
    let spec = serde_json::to_string(&schedule.spec)?;
    Ok((spec, json_encoded(&schedule.pipeline)))
}

fn millis(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::as_millis)
}

pub(crate) fn load(
    tx: &Transaction<'_>,
    owner: Option<&str>,
    name: &str,
) -> Result<Option<Schedule>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1 AND (?2 IS NULL OR owner = ?2)"
        )
    });
    tx.prepare_cached(sql)
        .sql()?
        .query_row(params![name, owner], schedule_from_row)
        .optional()
        .sql()
}

pub(crate) fn insert(tx: &Transaction<'_>, schedule: &Schedule) -> Result<()> {
    let (spec, pipeline) = spec_text(schedule)?;
    tx.prepare_cached(
        "INSERT INTO schedules (name, owner, revision, spec, pipeline, paused, next_slot, \
         next_fire, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .sql()?
    .execute(params![
        schedule.name,
        schedule.owner,
        schedule.revision as i64,
        spec,
        pipeline,
        schedule.paused,
        millis(schedule.next_slot),
        millis(schedule.next_fire),
        schedule.created_at.as_millis(),
        schedule.updated_at.as_millis(),
    ])
    .sql()?;
    Ok(())
}

pub(crate) fn update(tx: &Transaction<'_>, schedule: &Schedule, revision: u64) -> Result<bool> {
    let (spec, pipeline) = spec_text(schedule)?;
    let updated = tx
        .prepare_cached(
            "UPDATE schedules SET revision = ?1, spec = ?2, pipeline = ?3, paused = ?4, \
             next_slot = ?5, next_fire = ?6, updated_at = ?7 WHERE name = ?8 AND revision = ?9",
        )
        .sql()?
        .execute(params![
            schedule.revision as i64,
            spec,
            pipeline,
            schedule.paused,
            millis(schedule.next_slot),
            millis(schedule.next_fire),
            schedule.updated_at.as_millis(),
            schedule.name,
            revision as i64,
        ])
        .sql()?;
    Ok(updated == 1)
}

pub(crate) fn move_cursor(
    tx: &Transaction<'_>,
    name: &str,
    next_slot: Option<Timestamp>,
    next_fire: Option<Timestamp>,
) -> Result<()> {
    tx.prepare_cached("UPDATE schedules SET next_slot = ?1, next_fire = ?2 WHERE name = ?3")
        .sql()?
        .execute(params![millis(next_slot), millis(next_fire), name])
        .sql()?;
    Ok(())
}

pub(crate) fn delete(tx: &Transaction<'_>, name: &str) -> Result<()> {
    for sql in [
        "DELETE FROM slots WHERE schedule = ?1",
        "DELETE FROM schedule_revisions WHERE name = ?1",
        "DELETE FROM schedules WHERE name = ?1",
    ] {
        tx.prepare_cached(sql).sql()?.execute([name]).sql()?;
    }
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
         VALUES (?1, ?2, ?3, ?4, ?5)",
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
        "SELECT revision, at, actor, change FROM schedule_revisions WHERE name = ?1 \
         ORDER BY revision",
        name,
    )
}

pub(crate) fn list(tx: &Transaction<'_>, owner: Option<&str>) -> Result<Vec<Schedule>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE ?1 IS NULL OR owner = ?1 ORDER BY name"
        )
    });
    tx.prepare_cached(sql)
        .sql()?
        .query_map([owner], schedule_from_row)
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
}

/// One statement for `schedules list`: the owner's schedules in name order, each with its
/// newest slot found by the slots' key, and that slot's flow by its key. The table is read in
/// the order of its key (the name), skipping other owners' rows: cheaper than a lookup of each
/// row through `schedules_by_owner` while a database holds few owners. The pipeline is not
/// read.
fn summaries_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let columns = SCHEDULE_COLUMNS
            .split(", ")
            .map(|column| match column {
                "pipeline" => "'null'".to_owned(),
                column => format!("d.{column}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {columns}, {SLOT_COLUMNS} FROM schedules d \
             LEFT JOIN slots s ON s.schedule = d.name \
                 AND s.at = (SELECT max(at) FROM slots WHERE schedule = d.name) \
             LEFT JOIN flows f ON f.id = s.flow_id \
             WHERE +d.owner = ?1 ORDER BY d.name"
        )
    })
}

pub(crate) fn summaries(tx: &Transaction<'_>, owner: &str) -> Result<Vec<ScheduleSummary>> {
    tx.prepare_cached(summaries_sql())
        .sql()?
        .query_map([owner], |row| {
            let schedule = schedule_from_row(row)?;
            let last_slot = match row.get_ref(10)?.as_str_or_null()? {
                Some(_) => Some(slot_at(row, 10)?),
                None => None,
            };
            Ok(ScheduleSummary { schedule, last_slot })
        })
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
}

pub(crate) fn due(tx: &Transaction<'_>, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules INDEXED BY schedules_due \
             WHERE paused = 0 AND next_fire IS NOT NULL AND next_fire <= ?1 \
             ORDER BY next_fire LIMIT ?2"
        )
    });
    tx.prepare_cached(sql)
        .sql()?
        .query_map(params![now.as_millis(), i64::from(limit)], schedule_from_row)
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
}

pub(crate) fn next_fire(tx: &Transaction<'_>) -> Result<Option<Timestamp>> {
    let at: Option<i64> = tx
        .prepare_cached(
            "SELECT min(next_fire) FROM schedules INDEXED BY schedules_due \
             WHERE paused = 0 AND next_fire IS NOT NULL",
        )
        .sql()?
        .query_row([], |row| row.get(0))
        .sql()?;
    Ok(at.map(Timestamp::from_millis))
}

pub(crate) fn slot(tx: &Transaction<'_>, name: &str, at: Timestamp) -> Result<Option<Slot>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SLOT_COLUMNS} FROM slots s LEFT JOIN flows f ON f.id = s.flow_id \
             WHERE s.schedule = ?1 AND s.at = ?2"
        )
    });
    tx.prepare_cached(sql)
        .sql()?
        .query_row(params![name, at.as_millis()], slot_from_row)
        .optional()
        .sql()
}

pub(crate) fn slots(
    tx: &Transaction<'_>,
    name: &str,
    before: Option<Timestamp>,
    limit: u32,
) -> Result<Vec<Slot>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SLOT_COLUMNS} FROM slots s LEFT JOIN flows f ON f.id = s.flow_id \
             WHERE s.schedule = ?1 AND s.at < ?2 ORDER BY s.at DESC LIMIT ?3"
        )
    });
    let before = before.map_or(i64::MAX, Timestamp::as_millis);
    tx.prepare_cached(sql)
        .sql()?
        .query_map(params![name, before, i64::from(limit)], slot_from_row)
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
}

pub(crate) fn put(tx: &Transaction<'_>, slot: &Slot) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO slots (schedule, at, status, flow_id, reason, last_at, count, \
         decided_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .sql()?
    .execute(params![
        slot.schedule,
        slot.at.as_millis(),
        slot.status.as_str(),
        slot.flow_id.as_ref().map(FlowId::as_str),
        slot.reason,
        millis(slot.last_at),
        slot.count as i64,
        slot.decided_at.as_millis(),
    ])
    .sql()?;
    Ok(())
}

pub(crate) fn open(tx: &Transaction<'_>, limit: u32) -> Result<Vec<Slot>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SLOT_COLUMNS} FROM slots s INDEXED BY slots_open \
             LEFT JOIN flows f ON f.id = s.flow_id \
             WHERE s.status = 'running' OR s.status = 'gated' OR s.status = 'buffered' \
             ORDER BY s.at LIMIT ?1"
        )
    });
    tx.prepare_cached(sql)
        .sql()?
        .query_map([i64::from(limit)], slot_from_row)
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
}

pub(crate) fn flow_settled(
    tx: &Transaction<'_>,
    id: &FlowId,
    ended: bool,
    at: Timestamp,
) -> Result<()> {
    let status = if ended { "ended" } else { "running" };
    tx.prepare_cached(
        "UPDATE slots INDEXED BY slots_by_flow SET status = ?1, decided_at = ?2 \
         WHERE flow_id = ?3 AND status <> ?1",
    )
    .sql()?
    .execute(params![status, at.as_millis(), id.as_str()])
    .sql()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::query_plan::query_plan;

    #[test]
    fn schedules_list_reads_the_table_in_name_order_and_slots_by_their_key() {
        let plan = query_plan(super::summaries_sql(), &[&"alice"]);
        assert!(plan.starts_with("SCAN d"), "{plan}");
        assert!(plan.contains("USING PRIMARY KEY (schedule=? AND at=?)"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
