//! One batch of `flows prune`: the oldest ended top-level flows after the cursor, each with its
//! tree, removed in one transaction when the whole tree has ended.

use crate::error::Result;
use crate::model::FlowId;
use crate::prune::{PruneBatch, PruneQuery};
use crate::tx::StoreTx;

pub fn prune<T: StoreTx + ?Sized>(
    tx: &T,
    owner: Option<&str>,
    query: &PruneQuery,
) -> Result<PruneBatch> {
    let roots = tx.ended_roots(owner, query)?;
    let mut batch = PruneBatch::default();
    if roots.len() as u32 == query.limit {
        batch.next = roots.last().cloned();
    }
    for (_, root) in roots {
        let mut tree = vec![root];
        let mut at = 0;
        let mut ended = true;
        while at < tree.len() {
            for child in tx.children(&tree[at])? {
                ended &= child.status.is_terminal();
                tree.push(child.id);
            }
            at += 1;
        }
        if !ended {
            batch.kept += 1;
            continue;
        }
        remove_tree(tx, &tree)?;
        batch.removed += tree.len() as u64;
    }
    Ok(batch)
}

/// Removes the flows of a tree (listed parents first): every journal first, since a parent's
/// `child` steps name its children, then the flows, children first.
fn remove_tree<T: StoreTx + ?Sized>(tx: &T, tree: &[FlowId]) -> Result<()> {
    for id in tree {
        tx.delete_journal(id)?;
    }
    for id in tree.iter().rev() {
        tx.delete_flow(id)?;
    }
    Ok(())
}
