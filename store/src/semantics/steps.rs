//! A journal row's life: a step begins (a retry keeps the key of the step it retries and
//! counts its attempts on) and ends once; each is an event of the feed.

use serde_json::{Value, json};

use super::{load_step, not_running, step_change};
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::model::{FieldChange, Flow, FlowId, NewStep, Step, StepKind, StepOutcome, StepReport};
use crate::rules;
use crate::status::StepStatus;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// Inserts step `seq` of `flow`, running. A new step's key is `FLOW:SEQ`; a step that retries
/// an earlier failed or cancelled one of the same name keeps its key and counts on from its
/// attempt.
pub(super) fn insert_step<T: StoreTx + ?Sized>(
    tx: &T,
    flow: &Flow,
    step: NewStep,
    child: Option<FlowId>,
    seq: u32,
    now: Timestamp,
) -> Result<Step> {
    let step = begun_step(tx, flow, step, child, seq, now)?;
    tx.insert_step(&step)?;
    tx.append_event(&NewEvent::step(flow, &step, now))?;
    Ok(step)
}

/// Step `seq` of `flow` as it begins: its first attempt, or the next attempt of the step it
/// retries (with that step's idempotency key).
fn begun_step<T: StoreTx + ?Sized>(
    tx: &T,
    flow: &Flow,
    step: NewStep,
    child: Option<FlowId>,
    seq: u32,
    now: Timestamp,
) -> Result<Step> {
    let (attempt, idempotency_key) = match step.retry_of {
        None => (1, format!("{}:{seq}", flow.id)),
        Some(retried) => {
            let earlier = load_step(tx, flow, retried)?;
            rules::check_retry_of(flow, &earlier, &step.name)?;
            (earlier.attempt + 1, earlier.idempotency_key)
        }
    };
    Ok(Step {
        flow_id: flow.id.clone(),
        seq,
        name: step.name,
        kind: step.kind,
        status: StepStatus::Running,
        attempt,
        idempotency_key,
        input: step.input,
        output: None,
        error: None,
        started_at: now,
        ended_at: None,
        child_flow_id: child,
    })
}

/// A step that begins and ends at once (a mirrored flow's owner reports it done): one row,
/// written ended, and one event with its end. Nobody could see it running, so the feed does not
/// say it was.
fn insert_ended_step<T: StoreTx + ?Sized>(
    tx: &T,
    flow: &Flow,
    new: NewStep,
    seq: u32,
    outcome: StepOutcome,
    now: Timestamp,
) -> Result<Step> {
    let begun = begun_step(tx, flow, new, None, seq, now)?;
    let (status, output, error) = outcome_fields(outcome);
    let ended = Step { status, output, error, ended_at: Some(now), ..begun };
    tx.insert_step(&ended)?;
    tx.append_event(&NewEvent::step(flow, &ended, now))?;
    Ok(ended)
}

/// A step outcome as the row's `status`, `output` and `error`.
fn outcome_fields(outcome: StepOutcome) -> (StepStatus, Option<Value>, Option<String>) {
    let status = outcome.status();
    match outcome {
        StepOutcome::Succeeded(output) => (status, Some(output), None),
        StepOutcome::Failed(error) => (status, None, Some(rules::free_text(error))),
        StepOutcome::Cancelled => (status, None, None),
    }
}

