//! The SQLite backend of [`FlowStore`]: one connection in WAL mode, each operation one
//! `BEGIN IMMEDIATE` transaction (so a check and the write it allows cannot be split by another
//! process), and every change of a flow written through [`commit`], which diffs the record,
//! bumps its revision and appends the revision row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::flow_cache::{DataVersion, FlowCache, KnownFlow};
use super::revision::{self, commit};
use super::transaction::Transaction;
use super::{Caller, FlowStore, location, schema};
use crate::error::{Error, Result};
use crate::lease::{self, CurrentLease, Decision, Lease, LeaseHolder, Takeover};
use crate::model::{
    CancelOutcome, CheckpointDone, CheckpointOp, ChildSummary, ExpectedRevision, FieldChange, Flow,
    FlowId, FlowSummary, LeaseInfo, ListQuery, NewFlow, NewStep, Revision, StateReport, Step,
    StepKind, StepOutcome, SyncMode,
};
use crate::rules;
use crate::status::{FlowStatus, StepStatus};
use crate::time::Timestamp;

/// The actor written into revisions the store makes on its own (a child's end settling its
/// parent's step).
const SYSTEM_ACTOR: &str = "taskflow";

/// How many prepared statements a connection keeps: more than the store has.
const STATEMENT_CACHE: usize = 64;

/// How hard a commit works to survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed checkpoint survives a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process, may lose the last commits on a
    /// power cut; faster.
    Normal,
}

impl FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => {
                Err(Error::InvalidInput(format!("unknown durability `{other}` (full or normal)")))
            }
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    pub durability: Durability,
    /// How long to wait for another process's write lock before failing with
    /// [`Error::Locked`].
    pub busy_timeout: Duration,
    /// Create the file (and its directory) when missing. Without it a missing file is an error.
    pub create: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

