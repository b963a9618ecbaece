//! The row-level work of one transaction ([`StoreTx`]) as PostgreSQL SQL. How writers of one
//! tree take turns is in `transaction.rs`; this file adds the change feed's ordering.
//!
//! **The feed.** Event ids come from a sequence, so two transactions may take ids in one order
//! and commit in the other; a reader must never see the later id before the earlier one exists.
//! A write transaction appends its events in one statement just before it commits, so it holds
//! the `ROW EXCLUSIVE` lock an insert takes on `events` only from then to its end. A reader of
//! the feed locks `events` in `SHARE` mode before its snapshot is taken (a `REPEATABLE READ`
//! snapshot is frozen by the first query, not by `LOCK TABLE`): that waits for every transaction
//! holding ids it has not committed, and keeps new ones from taking ids until the read ends. So
//! every id at or below what a reader sees is committed or gone for good. Writers do not
//! conflict with each other on that lock.

use serde_json::Value;
use taskflow_store::revision::FieldSet;
use taskflow_store::{
    Change, ChildSummary, Event, EventQuery, FieldChange, Flow, FlowId, FlowStatus, FlowSummary,
    ListQuery, NewEvent, PruneQuery, Result, Revision, Schedule, ScheduleSummary, Signal, Slot,
    Step, StepStatus, StoreTx, Timestamp,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::list::list_sql;
use crate::pool::{Answer, Request};
use crate::rows::{
    self, all, count, flow_columns, flow_from_row, get, json_encoded, json_text, millis, parse,
    signal_columns, signal_from_row, step_columns, step_from_row,
};
use crate::schedules;
use crate::transaction::{Owned, Params, Transaction, unexpected_rows};
use crate::update;
use taskflow_store::list_query::{ListFilters, ListValue, list_values};

/// The channel on which a commit wakes the workers: the payload is a flow id.
pub const WAKE_CHANNEL: &str = "taskflow_wake";

/// Ends a step known to be running, its answer not awaited (`end_step`).
pub(crate) const END_STEP: &str = "UPDATE steps SET status = $1, output = $2, error = $3, \
     ended_at = $4 WHERE flow_id = $5 AND seq = $6 AND status = 'running'";

/// Writes the events `tx` collected (with their ids, in order) and commits, in one round
/// trip, then sends the wake-ups (delivered only once the write committed).
pub(crate) fn flush_and_commit(tx: Transaction<'_>) -> Result<()> {
    let events = std::mem::take(&mut *tx.events.borrow_mut());
    let mut wakes = std::mem::take(&mut *tx.wakes.borrow_mut());
    let mut flows = Vec::with_capacity(events.len());
    let mut owners = Vec::with_capacity(events.len());
    let mut ats = Vec::with_capacity(events.len());
    let mut changes = Vec::with_capacity(events.len());
    for event in &events {
        if wakes_workers(&event.change) && !wakes.contains(&event.flow_id) {
            wakes.push(event.flow_id.clone());
        }
        flows.push(event.flow_id.as_str().to_owned());
        owners.push(event.owner.clone());
        ats.push(event.at.as_millis());
        changes.push(serde_json::to_string(&event.change)?);
    }
    let ids: Vec<&str> = wakes.iter().map(FlowId::as_str).collect();
    let insert: [&(dyn ToSql + Sync); 4] = [&flows, &owners, &ats, &changes];
    let notify: [&(dyn ToSql + Sync); 2] = [&WAKE_CHANNEL, &ids];
    let mut statements: Vec<(&'static str, Params<'_>)> = Vec::with_capacity(1);
    let mut then: Vec<(&'static str, Params<'_>)> = Vec::with_capacity(1);
    // A chained step's checkpoint writes one event: a plain insert of it costs the server less
    // than the unnesting of arrays that keeps several in order.
    let one: [&(dyn ToSql + Sync); 4];
    match events.len() {
        0 => {}
        1 => {
            one = [&flows[0], &owners[0], &ats[0], &changes[0]];
            statements.push((
                "INSERT INTO events (id, flow_id, owner, at, change) \
                 VALUES (nextval('events_id'), $1, $2, $3, $4)",
                &one,
            ));
        }
        _ => statements.push((
            "INSERT INTO events (id, flow_id, owner, at, change) \
             SELECT nextval('events_id'), e.f, e.o, e.a, e.c \
             FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) \
                   WITH ORDINALITY AS u(f, o, a, c, n) ORDER BY n) AS e",
            &insert,
        )),
    }
    if !ids.is_empty() {
        then.push(("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", &notify));
    }
    tx.commit_after(&statements, &then)
}

/// Whether a change may give a worker something to do: a flow queued (or queued again), one
/// waiting for a time or a signal, a cancel requested. A change of the lease alone (a claim)
/// gives nobody anything: waking every worker for it would have them all look for flows, and
/// a NOTIFY serializes its transaction's commit with every other one that notifies.
fn wakes_workers(change: &Change) -> bool {
    match change {
        Change::Flow { status, fields, .. } => {
            let beyond_lease = fields.iter().any(|field| field != "lease");
            (matches!(status, FlowStatus::Queued | FlowStatus::Waiting) && beyond_lease)
                || fields.iter().any(|field| field == "cancel_requested_at")
        }
        Change::Step { .. } => false,
    }
}

/// Flow `id` with its columns, as `owner` sees it (`$1`: the id, `$2`: the owner or NULL).
fn flow_sql(with_spec: bool) -> &'static str {
    const WITH_SPEC: &str = concat!(
        "SELECT ",
        flow_columns!("(SELECT spec FROM flow_specs WHERE flow_id = flows.id)"),
        " FROM flows WHERE id = $1 AND ($2::text IS NULL OR owner = $2)"
    );
    const WITHOUT_SPEC: &str = concat!(
        "SELECT ",
        flow_columns!("NULL::text"),
        " FROM flows WHERE id = $1 AND ($2::text IS NULL OR owner = $2)"
    );
    if with_spec { WITH_SPEC } else { WITHOUT_SPEC }
}

