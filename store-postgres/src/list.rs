//! The `flows list` query in PostgreSQL's words: one text per combination of filters (their
//! conditions and values are the store's, `taskflow_store::list_query`), each reading an index
//! of `flows` newest first and counting a flow's steps (by name: a step whose latest attempt
//! succeeded is done) through the index of steps by name.

use std::sync::OnceLock;

use taskflow_store::list_query::{ListFilters, ParamKind};

/// The query for `filters`, its parameters numbered in the order of
/// [`ListFilters::conditions`]. Each text is built once.
pub(crate) fn list_sql(filters: ListFilters) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    &SQL.get_or_init(|| ListFilters::all().map(build).collect())[filters.index()]
}

fn build(filters: ListFilters) -> String {
    let (conditions, limit) = filters.conditions(|n, kind| match kind {
        ParamKind::Text => format!("${n}::text"),
        ParamKind::Integer => format!("${n}::bigint"),
    });
    let filter = if conditions.is_empty() { "TRUE".to_owned() } else { conditions };
    format!(
        "SELECT f.id, f.name, f.owner, f.sync_mode, f.status, f.revision, f.cancel_requested_at, \
         f.lease_host, f.lease_pid, f.lease_process_start, f.lease_expires_at, \
         f.created_at, f.updated_at, \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id AND s.status = 'succeeded' \
          AND NOT EXISTS (SELECT 1 FROM steps l \
                          WHERE l.flow_id = s.flow_id AND l.name = s.name AND l.seq > s.seq)), \
         (SELECT count(DISTINCT s.name) FROM steps s WHERE s.flow_id = f.id) \
         FROM flows f WHERE {filter} ORDER BY f.created_at DESC, f.id DESC LIMIT {limit}"
    )
}