/// A flow store in one SQLite file.
pub struct SqliteStore {
    /// Every write goes through this connection.
    conn: Mutex<Connection>,
    /// Reads go through this one, opened at the first read: in WAL mode a read sees the last
    /// commit while the writer works on the next, so reads neither wait for writes nor hold
    /// them up.
    reader: Mutex<Option<Connection>>,
    busy_timeout: Duration,
    /// Locked before `conn` where both are.
    known: Mutex<FlowCache>,
    /// Writes of this connection other than checkpoints, which the cache cannot see through
    /// `data_version` (that only moves for other connections' commits).
    other_writes: AtomicU64,
    path: PathBuf,
    host: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A connection to the database at `path` as the store uses it.
fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let sqlite = |error| Error::from_sqlite(path, error);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    conn.busy_timeout(busy_timeout).map_err(sqlite)?;
    // Every statement of the store stays prepared (the default keeps 16), and plans do not
    // depend on bound values, so a cached statement is never prepared again because a
    // parameter changed (the bundled SQLite is built with STAT4).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sqlite)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (and, with `options.create`, creates) the store at `path`, refusing a database
    /// newer than this build and migrating an older one.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let sqlite = |error| Error::from_sqlite(&path, error);
        if options.create {
            location::create_private(&path)?;
        } else if !path.exists() {
            return Err(Error::Open { path: path.clone(), detail: "no such file".to_owned() });
        }
        let mut conn = connect(&path, options.busy_timeout)?;
        schema::prepare(&mut conn, &path, options.busy_timeout)?;
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sqlite)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            reader: Mutex::new(None),
            busy_timeout: options.busy_timeout,
            known: Mutex::default(),
            other_writes: AtomicU64::new(0),
            path,
            host: lease::host_name(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no transaction open (it rolls back on
        // drop), so the connection is still sound.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction: it holds the write lock from its first
    /// read, so what it checked is still true when it writes.
    fn write<T>(&self, work: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<T>) -> Result<T> {
        self.write_counted(work, true)
    }

    /// [`Self::write`]; `counted` tells the flow cache that this connection wrote outside
    /// the checkpoints it tracks (only those keep the cache's entries current).
    fn write_counted<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<T>,
        counted: bool,
    ) -> Result<T> {
        let conn = self.lock();
        if counted {
            // Under the connection's lock, so a checkpoint reads it in order with the writes.
            self.other_writes.fetch_add(1, Ordering::Relaxed);
        }
        let result = (|| {
            let tx = Transaction::immediate(&conn)?;
            let value = work(&tx, Timestamp::now())?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|error| self.classify(error))
    }

    /// One runner op on its own, its answer unwrapped: a checkpoint of one op, so that it keeps
    /// the flow cache current like any other.
    fn one_op(&self, caller: Caller<'_>, op: CheckpointOp) -> Result<CheckpointDone> {
        self.checkpoint(caller, vec![op])?
            .pop()
            .unwrap_or_else(|| Err(Error::InvalidInput("no answer".to_owned())))
    }

    /// Runs `work` in one read transaction of the reading connection, so its queries see one
    /// state: the last one committed when it began.
    fn read<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut reader = self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let conn = match &mut *reader {
            Some(conn) => conn,
            empty => {
                let conn = connect(&self.path, self.busy_timeout)?;
                conn.pragma_update(None, "query_only", "ON")
                    .map_err(|error| Error::from_sqlite(&self.path, error))?;
                empty.insert(conn)
            }
        };
        let result = (|| {
            let tx = Transaction::deferred(conn)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|error| self.classify(error))
    }

    /// Takes the lease on flow `id` for `holder` inside `tx`; every check comes before the one
    /// write, so a refusal writes nothing.
    fn acquire_in(
        &self,
        tx: &Transaction<'_>,
        caller: Caller<'_>,
        id: &FlowId,
        holder: LeaseHolder,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease> {
        let (before, _) = load_flow_head(tx, Some(caller.owner), id)?;
        rules::check_managed(&before, "run")?;
        rules::check_not_ended(&before)?;
        let current = before.lease.as_ref().map(|lease| CurrentLease {
            holder: lease.holder.clone(),
            expires_at: lease.expires_at,
        });
        let holder_gone = current.as_ref().is_some_and(|lease| lease.holder.is_gone(&self.host));
        let took_over = match lease::decide(current.as_ref(), now, holder_gone) {
            Decision::Grant => None,
            Decision::TakeOver(reason) => Some(reason),
            Decision::Refuse => {
                let current = before.lease.expect("a refused lease exists");
                return Err(Error::LeaseHeld {
                    id: id.to_string(),
                    holder: current.holder.to_string(),
                    expires_at: current.expires_at,
                });
            }
        };
        let token = ulid::Ulid::new().to_string();
        let expires_at = now.plus(ttl);
        let mut after = before.clone();
        after.lease = Some(LeaseInfo { holder: holder.clone(), expires_at });
        let note = took_over.map(|reason| match reason {
            Takeover::Expired => "took over an expired lease",
            Takeover::HolderGone => "took over from a holder that no longer exists",
        });
        let extra = note
            .map(|note| FieldChange {
                field: "lease_takeover".into(),
                before: Value::Null,
                after: json!(note),
            })
            .into_iter()
            .collect();
        commit(tx, &before, after, extra, caller.actor, now, Some(&token))?;
        Ok(Lease { flow_id: before.id, token, holder, expires_at, took_over })
    }

    fn classify(&self, error: Error) -> Error {
        match error {
            Error::Database(error) => Error::from_sqlite(&self.path, error),
            other => other,
        }
    }
}

impl FlowStore for SqliteStore {
    fn create_flow(&self, caller: Caller<'_>, new: NewFlow) -> Result<Flow> {
        self.write(|tx, now| insert_flow(tx, caller.owner, caller.actor, new, None, vec![], now))
    }

    fn spawn_child(
        &self,
        caller: Caller<'_>,
        parent: &Lease,
        new: NewFlow,
    ) -> Result<(Flow, Step)> {
        self.write(|tx, now| {
            let (before, token) = load_flow(tx, Some(caller.owner), &parent.flow_id)?;
            rules::check_spawn(&before)?;
            rules::check_lease(&before, token.as_deref(), parent)?;
            check_running(&before)?;
            let child =
                insert_flow(tx, &before.owner, caller.actor, new, Some(before.id), vec![], now)?;
            let step = insert_step(
                tx,
                &before,
                NewStep::new(child.name.clone(), StepKind::Child),
                Some(child.id),
                next_seq(tx, &before.id)?,
                now,
            )?;
            // Unlike a step the runner begins, a child is recorded in the parent's history (and
            // bumps its revision, which tells the flow cache that the journal moved).
            let mut before = before;
            journal_moved_to(&step, [&mut before]);
            let change =
                step_change(&step, Value::Null, json!(format!("running (child {})", child.id)));
            commit(tx, &before, before.clone(), vec![change], caller.actor, now, None)?;
            Ok((child, step))
        })
    }

    fn flow(&self, owner: &str, id: &FlowId) -> Result<Flow> {
        self.read(|tx| Ok(load_flow(tx, Some(owner), id)?.0))
    }

    fn flow_without_spec(&self, owner: &str, id: &FlowId) -> Result<Flow> {
        self.read(|tx| Ok(load_flow_head(tx, Some(owner), id)?.0))
    }

    fn spec_json(&self, owner: &str, id: &FlowId) -> Result<Option<String>> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT (SELECT spec FROM flow_specs WHERE flow_id = flows.id) FROM flows \
                 WHERE id = ?1 AND owner = ?2",
            )?
            .query_row(params![id.to_string(), owner], |row| row.get(0))
            .optional()?
            .ok_or_else(|| Error::NotFound { id: id.to_string() })
        })
    }

    fn list(&self, owner: &str, query: &ListQuery) -> Result<Vec<FlowSummary>> {
        self.read(|tx| list_flows(tx, owner, query))
    }

    fn steps(&self, owner: &str, id: &FlowId) -> Result<Vec<Step>> {
        self.read(|tx| {
            load_flow_head(tx, Some(owner), id)?;
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {STEP_COLUMNS} FROM steps WHERE flow_id = ?1 ORDER BY seq"
            ))?;
            let steps = statement.query_map([id.to_string()], step_from_row)?;
            Ok(steps.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn children(&self, owner: &str, id: &FlowId) -> Result<Vec<ChildSummary>> {
        self.read(|tx| {
            load_flow_head(tx, Some(owner), id)?;
            let mut statement = tx.prepare_cached(
                "SELECT id, name, status FROM flows WHERE parent_flow_id = ?1 \
                 ORDER BY created_at, id",
            )?;
            let children = statement.query_map([id.to_string()], |row| {
                Ok(ChildSummary {
                    id: parse_column(row, 0)?,
                    name: row.get(1)?,
                    status: parse_column(row, 2)?,
                })
            })?;
            Ok(children.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn history(&self, owner: &str, id: &FlowId) -> Result<Vec<Revision>> {
        self.read(|tx| {
            load_flow_head(tx, Some(owner), id)?;
            let mut statement = tx.prepare_cached(
                "SELECT revision, at, actor, change FROM revisions WHERE flow_id = ?1 \
                 ORDER BY revision",
            )?;
            let rows = statement.query_map([id.to_string()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get(2)?,
                    row.get::<_, String>(3)?,
                ))
            })?;
            let mut revisions = Vec::new();
            for row in rows {
                let (revision, at, actor, change) = row?;
                revisions.push(Revision {
                    revision: revision as u64,
                    at: Timestamp::from_millis(at),
                    actor,
                    change: revision::changes_from_json(&change)?,
                });
            }
            Ok(revisions)
        })
    }

    fn request_cancel(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        expected: ExpectedRevision,
    ) -> Result<CancelOutcome> {
        self.write(|tx, now| {
            let (flow, _) = load_flow(tx, Some(caller.owner), id)?;
            rules::check_expected(&flow, expected)?;
            rules::check_not_ended(&flow)?;
            let already_requested = flow.cancel_requested_at.is_some();
            if !already_requested {
                cancel_tree(tx, flow, caller.actor, now)?;
            }
            let (flow, _) = load_flow(tx, Some(caller.owner), id)?;
            let active_steps =
                if flow.status.is_terminal() { 0 } else { running_steps(tx, &flow.id)? };
            Ok(CancelOutcome { flow, already_requested, active_steps })
        })
    }

    fn report(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        report: StateReport,
        expected: ExpectedRevision,
    ) -> Result<Flow> {
        self.write(|tx, now| {
            let (before, _) = load_flow(tx, Some(caller.owner), id)?;
            rules::check_expected(&before, expected)?;
            let after = rules::apply_report(&before, &report, now)?;
            let after = commit(tx, &before, after, Vec::new(), caller.actor, now, None)?;
            if after.status.is_terminal() {
                on_flow_ended(tx, &after, now)?;
            }
            Ok(after)
        })
    }

    fn acquire_lease(
        &self,
        caller: Caller<'_>,
        id: &FlowId,
        holder: LeaseHolder,
        ttl: Duration,
    ) -> Result<Lease> {
        check_ttl(ttl)?;
        self.write(|tx, now| self.acquire_in(tx, caller, id, holder, ttl, now))
    }

    fn acquire_leases(
        &self,
        caller: Caller<'_>,
        requests: Vec<(FlowId, LeaseHolder, Duration)>,
    ) -> Result<Vec<Result<Lease>>> {
        self.write(|tx, now| {
            let mut answers = Vec::with_capacity(requests.len());
            for (id, holder, ttl) in requests {
                let answer = check_ttl(ttl)
                    .and_then(|()| self.acquire_in(tx, caller, &id, holder, ttl, now));
                match answer {
                    Err(Error::Database(error)) => return Err(Error::Database(error)),
                    answer => answers.push(answer),
                }
            }
            Ok(answers)
        })
    }

    fn renew_lease(&self, caller: Caller<'_>, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let op = CheckpointOp::Renew { lease: lease.clone(), ttl };
        match self.one_op(caller, op)? {
            CheckpointDone::Lease(lease) => Ok(lease),
            other => Err(unexpected(other)),
        }
    }

    fn release_lease(&self, caller: Caller<'_>, lease: &Lease) -> Result<Flow> {
        self.write(|tx, now| {
            let (before, token) = load_flow(tx, Some(caller.owner), &lease.flow_id)?;
            rules::check_lease(&before, token.as_deref(), lease)?;
            let mut after = before.clone();
            after.lease = None;
            commit(tx, &before, after, Vec::new(), caller.actor, now, None)
        })
    }

    fn set_status(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        to: FlowStatus,
        error: Option<String>,
    ) -> Result<Flow> {
        let op = CheckpointOp::Status { lease: lease.clone(), to, error, state: None };
        match self.one_op(caller, op)? {
            CheckpointDone::Flow(mut flow) => {
                // No write changes a spec: read after the change, it is the flow's.
                flow.spec = self.read(|tx| load_spec(tx, &flow.id))?;
                Ok(flow)
            }
            other => Err(unexpected(other)),
        }
    }

    fn begin_step(&self, caller: Caller<'_>, lease: &Lease, step: NewStep) -> Result<Step> {
        let op = CheckpointOp::Begin { lease: lease.clone(), step };
        match self.one_op(caller, op)? {
            CheckpointDone::Step(step) => Ok(step),
            other => Err(unexpected(other)),
        }
    }

    fn finish_step(
        &self,
        caller: Caller<'_>,
        lease: &Lease,
        seq: u32,
        outcome: StepOutcome,
    ) -> Result<Step> {
        let op = CheckpointOp::Finish { lease: lease.clone(), seq, outcome };
        match self.one_op(caller, op)? {
            CheckpointDone::Step(step) => Ok(step),
            other => Err(unexpected(other)),
        }
    }

    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>> {
        let mut cache = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // What each flow's last group left, in the order first written (a later group on the
        // same flow saw the earlier one's writes and replaces it).
        let mut committed: Vec<(FlowId, KnownFlow)> = Vec::new();
        let (answers, version) = self.write_counted(
            |tx, now| {
                let version = DataVersion::read(tx, self.other_writes.load(Ordering::Relaxed))?;
                let mut answers = Vec::with_capacity(ops.len());
                let mut ops = ops.into_iter().peekable();
                while let Some(first) = ops.next() {
                    let flow_id = op_flow(&first);
                    let mut group = vec![first];
                    while let Some(next) = ops.next_if(|op| op_flow(op) == flow_id) {
                        group.push(next);
                    }
                    let known = cache.take(version, caller.owner, &flow_id);
                    tx.take_flows_written();
                    let (group_answers, written) =
                        apply_group(tx, caller, flow_id, group, now, known)?;
                    answers.extend(group_answers);
                    if tx.take_flows_written().iter().any(|written| *written != flow_id) {
                        // Another flow was written too (ending a child flow ends its parent's
                        // step, and maybe more further up), which neither `data_version` nor
                        // the count of other writes shows: what is known of any other flow may
                        // be out of date.
                        cache.forget_all();
                        committed.clear();
                    }
                    if let Some(known) = written {
                        match committed.iter_mut().find(|(id, _)| *id == flow_id) {
                            Some(entry) => entry.1 = known,
                            None => committed.push((flow_id, known)),
                        }
                    }
                }
                Ok((answers, version))
            },
            false,
        )?;
        cache.keep(version, committed.into_iter().map(|(_, known)| known));
        Ok(answers)
    }

    fn cancel_requested(&self, owner: &str, ids: &[FlowId]) -> Result<Vec<FlowId>> {
        self.read(|tx| {
            let mut statement = tx.prepare_cached(
                "SELECT cancel_requested_at IS NOT NULL FROM flows WHERE id = ?1 AND owner = ?2",
            )?;
            let mut requested = Vec::new();
            for id in ids {
                let flagged: Option<bool> = statement
                    .query_row(params![id.to_string(), owner], |row| row.get(0))
                    .optional()?;
                if flagged == Some(true) {
                    requested.push(*id);
                }
            }
            Ok(requested)
        })
    }

    fn reopen(&self, caller: Caller<'_>, id: &FlowId) -> Result<Flow> {
        self.write(|tx, now| {
            let (before, _) = load_flow(tx, Some(caller.owner), id)?;
            let after = rules::reopen(&before)?;
            commit(tx, &before, after, Vec::new(), caller.actor, now, None)
        })
    }

    fn fork(&self, caller: Caller<'_>, source: &FlowId, from_seq: u32) -> Result<Flow> {
        self.write(|tx, now| {
            let (source, _) = load_flow(tx, Some(caller.owner), source)?;
            rules::check_fork(&source)?;
            let last: Option<u32> = tx
                .prepare_cached("SELECT max(seq) FROM steps WHERE flow_id = ?1")?
                .query_row([source.id.to_string()], |row| row.get(0))?;
            if from_seq == 0 || from_seq > last.unwrap_or(0) + 1 {
                return Err(Error::StepNotFound { id: source.id.to_string(), seq: from_seq });
            }
            let kept: Vec<Step> = tx
                .prepare_cached(&format!(
                    "SELECT {STEP_COLUMNS} FROM steps WHERE flow_id = ?1 AND seq < ?2 \
                     AND status = 'succeeded' AND kind != 'child' ORDER BY seq"
                ))?
                .query_map(params![source.id.to_string(), from_seq], step_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let new = NewFlow {
                id: None,
                name: source.name.clone(),
                sync_mode: SyncMode::Managed,
                controller: source.controller.clone(),
                goal: source.goal.clone(),
                spec: source.spec.clone(),
                state: None,
            };
            let origin = FieldChange {
                field: "forked_from".to_owned(),
                before: Value::Null,
                after: json!({"flow": source.id.to_string(), "from_step": from_seq,
                              "steps_copied": kept.len()}),
            };
            let mut flow =
                insert_flow(tx, caller.owner, caller.actor, new, None, vec![origin], now)?;
            flow.current_step = kept.last().map(|step| step.name.clone());
            for (index, step) in kept.into_iter().enumerate() {
                let seq = index as u32 + 1;
                tx.prepare_cached(
                    "INSERT INTO steps (flow_id, seq, name, kind, status, attempt, \
                     idempotency_key, input, output, started_at, ended_at) \
                     VALUES (?1, ?2, ?3, ?4, 'succeeded', ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    flow.id.to_string(),
                    seq,
                    step.name,
                    step.kind.as_str(),
                    step.attempt,
                    format!("{}:{seq}", flow.id),
                    json_text(&step.input),
                    json_text(&step.output),
                    step.started_at.as_millis(),
                    step.ended_at.map(Timestamp::as_millis),
                ])?;
            }
            Ok(flow)
        })
    }
}

fn op_flow(op: &CheckpointOp) -> FlowId {
    match op {
        CheckpointOp::Begin { lease, .. }
        | CheckpointOp::NextAttempt { lease, .. }
        | CheckpointOp::Finish { lease, .. }
        | CheckpointOp::Status { lease, .. }
        | CheckpointOp::Renew { lease, .. } => lease.flow_id,
    }
}

fn unexpected(done: CheckpointDone) -> Error {
    Error::InvalidInput(format!("unexpected answer from the store: {done:?}"))
}

/// Applies a runner's consecutive ops on one flow: the flow is loaded once (without its spec)
/// unless `known` still holds it, each op is checked against the flow as the ops before it left
/// it and refused on its own (every check comes before the op writes anything), and the flow row
/// is written once, with one revision listing every change, if the ops changed the flow: a step
/// that begins or ends is a journal record and writes its step row only. Also returns the flow as
/// written, for the cache. The outer error is a database failure.
fn apply_group(
    tx: &Transaction<'_>,
    caller: Caller<'_>,
    flow_id: FlowId,
    ops: Vec<CheckpointOp>,
    now: Timestamp,
    known: Option<KnownFlow>,
) -> Result<(Vec<Result<CheckpointDone>>, Option<KnownFlow>)> {
    let known = match known {
        Some(known) => known,
        None => match load_flow_head(tx, Some(caller.owner), &flow_id) {
            Ok((flow, lease_token)) => {
                KnownFlow { flow, lease_token, next_seq: None, running: HashMap::new() }
            }
            Err(Error::NotFound { id }) => {
                let answers = ops.iter().map(|_| Err(Error::NotFound { id: id.clone() }));
                return Ok((answers.collect(), None));
            }
            Err(other) => return Err(other),
        },
    };
    let KnownFlow { flow: mut before, lease_token, next_seq, running } = known;
    let mut group = FlowWrites {
        tx,
        token: lease_token,
        working: before.clone(),
        extra: Vec::new(),
        next_seq,
        running,
        now,
    };
    let mut answers = Vec::with_capacity(ops.len());
    for op in ops {
        match group.apply(op, &mut before) {
            Err(Error::Database(error)) => return Err(Error::Database(error)),
            answer => answers.push(answer),
        }
    }
    let FlowWrites { working, extra, token, next_seq, running, .. } = group;
    // What follows can only fail with the database itself (no rule is checked after a write).
    let after = commit(tx, &before, working, extra, caller.actor, now, None)?;
    if after.status.is_terminal() && !before.status.is_terminal() {
        on_flow_ended(tx, &after, now)?;
    }
    for answer in &mut answers {
        if let Ok(CheckpointDone::Flow(flow)) = answer {
            *flow = after.clone();
        }
    }
    Ok((answers, Some(KnownFlow { flow: after, lease_token: token, next_seq, running })))
}

/// The flow a group of runner ops works on, as the ops so far have changed it.
struct FlowWrites<'a, 'c> {
    tx: &'a Transaction<'c>,
    token: Option<String>,
    working: Flow,
    /// Changes outside the flow row that its history records: why a step's attempt ended.
    extra: Vec<FieldChange>,
    /// The seq the next new step gets, once known.
    next_seq: Option<u32>,
    /// Running steps as written, where known.
    running: HashMap<u32, Step>,
    now: Timestamp,
}

impl FlowWrites<'_, '_> {
    /// One op. `before` is the flow as loaded; a lease renewal moves its expiry there too, so
    /// that it is not mistaken for a change.
    fn apply(&mut self, op: CheckpointOp, before: &mut Flow) -> Result<CheckpointDone> {
        let (tx, now) = (self.tx, self.now);
        match op {
            CheckpointOp::Begin { lease, step } => {
                self.check_lease(&lease)?;
                if step.kind == StepKind::Child {
                    return Err(Error::InvalidInput(
                        "a child step is created by spawning a child flow".to_owned(),
                    ));
                }
                rules::check_can_schedule(&self.working)?;
                check_running(&self.working)?;
                let seq = match self.next_seq {
                    Some(seq) => seq,
                    None => next_seq(tx, &self.working.id)?,
                };
                let step = insert_step(tx, &self.working, step, None, seq, now)?;
                self.next_seq = Some(seq + 1);
                journal_moved_to(&step, [&mut self.working, before]);
                self.running.insert(seq, step.clone());
                Ok(CheckpointDone::Step(step))
            }
            CheckpointOp::NextAttempt { lease, seq, reason } => {
                self.check_lease(&lease)?;
                rules::check_can_schedule(&self.working)?;
                let step = tx
                    .prepare_cached(&format!(
                        "UPDATE steps SET attempt = attempt + 1 \
                         WHERE flow_id = ?1 AND seq = ?2 AND status = 'running' \
                         RETURNING {STEP_COLUMNS}"
                    ))?
                    .query_row(params![self.working.id.to_string(), seq], step_from_row)
                    .optional()?;
                let step = match step {
                    Some(step) => step,
                    None => return Err(not_running(tx, &self.working, seq)),
                };
                self.extra.push(step_change(
                    &step,
                    json!({"attempt": step.attempt - 1, "ended": reason}),
                    json!({"attempt": step.attempt}),
                ));
                self.running.insert(seq, step.clone());
                Ok(CheckpointDone::Step(step))
            }
            CheckpointOp::Finish { lease, seq, outcome } => {
                self.check_lease(&lease)?;
                rules::check_not_ended(&self.working)?;
                let known = self.running.remove(&seq);
                let step = finish_row(tx, &self.working, seq, outcome, now, known)?;
                if cancel_settles(tx, &self.working)? {
                    rules::set_status(&mut self.working, FlowStatus::Cancelled, now);
                }
                Ok(CheckpointDone::Step(step))
            }
            CheckpointOp::Status { lease, to, error, state } => {
                self.check_lease(&lease)?;
                rules::check_not_ended(&self.working)?;
                if to != self.working.status {
                    rules::check_status_change(&self.working, to)?;
                    if to.is_terminal() {
                        let running = running_steps(tx, &self.working.id)?;
                        if running > 0 {
                            return Err(Error::InvalidInput(format!(
                                "flow {} still has {running} running step(s): end them before \
                                 it {to}",
                                self.working.id
                            )));
                        }
                    }
                    rules::set_status(&mut self.working, to, now);
                }
                if error.is_some() {
                    self.working.error = error;
                }
                if state.is_some() {
                    self.working.state = state;
                }
                // Filled in with the flow as written once the group is committed.
                Ok(CheckpointDone::Flow(self.working.clone()))
            }
            CheckpointOp::Renew { lease, ttl } => {
                check_ttl(ttl)?;
                self.check_lease(&lease)?;
                rules::check_not_ended(&self.working)?;
                let expires_at = now.plus(ttl);
                tx.prepare_cached(
                    "UPDATE flows SET lease_expires_at = ?1 WHERE id = ?2 AND lease_token = ?3",
                )?
                .execute(params![
                    expires_at.as_millis(),
                    self.working.id.to_string(),
                    lease.token
                ])?;
                for flow in [&mut self.working, before] {
                    if let Some(stored) = &mut flow.lease {
                        stored.expires_at = expires_at;
                    }
                }
                Ok(CheckpointDone::Lease(Lease { expires_at, ..lease }))
            }
        }
    }

    fn check_lease(&self, lease: &Lease) -> Result<()> {
        rules::check_lease(&self.working, self.token.as_deref(), lease)
    }
}

fn next_seq(tx: &Transaction<'_>, id: &FlowId) -> Result<u32> {
    let last: Option<u32> = tx
        .prepare_cached("SELECT max(seq) FROM steps WHERE flow_id = ?1")?
        .query_row([id.to_string()], |row| row.get(0))?;
    Ok(last.unwrap_or(0) + 1)
}

/// Why step `seq` of `flow` cannot be changed as a running step.
fn not_running(tx: &Transaction<'_>, flow: &Flow, seq: u32) -> Error {
    match load_step(tx, flow, seq) {
        Ok(step) => rules::check_step_running(flow, seq, step.status)
            .err()
            .unwrap_or_else(|| Error::InvalidInput(format!("step {seq} is running"))),
        Err(error) => error,
    }
}

/// Ends running step `seq` of `flow` with `outcome`, returning it as stored. `known` is the
/// step as it was written when it started (or restarted), if the caller has it.
fn finish_row(
    tx: &Transaction<'_>,
    flow: &Flow,
    seq: u32,
    outcome: StepOutcome,
    now: Timestamp,
    known: Option<Step>,
) -> Result<Step> {
    let status = outcome.status();
    let (output, error) = match outcome {
        StepOutcome::Succeeded(output) => (Some(output), None),
        StepOutcome::Failed(error) => (None, Some(error)),
        StepOutcome::Cancelled => (None, None),
    };
    // An UPDATE … RETURNING collects its rows in an ephemeral table (a fresh page cache for
    // every statement); reading the one row back by its key costs less.
    let updated = tx
        .prepare_cached(
            "UPDATE steps SET status = ?1, output = ?2, error = ?3, ended_at = ?4 \
             WHERE flow_id = ?5 AND seq = ?6 AND status = 'running'",
        )?
        .execute(params![
            status.as_str(),
            output.as_ref().map(json_encoded),
            error,
            now.as_millis(),
            flow.id.to_string(),
            seq
        ])?;
    if updated == 0 {
        return Err(not_running(tx, flow, seq));
    }
    match known {
        Some(step) => Ok(Step { status, output, error, ended_at: Some(now), ..step }),
        None => load_step(tx, flow, seq),
    }
}

fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < lease::MIN_TTL {
        return Err(Error::InvalidInput(format!(
            "a lease must last at least {} ms",
            lease::MIN_TTL.as_millis()
        )));
    }
    Ok(())
}

/// Steps run only while their flow is `running`.
fn check_running(flow: &Flow) -> Result<()> {
    if flow.status != FlowStatus::Running {
        return Err(Error::InvalidInput(format!(
            "flow {} is {}: steps run only while it is running",
            flow.id, flow.status
        )));
    }
    Ok(())
}

/// The flow columns in the order `flow_from_row` reads them; the spec lives in `flow_specs`,
/// and a managed flow's current step is the last step of its journal (a mirrored flow's is what
/// its owner reported).
const FLOW_COLUMNS: &str = "id, owner, name, sync_mode, controller, status, revision, goal, \
    CASE sync_mode WHEN 'managed' THEN \
        (SELECT name FROM steps WHERE flow_id = flows.id ORDER BY seq DESC LIMIT 1) \
        ELSE current_step END, \
    state, wait, (SELECT spec FROM flow_specs WHERE flow_id = flows.id), \
    parent_flow_id, cancel_requested_at, lease_token, \
    lease_host, lease_pid, lease_process_start, lease_expires_at, created_at, updated_at, \
    ended_at, error";

const STEP_COLUMNS: &str = "flow_id, seq, name, kind, status, attempt, idempotency_key, input, \
    output, error, started_at, ended_at, child_flow_id";

/// Loads a flow and its lease token. With `owner`, another owner's flow is `NotFound`.
fn load_flow(
    tx: &Transaction<'_>,
    owner: Option<&str>,
    id: &FlowId,
) -> Result<(Flow, Option<String>)> {
    let mut statement = tx.prepare_cached(&format!(
        "SELECT {FLOW_COLUMNS} FROM flows WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)"
    ))?;
    statement
        .query_row(params![id.to_string(), owner], flow_from_row)
        .optional()?
        .ok_or_else(|| Error::NotFound { id: id.to_string() })
}

/// [`load_flow`] without the spec (`spec` is `None`): what a runner's writes need. A spec can
/// be large (a pipeline of thousands of steps) and no write changes it, so the step-by-step
/// path neither reads nor parses it (and, kept in `flow_specs`, never rewrites it).
fn load_flow_head(
    tx: &Transaction<'_>,
    owner: Option<&str>,
    id: &FlowId,
) -> Result<(Flow, Option<String>)> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let columns = FLOW_COLUMNS.replacen(
            "(SELECT spec FROM flow_specs WHERE flow_id = flows.id)",
            "NULL",
            1,
        );
        format!("SELECT {columns} FROM flows WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)")
    });
    let mut statement = tx.prepare_cached(sql)?;
    statement
        .query_row(params![id.to_string(), owner], flow_from_row)
        .optional()?
        .ok_or_else(|| Error::NotFound { id: id.to_string() })
}

