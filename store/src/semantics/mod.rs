//! The flow semantics, written once for every backend: each function is one store operation run
//! inside a transaction the backend opened, reading and writing rows only through
//! [`StoreTx`]. The rules they apply are the pure checks of [`crate::rules`],
//! [`crate::status`] and [`crate::lease`]; what is here is the order of reads, checks and
//! writes that makes an operation atomic (every check before the first write it guards) and
//! the effects that reach other flows (a cancel down a tree, a child's end up to its parent).

mod audit;
mod checkpoint;
mod commit;
mod create;
mod leases;
mod prune;
mod schedules;
mod stalled;
mod steps;
mod tree;
mod waits;

pub use audit::{CANCEL_GRACE, audit, repair};
pub use checkpoint::{CheckpointMemory, Forget, KnownFlow, apply_group, checkpoint};
pub use commit::commit;
pub use create::{create_flow, fork, reopen, spawn_child};
pub use leases::{acquire_lease, acquire_leases, adoptable, check_ttl, claim, release_lease};
pub use prune::prune;
pub use schedules::history as schedule_history;
pub use schedules::{
    SLOT_CONTROLLER, cancel_slot_run, decide, decide_by_hand, gate_states, put_schedule,
    remove_schedule, resolve, set_paused, show, summaries,
};
pub use stalled::list_stalled;
pub use tree::{report, request_cancel};
pub use waits::{decide_approval, send_signal, signals, take_signal};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{CheckpointDone, FieldChange, Flow, FlowId, Step};
use crate::status::FlowStatus;
use crate::tx::StoreTx;

/// The actor written into revisions the store makes on its own (a child's end settling its
/// parent's step).
pub const SYSTEM_ACTOR: &str = "taskflow";

/// Flow `id` and its lease token; with `owner`, another owner's flow is `NotFound`, exactly
/// like a missing one.
pub fn load_flow<T: StoreTx + ?Sized>(
    tx: &T,
    owner: Option<&str>,
    id: &FlowId,
    with_spec: bool,
) -> Result<(Flow, Option<String>)> {
    tx.load_flow(owner, id, with_spec)?.ok_or_else(|| Error::NotFound { id: id.to_string() })
}

fn load_step<T: StoreTx + ?Sized>(tx: &T, flow: &Flow, seq: u32) -> Result<Step> {
    tx.load_step(&flow.id, seq)?.ok_or_else(|| Error::StepNotFound { id: flow.id.to_string(), seq })
}

/// The answer to a checkpoint of one op.
pub fn one_answer(answers: Result<Vec<Result<CheckpointDone>>>) -> Result<CheckpointDone> {
    answers?.pop().unwrap_or_else(|| Err(Error::InvalidInput("no answer".to_owned())))
}

pub fn unexpected(done: CheckpointDone) -> Error {
    Error::InvalidInput(format!("unexpected answer from the store: {done:?}"))
}

/// Steps run only while their flow is `running`.
fn check_running(flow: &Flow) -> Result<()> {
    if flow.status != FlowStatus::Running {
        return Err(Error::InvalidInput(format!(
            "flow {} is {}: steps run only while it is running",
            flow.id, flow.status
        )));
    }
    Ok(())
}

/// A managed flow's current step is the last step of its journal (read with the flow, never
/// written to its row): `step` has just been added to it.
fn journal_moved_to<'f>(step: &Step, flows: impl IntoIterator<Item = &'f mut Flow>) {
    for flow in flows {
        flow.current_step = Some(step.name.clone());
    }
}

/// How a revision names a change to one step.
fn step_change(step: &Step, before: Value, after: Value) -> FieldChange {
    FieldChange { field: format!("step {} ({})", step.seq, step.name), before, after }
}

/// Why step `seq` of `flow` cannot be changed as a running step.
fn not_running<T: StoreTx + ?Sized>(tx: &T, flow: &Flow, seq: u32) -> Error {
    match load_step(tx, flow, seq) {
        Ok(step) => crate::rules::check_step_running(flow, seq, step.status)
            .err()
            .unwrap_or_else(|| Error::InvalidInput(format!("step {seq} is running"))),
        Err(error) => error,
    }
}

/// Whether `flow`'s pending cancel settles now: nothing of it runs any more.
fn cancel_settles<T: StoreTx + ?Sized>(tx: &T, flow: &Flow) -> Result<bool> {
    Ok(crate::rules::cancel_pending(flow) && tx.running_steps(&flow.id)? == 0)
}
