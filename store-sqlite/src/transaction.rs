//! Transactions through prepared `BEGIN` and `COMMIT` statements.
//!
//! rusqlite's `Transaction` sends `BEGIN …` and `COMMIT` as SQL text, parsed again every time.
//! The store opens a write transaction per checkpoint, one per step of a running flow, so it
//! keeps both statements prepared in the connection's cache instead.

use std::cell::RefCell;
use std::ops::Deref;

use rusqlite::Connection;

use taskflow_store::FlowId;

/// An open transaction on a connection, rolled back when dropped without [`Self::commit`].
/// Queries go through the connection it derefs to.
pub struct Transaction<'c> {
    conn: &'c Connection,
    committed: bool,
    /// The flows whose rows it wrote, in order, since [`Self::take_flows_written`] last ran.
    flows_written: RefCell<Vec<FlowId>>,
}

impl<'c> Transaction<'c> {
    /// `BEGIN IMMEDIATE`: takes the write lock at once, so what the transaction reads before
    /// it writes cannot be changed by another writer in between.
    pub(crate) fn immediate(conn: &'c Connection) -> rusqlite::Result<Self> {
        Self::begin(conn, "BEGIN IMMEDIATE")
    }

    /// `BEGIN`: a read transaction, whose queries all see one state.
    pub(crate) fn deferred(conn: &'c Connection) -> rusqlite::Result<Self> {
        Self::begin(conn, "BEGIN")
    }

    fn begin(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(Transaction { conn, committed: false, flows_written: RefCell::default() })
    }

    /// Records that flow `id`'s row was written.
    pub(crate) fn flow_written(&self, id: FlowId) {
        self.flows_written.borrow_mut().push(id);
    }

    /// The flows written since the last call.
    pub(crate) fn take_flows_written(&self) -> Vec<FlowId> {
        std::mem::take(&mut self.flows_written.borrow_mut())
    }

    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // SQLite may have rolled back already (some errors end the transaction themselves).
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).unwrap()
    }

    #[test]
    fn commit_keeps_the_writes_and_drop_rolls_them_back() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();

        let tx = Transaction::immediate(&conn).unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&conn), 1);

        let tx = Transaction::immediate(&conn).unwrap();
        tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
        drop(tx);
        assert_eq!(count(&conn), 1);
        assert!(conn.is_autocommit(), "nothing stays open");

        // The cached statements serve the next transactions too.
        for _ in 0..3 {
            let tx = Transaction::deferred(&conn).unwrap();
            assert_eq!(count(&tx), 1);
            tx.commit().unwrap();
        }
        assert!(conn.is_autocommit());
    }
}
