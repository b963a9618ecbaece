//! What this process committed of the flows it runs, kept between their checkpoints, so that
//! the next checkpoint of a flow need not read it first: a chained step (end one, begin the
//! next) is then one round trip, its writes sent with its `COMMIT`. A run's start, which reads
//! the flow and its whole journal in one snapshot, is remembered the same way: the run's first
//! checkpoint goes from memory too, and since the memory then holds every running step, the
//! checkpoint that ends the flow need not count them.
//!
//! Other processes write to the same flows, so what is remembered is trusted only as far as the
//! server confirms it, in the checkpoint's own transaction, ahead of its writes: the first
//! statement locks the flow's row only if its revision, lease token and lease expiry are still
//! the ones remembered (every change to a flow's row moves one of them), the next checks that
//! its last step is still the one remembered (a step added by any other writer moves it) and
//! that the steps remembered as running still run at the remembered attempt (a runner of
//! another store holding the same lease may end or retry one, which moves nothing else). Either
//! failing fails the transaction, and the checkpoint runs again, reading everything. Only a
//! tree's root is remembered (its own row is the lock), and only while it has no child step
//! running: a child's end ends that step from the child's transaction.
//!
//! A checkpoint takes its flows' memories out before its transaction begins and starts only from
//! those: another thread's checkpoint of the same flow finds none and reads, and a memory kept
//! meanwhile is not used by a run that could not run again.

use std::collections::HashMap;
use std::sync::Mutex;

use taskflow_store::semantics::{CheckpointMemory, KnownFlow};
use taskflow_store::{CheckpointOp, FlowId, StepKind};

use crate::transaction::Transaction;

/// Past this many flows, what is remembered is dropped (runs that ended without a checkpoint
/// that ended their flow leave theirs behind).
const MOST: usize = 4096;

/// The flows as this process's last committed checkpoint of each left them.
#[derive(Debug, Default)]
pub(crate) struct Known {
    flows: Mutex<HashMap<String, KnownFlow>>,
}

impl Known {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KnownFlow>> {
        self.flows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes out what it remembers of the flows `ops` write: a checkpoint that fails leaves
    /// them forgotten.
    pub(crate) fn take_for(&self, ops: &[CheckpointOp]) -> Recalled {
        let mut flows = self.lock();
        ops.iter().filter_map(|op| flows.remove_entry(op.flow_id().as_str())).collect()
    }

    /// Keeps what committed checkpoints wrote; ended flows are not kept.
    pub(crate) fn keep(&self, committed: Vec<KnownFlow>) {
        let mut flows = self.lock();
        if flows.len() + committed.len() > MOST {
            flows.clear();
        }
        for known in committed {
            if !known.flow.status.is_terminal() {
                flows.insert(known.flow.id.as_str().to_owned(), known);
            }
        }
    }
}

/// What one checkpoint took out of [`Known`], by flow id.
pub(crate) type Recalled = HashMap<String, KnownFlow>;

/// The memory of one checkpoint transaction: what it took out of [`Known`] before it began.
pub(crate) struct Remembered<'a, 't> {
    tx: &'a Transaction<'t>,
    recalled: Recalled,
    /// Whether a flow's memory was used, confirmed by the server ahead of the writes.
    pub(crate) guarded: bool,
    /// What each flow's last group of ops left, to keep once the transaction has committed.
    pub(crate) committed: Vec<KnownFlow>,
}

impl<'a, 't> Remembered<'a, 't> {
    pub(crate) fn new(tx: &'a Transaction<'t>, recalled: Recalled) -> Self {
        Remembered { tx, recalled, guarded: false, committed: Vec::new() }
    }
}

/// Whether a checkpoint may start from `known` without reading the flow: a tree's root, with
/// its lease and next seq known and no child step running.
fn usable(known: &KnownFlow, owner: &str) -> bool {
    known.flow.owner == owner
        && known.flow.parent_flow_id.is_none()
        && known.lease_token.is_some()
        && known.flow.lease.is_some()
        && known.next_seq.is_some()
        && known.running.values().all(|step| step.kind != StepKind::Child)
}

impl CheckpointMemory for Remembered<'_, '_> {
    fn recall(&mut self, owner: &str, id: &FlowId) -> Option<KnownFlow> {
        let known = self.recalled.remove(id.as_str())?;
        if !usable(&known, owner) || self.tx.holds_lock(id.as_str()) {
            return None;
        }
        self.tx.lock_if_unchanged(&known);
        self.guarded = true;
        Some(known)
    }

    fn applied(&mut self, id: FlowId, written: Option<KnownFlow>) {
        self.committed.retain(|known| known.flow.id != id);
        self.committed.extend(written);
    }
}