/// Flow `id` with its columns.
fn read_flow(
    tx: &Transaction<'_>,
    owner: Option<&str>,
    id: &FlowId,
    with_spec: bool,
) -> Result<Option<(Flow, Option<String>)>> {
    let row = tx.query_opt(flow_sql(with_spec), &[&id.as_str(), &owner])?;
    row.as_ref().map(flow_from_row).transpose()
}

/// In a write transaction: locks the root of flow `id`'s tree (unless this transaction holds it)
/// and reads the flow and its last step (remembered while the lock is held: `memo.rs`). A
/// top-level flow is its own root: it is locked and read in the first round trip, which also
/// asks for the root of any other flow; the flow of another tree is locked and read in a
/// second one.
fn lock_and_read_flow(
    tx: &Transaction<'_>,
    owner: Option<&str>,
    id: &FlowId,
    with_spec: bool,
) -> Result<Option<(Flow, Option<String>)>> {
    const ROOT_WITH_SPEC: &str = concat!(
        "SELECT ",
        flow_columns!("(SELECT spec FROM flow_specs WHERE flow_id = flows.id)"),
        " FROM flows WHERE id = $1 AND root_id = id FOR NO KEY UPDATE"
    );
    const ROOT_WITHOUT_SPEC: &str = concat!(
        "SELECT ",
        flow_columns!("NULL::text"),
        " FROM flows WHERE id = $1 AND root_id = id FOR NO KEY UPDATE"
    );
    // The last step is read by a statement of its own, after the lock is granted: a
    // statement's snapshot is taken before it waits for a lock, and the writer it waited for
    // need not have touched the root row. The same statement asks for the flow's root (which
    // never changes), for when the flow is not a root and so was not locked: one row, its step
    // columns null when the flow has no step yet, its root null when there is no such flow.
    const LAST_STEP_AND_ROOT: &str = concat!(
        "SELECT ",
        step_columns!(),
        ", (SELECT root_id FROM flows WHERE id = $1) FROM (SELECT 1) AS one ",
        "LEFT JOIN LATERAL (SELECT ",
        step_columns!(),
        " FROM steps WHERE flow_id = $1 ORDER BY seq DESC LIMIT 1) AS last ON true"
    );
    const LAST_STEP: &str = concat!(
        "SELECT ",
        step_columns!(),
        " FROM steps WHERE flow_id = $1 ORDER BY seq DESC LIMIT 1"
    );
    const LOCK: &str = "SELECT 1 FROM flows WHERE id = $1 FOR NO KEY UPDATE";
    // Taken by the first load, whatever it asks for: every write follows a load of its flow,
    // so a kept row never outlives one.
    let kept = tx.take_locked_row(id.as_str());
    if let Some((flow, token)) = kept.filter(|_| !with_spec) {
        return Ok(owner.is_none_or(|owner| owner == flow.owner).then_some((flow, token)));
    }
    let key: Params<'_> = &[&id.as_str()];
    let root_sql = if with_spec { ROOT_WITH_SPEC } else { ROOT_WITHOUT_SPEC };
    let first = [Request::Query(root_sql, key), Request::Query(LAST_STEP_AND_ROOT, key)];
    let mut answers = tx.send(&first)?.into_iter().map(rows);
    let (flow, last) = (answers.next().unwrap_or_default(), answers.next().unwrap_or_default());
    let Some(last) = last.first() else {
        return Err(unexpected_rows(LAST_STEP_AND_ROOT, 0));
    };
    if let Some(row) = flow.first() {
        tx.take_lock(id.as_str());
        // No step: a row of nulls.
        remember_last(tx, id, get::<Option<String>>(last, 0)?.and(Some(last)))?;
        let (flow, token) = flow_from_row(row)?;
        return Ok(owner.is_none_or(|owner| owner == flow.owner).then_some((flow, token)));
    }
    let Some(root) = get::<Option<String>>(last, last.len() - 1)? else { return Ok(None) };
    let (root_key, read): (Params<'_>, Params<'_>) = (&[&root], &[&id.as_str(), &owner]);
    let [lock, read, last] = [
        Request::Query(LOCK, root_key),
        Request::Query(flow_sql(with_spec), read),
        Request::Query(LAST_STEP, key),
    ];
    let second = if tx.take_lock(&root) { vec![read, last] } else { vec![lock, read, last] };
    let mut answers = tx.send(&second)?.into_iter().rev().map(rows);
    let (last, flow) = (answers.next().unwrap_or_default(), answers.next().unwrap_or_default());
    remember_last(tx, id, last.first())?;
    flow.first().map(flow_from_row).transpose()
}

