//! What SQLite plans for a statement on a fresh database, one line per step joined by `; `: the
//! tests that hold a query to its index (no table scan where an index serves, no sort step) read
//! it here.

use rusqlite::ToSql;

use crate::{OpenOptions, SqliteStore};

/// The plan of `sql` with its parameters bound from `values` (as many as it takes).
pub(crate) fn query_plan(sql: &str, values: &[&dyn ToSql]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
    let conn = store.lock();
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    for (index, value) in values.iter().enumerate().take(statement.parameter_count()) {
        statement.raw_bind_parameter(index + 1, value).unwrap();
    }
    let details: Vec<String> = statement
        .raw_query()
        .mapped(|row| row.get::<_, String>(3))
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    details.join("; ")
}