/// A flow's stored spec.
fn load_spec(tx: &Transaction<'_>, id: &FlowId) -> Result<Option<Value>> {
    let text: Option<String> = tx
        .prepare_cached("SELECT spec FROM flow_specs WHERE flow_id = ?1")?
        .query_row([id.to_string()], |row| row.get(0))
        .optional()?;
    Ok(text.map(|text| serde_json::from_str(&text)).transpose()?)
}

fn flow_from_row(row: &Row<'_>) -> rusqlite::Result<(Flow, Option<String>)> {
    let lease = match row.get::<_, Option<i64>>(18)? {
        Some(expires_at) => Some(LeaseInfo {
            holder: LeaseHolder {
                host: row.get(15)?,
                pid: row.get(16)?,
                process_start: row.get::<_, Option<i64>>(17)?.map(|start| start as u64),
            },
            expires_at: Timestamp::from_millis(expires_at),
        }),
        None => None,
    };
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

fn step_from_row(row: &Row<'_>) -> rusqlite::Result<Step> {
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

fn parse_column<T: FromStr<Err = Error>>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|error| conversion_error(index, error))
}

fn optional_parse_column<T: FromStr<Err = Error>>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<T>> {
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

fn timestamp_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp::from_millis))
}

fn json_text(value: &Option<Value>) -> Option<String> {
    value.as_ref().map(json_encoded)
}

