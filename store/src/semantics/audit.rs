//! `taskflow doctor`: reading every unfinished flow for records that no longer tell the truth,
//! and the safe repairs, each made through the same rules as any change (a revision with the
//! repairer as its actor). Nothing here deletes a journal.

use std::time::Duration;

use serde_json::json;

use super::steps::finish_step;
use super::tree::{cancel_tree, flow_ended};
use super::{cancel_settles, commit, load_flow, step_change};
use crate::audit::{Finding, FindingCode};
use crate::error::Result;
use crate::model::{Flow, FlowSummary, ListQuery, StallReason, StepKind, StepOutcome, SyncMode};
use crate::rules;
use crate::status::{FlowStatus, StepStatus};
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// How long a cancel may take to settle before it counts as stuck.
pub const CANCEL_GRACE: Duration = Duration::from_secs(300);

/// Every unfinished flow of `owner` (of every owner with `None`), oldest first.
fn unfinished<T: StoreTx + ?Sized>(tx: &T, owner: Option<&str>) -> Result<Vec<FlowSummary>> {
    let mut flows = Vec::new();
    for status in
        [FlowStatus::Queued, FlowStatus::Running, FlowStatus::Waiting, FlowStatus::Blocked]
    {
        let mut query = ListQuery {
            status: Some(status),
            limit: 500,
            all_owners: owner.is_none(),
            ..ListQuery::default()
        };
        loop {
            let page = tx.list(owner, &query)?;
            let full = page.len() as u32 == query.limit;
            if let Some(last) = page.last() {
                query.before = Some((last.created_at, last.id.clone()));
            }
            flows.extend(page);
            if !full {
                break;
            }
        }
    }
    flows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(flows)
}

/// What is wrong with the unfinished flows of `owner` (of every owner with `None`).
pub fn audit<T: StoreTx + ?Sized>(
    tx: &T,
    owner: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for summary in unfinished(tx, owner)? {
        let (flow, _) = load_flow(tx, None, &summary.id, false)?;
        findings.extend(judge(tx, &flow, now)?);
    }
    Ok(findings)
}

/// What is wrong with one unfinished flow.
fn judge<T: StoreTx + ?Sized>(tx: &T, flow: &Flow, now: Timestamp) -> Result<Vec<Finding>> {
    let found = |code, reason: String, repair: Option<&str>| Finding {
        code,
        flow: Some(flow.id.clone()),
        owner: Some(flow.owner.clone()),
        reason,
        repair: repair.map(str::to_owned),
    };
    let mut findings = Vec::new();
    let stall = flow.stall(now);
    let no_runner = flow.lease.is_none() || stall.is_some();
    if let Some(requested) = flow.cancel_requested_at
        && flow.sync_mode == SyncMode::Managed
        && no_runner
        && requested.as_millis() + CANCEL_GRACE.as_millis() as i64 <= now.as_millis()
    {
        let running = tx.running_steps(&flow.id)?;
        let reason = format!(
            "cancel asked for at {requested} has not settled: {running} step(s) still recorded \
             running, and no runner holds the flow"
        );
        findings.push(found(
            FindingCode::CancelStuck,
            reason,
            Some("end its running steps as cancelled, which settles the cancel"),
        ));
    } else if let Some(stall) = &stall
        && let Some(lease) = &flow.lease
    {
        // A running flow with no lease at all was given back on purpose (a drained runner):
        // any runner adopts it, and nothing about it is stale.
        let holder = &lease.holder;
        let why = match stall.reason {
            StallReason::HolderGone => format!("its runner {holder} is gone"),
            _ => format!("the lease of {holder} expired at {}", lease.expires_at),
        };
        findings.push(found(
            FindingCode::StaleRunning,
            format!("running, but {why}; `taskflow flows resume {}` continues it", flow.id),
            Some("give the dead lease back, so that any runner may resume the flow at once"),
        ));
    }
    if flow.status == FlowStatus::Waiting
        && flow.sync_mode == SyncMode::Managed
        && flow.wake_at.is_none()
        && !crate::wait::can_wake(flow.wait.as_ref())
    {
        findings.push(found(
            FindingCode::WaitingWithoutWake,
            "waiting, but its wait names no timer, signal or approval that could wake it"
                .to_owned(),
            None,
        ));
    }
    if let Some(parent_id) = &flow.parent_flow_id {
        let (parent, _) = load_flow(tx, None, parent_id, false)?;
        if parent.status.is_terminal() {
            findings.push(found(
                FindingCode::OrphanChild,
                format!(
                    "still {} under its parent {parent_id}, which ended {}",
                    flow.status, parent.status
                ),
                Some("cancel it, as its parent's end would have"),
            ));
        }
    }
    for step in tx.steps(&flow.id)? {
        let Some(child_id) = &step.child_flow_id else { continue };
        if step.kind != StepKind::Child || step.status != StepStatus::Running {
            continue;
        }
        let (child, _) = load_flow(tx, None, child_id, false)?;
        if child.status.is_terminal() {
            findings.push(found(
                FindingCode::OrphanChild,
                format!(
                    "its step `{}` still waits for the child {child_id}, which ended {}",
                    step.name, child.status
                ),
                Some("end the step as the child ended"),
            ));
        }
    }
    Ok(findings)
}

