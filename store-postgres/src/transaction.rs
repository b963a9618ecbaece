//! One transaction on one pooled connection, as the semantics see it ([`StoreTx`] takes `&self`,
//! so the connection sits in a `RefCell`).
//!
//! **Per-tree serialization.** A write transaction is `READ COMMITTED`, and the first time it
//! loads a flow it locks the row of that flow's tree root (`SELECT … FOR NO KEY UPDATE`),
//! keeping it until it ends. Every write to a flow happens after the transaction loaded it (the
//! contract of [`StoreTx`]), so every writer of a tree holds its root's lock: two transactions
//! never interleave on a flow, and the walks that reach other flows of the tree (a cancel down
//! it, a child's end up to its parent) never wait on each other in opposite orders, since each
//! took the root first. Each statement of a `READ COMMITTED` transaction sees every commit made
//! before it began, so what a transaction reads after the lock is what the previous holder
//! left.
//!
//! A read transaction is `REPEATABLE READ READ ONLY`: all its queries see one snapshot, frozen
//! by its first query (a reader of the change feed locks the feed before that: see `tx.rs`).
//!
//! **Round trips.** Each one is a wait on the server, and a checkpoint is a chain of them, so
//! statements travel together where nothing waits on their answers: `BEGIN` goes with the
//! first statement, and writes whose answer nobody needs ([`Transaction::queue`]) go ahead of
//! the next statement or of the `COMMIT`; a read-only transaction's `COMMIT` is sent without
//! waiting for its answer, so a read of one query is one round trip, and a write that needs no
//! answer before its end (a checkpoint from what the store remembers: `known.rs`) is one too,
//! its `BEGIN`, writes and `COMMIT` together. `BEGIN` and `COMMIT` are prepared statements like
//! the others, so that a round trip's statements go with one `Sync` and the server answers them
//! in one send (`merge.rs`). After a failure the server skips the rest of the round trip, its
//! `COMMIT` included: the transaction is then rolled back when dropped.
//!
//! **Connections the server closed.** A server that restarted, or an administrator, closed the
//! pooled connections it had. Before a transaction's first round trip, the connection reads
//! what the server sent while it sat unused, without waiting: a closed one is left for a fresh
//! one. A connection lost during the first round trip, if that round trip holds no `COMMIT`,
//! ran nothing of the transaction, so it is sent again on a fresh connection, waiting with
//! backoff while the server cannot be reached. One that holds the `COMMIT` is never sent twice:
//! whether it committed is unknown, and the failure is the caller's.
//!
//! [`StoreTx`]: taskflow_store::StoreTx

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use taskflow_store::semantics::KnownFlow;
use taskflow_store::{Error, Flow, FlowId, NewEvent, Result, StorageError, StorageErrorKind};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::PostgresStore;
use crate::error::{self, Pg};
use crate::memo::Memo;
use crate::pool::{Answer, Manager, Request};

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A parameter a queued statement owns until it is sent.
pub(crate) type Owned = Box<dyn ToSql + Sync + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Write,
    Read,
}

/// The second guard of [`Transaction::lock_if_unchanged`], a statement of its own, after the
/// lock: a statement's snapshot is taken before it waits for a lock. A step begun elsewhere moves
/// the last seq; one ended or retried elsewhere (a runner of another store holding the same
/// lease) is no longer running at the remembered attempt. Neither moves the flow's revision.
/// The last seq is read in the primary key's order, which another index gives only with a sort,
/// and each remembered step is looked up by its key (the `LIMIT` keeps the lookup a nested
/// one): a plan made once while the journals were short then does not read the flow's whole
/// journal through another index once it is long.
pub(crate) const JOURNAL: &str = "SELECT 1 / (CASE WHEN (SELECT seq FROM steps \
     WHERE flow_id = $1 ORDER BY seq DESC LIMIT 1) IS NOT DISTINCT FROM $2::bigint \
     AND (SELECT count(*) FROM unnest($3::bigint[], $4::bigint[]) AS k(seq, attempt) \
          CROSS JOIN LATERAL (SELECT 1 FROM steps s WHERE s.flow_id = $1 AND s.seq = k.seq \
              AND s.attempt = k.attempt AND s.status = 'running' LIMIT 1) AS running) \
         = cardinality($3::bigint[]) \
     THEN 1 ELSE 0 END)";

/// An open transaction, rolled back when dropped without [`Self::commit`].
pub struct Transaction<'s> {
    store: &'s PostgresStore,
    conn: RefCell<r2d2::PooledConnection<Manager>>,
    kind: Kind,
    /// Whether `BEGIN` has been sent.
    begun: Cell<bool>,
    /// Whether a query ran (in a read transaction, the first one freezes its snapshot).
    queried: Cell<bool>,
    committed: Cell<bool>,
    /// Writes whose answers nothing waits for, sent ahead of the next statement.
    queued: RefCell<Vec<(&'static str, Vec<Owned>)>>,
    /// The tree roots this transaction holds the lock of.
    locked: RefCell<HashSet<String>>,
    /// Flows whose rows it read as it locked them (a claim's candidates), by id: the flow and
    /// its lease token, until it loads them. Their own columns are the
    /// version locked; `current_step`, read from the journal, is as of the query's snapshot,
    /// as in any locking read of a flow.
    locked_rows: RefCell<HashMap<String, (Flow, Option<String>)>>,
    /// What it knows of rows without asking the server again.
    pub(crate) memo: RefCell<Memo>,
    /// The events it appends, written with their ids just before it commits.
    pub(crate) events: RefCell<Vec<NewEvent>>,
    /// Flows to wake workers for when it commits (NOTIFY is delivered at commit).
    pub(crate) wakes: RefCell<Vec<FlowId>>,
    /// The ids of the flows it inserts.
    pub(crate) created: RefCell<Vec<String>>,
}

