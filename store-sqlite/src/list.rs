//! The `flows list` query with SQLite's placeholders (the statement and its values are the
//! store's, `taskflow_store::list_query`). Each filter combination reads one index in order, newest
//! first, and counts a flow's steps (by name: a step whose latest attempt succeeded is done)
//! through the index of steps by name, so the first page costs the same on a hundred flows and
//! on a million (`benches/list.rs`).

use std::sync::OnceLock;

use taskflow_store::list_query::ListFilters;

/// The query for `filters`, its parameters numbered in the order of
/// [`ListFilters::statement`]. Each text is built once.
pub(crate) fn list_sql(filters: ListFilters) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    &SQL.get_or_init(|| ListFilters::all().map(build).collect())[filters.index()]
}

fn build(filters: ListFilters) -> String {
    filters.statement(|n, _| format!("?{n}"), "json_array_length(fs.spec, '$.steps')")
}

#[cfg(test)]
mod tests {
    use super::list_sql;
    use crate::query_plan::query_plan;
    use taskflow_store::list_query::ListFilters;

    fn plan(owner: bool, status: bool, before: bool) -> String {
        let filters = ListFilters {
            owner,
            status,
            name: false,
            before,
            schedule: false,
            since: false,
            until: false,
        };
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        values.extend(owner.then_some(&"o" as &dyn rusqlite::ToSql));
        values.extend(status.then_some(&"queued" as &dyn rusqlite::ToSql));
        if before {
            values.extend([&1 as &dyn rusqlite::ToSql, &"id"]);
        }
        values.push(&50);
        query_plan(list_sql(filters), &values)
    }

    fn check(owner: bool, status: bool, before: bool, index: &str) {
        let plan = plan(owner, status, before);
        assert!(plan.contains(&format!("USING INDEX {index}")), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort step: {plan}");
        assert!(!plan.contains("SCAN s"), "steps are counted through their key: {plan}");
    }

    #[test]
    fn every_list_query_reads_an_index_newest_first_without_sorting() {
        for before in [false, true] {
            check(true, false, before, "flows_by_owner");
            check(true, true, before, "flows_by_owner_status");
            check(false, false, before, "flows_by_age");
            check(false, true, before, "flows_by_age");
        }
    }
}
