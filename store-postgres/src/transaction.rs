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
//! [`StoreTx`]: taskflow_store::StoreTx

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashSet;

use taskflow_store::{FlowId, NewEvent, Result};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::Pg;
use crate::pool::Conn;

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Write,
    Read,
}

/// An open transaction, rolled back when dropped without [`Self::commit`].
pub struct Transaction<'c> {
    conn: RefCell<&'c mut Conn>,
    kind: Kind,
    /// Whether a query ran (in a read transaction, the first one freezes its snapshot).
    queried: Cell<bool>,
    committed: Cell<bool>,
    /// The tree roots this transaction holds the lock of.
    locked: RefCell<HashSet<String>>,
    /// The events it appends, written with their ids just before it commits.
    pub(crate) events: RefCell<Vec<NewEvent>>,
    /// Flows to wake workers for when it commits (NOTIFY is delivered at commit).
    pub(crate) wakes: RefCell<Vec<FlowId>>,
}

impl<'c> Transaction<'c> {
    /// The transaction of `kind` on `conn`: `BEGIN` was sent and answered.
    pub(crate) fn begun(conn: &'c mut Conn, kind: Kind) -> Self {
        Transaction {
            conn: RefCell::new(conn),
            kind,
            queried: Cell::new(false),
            committed: Cell::new(false),
            locked: RefCell::default(),
            events: RefCell::default(),
            wakes: RefCell::default(),
        }
    }

    pub(crate) fn is_write(&self) -> bool {
        self.kind == Kind::Write
    }

    pub(crate) fn has_queried(&self) -> bool {
        self.queried.get()
    }

    /// The statement that begins a transaction of `kind`.
    pub(crate) fn begin_sql(kind: Kind) -> &'static str {
        match kind {
            Kind::Write => "BEGIN",
            Kind::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// The connection, for a query of this transaction.
    pub(crate) fn conn(&self) -> Result<RefMut<'_, &'c mut Conn>> {
        self.queried.set(true);
        Ok(self.conn.borrow_mut())
    }

    pub(crate) fn query(&self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>> {
        self.conn()?.query(sql, params).pg()
    }

    pub(crate) fn query_opt(&self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>> {
        self.conn()?.query_opt(sql, params).pg()
    }

    pub(crate) fn query_one(&self, sql: &'static str, params: Params<'_>) -> Result<Row> {
        self.conn()?.query_one(sql, params).pg()
    }

    pub(crate) fn execute(&self, sql: &'static str, params: Params<'_>) -> Result<u64> {
        self.conn()?.execute(sql, params).pg()
    }

    /// Whether this transaction already holds the lock of tree `root`; records that it does
    /// from now on.
    pub(crate) fn take_lock(&self, root: &str) -> bool {
        !self.locked.borrow_mut().insert(root.to_owned())
    }

    /// Commits.
    pub(crate) fn commit(self) -> Result<()> {
        self.commit_after(&[])
    }

    /// Runs `statements`, then commits, in one round trip (the events and wake-ups a write
    /// collected: `tx::flush_and_commit`).
    pub(crate) fn commit_after(self, statements: &[(&'static str, Params<'_>)]) -> Result<()> {
        let done = self.conn.borrow_mut().execute_then_commit(statements).pg();
        // Committed or rolled back by the server either way: nothing is left to roll back.
        self.committed.set(true);
        done
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.committed.get() {
            let _ = self.conn.get_mut().batch_execute("ROLLBACK");
        }
    }
}