/// `value` as JSON text. `serde_json::to_string` writes straight into the string; a value's
/// `Display` goes through a formatter adapter and costs about twice as much per step. Encoding
/// a `Value` cannot fail; `Display` stays as the fallback all the same.
fn json_encoded(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

fn insert_flow(
    tx: &Transaction<'_>,
    owner: &str,
    actor: &str,
    new: NewFlow,
    parent: Option<FlowId>,
    extra: Vec<FieldChange>,
    now: Timestamp,
) -> Result<Flow> {
    check_text("owner", owner)?;
    check_text("flow name", &new.name)?;
    if new.sync_mode == SyncMode::Mirrored && new.controller.is_none() {
        return Err(Error::InvalidInput(
            "a mirrored flow names its controller (the owner process that drives it)".to_owned(),
        ));
    }
    let id = new.id.unwrap_or_default();
    let taken: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM flows WHERE id = ?1")?
        .query_row([id.to_string()], |row| row.get(0))
        .optional()?;
    if taken.is_some() {
        return Err(Error::InvalidInput(format!("flow id {id} is already taken")));
    }
    let flow = Flow {
        id,
        name: new.name,
        owner: owner.to_owned(),
        sync_mode: new.sync_mode,
        controller: new.controller,
        status: FlowStatus::Queued,
        revision: 1,
        goal: new.goal,
        current_step: None,
        state: new.state,
        wait: None,
        spec: new.spec,
        parent_flow_id: parent,
        cancel_requested_at: None,
        lease: None,
        created_at: now,
        updated_at: now,
        ended_at: None,
        error: None,
    };
    tx.prepare_cached(
        "INSERT INTO flows (id, owner, name, sync_mode, controller, status, revision, goal, \
         state, parent_flow_id, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9, ?10, ?10)",
    )?
    .execute(params![
        flow.id.to_string(),
        flow.owner,
        flow.name,
        flow.sync_mode.as_str(),
        flow.controller,
        flow.status.as_str(),
        flow.goal,
        json_text(&flow.state),
        parent.map(|id| id.to_string()),
        now.as_millis(),
    ])?;
    if let Some(spec) = json_text(&flow.spec) {
        tx.prepare_cached("INSERT INTO flow_specs (flow_id, spec) VALUES (?1, ?2)")?
            .execute(params![flow.id.to_string(), spec])?;
    }
    let mut created = vec![
        ("name", json!(flow.name)),
        ("sync_mode", json!(flow.sync_mode.as_str())),
        ("status", json!(flow.status.as_str())),
    ];
    if let Some(parent) = parent {
        created.push(("parent_flow_id", json!(parent.to_string())));
    }
    let change = created
        .into_iter()
        .map(|(field, after)| FieldChange { field: field.to_owned(), before: Value::Null, after })
        .chain(extra)
        .collect::<Vec<_>>();
    revision::insert(tx, &flow.id, 1, now, actor, &change)?;
    Ok(flow)
}

fn check_text(what: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() || text.chars().any(char::is_control) || text.len() > 200 {
        return Err(Error::InvalidInput(format!(
            "{what} must be 1 to 200 characters of printable text, got {text:?}"
        )));
    }
    Ok(())
}

fn insert_step(
    tx: &Transaction<'_>,
    flow: &Flow,
    step: NewStep,
    child: Option<FlowId>,
    seq: u32,
    now: Timestamp,
) -> Result<Step> {
    let (attempt, idempotency_key) = match step.retry_of {
        None => (1, format!("{}:{seq}", flow.id)),
        Some(retried) => {
            let earlier = load_step(tx, flow, retried)?;
            rules::check_retry_of(flow, &earlier, &step.name)?;
            (earlier.attempt + 1, earlier.idempotency_key)
        }
    };
    let step = Step {
        flow_id: flow.id,
        seq,
        name: step.name,
        kind: step.kind,
        status: StepStatus::Running,
        attempt,
        idempotency_key,
        input: step.input,
        output: None,
        error: None,
        started_at: now,
        ended_at: None,
        child_flow_id: child,
    };
    tx.prepare_cached(
        "INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, input, \
         started_at, child_flow_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        flow.id.to_string(),
        seq,
        step.name,
        step.kind.as_str(),
        step.status.as_str(),
        step.attempt,
        step.idempotency_key,
        json_text(&step.input),
        now.as_millis(),
        child.map(|id| id.to_string()),
    ])?;
    Ok(step)
}

