//! The row-level work of one transaction ([`StoreTx`]) as SQL. Every statement is prepared once
//! per connection and found again in its cache. The per-flow serialization the semantics ask for
//! comes from the transaction itself: a write transaction is `BEGIN IMMEDIATE`, so it holds the
//! database's one write lock from its first read.

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, ToSql, params};
use serde_json::Value;
use taskflow_store::revision::FieldSet;
use taskflow_store::{
    ChildSummary, Event, EventQuery, FieldChange, Flow, FlowId, FlowStatus, FlowSummary, ListQuery,
    NewEvent, PruneQuery, Result, Revision, Schedule, ScheduleSummary, Signal, Slot, Step,
    StepStatus, StoreTx, Timestamp,
};

use crate::error::Sql;
use crate::list::list_sql;
use crate::rows::{
    FLOW_COLUMNS, SIGNAL_COLUMNS, STEP_COLUMNS, flow_columns_without_spec, flow_from_row,
    json_encoded, json_text, lease_columns, parse_column, signal_from_row, step_from_row,
    timestamp_column,
};
use crate::transaction::Transaction;
use crate::{schedules, update};
use taskflow_store::list_query::{ListFilters, ListValue, list_values};

impl StoreTx for Transaction<'_> {
    fn load_flow(
        &self,
        owner: Option<&str>,
        id: &FlowId,
        with_spec: bool,
    ) -> Result<Option<(Flow, Option<String>)>> {
        static WITH_SPEC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        static WITHOUT_SPEC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = |columns: &str| {
            format!("SELECT {columns} FROM flows WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)")
        };
        let sql = if with_spec {
            WITH_SPEC.get_or_init(|| sql(FLOW_COLUMNS))
        } else {
            WITHOUT_SPEC.get_or_init(|| sql(flow_columns_without_spec()))
        };
        self.prepare_cached(sql)
            .sql()?
            .query_row(params![id.as_str(), owner], flow_from_row)
            .optional()
            .sql()
    }

    fn spec_text(&self, id: &FlowId) -> Result<Option<String>> {
        self.prepare_cached("SELECT spec FROM flow_specs WHERE flow_id = ?1")
            .sql()?
            .query_row([id.as_str()], |row| row.get(0))
            .optional()
            .sql()
    }

    fn flow_exists(&self, id: &FlowId) -> Result<bool> {
        let found: Option<i64> = self
            .prepare_cached("SELECT 1 FROM flows WHERE id = ?1")
            .sql()?
            .query_row([id.as_str()], |row| row.get(0))
            .optional()
            .sql()?;
        Ok(found.is_some())
    }

    fn insert_flow(&self, flow: &Flow) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO flows (id, owner, name, sync_mode, controller, status, revision, goal, \
             state, parent_flow_id, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .sql()?
        .execute(params![
            flow.id.as_str(),
            flow.owner,
            flow.name,
            flow.sync_mode.as_str(),
            flow.controller,
            flow.status.as_str(),
            flow.revision as i64,
            flow.goal,
            json_text(flow.state.as_ref()),
            flow.parent_flow_id.as_ref().map(FlowId::as_str),
            flow.created_at.as_millis(),
            flow.updated_at.as_millis(),
        ])
        .sql()?;
        if let Some(spec) = json_text(flow.spec.as_ref()) {
            self.prepare_cached("INSERT INTO flow_specs (flow_id, spec) VALUES (?1, ?2)")
                .sql()?
                .execute(params![flow.id.as_str(), spec])
                .sql()?;
        }
        Ok(())
    }

    fn update_flow(
        &self,
        before: &Flow,
        after: &Flow,
        fields: FieldSet,
        new_token: Option<&str>,
    ) -> Result<bool> {
        let mut statement = self.prepare_cached(update::update_sql(fields)).sql()?;
        let mut index = 0;
        let mut bind = |value: &dyn ToSql| {
            index += 1;
            statement.raw_bind_parameter(index, value)
        };
        for field in fields.iter() {
            update::bind(field, after, new_token, &mut bind).sql()?;
        }
        bind(&(after.revision as i64)).sql()?;
        bind(&after.updated_at.as_millis()).sql()?;
        bind(&after.id.as_str()).sql()?;
        bind(&(before.revision as i64)).sql()?;
        let updated = statement.raw_execute().sql()?;
        if updated == 1 {
            self.flow_written(after.id.clone());
        }
        Ok(updated == 1)
    }

    fn flow_revision(&self, id: &FlowId) -> Result<Option<u64>> {
        let revision: Option<i64> = self
            .prepare_cached("SELECT revision FROM flows WHERE id = ?1")
            .sql()?
            .query_row([id.as_str()], |row| row.get(0))
            .optional()
            .sql()?;
        Ok(revision.map(|revision| revision as u64))
    }

    fn insert_revision(
        &self,
        id: &FlowId,
        revision: u64,
        at: Timestamp,
        actor: &str,
        changes: &[FieldChange],
    ) -> Result<()> {
        crate::rows::insert_revision(
            self,
            "INSERT INTO revisions (flow_id, revision, at, actor, change) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            id.as_str(),
            revision,
            at,
            actor,
            changes,
        )
    }

    fn renew_lease(&self, id: &FlowId, token: &str, expires_at: Timestamp) -> Result<()> {
        self.prepare_cached(
            "UPDATE flows SET lease_expires_at = ?1 WHERE id = ?2 AND lease_token = ?3",
        )
        .sql()?
        .execute(params![expires_at.as_millis(), id.as_str(), token])
        .sql()?;
        Ok(())
    }

    fn active_children(&self, id: &FlowId) -> Result<Vec<FlowId>> {
        self.prepare_cached(
            "SELECT id FROM flows WHERE parent_flow_id = ?1 AND cancel_requested_at IS NULL \
             AND status NOT IN ('succeeded', 'failed', 'cancelled', 'lost') ORDER BY created_at, id",
        )
        .sql()?
        .query_map([id.as_str()], |row| parse_column(row, 0))
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
    }

    fn last_seq(&self, id: &FlowId) -> Result<Option<u32>> {
        self.prepare_cached("SELECT max(seq) FROM steps WHERE flow_id = ?1")
            .sql()?
            .query_row([id.as_str()], |row| row.get(0))
            .sql()
    }

    fn insert_step(&self, step: &Step) -> Result<()> {
        self.prepare_cached(
            "INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, \
             input, output, error, started_at, ended_at, child_flow_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .sql()?
        .execute(params![
            step.flow_id.as_str(),
            step.seq,
            step.name,
            step.kind.as_str(),
            step.status.as_str(),
            step.attempt,
            step.idempotency_key,
            json_text(step.input.as_ref()),
            json_text(step.output.as_ref()),
            step.error,
            step.started_at.as_millis(),
            step.ended_at.map(Timestamp::as_millis),
            step.child_flow_id.as_ref().map(FlowId::as_str),
        ])
        .sql()?;
        Ok(())
    }

    fn load_step(&self, id: &FlowId, seq: u32) -> Result<Option<Step>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!("SELECT {STEP_COLUMNS} FROM steps WHERE flow_id = ?1 AND seq = ?2")
        });
        self.prepare_cached(sql)
            .sql()?
            .query_row(params![id.as_str(), seq], step_from_row)
            .optional()
            .sql()
    }

    fn last_step_named(&self, id: &FlowId, name: &str) -> Result<Option<Step>> {
        self.prepare_cached(last_step_named_sql())
            .sql()?
            .query_row(params![id.as_str(), name], step_from_row)
            .optional()
            .sql()
    }

    fn next_attempt(&self, id: &FlowId, seq: u32) -> Result<Option<Step>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "UPDATE steps SET attempt = attempt + 1 \
                 WHERE flow_id = ?1 AND seq = ?2 AND status = 'running' \
                 RETURNING {STEP_COLUMNS}"
            )
        });
        self.prepare_cached(sql)
            .sql()?
            .query_row(params![id.as_str(), seq], step_from_row)
            .optional()
            .sql()
    }

    fn end_step(
        &self,
        id: &FlowId,
        seq: u32,
        status: StepStatus,
        output: Option<&Value>,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        // An UPDATE … RETURNING collects its rows in an ephemeral table (a fresh page cache for
        // every statement); the semantics read the row back by its key only when they must.
        let updated = self
            .prepare_cached(
                "UPDATE steps SET status = ?1, output = ?2, error = ?3, ended_at = ?4 \
                 WHERE flow_id = ?5 AND seq = ?6 AND status = 'running'",
            )
            .sql()?
            .execute(params![
                status.as_str(),
                output.map(json_encoded),
                error,
                at.as_millis(),
                id.as_str(),
                seq
            ])
            .sql()?;
        Ok(updated == 1)
    }

    fn running_steps(&self, id: &FlowId) -> Result<u64> {
        // No index lists running steps (keeping one would cost every checkpoint a page), so
        // this reads the flow's steps through their key.
        let count: i64 = self
            .prepare_cached("SELECT count(*) FROM steps WHERE flow_id = ?1 AND status = 'running'")
            .sql()?
            .query_row([id.as_str()], |row| row.get(0))
            .sql()?;
        Ok(count as u64)
    }

    fn running_child_step(&self, parent: &FlowId, child: &FlowId) -> Result<Option<u32>> {
        self.prepare_cached(
            "SELECT seq FROM steps WHERE flow_id = ?1 AND child_flow_id = ?2 AND status = 'running'",
        )
        .sql()?
        .query_row([parent.as_str(), child.as_str()], |row| row.get(0))
        .optional()
        .sql()
    }

    fn steps_to_fork(&self, id: &FlowId, before_seq: u32) -> Result<Vec<Step>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT {STEP_COLUMNS} FROM steps WHERE flow_id = ?1 AND seq < ?2 \
                 AND status = 'succeeded' AND kind != 'child' ORDER BY seq"
            )
        });
        self.prepare_cached(sql)
            .sql()?
            .query_map(params![id.as_str(), before_seq], step_from_row)
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()
    }

    fn active_flows(&self, limit: u32) -> Result<Vec<Flow>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT {} FROM flows INDEXED BY flows_active \
                 WHERE sync_mode = 'managed' AND (status = 'queued' OR status = 'running') \
                 ORDER BY created_at, id LIMIT ?1",
                flow_columns_without_spec()
            )
        });
        self.prepare_cached(sql)
            .sql()?
            .query_map([i64::from(limit)], |row| flow_from_row(row).map(|(flow, _)| flow))
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()
    }

    fn claim_candidates(
        &self,
        now: Timestamp,
        host: &str,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<(FlowId, String)>> {
        // One writer at a time: no other claimer can hold a candidate, so nothing is skipped.
        const SQL: &str = "SELECT id, owner FROM ( \
             SELECT id, owner, created_at, lease_host, lease_expires_at \
             FROM flows INDEXED BY flows_active \
             WHERE sync_mode = 'managed' AND (status = 'queued' OR status = 'running') \
             UNION ALL \
             SELECT id, owner, created_at, lease_host, lease_expires_at \
             FROM flows INDEXED BY flows_due \
             WHERE status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= ?1 \
             AND sync_mode = 'managed') \
             WHERE (lease_expires_at IS NULL OR lease_expires_at <= ?1 OR lease_host = ?2) \
             AND id NOT IN (SELECT value FROM json_each(?4)) \
             ORDER BY coalesce(lease_expires_at > ?1, 0), created_at, id LIMIT ?3";
        let skip = serde_json::to_string(&skip.iter().map(FlowId::as_str).collect::<Vec<_>>())?;
        self.prepare_cached(SQL)
            .sql()?
            .query_map(params![now.as_millis(), host, i64::from(limit), skip], |row| {
                Ok((parse_column(row, 0)?, row.get(1)?))
            })
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()
    }

    fn list(&self, owner: Option<&str>, query: &ListQuery) -> Result<Vec<FlowSummary>> {
        let filters = ListFilters::of(owner.is_some(), query);
        let mut statement = self.prepare_cached(list_sql(filters)).sql()?;
        for (index, value) in list_values(owner, query).iter().enumerate() {
            match value {
                ListValue::Text(text) => statement.raw_bind_parameter(index + 1, text.as_ref()),
                ListValue::Integer(number) => statement.raw_bind_parameter(index + 1, number),
            }
            .sql()?;
        }
        let rows = statement.raw_query().mapped(|row| {
            Ok(FlowSummary {
                id: parse_column(row, 0)?,
                name: row.get(1)?,
                owner: row.get(2)?,
                sync_mode: parse_column(row, 3)?,
                status: parse_column(row, 4)?,
                revision: row.get::<_, i64>(5)? as u64,
                cancel_requested_at: timestamp_column(row, 6)?,
                lease: lease_columns(row, 7)?,
                created_at: Timestamp::from_millis(row.get(11)?),
                updated_at: Timestamp::from_millis(row.get(12)?),
                steps_done: row.get::<_, i64>(13)? as u64,
                steps_total: row.get::<_, i64>(14)? as u64,
            })
        });
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn integrity_problems(&self) -> Result<Vec<String>> {
        let mut statement = self.prepare("PRAGMA quick_check").sql()?;
        let lines: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()?;
        // One problem per line, without the header naming the schema ("*** in database main").
        Ok(lines
            .iter()
            .flat_map(|text| text.lines())
            .filter(|line| *line != "ok" && !line.starts_with("*** "))
            .map(str::to_owned)
            .collect())
    }

    fn ended_roots(
        &self,
        owner: Option<&str>,
        query: &PruneQuery,
    ) -> Result<Vec<(Timestamp, FlowId)>> {
        let (after_at, after_id) = match &query.after {
            Some((at, id)) => (Some(at.as_millis()), Some(id.as_str())),
            None => (None, None),
        };
        let mut statement = self
            .prepare_cached(
                "SELECT ended_at, id FROM flows WHERE parent_flow_id IS NULL \
                 AND ended_at IS NOT NULL AND ended_at < ?1 \
                 AND status IN ('succeeded', 'failed', 'cancelled', 'lost') \
                 AND (?2 IS NULL OR owner = ?2) AND (?3 IS NULL OR status = ?3) \
                 AND (?4 IS NULL OR (ended_at, id) > (?4, ?5)) \
                 ORDER BY ended_at, id LIMIT ?6",
            )
            .sql()?;
        let status = query.status.map(FlowStatus::as_str);
        let rows = statement
            .query_map(
                params![
                    query.ended_before.as_millis(),
                    owner,
                    status,
                    after_at,
                    after_id,
                    i64::from(query.limit)
                ],
                |row| Ok((Timestamp::from_millis(row.get(0)?), parse_column(row, 1)?)),
            )
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn delete_journal(&self, id: &FlowId) -> Result<()> {
        for sql in [
            "DELETE FROM steps WHERE flow_id = ?1",
            "DELETE FROM revisions WHERE flow_id = ?1",
            "DELETE FROM flow_specs WHERE flow_id = ?1",
            "DELETE FROM signals WHERE flow_id = ?1",
        ] {
            self.prepare_cached(sql).sql()?.execute([id.as_str()]).sql()?;
        }
        Ok(())
    }

    fn delete_flow(&self, id: &FlowId) -> Result<()> {
        self.prepare_cached("DELETE FROM flows WHERE id = ?1")
            .sql()?
            .execute([id.as_str()])
            .sql()?;
        self.flow_written(id.clone());
        Ok(())
    }

    fn steps(&self, id: &FlowId) -> Result<Vec<Step>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!("SELECT {STEP_COLUMNS} FROM steps WHERE flow_id = ?1 ORDER BY seq")
        });
        self.prepare_cached(sql)
            .sql()?
            .query_map([id.as_str()], step_from_row)
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()
    }

    fn children(&self, id: &FlowId) -> Result<Vec<ChildSummary>> {
        self.prepare_cached(
            "SELECT id, name, sync_mode, status, \
             lease_host, lease_pid, lease_process_start, lease_expires_at \
             FROM flows WHERE parent_flow_id = ?1 ORDER BY created_at, id",
        )
        .sql()?
        .query_map([id.as_str()], |row| {
            Ok(ChildSummary {
                id: parse_column(row, 0)?,
                name: row.get(1)?,
                sync_mode: parse_column(row, 2)?,
                status: parse_column(row, 3)?,
                lease: lease_columns(row, 4)?,
            })
        })
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
    }

    fn history(&self, id: &FlowId) -> Result<Vec<Revision>> {
        crate::rows::revisions(
            self,
            "SELECT revision, at, actor, change FROM revisions WHERE flow_id = ?1 \
             ORDER BY revision",
            id.as_str(),
        )
    }

    fn append_event(&self, event: &NewEvent) -> Result<()> {
        let change = serde_json::to_string(&event.change).map_err(taskflow_store::Error::Json)?;
        self.prepare_cached(
            "INSERT INTO events (flow_id, owner, at, change) VALUES (?1, ?2, ?3, ?4)",
        )
        .sql()?
        .execute(params![event.flow_id.as_str(), event.owner, event.at.as_millis(), change])
        .sql()?;
        Ok(())
    }

    fn events(&self, owner: Option<&str>, query: &EventQuery) -> Result<Vec<Event>> {
        let mut statement = self
            .prepare_cached(
                "SELECT id, flow_id, owner, at, change FROM events \
                 WHERE id > ?1 AND (?2 IS NULL OR owner = ?2) AND (?3 IS NULL OR flow_id = ?3) \
                 ORDER BY id LIMIT ?4",
            )
            .sql()?;
        let flow = query.flow.as_ref().map(FlowId::as_str);
        let rows = statement
            .query_map(params![query.after as i64, owner, flow, i64::from(query.limit)], |row| {
                let change: String = row.get(4)?;
                let change = serde_json::from_str(&change).map_err(|error| {
                    rusqlite::Error::FromSqlConversionFailure(4, Type::Text, Box::new(error))
                })?;
                Ok(Event {
                    id: row.get::<_, i64>(0)? as u64,
                    flow_id: parse_column(row, 1)?,
                    owner: row.get(2)?,
                    at: Timestamp::from_millis(row.get(3)?),
                    change,
                })
            })
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn last_event_id(&self) -> Result<u64> {
        let id: Option<i64> = self
            .prepare_cached("SELECT max(id) FROM events")
            .sql()?
            .query_row([], |row| row.get(0))
            .sql()?;
        Ok(id.unwrap_or(0) as u64)
    }

    fn prune_events(&self, before: Timestamp) -> Result<u64> {
        let deleted = self
            .prepare_cached(
                "DELETE FROM events WHERE at < ?1 AND id < (SELECT max(id) FROM events)",
            )
            .sql()?
            .execute([before.as_millis()])
            .sql()?;
        Ok(deleted as u64)
    }

    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        let mut statement = self
            .prepare_cached(
                "SELECT cancel_requested_at IS NOT NULL FROM flows WHERE id = ?1 AND owner = ?2",
            )
            .sql()?;
        let mut requested = Vec::new();
        for id in ids {
            let flagged: Option<bool> = statement
                .query_row(params![id.as_str(), owner], |row| row.get(0))
                .optional()
                .sql()?;
            if flagged == Some(true) {
                requested.push(id.clone());
            }
        }
        Ok(requested)
    }

    fn due_flows(&self, now: Timestamp, limit: u32) -> Result<Vec<Flow>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "SELECT {} FROM flows INDEXED BY flows_due \
                 WHERE status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= ?1 \
                 AND sync_mode = 'managed' ORDER BY wake_at LIMIT ?2",
                flow_columns_without_spec()
            )
        });
        self.prepare_cached(sql)
            .sql()?
            .query_map(params![now.as_millis(), i64::from(limit)], |row| {
                flow_from_row(row).map(|(flow, _)| flow)
            })
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()
    }

    fn next_wake(&self) -> Result<Option<Timestamp>> {
        let at: Option<i64> = self
            .prepare_cached(
                "SELECT min(wake_at) FROM flows INDEXED BY flows_due \
                 WHERE status = 'waiting' AND wake_at IS NOT NULL",
            )
            .sql()?
            .query_row([], |row| row.get(0))
            .sql()?;
        Ok(at.map(Timestamp::from_millis))
    }

    fn insert_signal(
        &self,
        id: &FlowId,
        name: &str,
        payload: &Value,
        at: Timestamp,
    ) -> Result<u64> {
        let signal: i64 = self
            .prepare_cached(
                "INSERT INTO signals (flow_id, name, payload, sent_at) VALUES (?1, ?2, ?3, ?4) \
                 RETURNING id",
            )
            .sql()?
            .query_row(params![id.as_str(), name, json_encoded(payload), at.as_millis()], |row| {
                row.get(0)
            })
            .sql()?;
        Ok(signal as u64)
    }

    fn pending_signal(&self, id: &FlowId, name: &str) -> Result<bool> {
        let found: Option<i64> = self
            .prepare_cached(
                "SELECT 1 FROM signals WHERE flow_id = ?1 AND name = ?2 AND taken_by IS NULL \
                 LIMIT 1",
            )
            .sql()?
            .query_row(params![id.as_str(), name], |row| row.get(0))
            .optional()
            .sql()?;
        Ok(found.is_some())
    }

    fn signal_taken_by(&self, id: &FlowId, seq: u32) -> Result<Option<Signal>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!("SELECT {SIGNAL_COLUMNS} FROM signals WHERE flow_id = ?1 AND taken_by = ?2")
        });
        self.prepare_cached(sql)
            .sql()?
            .query_row(params![id.as_str(), seq], signal_from_row)
            .optional()
            .sql()
    }

    fn take_signal(
        &self,
        id: &FlowId,
        name: &str,
        seq: u32,
        at: Timestamp,
    ) -> Result<Option<Signal>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!(
                "UPDATE signals SET taken_by = ?3, taken_at = ?4 WHERE id = \
                 (SELECT id FROM signals WHERE flow_id = ?1 AND name = ?2 AND taken_by IS NULL \
                  ORDER BY id LIMIT 1) \
                 RETURNING {SIGNAL_COLUMNS}"
            )
        });
        self.prepare_cached(sql)
            .sql()?
            .query_row(params![id.as_str(), name, seq, at.as_millis()], signal_from_row)
            .optional()
            .sql()
    }

    fn signals(&self, id: &FlowId) -> Result<Vec<Signal>> {
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            format!("SELECT {SIGNAL_COLUMNS} FROM signals WHERE flow_id = ?1 ORDER BY id")
        });
        self.prepare_cached(sql)
            .sql()?
            .query_map([id.as_str()], signal_from_row)
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()
    }

    fn load_schedule(&self, owner: Option<&str>, name: &str) -> Result<Option<Schedule>> {
        schedules::load(self, owner, name)
    }

    fn insert_schedule(&self, schedule: &Schedule) -> Result<()> {
        schedules::insert(self, schedule)
    }

    fn update_schedule(&self, schedule: &Schedule, revision: u64) -> Result<bool> {
        schedules::update(self, schedule, revision)
    }

    fn move_cursor(
        &self,
        name: &str,
        next_slot: Option<Timestamp>,
        next_fire: Option<Timestamp>,
    ) -> Result<()> {
        schedules::move_cursor(self, name, next_slot, next_fire)
    }

    fn delete_schedule(&self, name: &str) -> Result<()> {
        schedules::delete(self, name)
    }

    fn insert_schedule_revision(
        &self,
        name: &str,
        revision: u64,
        at: Timestamp,
        actor: &str,
        changes: &[FieldChange],
    ) -> Result<()> {
        schedules::insert_revision(self, name, revision, at, actor, changes)
    }

    fn schedule_history(&self, name: &str) -> Result<Vec<Revision>> {
        schedules::history(self, name)
    }

    fn schedules(&self, owner: Option<&str>) -> Result<Vec<Schedule>> {
        schedules::list(self, owner)
    }

    fn schedule_summaries(&self, owner: &str) -> Result<Vec<ScheduleSummary>> {
        schedules::summaries(self, owner)
    }

    fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        schedules::due(self, now, limit)
    }

    fn next_fire(&self) -> Result<Option<Timestamp>> {
        schedules::next_fire(self)
    }

    fn slot(&self, name: &str, at: Timestamp) -> Result<Option<Slot>> {
        schedules::slot(self, name, at)
    }

    fn slots(&self, name: &str, before: Option<Timestamp>, limit: u32) -> Result<Vec<Slot>> {
        schedules::slots(self, name, before, limit)
    }

    fn put_slot(&self, slot: &Slot) -> Result<()> {
        schedules::put(self, slot)
    }

    fn open_slots(&self, limit: u32) -> Result<Vec<Slot>> {
        schedules::open(self, limit)
    }

    fn slot_flow_settled(&self, id: &FlowId, ended: bool, at: Timestamp) -> Result<()> {
        schedules::flow_settled(self, id, ended, at)
    }
}

/// The newest step of a name, through `steps_by_name` (named: without statistics, SQLite would
/// rather walk the flow's journal backwards by its key, a cost that grows with the journal).
fn last_step_named_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT {STEP_COLUMNS} FROM steps INDEXED BY steps_by_name \
             WHERE flow_id = ?1 AND name = ?2 ORDER BY seq DESC LIMIT 1"
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::query_plan::query_plan;

    #[test]
    fn the_newest_step_of_a_name_is_found_through_its_index_without_sorting() {
        let plan = query_plan(super::last_step_named_sql(), &[&"f", &"n"]);
        assert!(plan.contains("USING INDEX steps_by_name (flow_id=? AND name=?)"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
