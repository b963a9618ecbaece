//! The `flows list` query. Each filter combination reads one index in order, newest first, and
//! counts a flow's steps through their primary key, so the first page costs the same on a
//! hundred flows and on a million (`benches/list.rs`).

use std::sync::OnceLock;

/// The query with `?1` the owner (when `by_owner`), `?2` the status (when `by_status`), `?3`
/// the limit; a parameter the query does not use is bound and ignored.
pub(crate) fn list_sql(by_owner: bool, by_status: bool) -> &'static str {
    static SQL: OnceLock<[String; 4]> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        [(false, false), (false, true), (true, false), (true, true)]
            .map(|(owner, status)| build(owner, status))
    });
    &all[usize::from(by_owner) * 2 + usize::from(by_status)]
}

fn build(by_owner: bool, by_status: bool) -> String {
    let mut filters = Vec::new();
    if by_owner {
        filters.push("f.owner = ?1");
    }
    if by_status {
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
    use rusqlite::params;

    use super::list_sql;
    use crate::{OpenOptions, SqliteStore};

    fn plan(by_owner: bool, by_status: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
        let conn = store.lock();
        let sql = format!("EXPLAIN QUERY PLAN {}", list_sql(by_owner, by_status));
        let mut statement = conn.prepare(&sql).unwrap();
        let details: Vec<String> = statement
            .query_map(params!["o", "queued", 50], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        details.join("; ")
    }

    fn check(by_owner: bool, by_status: bool, index: &str) {
        let plan = plan(by_owner, by_status);
        assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
        assert!(!plan.contains("SCAN s"), "steps are counted through their key: {plan}");
    }

    #[test]
    fn every_list_query_reads_an_index_newest_first_without_sorting() {
        check(true, false, "flows_by_owner");
        check(true, true, "flows_by_owner_status");
        check(false, false, "flows_by_age");
        check(false, true, "flows_by_age");
    }
}
