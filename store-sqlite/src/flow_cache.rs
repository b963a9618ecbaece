//! What the store last committed of the flows its runners checkpoint, so that a runner's next
//! checkpoint does not read and decode the flow row again, nor its running steps.
//!
//! An entry is used only while nothing but this store's checkpoints has written to the
//! database since the entry was made: no other connection committed (SQLite's `data_version`
//! is unchanged) and this connection made no other write (the store counts those). A
//! checkpoint keeps the entries of the flows it writes current; anything else may have changed
//! a flow or its journal without bumping its revision (a step begun by a runner of another
//! store holding the same lease), so after any other write the flow is read again.
//! An entry is taken out when a transaction starts to use it and put back only once that
//! transaction has committed. A checkpoint that writes another flow's row than its own (ending a
//! child flow ends its parent's step for it, and may settle the parent's cancel, and so on up)
//! makes the cache forget every other flow: the transaction records each flow row it writes.

use std::collections::HashMap;

use taskflow_store::semantics::KnownFlow;
use taskflow_store::{FlowId, Result};

use crate::error::Sql;
use crate::transaction::Transaction;

/// Flows beyond this many are forgotten (all at once: they are cheap to load again).
const MAX_FLOWS: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct FlowCache {
    /// Each with the version of the database the transaction that wrote it saw.
    flows: HashMap<FlowId, (KnownFlow, DataVersion)>,
}

/// What a transaction saw of the database's writers, read once per transaction: SQLite's
/// `data_version` (moved by every commit of another connection) and how many writes other than
/// checkpoints this connection has made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataVersion {
    others: i64,
    own_other_writes: u64,
}

impl DataVersion {
    pub fn read(tx: &Transaction<'_>, own_other_writes: u64) -> Result<Self> {
        let others = tx
            .prepare_cached("PRAGMA data_version")
            .sql()?
            .query_row([], |row| row.get(0))
            .sql()?;
        Ok(DataVersion { others, own_other_writes })
    }
}

impl FlowCache {
    /// Takes out flow `id` as `owner` sees it, if nothing but this store's checkpoints wrote
    /// since the entry was made.
    pub fn take(&mut self, version: DataVersion, owner: &str, id: &FlowId) -> Option<KnownFlow> {
        let (known, seen) = self.flows.remove(id)?;
        (known.flow.owner == owner && seen == version).then_some(known)
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
            self.flows.insert(known.flow.id.clone(), (known, version));
        }
    }
}