fn rows(answer: Answer) -> Vec<Row> {
    match answer {
        Answer::Rows(rows) => rows,
        Answer::Done | Answer::Count(_) => Vec::new(),
    }
}

/// Remembers flow `id`'s last step, read under its tree's lock (`None`: it has no step).
fn remember_last(tx: &Transaction<'_>, id: &FlowId, last: Option<&Row>) -> Result<()> {
    let last = last.map(step_from_row).transpose()?;
    tx.memo.borrow_mut().read_last(id.as_str(), last);
    Ok(())
}

impl StoreTx for Transaction<'_> {
    fn load_flow(
        &self,
        owner: Option<&str>,
        id: &FlowId,
        with_spec: bool,
    ) -> Result<Option<(Flow, Option<String>)>> {
        if self.is_write() {
            lock_and_read_flow(self, owner, id, with_spec)
        } else {
            read_flow(self, owner, id, with_spec)
        }
    }

    fn spec_text(&self, id: &FlowId) -> Result<Option<String>> {
        let row =
            self.query_opt("SELECT spec FROM flow_specs WHERE flow_id = $1", &[&id.as_str()])?;
        row.map(|row| get(&row, 0)).transpose()
    }

    fn flow_exists(&self, id: &FlowId) -> Result<bool> {
        Ok(self.query_opt("SELECT 1 FROM flows WHERE id = $1", &[&id.as_str()])?.is_some())
    }

    /// Queued, as the rows' answers tell nothing: a flow with the same id makes the transaction
    /// fail (the semantics look for one first, under no lock a concurrent insert could see).
    fn insert_flow(&self, flow: &Flow) -> Result<()> {
        // A child belongs to its parent's tree; a flow without a parent is a tree's root.
        self.queue(
            "INSERT INTO flows (id, root_id, owner, name, sync_mode, controller, status, \
             revision, goal, state, parent_flow_id, created_at, updated_at) \
             VALUES ($1, coalesce((SELECT root_id FROM flows WHERE id = $10), $1), $2, $3, $4, \
             $5, $6, $7, $8, $9, $10, $11, $12)",
            vec![
                Box::new(flow.id.as_str().to_owned()),
                Box::new(flow.owner.clone()),
                Box::new(flow.name.clone()),
                Box::new(flow.sync_mode.as_str()),
                Box::new(flow.controller.clone()),
                Box::new(flow.status.as_str()),
                Box::new(flow.revision as i64),
                Box::new(flow.goal.clone()),
                Box::new(json_text(flow.state.as_ref())),
                Box::new(flow.parent_flow_id.as_ref().map(|id| id.as_str().to_owned())),
                Box::new(flow.created_at.as_millis()),
                Box::new(flow.updated_at.as_millis()),
            ],
        );
        if flow.parent_flow_id.is_none() {
            self.take_lock(flow.id.as_str());
        }
        self.created.borrow_mut().push(flow.id.as_str().to_owned());
        if let Some(spec) = json_text(flow.spec.as_ref()) {
            self.queue(
                "INSERT INTO flow_specs (flow_id, spec) VALUES ($1, $2)",
                vec![Box::new(flow.id.as_str().to_owned()), Box::new(spec)],
            );
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
        let mut values: Vec<Owned> = Vec::new();
        for field in fields.iter() {
            update::values(field, after, new_token, &mut values);
        }
        values.push(Box::new(after.revision as i64));
        values.push(Box::new(after.updated_at.as_millis()));
        values.push(Box::new(after.id.as_str().to_owned()));
        values.push(Box::new(before.revision as i64));
        self.queue(update::update_sql(fields), values);
        Ok(true)
    }

    fn flow_revision(&self, id: &FlowId) -> Result<Option<u64>> {
        let row = self.query_opt("SELECT revision FROM flows WHERE id = $1", &[&id.as_str()])?;
        row.map(|row| count(&row, 0)).transpose()
    }

    fn insert_revision(
        &self,
        id: &FlowId,
        revision: u64,
        at: Timestamp,
        actor: &str,
        changes: &[FieldChange],
    ) -> Result<()> {
        rows::insert_revision(
            self,
            "INSERT INTO revisions (flow_id, revision, at, actor, change) \
             VALUES ($1, $2, $3, $4, $5)",
            id.as_str(),
            revision,
            at,
            actor,
            changes,
        )
    }

    fn renew_lease(&self, id: &FlowId, token: &str, expires_at: Timestamp) -> Result<()> {
        self.execute(
            "UPDATE flows SET lease_expires_at = $1 WHERE id = $2 AND lease_token = $3",
            &[&expires_at.as_millis(), &id.as_str(), &token],
        )?;
        Ok(())
    }

    fn active_children(&self, id: &FlowId) -> Result<Vec<FlowId>> {
        let rows = self.query(
            "SELECT id FROM flows WHERE parent_flow_id = $1 AND cancel_requested_at IS NULL \
             AND status NOT IN ('succeeded', 'failed', 'cancelled', 'lost') ORDER BY created_at, id",
            &[&id.as_str()],
        )?;
        all(rows, |row| parse(row, 0))
    }

    fn last_seq(&self, id: &FlowId) -> Result<Option<u32>> {
        if let Some(known) = self.memo.borrow().last_seq(id.as_str()) {
            return Ok(known);
        }
        let row =
            self.query_one("SELECT max(seq) FROM steps WHERE flow_id = $1", &[&id.as_str()])?;
        Ok(get::<Option<i64>>(&row, 0)?.map(|seq| seq as u32))
    }

    fn insert_step(&self, step: &Step) -> Result<()> {
        self.queue(
            "INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, \
             input, output, error, started_at, ended_at, child_flow_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            vec![
                Box::new(step.flow_id.as_str().to_owned()),
                Box::new(i64::from(step.seq)),
                Box::new(step.name.clone()),
                Box::new(step.kind.as_str()),
                Box::new(step.status.as_str()),
                Box::new(i64::from(step.attempt)),
                Box::new(step.idempotency_key.clone()),
                Box::new(json_text(step.input.as_ref())),
                Box::new(json_text(step.output.as_ref())),
                Box::new(step.error.clone()),
                Box::new(step.started_at.as_millis()),
                Box::new(step.ended_at.map(Timestamp::as_millis)),
                Box::new(step.child_flow_id.as_ref().map(|id| id.as_str().to_owned())),
            ],
        );
        self.memo.borrow_mut().wrote(step.clone());
        Ok(())
    }

    fn load_step(&self, id: &FlowId, seq: u32) -> Result<Option<Step>> {
        if let Some(step) = self.memo.borrow().step(id.as_str(), seq) {
            return Ok(Some(step.clone()));
        }
        const SQL: &str =
            concat!("SELECT ", step_columns!(), " FROM steps WHERE flow_id = $1 AND seq = $2");
        let row = self.query_opt(SQL, &[&id.as_str(), &i64::from(seq)])?;
        row.as_ref().map(step_from_row).transpose()
    }

    fn last_step_named(&self, id: &FlowId, name: &str) -> Result<Option<Step>> {
        const SQL: &str = concat!(
            "SELECT ",
            step_columns!(),
            " FROM steps WHERE flow_id = $1 AND name = $2 ORDER BY seq DESC LIMIT 1"
        );
        let row = self.query_opt(SQL, &[&id.as_str(), &name])?;
        row.as_ref().map(step_from_row).transpose()
    }

    fn next_attempt(&self, id: &FlowId, seq: u32) -> Result<Option<Step>> {
        const SQL: &str = concat!(
            "UPDATE steps SET attempt = attempt + 1 \
             WHERE flow_id = $1 AND seq = $2 AND status = 'running' RETURNING ",
            step_columns!()
        );
        let row = self.query_opt(SQL, &[&id.as_str(), &i64::from(seq)])?;
        let Some(step) = row.as_ref().map(step_from_row).transpose()? else { return Ok(None) };
        self.memo.borrow_mut().wrote(step.clone());
        Ok(Some(step))
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
        const END_AND_READ: &str = concat!(
            "UPDATE steps SET status = $1, output = $2, error = $3, ended_at = $4 \
             WHERE flow_id = $5 AND seq = $6 AND status = 'running' RETURNING ",
            step_columns!()
        );
        let known = self.memo.borrow().step(id.as_str(), seq).cloned();
        let ended = match known {
            Some(step) if step.status != StepStatus::Running => return Ok(false),
            Some(step) => {
                self.queue(
                    END_STEP,
                    vec![
                        Box::new(status.as_str()),
                        Box::new(output.map(json_encoded)),
                        Box::new(error.map(str::to_owned)),
                        Box::new(at.as_millis()),
                        Box::new(id.as_str().to_owned()),
                        Box::new(i64::from(seq)),
                    ],
                );
                Step {
                    status,
                    output: output.cloned(),
                    error: error.map(str::to_owned),
                    ended_at: Some(at),
                    ..step
                }
            }
            None => {
                let params: Params<'_> = &[
                    &status.as_str(),
                    &output.map(json_encoded),
                    &error,
                    &at.as_millis(),
                    &id.as_str(),
                    &i64::from(seq),
                ];
                let Some(row) = self.query_opt(END_AND_READ, params)? else { return Ok(false) };
                step_from_row(&row)?
            }
        };
        self.memo.borrow_mut().wrote(ended);
        Ok(true)
    }

    fn running_steps(&self, id: &FlowId) -> Result<u64> {
        let row = self.query_one(
            "SELECT count(*) FROM steps WHERE flow_id = $1 AND status = 'running'",
            &[&id.as_str()],
        )?;
        count(&row, 0)
    }

    fn running_child_step(&self, parent: &FlowId, child: &FlowId) -> Result<Option<u32>> {
        let row = self.query_opt(
            "SELECT seq FROM steps WHERE flow_id = $1 AND child_flow_id = $2 AND status = 'running'",
            &[&parent.as_str(), &child.as_str()],
        )?;
        row.map(|row| rows::small(&row, 0)).transpose()
    }

    fn steps_to_fork(&self, id: &FlowId, before_seq: u32) -> Result<Vec<Step>> {
        const SQL: &str = concat!(
            "SELECT ",
            step_columns!(),
            " FROM steps WHERE flow_id = $1 AND seq < $2 \
             AND status = 'succeeded' AND kind <> 'child' ORDER BY seq"
        );
        all(self.query(SQL, &[&id.as_str(), &i64::from(before_seq)])?, step_from_row)
    }

    fn active_flows(&self, limit: u32) -> Result<Vec<Flow>> {
        const SQL: &str = concat!(
            "SELECT ",
            flow_columns!("NULL::text"),
            " FROM flows WHERE sync_mode = 'managed' AND status IN ('queued', 'running') \
             ORDER BY created_at, id LIMIT $1"
        );
        all(self.query(SQL, &[&i64::from(limit)])?, |row| Ok(flow_from_row(row)?.0))
    }

    fn claim_candidates(
        &self,
        now: Timestamp,
        host: &str,
        limit: u32,
        skip: &[FlowId],
    ) -> Result<Vec<(FlowId, String)>> {
        macro_rules! candidates {
            ($lock:literal) => {
                concat!(
                    "SELECT ",
                    flow_columns!("NULL::text"),
                    ", flows.root_id FROM flows JOIN flows r ON r.id = flows.root_id ",
                    "WHERE flows.sync_mode = 'managed' ",
                    "AND (flows.status IN ('queued', 'running') OR (flows.status = 'waiting' ",
                    "AND flows.wake_at IS NOT NULL AND flows.wake_at <= $1)) ",
                    "AND (flows.lease_expires_at IS NULL OR flows.lease_expires_at <= $1 ",
                    "OR flows.lease_host = $2) AND NOT (flows.id = ANY($4::text[])) ",
                    "ORDER BY coalesce(flows.lease_expires_at > $1, false), flows.created_at, ",
                    "flows.id LIMIT $3",
                    $lock
                )
            };
        }
        // The tree's root is locked as `load_flow` locks it, and the flow's own row too, so
        // that a row another claimer changed meanwhile is checked again before it is kept: the
        // row returned is the one locked, which `load_flow` then takes instead of reading it
        // again (a claim of many flows is then one round trip, not one per flow).
        const CLAIM: &str = candidates!(" FOR NO KEY UPDATE OF flows, r SKIP LOCKED");
        const READ: &str = candidates!("");
        let sql = if self.is_write() { CLAIM } else { READ };
        let skip: Vec<&str> = skip.iter().map(FlowId::as_str).collect();
        let rows = self.query(sql, &[&now.as_millis(), &host, &i64::from(limit), &skip])?;
        all(rows, |row| {
            let (flow, token) = flow_from_row(row)?;
            let candidate = (flow.id.clone(), flow.owner.clone());
            if self.is_write() {
                self.take_lock(&get::<String>(row, row.len() - 1)?);
                self.keep_locked_row(flow, token);
            }
            Ok(candidate)
        })
    }

    fn list(&self, owner: Option<&str>, query: &ListQuery) -> Result<Vec<FlowSummary>> {
        let filters = ListFilters::of(owner.is_some(), query);
        let values = list_values(owner, query);
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| match value {
                ListValue::Text(text) => text as &(dyn ToSql + Sync),
                ListValue::Integer(number) => number,
            })
            .collect();
        all(self.query(list_sql(filters), &params)?, |row| {
            Ok(FlowSummary {
                id: parse(row, 0)?,
                name: get(row, 1)?,
                owner: get(row, 2)?,
                sync_mode: parse(row, 3)?,
                status: parse(row, 4)?,
                revision: count(row, 5)?,
                cancel_requested_at: rows::timestamp(row, 6)?,
                lease: rows::lease(row, 7)?,
                created_at: millis(row, 11)?,
                updated_at: millis(row, 12)?,
                steps_done: count(row, 13)?,
                steps_total: count(row, 14)?,
            })
        })
    }

    fn integrity_problems(&self) -> Result<Vec<String>> {
        // The server keeps its own files sound (checksums, WAL); what the store can check is
        // that its rows agree with each other.
        let rows = self.query(
            "SELECT 'flow ' || id || ' names a missing tree root ' || root_id FROM flows f \
             WHERE NOT EXISTS (SELECT 1 FROM flows r WHERE r.id = f.root_id)",
            &[],
        )?;
        all(rows, |row| get(row, 0))
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
        let status = query.status.map(FlowStatus::as_str);
        let rows = self.query(
            "SELECT ended_at, id FROM flows WHERE parent_flow_id IS NULL \
             AND ended_at IS NOT NULL AND ended_at < $1 \
             AND status IN ('succeeded', 'failed', 'cancelled', 'lost') \
             AND ($2::text IS NULL OR owner = $2) AND ($3::text IS NULL OR status = $3) \
             AND ($4::bigint IS NULL OR (ended_at, id) > ($4, $5::text)) \
             ORDER BY ended_at, id LIMIT $6",
            &[
                &query.ended_before.as_millis(),
                &owner,
                &status,
                &after_at,
                &after_id,
                &i64::from(query.limit),
            ],
        )?;
        all(rows, |row| Ok((millis(row, 0)?, parse(row, 1)?)))
    }

    fn delete_journal(&self, id: &FlowId) -> Result<()> {
        let id = id.as_str();
        self.memo.borrow_mut().forget(id);
        self.execute("DELETE FROM steps WHERE flow_id = $1", &[&id])?;
        self.execute("DELETE FROM revisions WHERE flow_id = $1", &[&id])?;
        self.execute("DELETE FROM flow_specs WHERE flow_id = $1", &[&id])?;
        self.execute("DELETE FROM signals WHERE flow_id = $1", &[&id])?;
        Ok(())
    }

    fn delete_flow(&self, id: &FlowId) -> Result<()> {
        self.execute("DELETE FROM flows WHERE id = $1", &[&id.as_str()])?;
        Ok(())
    }

    fn steps(&self, id: &FlowId) -> Result<Vec<Step>> {
        const SQL: &str =
            concat!("SELECT ", step_columns!(), " FROM steps WHERE flow_id = $1 ORDER BY seq");
        all(self.query(SQL, &[&id.as_str()])?, step_from_row)
    }

    fn children(&self, id: &FlowId) -> Result<Vec<ChildSummary>> {
        let rows = self.query(
            "SELECT id, name, sync_mode, status, \
             lease_host, lease_pid, lease_process_start, lease_expires_at \
             FROM flows WHERE parent_flow_id = $1 ORDER BY created_at, id",
            &[&id.as_str()],
        )?;
        all(rows, |row| {
            Ok(ChildSummary {
                id: parse(row, 0)?,
                name: get(row, 1)?,
                sync_mode: parse(row, 2)?,
                status: parse(row, 3)?,
                lease: rows::lease(row, 4)?,
            })
        })
    }

    fn history(&self, id: &FlowId) -> Result<Vec<Revision>> {
        rows::revisions(
            self,
            "SELECT revision, at, actor, change FROM revisions WHERE flow_id = $1 \
             ORDER BY revision",
            id.as_str(),
        )
    }

    fn append_event(&self, event: &NewEvent) -> Result<()> {
        self.events.borrow_mut().push(event.clone());
        Ok(())
    }

    fn events(&self, owner: Option<&str>, query: &EventQuery) -> Result<Vec<Event>> {
        self.settle_feed()?;
        let flow = query.flow.as_ref().map(FlowId::as_str);
        let rows = self.query(
            "SELECT id, flow_id, owner, at, change FROM events \
             WHERE id > $1 AND ($2::text IS NULL OR owner = $2) \
             AND ($3::text IS NULL OR flow_id = $3) ORDER BY id LIMIT $4",
            &[&(query.after as i64), &owner, &flow, &i64::from(query.limit)],
        )?;
        all(rows, |row| {
            Ok(Event {
                id: count(row, 0)?,
                flow_id: parse(row, 1)?,
                owner: get(row, 2)?,
                at: millis(row, 3)?,
                change: serde_json::from_str(get(row, 4)?)
                    .map_err(|error| rows::bad_column(4, error))?,
            })
        })
    }

    fn last_event_id(&self) -> Result<u64> {
        self.settle_feed()?;
        let row = self.query_one("SELECT coalesce(max(id), 0) FROM events", &[])?;
        count(&row, 0)
    }

    fn prune_events(&self, before: Timestamp) -> Result<u64> {
        self.execute(
            "DELETE FROM events WHERE at < $1 AND id < (SELECT max(id) FROM events)",
            &[&before.as_millis()],
        )
    }

    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        let ids: Vec<&str> = ids.iter().map(FlowId::as_str).collect();
        let rows = self.query(
            "SELECT f.id FROM unnest($1::text[]) WITH ORDINALITY AS asked(id, n) \
             JOIN flows f ON f.id = asked.id \
             WHERE f.owner = $2 AND f.cancel_requested_at IS NOT NULL ORDER BY asked.n",
            &[&ids, &owner],
        )?;
        all(rows, |row| parse(row, 0))
    }

    fn due_flows(&self, now: Timestamp, limit: u32) -> Result<Vec<Flow>> {
        const SQL: &str = concat!(
            "SELECT ",
            flow_columns!("NULL::text"),
            " FROM flows WHERE status = 'waiting' AND wake_at IS NOT NULL AND wake_at <= $1 \
             AND sync_mode = 'managed' ORDER BY wake_at LIMIT $2"
        );
        all(self.query(SQL, &[&now.as_millis(), &i64::from(limit)])?, |row| {
            Ok(flow_from_row(row)?.0)
        })
    }

    fn next_wake(&self) -> Result<Option<Timestamp>> {
        let row = self.query_one(
            "SELECT min(wake_at) FROM flows WHERE status = 'waiting' AND wake_at IS NOT NULL",
            &[],
        )?;
        rows::timestamp(&row, 0)
    }

    fn insert_signal(
        &self,
        id: &FlowId,
        name: &str,
        payload: &Value,
        at: Timestamp,
    ) -> Result<u64> {
        let row = self.query_one(
            "INSERT INTO signals (flow_id, name, payload, sent_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
            &[&id.as_str(), &name, &json_encoded(payload), &at.as_millis()],
        )?;
        let mut wakes = self.wakes.borrow_mut();
        if !wakes.contains(id) {
            wakes.push(id.clone());
        }
        count(&row, 0)
    }

    fn pending_signal(&self, id: &FlowId, name: &str) -> Result<bool> {
        let row = self.query_opt(
            "SELECT 1 FROM signals WHERE flow_id = $1 AND name = $2 AND taken_by IS NULL LIMIT 1",
            &[&id.as_str(), &name],
        )?;
        Ok(row.is_some())
    }

    fn signal_taken_by(&self, id: &FlowId, seq: u32) -> Result<Option<Signal>> {
        const SQL: &str = concat!(
            "SELECT ",
            signal_columns!(),
            " FROM signals WHERE flow_id = $1 AND taken_by = $2"
        );
        let row = self.query_opt(SQL, &[&id.as_str(), &i64::from(seq)])?;
        row.as_ref().map(signal_from_row).transpose()
    }

    fn take_signal(
        &self,
        id: &FlowId,
        name: &str,
        seq: u32,
        at: Timestamp,
    ) -> Result<Option<Signal>> {
        const SQL: &str = concat!(
            "UPDATE signals SET taken_by = $3, taken_at = $4 WHERE id = \
             (SELECT id FROM signals WHERE flow_id = $1 AND name = $2 AND taken_by IS NULL \
              ORDER BY id LIMIT 1) RETURNING ",
            signal_columns!()
        );
        let row = self.query_opt(SQL, &[&id.as_str(), &name, &i64::from(seq), &at.as_millis()])?;
        row.as_ref().map(signal_from_row).transpose()
    }

    fn signals(&self, id: &FlowId) -> Result<Vec<Signal>> {
        const SQL: &str =
            concat!("SELECT ", signal_columns!(), " FROM signals WHERE flow_id = $1 ORDER BY id");
        all(self.query(SQL, &[&id.as_str()])?, signal_from_row)
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

impl Transaction<'_> {
    /// Before a read of the feed takes its snapshot: waits until no transaction holds event
    /// ids it has not committed, and keeps new ones from taking any until this read ends.
    fn settle_feed(&self) -> Result<()> {
        if self.is_write() || self.has_queried() {
            return Ok(());
        }
        self.text("LOCK TABLE events IN SHARE MODE")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: FlowStatus, fields: &[&str], wakes: bool) {
        let change = Change::Flow {
            revision: 2,
            status,
            current_step: None,
            fields: fields.iter().map(|field| (*field).to_owned()).collect(),
        };
        assert_eq!(wakes_workers(&change), wakes, "{status} after a change of {fields:?}");
    }

    #[test]
    fn a_commit_wakes_the_workers_when_it_gives_them_something_to_do() {
        check(FlowStatus::Queued, &["name", "sync_mode", "status"], true);
        check(FlowStatus::Queued, &["status", "error"], true);
        check(FlowStatus::Waiting, &["status", "wait", "wake_at", "lease"], true);
        check(FlowStatus::Running, &["cancel_requested_at"], true);
        check(FlowStatus::Queued, &["cancel_requested_at", "lease"], true);
        // A claim: the lease alone.
        check(FlowStatus::Queued, &["lease"], false);
        check(FlowStatus::Waiting, &["lease"], false);
        check(FlowStatus::Running, &["status", "lease"], false);
        check(FlowStatus::Succeeded, &["status", "ended_at"], false);
    }

    /// The update of a flow row is queued, guarded by the revision read: one that finds the row
    /// at another revision fails the transaction, which writes nothing, with a message that
    /// says what happened.
    #[test]
    fn an_update_that_finds_its_flow_at_another_revision_fails_the_transaction() {
        use taskflow_store::{Backend, NewFlow, TaskFlow};

        let scratch = crate::scratch::Scratch::new();
        let store = std::sync::Arc::new(
            crate::PostgresStore::open(&scratch.url(), &crate::OpenOptions::default()).unwrap(),
        );
        let alice = TaskFlow::new(store.clone()).bind("alice").unwrap();
        let flow = alice.create(NewFlow::managed("guarded")).unwrap();
        let failed = store.write(|tx, now| {
            let (before, _) = tx.load_flow(Some("alice"), &flow.id, false)?.unwrap();
            let stale = Flow { revision: before.revision + 5, ..before.clone() };
            let after = Flow {
                goal: Some("changed".into()),
                revision: stale.revision + 1,
                updated_at: now,
                ..before
            };
            let fields = FieldSet::between(&stale, &after, None);
            assert!(tx.update_flow(&stale, &after, fields, None)?);
            Ok(())
        });
        let Err(taskflow_store::Error::Storage(error)) = failed else {
            panic!("a stale update was committed: {failed:?}")
        };
        assert!(error.detail.contains("not at the revision read"), "{error}");
        assert_eq!(alice.flow(&flow.id).unwrap(), flow, "nothing written");
    }
}