fn load_step(tx: &Transaction<'_>, flow: &Flow, seq: u32) -> Result<Step> {
    tx.prepare_cached(&format!("SELECT {STEP_COLUMNS} FROM steps WHERE flow_id = ?1 AND seq = ?2"))?
        .query_row(params![flow.id.to_string(), seq], step_from_row)
        .optional()?
        .ok_or_else(|| Error::StepNotFound { id: flow.id.to_string(), seq })
}

/// Ends a running step of `flow`; if that settles a requested cancel, the flow becomes
/// `cancelled` in the same revision, and its own parent hears of it.
fn end_step(
    tx: &Transaction<'_>,
    flow: &Flow,
    seq: u32,
    outcome: StepOutcome,
    actor: &str,
    now: Timestamp,
) -> Result<Step> {
    let step = finish_row(tx, flow, seq, outcome, now, None)?;
    let mut after = flow.clone();
    if cancel_settles(tx, flow)? {
        rules::set_status(&mut after, FlowStatus::Cancelled, now);
    }
    let change = step_change(&step, json!("running"), json!(step.status.as_str()));
    let after = commit(tx, flow, after, vec![change], actor, now, None)?;
    if after.status.is_terminal() {
        on_flow_ended(tx, &after, now)?;
    }
    Ok(step)
}

