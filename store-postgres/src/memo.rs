//! What a write transaction knows of a flow's journal without asking the server again: the
//! flow's last step, read with the tree's lock, and every step row it has written since. A
//! checkpoint that ends one step and begins the next needs the step it ends and the next seq;
//! known here, each is a round trip saved, and the writes can travel with the `COMMIT`.
//!
//! It stays true because the transaction holds the lock of the flow's tree: no other writer
//! adds, ends or removes the flow's steps until it ends, and its own writes update it. What a
//! checkpoint from memory brings in (`known.rs`) is true once its guards, which come first in
//! the transaction, have passed.

use std::collections::HashMap;

use taskflow_store::Step;

#[derive(Debug, Default)]
pub(crate) struct Memo {
    /// Flow id → its highest seq (`None`: no step yet), for flows read under the lock.
    last_seqs: HashMap<String, Option<u32>>,
    /// (flow id, seq) → the step as it is stored now.
    steps: HashMap<(String, u32), Step>,
}

impl Memo {
    /// The highest seq of flow `id`, if known.
    pub fn last_seq(&self, id: &str) -> Option<Option<u32>> {
        self.last_seqs.get(id).copied()
    }

    /// Flow `id`'s last step (`None`: it has none), as read under the lock.
    pub fn read_last(&mut self, id: &str, last: Option<Step>) {
        self.known(id, last.as_ref().map(|step| step.seq), last);
    }

    /// What a checkpoint remembered of flow `id`, confirmed under the tree's lock: its highest
    /// seq and its running steps as stored.
    pub fn known(
        &mut self,
        id: &str,
        last_seq: Option<u32>,
        running: impl IntoIterator<Item = Step>,
    ) {
        self.last_seqs.insert(id.to_owned(), last_seq);
        for step in running {
            self.steps.insert((id.to_owned(), step.seq), step);
        }
    }

    /// `step` was written (inserted or updated) and is stored as given.
    pub fn wrote(&mut self, step: Step) {
        let id = step.flow_id.as_str();
        if let Some(last) = self.last_seqs.get_mut(id) {
            *last = Some(last.map_or(step.seq, |last| last.max(step.seq)));
        }
        self.steps.insert((id.to_owned(), step.seq), step);
    }

    /// Step `seq` of flow `id` as stored, if known.
    pub fn step(&self, id: &str, seq: u32) -> Option<&Step> {
        self.steps.get(&(id.to_owned(), seq))
    }

    /// Flow `id`'s journal was deleted.
    pub fn forget(&mut self, id: &str) {
        self.last_seqs.remove(id);
        self.steps.retain(|(flow, _), _| flow != id);
    }
}