impl<'s> Transaction<'s> {
    /// A transaction of `kind` on `conn`, begun with its first statement.
    pub(crate) fn new(
        store: &'s PostgresStore,
        conn: r2d2::PooledConnection<Manager>,
        kind: Kind,
    ) -> Self {
        Transaction {
            store,
            conn: RefCell::new(conn),
            kind,
            begun: Cell::new(false),
            queried: Cell::new(false),
            committed: Cell::new(false),
            queued: RefCell::default(),
            locked: RefCell::default(),
            locked_rows: RefCell::default(),
            memo: RefCell::default(),
            events: RefCell::default(),
            wakes: RefCell::default(),
            created: RefCell::default(),
        }
    }

    pub(crate) fn is_write(&self) -> bool {
        self.kind == Kind::Write
    }

    pub(crate) fn has_queried(&self) -> bool {
        self.queried.get()
    }

    /// The statement that begins a transaction of `kind`.
    fn begin_sql(&self) -> &'static str {
        match self.kind {
            Kind::Write => "BEGIN",
            Kind::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// Sends `BEGIN` if it has not been, the queued writes, then `statements`, in one round
    /// trip; returns the answers to `statements`.
    pub(crate) fn send(&self, statements: &[Request<'_>]) -> Result<Vec<Answer>> {
        self.send_ending(statements, false)
    }

    /// [`Self::send`], where `commits` says whether `statements` end with the `COMMIT`: such a
    /// message is never sent twice.
    fn send_ending(&self, statements: &[Request<'_>], commits: bool) -> Result<Vec<Answer>> {
        self.queried.set(true);
        let queued = std::mem::take(&mut *self.queued.borrow_mut());
        let owned: Vec<Vec<&(dyn ToSql + Sync)>> = queued
            .iter()
            .map(|(_, values)| values.iter().map(|value| value.as_ref() as _).collect())
            .collect();
        let begins = !self.begun.get();
        let mut requests = Vec::with_capacity(statements.len() + queued.len() + 1);
        if begins {
            requests.push(Request::Execute(self.begin_sql(), &[]));
        }
        for ((sql, _), params) in queued.iter().zip(&owned) {
            requests.push(Request::Execute(sql, params));
        }
        let ahead = requests.len();
        requests.extend_from_slice(statements);
        self.begun.set(true);
        let mut conn = self.conn.borrow_mut();
        if begins {
            while conn.closed_while_idle() {
                *conn = self.store.connection()?;
            }
        }
        let deadline = Instant::now() + self.store.retry_for;
        let mut pause = crate::FIRST_PAUSE;
        let mut answers = loop {
            self.store.round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match conn.pipeline(&requests) {
                Err(failure)
                    if begins
                        && !commits
                        && error::is_connection_loss(&failure)
                        && Instant::now() < deadline =>
                {
                    pause = crate::backoff(pause);
                    *conn = self.store.connection()?;
                }
                answers => break answers.pg()?,
            }
        };
        Ok(answers.split_off(ahead))
    }

    /// The answer to the one statement of a [`Self::send`].
    fn send_one(&self, statement: Request<'_>) -> Result<Answer> {
        Ok(self.send(&[statement])?.pop().unwrap_or(Answer::Done))
    }

    pub(crate) fn query(&self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        match self.send_one(Request::Query(sql, params))? {
            Answer::Rows(rows) => Ok(rows),
            _ => Ok(Vec::new()),
        }
    }

    pub(crate) fn query_opt(&self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params)?;
        match rows.len() {
            0 | 1 => Ok(rows.pop()),
            many => Err(unexpected_rows(sql, many)),
        }
    }

    pub(crate) fn query_one(&self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        self.query_opt(sql, params)?.ok_or_else(|| unexpected_rows(sql, 0))
    }

    pub(crate) fn execute(&self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        match self.send_one(Request::Execute(sql, params))? {
            Answer::Count(count) => Ok(count),
            _ => Ok(0),
        }
    }

    /// Runs `sql` (no parameters) as text.
    pub(crate) fn text(&self, sql: &'static str) -> Result<()> {
        self.send_one(Request::Text(sql)).map(drop)
    }

    /// A write whose answer nothing waits for: sent with the next statement or the `COMMIT`,
    /// which fails with its error if it fails.
    pub(crate) fn queue(&self, sql: &'static str, params: Vec<Owned>) {
        self.queued.borrow_mut().push((sql, params));
    }

    /// Keeps flow `flow`'s row as the query that locked it returned it, for its next load.
    pub(crate) fn keep_locked_row(&self, flow: Flow, token: Option<String>) {
        self.locked_rows.borrow_mut().insert(flow.id.as_str().to_owned(), (flow, token));
    }

    /// Flow `id`'s row as locked, if kept: taken once.
    pub(crate) fn take_locked_row(&self, id: &str) -> Option<(Flow, Option<String>)> {
        self.locked_rows.borrow_mut().remove(id)
    }

    /// Whether this transaction holds the lock of tree `root`.
    pub(crate) fn holds_lock(&self, root: &str) -> bool {
        self.locked.borrow().contains(root)
    }

    /// Takes the lock of the tree whose root is `known`'s flow, as a statement queued ahead of
    /// the writes that fails the transaction unless the flow's row, its last seq and the steps
    /// `known` holds as running are still what `known` says (`known.rs`), and takes what
    /// `known` says of its steps as read under the lock. `known` is a root whose lease and next
    /// seq are known.
    pub(crate) fn lock_if_unchanged(&self, known: &KnownFlow) {
        // A division by zero fails the transaction when no row is as remembered
        // (`error::is_stale_memory`). The only other statement that divides, a flow row's
        // guarded update (`update.rs`), finds its row whenever these guards passed.
        const UNCHANGED: &str = "SELECT 1 / count(*)::int FROM (SELECT 1 FROM flows \
             WHERE id = $1 AND root_id = id AND revision = $2 AND lease_token = $3 \
             AND lease_expires_at = $4 FOR NO KEY UPDATE) AS unchanged";
        let id = known.flow.id.as_str();
        let last_seq = known.next_seq.and_then(|next| next.checked_sub(1)).filter(|&seq| seq > 0);
        let (seqs, attempts): (Vec<i64>, Vec<i64>) = known
            .running
            .values()
            .map(|step| (i64::from(step.seq), i64::from(step.attempt)))
            .unzip();
        self.queue(
            UNCHANGED,
            vec![
                Box::new(id.to_owned()),
                Box::new(known.flow.revision as i64),
                Box::new(known.lease_token.clone()),
                Box::new(known.flow.lease.as_ref().map(|lease| lease.expires_at.as_millis())),
            ],
        );
        self.queue(
            JOURNAL,
            vec![
                Box::new(id.to_owned()),
                Box::new(last_seq.map(i64::from)),
                Box::new(seqs),
                Box::new(attempts),
            ],
        );
        self.take_lock(id);
        self.memo.borrow_mut().known(id, last_seq, known.running.values().cloned());
    }

    /// Whether this transaction already holds the lock of tree `root`; records that it does
    /// from now on.
    pub(crate) fn take_lock(&self, root: &str) -> bool {
        !self.locked.borrow_mut().insert(root.to_owned())
    }

    /// Commits. A read-only transaction's `COMMIT` is sent without waiting for its answer
    /// (a round trip saved): it has written nothing, and the connection's next requests go
    /// after it.
    pub(crate) fn commit(self) -> Result<()> {
        if self.kind == Kind::Read && self.begun.get() && self.queued.borrow().is_empty() {
            self.conn.borrow_mut().send_unawaited("COMMIT");
            self.committed.set(true);
            return Ok(());
        }
        self.commit_after(&[], &[])
    }

    /// Runs `statements`, then commits, in one round trip (the events a write collected:
    /// `tx::flush_and_commit`); once committed, sends `then` outside the transaction without
    /// waiting for their answers, which are never known (the wake-ups: a transaction that
    /// notifies commits one at a time with every other that does, so the writes do not).
    pub(crate) fn commit_after(
        self,
        statements: &[(&'static str, Params<'_>)],
        then: &[(&'static str, Params<'_>)],
    ) -> Result<()> {
        if !self.begun.get() && self.queued.borrow().is_empty() && statements.is_empty() {
            self.committed.set(true);
            return Ok(());
        }
        let mut requests: Vec<Request<'_>> =
            statements.iter().map(|(sql, params)| Request::Execute(sql, params)).collect();
        requests.push(Request::Execute("COMMIT", &[]));
        let done = self.send_ending(&requests, true).map(drop);
        // A failure before the `COMMIT` left the transaction open (the server skipped the
        // `COMMIT`: `merge.rs`): it is rolled back when dropped.
        self.committed.set(done.is_ok());
        if done.is_ok() {
            let mut conn = self.conn.borrow_mut();
            for (sql, params) in then {
                conn.execute_unawaited(sql, params);
            }
        }
        done
    }
}

/// A query that should have answered one row (or at most one) answered `rows`.
pub(crate) fn unexpected_rows(sql: &str, rows: usize) -> Error {
    let statement = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    Error::Storage(StorageError::new(
        StorageErrorKind::Other,
        "",
        format!("`{statement} …` answered {rows} rows where one was expected"),
    ))
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.begun.get() && !self.committed.get() {
            let _ = self.conn.get_mut().batch_execute("ROLLBACK");
        }
    }
}