/// A managed flow's current step is the last step of its journal (read with the flow, never
/// written to its row): `step` has just been added to it.
fn journal_moved_to<'f>(step: &Step, flows: impl IntoIterator<Item = &'f mut Flow>) {
    for flow in flows {
        flow.current_step = Some(step.name.clone());
    }
}

fn step_change(step: &Step, before: Value, after: Value) -> FieldChange {
    FieldChange { field: format!("step {} ({})", step.seq, step.name), before, after }
}

/// Whether `flow`'s pending cancel settles now: nothing of it runs any more.
fn cancel_settles(tx: &Transaction<'_>, flow: &Flow) -> Result<bool> {
    Ok(rules::cancel_pending(flow) && running_steps(tx, &flow.id)? == 0)
}

/// How many steps of flow `id` are running. No index lists them (keeping one would cost every
/// checkpoint a page), so this reads the flow's steps: callers ask when a flow ends or has a
/// cancel pending, not per step.
fn running_steps(tx: &Transaction<'_>, id: &FlowId) -> Result<u64> {
    let count: i64 = tx
        .prepare_cached("SELECT count(*) FROM steps WHERE flow_id = ?1 AND status = 'running'")?
        .query_row([id.to_string()], |row| row.get(0))?;
    Ok(count as u64)
}