/// Makes the safe repair of `finding` as `actor`, after judging the flow again in this
/// transaction (it may have changed since it was read); returns what was done, or `None` when
/// nothing is left to repair.
pub fn repair<T: StoreTx + ?Sized>(
    tx: &T,
    actor: &str,
    finding: &Finding,
    now: Timestamp,
) -> Result<Option<String>> {
    let Some(id) = &finding.flow else { return Ok(None) };
    let (flow, _) = load_flow(tx, None, id, false)?;
    let still = judge(tx, &flow, now)?;
    let Some(current) = still.iter().find(|found| found.code == finding.code) else {
        return Ok(None);
    };
    if current.repair.is_none() {
        return Ok(None);
    }
    match finding.code {
        FindingCode::StaleRunning => {
            let mut after = flow.clone();
            after.lease = None;
            commit(tx, &flow, after, Vec::new(), actor, now, None)?;
            Ok(Some("gave the dead lease back".to_owned()))
        }
        FindingCode::CancelStuck => settle_cancel(tx, flow, actor, now).map(Some),
        FindingCode::OrphanChild => {
            let mut done = Vec::new();
            let parent_ended = match &flow.parent_flow_id {
                Some(parent) => load_flow(tx, None, parent, false)?.0.status.is_terminal(),
                None => false,
            };
            if parent_ended && !flow.status.is_terminal() {
                if flow.cancel_requested_at.is_none() {
                    cancel_tree(tx, flow.clone(), actor, now)?;
                }
                let (flow, _) = load_flow(tx, None, id, false)?;
                let no_runner = flow.lease.is_none() || flow.is_stalled(now);
                if !flow.status.is_terminal() && no_runner {
                    done.push(settle_cancel(tx, flow, actor, now)?);
                } else {
                    done.push(format!("asked it to cancel; it is {}", flow.status));
                }
            }
            let mut ended = 0;
            for step in tx.steps(id)? {
                let Some(child_id) = &step.child_flow_id else { continue };
                if step.kind != StepKind::Child || step.status != StepStatus::Running {
                    continue;
                }
                let (child, _) = load_flow(tx, None, child_id, false)?;
                if child.status.is_terminal() {
                    flow_ended(tx, &child, now)?;
                    ended += 1;
                }
            }
            if ended > 0 {
                done.push(format!("ended {ended} step(s) as their children ended"));
            }
            Ok(Some(done.join("; ")))
        }
        FindingCode::WaitingWithoutWake | FindingCode::Schema | FindingCode::Integrity => Ok(None),
    }
}

/// Ends the running steps of a flow whose cancel is pending and whose runner is gone, then the
/// flow (cancelled) and, in turn, its parent's step.
fn settle_cancel<T: StoreTx + ?Sized>(
    tx: &T,
    flow: Flow,
    actor: &str,
    now: Timestamp,
) -> Result<String> {
    let mut ended = 0;
    let mut changes = Vec::new();
    for step in tx.steps(&flow.id)? {
        if step.status != StepStatus::Running || step.kind == StepKind::Child {
            continue;
        }
        let step = finish_step(tx, &flow, step.seq, StepOutcome::Cancelled, now, Some(step))?;
        changes.push(step_change(&step, json!("running"), json!(step.status.as_str())));
        ended += 1;
    }
    let mut after = flow.clone();
    after.lease = None;
    if cancel_settles(tx, &flow)? {
        rules::set_status(&mut after, FlowStatus::Cancelled, now);
    }
    let after = commit(tx, &flow, after, changes, actor, now, None)?;
    if after.status.is_terminal() {
        flow_ended(tx, &after, now)?;
    }
    Ok(format!("ended {ended} running step(s) as cancelled; the flow is {}", after.status))
}