/// Records a step a mirrored flow's owner reports (see [`StepReport`]); returns the change its
/// revision lists, or `None` when the report changes nothing.
pub(super) fn report_step<T: StoreTx + ?Sized>(
    tx: &T,
    flow: &Flow,
    report: &StepReport,
    now: Timestamp,
) -> Result<Option<FieldChange>> {
    rules::check_text("step name", &report.name)?;
    let stray = match report.status {
        StepStatus::Succeeded => report.error.as_ref().map(|_| "an `error`"),
        StepStatus::Failed => report.output.as_ref().map(|_| "an `output`"),
        _ => report
            .output
            .as_ref()
            .map(|_| "an `output`")
            .or(report.error.as_ref().map(|_| "an `error`")),
    };
    if let Some(stray) = stray {
        return Err(Error::InvalidInput(format!(
            "step `{}` is reported {} with {stray}, which it cannot keep: only a succeeded \
             step has an output, and only a failed one an error",
            report.name, report.status
        )));
    }
    let outcome = || match report.status {
        StepStatus::Succeeded => {
            StepOutcome::Succeeded(report.output.clone().unwrap_or(Value::Null))
        }
        StepStatus::Failed => {
            StepOutcome::Failed(report.error.clone().unwrap_or_else(|| "failed".to_owned()))
        }
        _ => StepOutcome::Cancelled,
    };
    let latest = tx.last_step_named(&flow.id, &report.name)?;
    let (step, before) = match latest {
        Some(step) if step.status == StepStatus::Running => {
            if report.status == StepStatus::Running {
                return Ok(None);
            }
            let seq = step.seq;
            (finish_step(tx, flow, seq, outcome(), now, Some(step))?, json!("running"))
        }
        // The same end again is no change; the same status with another output or error is
        // not the same end.
        Some(step) if step.status == report.status => {
            let other = match report.status {
                StepStatus::Succeeded => report
                    .output
                    .as_ref()
                    .filter(|output| step.output.as_ref() != Some(*output))
                    .map(|_| "output"),
                StepStatus::Failed => report
                    .error
                    .clone()
                    .map(rules::free_text)
                    .filter(|error| step.error.as_ref() != Some(error))
                    .map(|_| "error"),
                _ => None,
            };
            return match other {
                None => Ok(None),
                Some(what) => Err(Error::EndedOtherwise {
                    id: flow.id.to_string(),
                    name: report.name.clone(),
                    status: step.status,
                    what,
                }),
            };
        }
        // An ended step is not ended again otherwise: only a report that it runs again
        // begins anything (see `StepStatus::is_tried_again`).
        Some(step) if report.status != StepStatus::Running => {
            return Err(Error::EndedOtherwise {
                id: flow.id.to_string(),
                name: report.name.clone(),
                status: step.status,
                what: "status",
            });
        }
        // A step begun after a cancel request would be new work on the flow. One reported ended
        // at once records work done (an owner may report its steps only as they end).
        _ if report.status == StepStatus::Running && flow.cancel_requested_at.is_some() => {
            return Err(Error::CancelRequested { id: flow.id.to_string() });
        }
        latest => {
            let retry_of = latest.filter(|step| step.status.is_tried_again()).map(|step| step.seq);
            let new = NewStep { retry_of, ..NewStep::new(&report.name, StepKind::Action) };
            let seq = tx.last_seq(&flow.id)?.unwrap_or(0) + 1;
            if report.status == StepStatus::Running {
                (insert_step(tx, flow, new, None, seq, now)?, Value::Null)
            } else {
                (insert_ended_step(tx, flow, new, seq, outcome(), now)?, Value::Null)
            }
        }
    };
    Ok(Some(step_change(&step, before, json!(step.status.as_str()))))
}

/// Ends running step `seq` of `flow` with `outcome`, returning it as stored. `known` is the
/// step as it was written when it started (or restarted), if the caller has it.
pub(super) fn finish_step<T: StoreTx + ?Sized>(
    tx: &T,
    flow: &Flow,
    seq: u32,
    outcome: StepOutcome,
    now: Timestamp,
    known: Option<Step>,
) -> Result<Step> {
    let (status, output, error) = outcome_fields(outcome);
    if !tx.end_step(&flow.id, seq, status, output.as_ref(), error.as_deref(), now)? {
        return Err(not_running(tx, flow, seq));
    }
    let step = match known {
        Some(step) => Step { status, output, error, ended_at: Some(now), ..step },
        None => load_step(tx, flow, seq)?,
    };
    tx.append_event(&NewEvent::step(flow, &step, now))?;
    Ok(step)
}
