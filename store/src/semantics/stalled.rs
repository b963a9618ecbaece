//! `flows list --status stalled`. Whether a flow is stalled depends on its holder's process,
//! which no query can see, so running managed flows are read page by page and judged here
//! until the page asked for is full.

use crate::error::Result;
use crate::model::{FlowSummary, ListQuery};
use crate::status::FlowStatus;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// Up to `query.limit` stalled flows, newest first, after `query.before` (the same paging as
/// any list).
pub fn list_stalled<T: StoreTx + ?Sized>(
    tx: &T,
    owner: Option<&str>,
    query: &ListQuery,
    now: Timestamp,
) -> Result<Vec<FlowSummary>> {
    let mut page = ListQuery {
        status: Some(FlowStatus::Running),
        stalled: false,
        name: query.name.clone(),
        schedule: query.schedule.clone(),
        since: query.since,
        until: query.until,
        before: query.before.clone(),
        limit: query.limit.max(1),
        all_owners: query.all_owners,
    };
    let mut stalled = Vec::new();
    loop {
        let rows = tx.list(owner, &page)?;
        let full = rows.len() as u32 == page.limit;
        if let Some(last) = rows.last() {
            page.before = Some((last.created_at, last.id.clone()));
        }
        for row in rows {
            if stalled.len() as u32 == query.limit {
                return Ok(stalled);
            }
            if row.is_stalled(now) {
                stalled.push(row);
            }
        }
        if !full || stalled.len() as u32 == query.limit {
            return Ok(stalled);
        }
    }
}
