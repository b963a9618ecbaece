//! Writing a flow's changes: the one place where a flow row is updated and its revision row
//! appended, so that every accepted change bumps the revision and is recorded in the same
//! transaction, with its event in the feed. A step that begins or ends is not a change to the
//! flow and never comes here.

use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::model::{FieldChange, Flow};
use crate::revision::FieldSet;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// Writes `after` over `before` if anything changed: bumps the revision, stamps `updated_at`,
/// and appends one revision row listing each changed field (plus `extra`, the changes that live
/// outside the flow row, such as a step's). A `new_token` replaces the lease token. Lease
/// renewals (the expiry alone) are not changes and are not written here.
pub fn commit<T: StoreTx + ?Sized>(
    tx: &T,
    before: &Flow,
    mut after: Flow,
    extra: Vec<FieldChange>,
    actor: &str,
    now: Timestamp,
    new_token: Option<&str>,
) -> Result<Flow> {
    let fields = FieldSet::between(before, &after, new_token);
    let mut changes: Vec<FieldChange> = fields
        .iter()
        .filter(|field| field.is_revision_change(before, &after, new_token))
        .map(|field| field.change(before, &after))
        .collect();
    changes.extend(extra);
    if changes.is_empty() {
        return Ok(after);
    }
    after.revision = before.revision + 1;
    after.updated_at = now;
    if !tx.update_flow(before, &after, fields, new_token)? {
        return Err(match tx.flow_revision(&after.id)? {
            Some(current) => Error::RevisionConflict { expected: before.revision, current },
            None => Error::NotFound { id: after.id.to_string() },
        });
    }
    tx.insert_revision(&after.id, after.revision, now, actor, &changes)?;
    // A step changed twice by one report (begun and ended) is one field of the change.
    let mut fields: Vec<String> = Vec::with_capacity(changes.len());
    for change in changes {
        if !fields.contains(&change.field) {
            fields.push(change.field);
        }
    }
    tx.append_event(&NewEvent::flow(&after, fields, now))?;
    Ok(after)
}