/// A flow ended: the `child` step its parent holds for it ends the same way.
fn on_flow_ended(tx: &Transaction<'_>, flow: &Flow, now: Timestamp) -> Result<()> {
    let Some(parent_id) = flow.parent_flow_id else { return Ok(()) };
    let seq: Option<u32> = tx
        .prepare_cached(
            "SELECT seq FROM steps WHERE flow_id = ?1 AND child_flow_id = ?2 AND status = 'running'",
        )?
        .query_row([parent_id.to_string(), flow.id.to_string()], |row| row.get(0))
        .optional()?;
    let Some(seq) = seq else { return Ok(()) };
    let (parent, _) = load_flow(tx, None, &parent_id)?;
    let outcome = match rules::child_step_status(flow.status) {
        StepOutcome::Succeeded(_) => {
            StepOutcome::Succeeded(flow.state.clone().unwrap_or(Value::Null))
        }
        other => other,
    };
    end_step(tx, &parent, seq, outcome, SYSTEM_ACTOR, now)?;
    Ok(())
}

/// Records a cancel request on `flow` and on its active descendants, then cancels each managed
/// flow of the tree whose running work has settled (deepest first, so a cancelled child ends its
/// parent's step before the parent is judged).
fn cancel_tree(tx: &Transaction<'_>, flow: Flow, actor: &str, now: Timestamp) -> Result<()> {
    let mut after = flow.clone();
    after.cancel_requested_at = Some(now);
    let flow = commit(tx, &flow, after, Vec::new(), actor, now, None)?;
    let children: Vec<String> = tx
        .prepare_cached(
            "SELECT id FROM flows WHERE parent_flow_id = ?1 AND cancel_requested_at IS NULL \
             AND status NOT IN ('succeeded', 'failed', 'cancelled', 'lost') ORDER BY created_at, id",
        )?
        .query_map([flow.id.to_string()], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for child in children {
        let (child, _) = load_flow(tx, None, &child.parse()?)?;
        cancel_tree(tx, child, actor, now)?;
    }
    let (flow, _) = load_flow(tx, None, &flow.id)?;
    if cancel_settles(tx, &flow)? {
        let mut after = flow.clone();
        rules::set_status(&mut after, FlowStatus::Cancelled, now);
        let after = commit(tx, &flow, after, Vec::new(), actor, now, None)?;
        on_flow_ended(tx, &after, now)?;
    }
    Ok(())
}

fn list_flows(tx: &Transaction<'_>, owner: &str, query: &ListQuery) -> Result<Vec<FlowSummary>> {
    let sql = list_sql(query);
    let mut statement = tx.prepare_cached(&sql)?;
    let owner = (!query.all_owners).then_some(owner);
    let rows = statement.query_map(
        params![owner, query.status.map(FlowStatus::as_str), i64::from(query.limit)],
        |row| {
            Ok(FlowSummary {
                id: parse_column(row, 0)?,
                name: row.get(1)?,
                owner: row.get(2)?,
                sync_mode: parse_column(row, 3)?,
                status: parse_column(row, 4)?,
                revision: row.get::<_, i64>(5)? as u64,
                cancel_requested_at: timestamp_column(row, 6)?,
                lease_expires_at: timestamp_column(row, 7)?,
                created_at: Timestamp::from_millis(row.get(8)?),
                updated_at: Timestamp::from_millis(row.get(9)?),
                steps_done: row.get::<_, i64>(10)? as u64,
                steps_total: row.get::<_, i64>(11)? as u64,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The `flows list` query: `?1` owner (unless all owners), `?2` status (if filtered), `?3`
/// limit; a parameter the query does not use is bound and ignored. Each filter combination reads one index in order, so the first page costs the same
/// on a hundred flows and on a million.
fn list_sql(query: &ListQuery) -> String {
    let mut filters = Vec::new();
    if !query.all_owners {
        filters.push("f.owner = ?1");
    }
    if query.status.is_some() {
        filters.push("f.status = ?2");
    }
    let filter = if filters.is_empty() { "1".to_owned() } else { filters.join(" AND ") };
    format!(
        "SELECT f.id, f.name, f.owner, f.sync_mode, f.status, f.revision, f.cancel_requested_at, \
         f.lease_expires_at, f.created_at, f.updated_at, \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id AND s.status = 'succeeded'), \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id) \
         FROM flows f WHERE {filter} ORDER BY f.created_at DESC, f.id DESC LIMIT ?3"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(query: &ListQuery) -> String {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
        let conn = store.lock();
        let sql = format!("EXPLAIN QUERY PLAN {}", list_sql(query));
        let mut statement = conn.prepare(&sql).unwrap();
        let details: Vec<String> = statement
            .query_map(params!["o", "queued", 50], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        details.join("; ")
    }

    fn check(status: Option<FlowStatus>, all_owners: bool, index: &str) {
        let plan = plan(&ListQuery { status, limit: 50, all_owners });
        assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
        assert!(!plan.contains("SCAN s"), "steps are counted through their key: {plan}");
    }

    #[test]
    fn connection_settings_follow_the_options() {
        fn check(durability: Durability, synchronous: i64) {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions {
                durability,
                busy_timeout: Duration::from_millis(1234),
                ..OpenOptions::default()
            };
            let store = SqliteStore::open(dir.path().join("flows.db"), &options).unwrap();
            let conn = store.lock();
            let pragma = |name: &str| -> String {
                conn.query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, rusqlite::types::Value>(0)
                })
                .map(|value| match value {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    other => format!("{other:?}"),
                })
                .unwrap()
            };
            assert_eq!(pragma("journal_mode"), "wal");
            assert_eq!(pragma("synchronous"), synchronous.to_string(), "{durability:?}");
            assert_eq!(pragma("busy_timeout"), "1234");
            assert_eq!(pragma("foreign_keys"), "1");
            assert_eq!(pragma("user_version"), schema::CURRENT_VERSION.to_string());
        }
        check(Durability::Full, 2);
        check(Durability::Normal, 1);
        assert_eq!("normal".parse::<Durability>().unwrap(), Durability::Normal);
        assert!("fast".parse::<Durability>().is_err());
    }

    #[test]
    fn every_list_query_reads_an_index_newest_first_without_sorting() {
        check(None, false, "flows_by_owner");
        check(Some(FlowStatus::Queued), false, "flows_by_owner_status");
        check(None, true, "flows_by_age");
        check(Some(FlowStatus::Queued), true, "flows_by_age");
    }
}
