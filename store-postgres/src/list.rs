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

#[cfg(test)]
mod tests {
    use postgres::{Client, NoTls};
    use taskflow_store::list_query::ListFilters;

    use super::list_sql;
    use crate::pool::SESSION;
    use crate::scratch::Scratch;

    /// 20,000 flows of 20 owners, one in 50 a slot of one of three schedules, each with a
    /// pipeline of three steps, all run; and the statistics of them.
    const FLOWS: &str = "\
        INSERT INTO flows (id, root_id, owner, name, sync_mode, status, revision, created_at, \
            updated_at) \
        SELECT id, id, 'o' || (i % 20), 'n', 'managed', 'succeeded', 1, 1000000 + i, \
            1000000 + i \
        FROM (SELECT i, CASE WHEN i % 50 = 0 \
                THEN 'sched' || (i % 3) || '@2026-01-01T00:00:00.' || i || 'Z' \
                ELSE 'f' || lpad(i::text, 6, '0') END AS id \
              FROM generate_series(1, 20000) i) AS ids; \
        INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, \
            started_at, ended_at) \
        SELECT id, s, 'step' || s, 'action', 'succeeded', 1, id || ':' || s, 0, 0 \
        FROM flows, generate_series(1, 3) s; \
        INSERT INTO flow_specs (flow_id, spec) \
        SELECT id, '{\"steps\": [{}, {}, {}]}' FROM flows; \
        ANALYZE";

    fn by(owner: bool, before: bool, schedule: bool) -> ListFilters {
        let none = ListFilters::all().next().unwrap();
        ListFilters { owner, before, schedule, ..none }
    }

    /// Each page of `flows list`, as the store's connections plan it once (generic), reads its
    /// flows through an index: the page's place (`before`) and a schedule's range of ids are
    /// conditions of the index, which gives the order unless a schedule's few flows are sorted;
    /// each flow's steps are read by its key. So the indexes compare ids as the statements do,
    /// in the columns' collation (`schema.rs`, version 4), as they would not with a collation
    /// named in the statements.
    #[test]
    fn a_page_of_the_list_reads_its_flows_and_their_steps_through_their_indexes() {
        let scratch = Scratch::new();
        drop(crate::open(&scratch.url(), &crate::OpenOptions::default()).unwrap());
        let mut client = Client::connect(&scratch.url(), NoTls).unwrap();
        client.batch_execute(FLOWS).unwrap();
        client.batch_execute(&SESSION.join("; ")).unwrap();
        // (the filters, their arguments, how the flows are read, whether they are sorted)
        for (filters, arguments, read, sorted) in [
            (by(false, false, false), "50", "using flows_by_age", false),
            (by(true, false, false), "'o1', 50", "using flows_by_owner", false),
            (
                by(false, true, false),
                "1010000, 'f010000', 50",
                "Index Cond: (ROW(created_at, id) < ROW($1, $2))",
                false,
            ),
            (
                by(true, true, false),
                "'o1', 1010000, 'f010000', 50",
                "Index Cond: ((owner = $1) AND (ROW(created_at, id) < ROW($2, $3)))",
                false,
            ),
            // A schedule's few flows, found by their ids (those of a slot's form), then sorted.
            (
                by(true, false, true),
                "'o10', 'sched1@0', 'sched1@:', 50",
                "Index Cond: ((id >= $2) AND (id < $3))",
                true,
            ),
            (
                by(false, false, true),
                "'sched1@0', 'sched1@:', 50",
                "Index Cond: ((id >= $1) AND (id < $2))",
                true,
            ),
        ] {
            let plan = list_plan(&mut client, filters, arguments);
            assert!(plan.contains(read), "{filters:?}:\n{plan}");
            assert!(plan.contains("Index Cond: (flow_id = f.id)"), "{filters:?}:\n{plan}");
            assert!(!plan.contains("Seq Scan"), "{filters:?}:\n{plan}");
            assert_eq!(plan.contains("Sort"), sorted, "{filters:?}:\n{plan}");
        }
    }

    /// The plan of the list query for `filters`, run with `arguments`.
    fn list_plan(client: &mut Client, filters: ListFilters, arguments: &str) -> String {
        let name = format!("list_{}", filters.index());
        client.batch_execute(&format!("PREPARE {name} AS {}", list_sql(filters))).unwrap();
        let explain = format!("EXPLAIN (COSTS OFF) EXECUTE {name} ({arguments})");
        let rows = client.query(explain.as_str(), &[]).unwrap();
        rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
    }
}
