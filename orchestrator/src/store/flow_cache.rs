//! What the store last committed of the flows its runners checkpoint, so that a runner's next
//! checkpoint does not read and decode the flow row again, nor its running steps.
//!
//! An entry is used only while the flow's row in the database is as the entry has it. When
//! nothing else has been written since the entry was made (no other connection committed, so
//! SQLite's `data_version` is unchanged, and this connection wrote only checkpoints, which keep
//! their entries current), nothing is read at all. Otherwise the row must still hold the
//! entry's revision and lease expiry: every change to a flow bumps its revision (in the same
//! transaction); its steps are written by the checkpoints of the runner holding its lease,
//! which keep the entry current (another runner must take the lease first, a revision), or
//! together with a revision (a child spawned or ended); and a lease renewal, the one write that
//! does neither, moves the expiry.
//! An entry is taken out when a transaction starts to use it and put back only once that
//! transaction has committed. A checkpoint that writes another flow's row than its own (ending a
//! child flow ends its parent's step for it, and may settle the parent's cancel, and so on up)
//! makes the cache forget every other flow: the transaction records each flow row it writes.

use std::collections::HashMap;

use rusqlite::OptionalExtension;

use super::transaction::Transaction;
use crate::error::Result;
use crate::model::{Flow, FlowId, Step};

/// Flows beyond this many are forgotten (all at once: they are cheap to load again).
const MAX_FLOWS: usize = 1024;

/// A flow as a committed transaction of this store left it.
#[derive(Debug, Clone)]
pub(super) struct KnownFlow {
    /// Without its spec.
    pub flow: Flow,
    pub lease_token: Option<String>,
    /// The seq the flow's next step gets, when known.
    pub next_seq: Option<u32>,
    /// Steps of the flow running at this revision, as they were written (a running step this
    /// store did not write is read from the database when needed).
    pub running: HashMap<u32, Step>,
}

#[derive(Debug, Default)]
pub(super) struct FlowCache {
    /// Each with the version of the database the transaction that wrote it saw.
    flows: HashMap<FlowId, (KnownFlow, DataVersion)>,
}

/// What a transaction saw of the database's writers, read once per transaction: SQLite's
/// `data_version` (moved by every commit of another connection) and how many writes other than
/// checkpoints this connection has made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DataVersion {
    others: i64,
    own_other_writes: u64,
}

impl DataVersion {
    pub fn read(tx: &Transaction<'_>, own_other_writes: u64) -> Result<Self> {
        let others = tx.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?;
        Ok(DataVersion { others, own_other_writes })
    }
}

impl FlowCache {
    /// Takes out flow `id` as `owner` sees it, if the database still holds that version.
    pub fn take(
        &mut self,
        tx: &Transaction<'_>,
        version: DataVersion,
        owner: &str,
        id: &FlowId,
    ) -> Result<Option<KnownFlow>> {
        let Some((known, seen)) = self.flows.remove(id) else { return Ok(None) };
        if known.flow.owner != owner {
            return Ok(None);
        }
        if seen == version {
            return Ok(Some(known));
        }
        let stored: Option<(i64, Option<i64>)> = tx
            .prepare_cached("SELECT revision, lease_expires_at FROM flows WHERE id = ?1")?
            .query_row([id.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let expected = (
            known.flow.revision as i64,
            known.flow.lease.as_ref().map(|lease| lease.expires_at.as_millis()),
        );
        Ok((stored == Some(expected)).then_some(known))
    }

    /// Forgets every flow.
    pub fn forget_all(&mut self) {
        self.flows.clear();
    }

    /// Keeps what a transaction that has committed wrote; `version` is what it read. Ended
    /// flows are not kept: nothing checkpoints them any more.
    pub fn keep(&mut self, version: DataVersion, committed: impl IntoIterator<Item = KnownFlow>) {
        for known in committed {
            if known.flow.status.is_terminal() {
                self.flows.remove(&known.flow.id);
                continue;
            }
            if self.flows.len() >= MAX_FLOWS {
                self.flows.clear();
            }
            self.flows.insert(known.flow.id, (known, version));
        }
    }
}
