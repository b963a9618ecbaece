//! The `flows list` query. Each filter combination reads one index in order, newest first, and
//! counts a flow's steps through their primary key, so the first page costs the same on a
//! hundred flows and on a million (`benches/list.rs`).

use std::sync::OnceLock;

/// Which filters a `flows list` query applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filters {
    pub owner: bool,
    pub status: bool,
    pub name: bool,
    /// Only flows older than a given one (the next page).
    pub before: bool,
    /// Only the flows of one schedule (ids in `[NAME@, NAMEA)`).
    pub schedule: bool,
    pub since: bool,
    pub until: bool,
}

impl Filters {
    fn bits(self) -> usize {
        usize::from(self.owner)
            | usize::from(self.status) << 1
            | usize::from(self.name) << 2
            | usize::from(self.before) << 3
            | usize::from(self.schedule) << 4
            | usize::from(self.since) << 5
            | usize::from(self.until) << 6
    }
}

/// The query for `filters`, with `?1` the owner, `?2` the status, `?3` the limit, `?4` the
/// name, `?5` and `?6` the creation time and id of the flow the page starts after, `?7` and
/// `?8` the bounds of a schedule's flow ids, `?9` and `?10` the creation times from and
/// before; a parameter the query does not use is bound and ignored. Each text is built once.
pub(crate) fn list_sql(filters: Filters) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..128)
            .map(|bits| Filters {
                owner: bits & 1 != 0,
                status: bits & 2 != 0,
                name: bits & 4 != 0,
                before: bits & 8 != 0,
                schedule: bits & 16 != 0,
                since: bits & 32 != 0,
                until: bits & 64 != 0,
            })
            .map(build)
            .collect()
    });
    &all[filters.bits()]
}

fn build(filters: Filters) -> String {
    let mut clauses = Vec::new();
    if filters.owner {
        clauses.push("f.owner = ?1");
    }
    if filters.status {
        clauses.push("f.status = ?2");
    }
    if filters.name {
        clauses.push("f.name = ?4");
    }
    if filters.before {
        clauses.push("(f.created_at, f.id) < (?5, ?6)");
    }
    if filters.schedule {
        clauses.push("f.id >= ?7 AND f.id < ?8");
    }
    if filters.since {
        clauses.push("f.created_at >= ?9");
    }
    if filters.until {
        clauses.push("f.created_at < ?10");
    }
    let filter = if clauses.is_empty() { "1".to_owned() } else { clauses.join(" AND ") };
    format!(
        "SELECT f.id, f.name, f.owner, f.sync_mode, f.status, f.revision, f.cancel_requested_at, \
         f.lease_host, f.lease_pid, f.lease_process_start, f.lease_expires_at, \
         f.created_at, f.updated_at, \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id AND s.status = 'succeeded'), \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id) \
         FROM flows f WHERE {filter} ORDER BY f.created_at DESC, f.id DESC LIMIT ?3"
    )
}

#[cfg(test)]
mod tests {
    use super::{Filters, list_sql};
    use crate::query_plan::query_plan;

    fn plan(owner: bool, status: bool, before: bool) -> String {
        let filters = Filters {
            owner,
            status,
            name: false,
            before,
            schedule: false,
            since: false,
            until: false,
        };
        query_plan(list_sql(filters), &[&"o", &"queued", &50, &"n", &1, &"id"])
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
