//! The `flows list` query: one text per combination of filters, each reading an index of
//! `flows` newest first and counting a flow's steps through their primary key. A statement
//! names only the parameters its filters use, numbered in the order [`Filters`] lists them.

use std::sync::OnceLock;

/// Which filters a `flows list` query applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filters {
    pub owner: bool,
    pub status: bool,
    pub name: bool,
    /// Only flows older than a given one (the next page).
    pub before: bool,
}

impl Filters {
    fn bits(self) -> usize {
        usize::from(self.owner)
            | usize::from(self.status) << 1
            | usize::from(self.name) << 2
            | usize::from(self.before) << 3
    }
}

/// The query for `filters`. Its parameters, in order: the owner, the status, the name, the
/// creation time and id of the flow the page starts after (each only when filtered on), then
/// the limit.
pub(crate) fn list_sql(filters: Filters) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..16)
            .map(|bits| Filters {
                owner: bits & 1 != 0,
                status: bits & 2 != 0,
                name: bits & 4 != 0,
                before: bits & 8 != 0,
            })
            .map(build)
            .collect()
    });
    &all[filters.bits()]
}

fn build(filters: Filters) -> String {
    let mut clauses = Vec::new();
    let mut next = 1;
    let mut param = || {
        let text = format!("${next}");
        next += 1;
        text
    };
    if filters.owner {
        clauses.push(format!("f.owner = {}::text", param()));
    }
    if filters.status {
        clauses.push(format!("f.status = {}::text", param()));
    }
    if filters.name {
        clauses.push(format!("f.name = {}::text", param()));
    }
    if filters.before {
        let (at, id) = (param(), param());
        clauses.push(format!("(f.created_at, f.id) < ({at}::bigint, {id}::text)"));
    }
    let limit = param();
    let filter = if clauses.is_empty() { "TRUE".to_owned() } else { clauses.join(" AND ") };
    format!(
        "SELECT f.id, f.name, f.owner, f.sync_mode, f.status, f.revision, f.cancel_requested_at, \
         f.lease_host, f.lease_pid, f.lease_process_start, f.lease_expires_at, \
         f.created_at, f.updated_at, \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id AND s.status = 'succeeded'), \
         (SELECT count(*) FROM steps s WHERE s.flow_id = f.id) \
         FROM flows f WHERE {filter} ORDER BY f.created_at DESC, f.id DESC LIMIT {limit}::bigint"
    )
}
