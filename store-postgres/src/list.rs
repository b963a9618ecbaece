//! The `flows list` query with PostgreSQL's typed placeholders: one text per combination of
//! filters (the statement and its values are the store's, `taskflow_store::list_query`), each reading an index
//! of `flows` newest first and counting a flow's steps (by name: a step whose latest attempt
//! succeeded is done) through the index of steps by name.

use std::sync::OnceLock;

use taskflow_store::list_query::{ListFilters, ParamKind};

/// The query for `filters`, its parameters numbered in the order of
/// [`ListFilters::statement`]. Each text is built once.
pub(crate) fn list_sql(filters: ListFilters) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    &SQL.get_or_init(|| ListFilters::all().map(build).collect())[filters.index()]
}

fn build(filters: ListFilters) -> String {
    filters.statement(
        |n, kind| match kind {
            ParamKind::Text => format!("${n}::text"),
            ParamKind::Integer => format!("${n}::bigint"),
        },
        "CASE WHEN json_typeof(fs.spec::json -> 'steps') = 'array' \
         THEN json_array_length(fs.spec::json -> 'steps') END",
    )
}
