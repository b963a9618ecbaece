//! The store's rules as pure checks over a flow record: optimistic concurrency, what a
//! cancel request forbids, who may spawn children, what a mirrored flow may report, and when a
//! cancel has settled. Backends load a flow inside their transaction, ask these functions, and
//! only then write; so every backend enforces the same rules, and each rule is tested here once.

use crate::error::{Error, Result, SpawnRefusal};
use crate::excerpt::quoted;
use crate::lease::Lease;
use crate::model::{ExpectedRevision, Flow, ResumePlan, StateReport, Step, StepOutcome, SyncMode};
use crate::status::{FlowStatus, StepStatus};
use crate::time::Timestamp;

/// Optimistic concurrency: a mutation that expected another revision is refused.
pub fn check_expected(flow: &Flow, expected: ExpectedRevision) -> Result<()> {
    match expected {
        Some(expected) if expected != flow.revision => {
            Err(Error::RevisionConflict { expected, current: flow.revision })
        }
        _ => Ok(()),
    }
}

/// Free text a record keeps (a goal, an error) as every backend stores it: a NUL character,
/// which PostgreSQL's text cannot hold, becomes U+FFFD, so that the record, its history and the
/// answer to the write that made it are the same on every backend.
pub fn free_text(text: String) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text }
}

/// An owner or a flow name: 1 to 200 characters of printable text.
pub fn check_text(what: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() || text.chars().any(char::is_control) || text.chars().count() > 200 {
        return Err(Error::InvalidInput(format!(
            "{what} must be 1 to 200 characters of printable text, got {}",
            quoted(text)
        )));
    }
    Ok(())
}

/// A name a signal can carry: printable text (as [`check_text`]) that does not begin with
/// [`crate::wait::APPROVAL_PREFIX`], whose names carry decisions about tool calls, recorded as
/// approvals. What `flows signal` and `POST …/signals/{name}` deliver, and so what a
/// `wait_signal` step may wait for.
pub fn check_signal_name(name: &str) -> Result<()> {
    check_text("signal name", name)?;
    if name.starts_with(crate::wait::APPROVAL_PREFIX) {
        return Err(Error::InvalidInput(format!(
            "signal `{name}`: names that begin with `{}` carry decisions about tool calls, \
             which are recorded as approvals",
            crate::wait::APPROVAL_PREFIX
        )));
    }
    Ok(())
}

/// A terminal flow does not change.
pub fn check_not_ended(flow: &Flow) -> Result<()> {
    if flow.status.is_terminal() {
        Err(Error::AlreadyEnded { id: flow.id.to_string(), status: flow.status })
    } else {
        Ok(())
    }
}

/// New steps may be scheduled only on a live flow without a cancel request.
pub fn check_can_schedule(flow: &Flow) -> Result<()> {
    check_not_ended(flow)?;
    if flow.cancel_requested_at.is_some() {
        return Err(Error::CancelRequested { id: flow.id.to_string() });
    }
    Ok(())
}

/// A child may be spawned only under a managed, live parent without a cancel request.
pub fn check_spawn(parent: &Flow) -> Result<()> {
    let refusal = if parent.status.is_terminal() {
        Some(SpawnRefusal::ParentTerminal(parent.status))
    } else if parent.sync_mode == SyncMode::Mirrored {
        Some(SpawnRefusal::ParentMirrored)
    } else if parent.cancel_requested_at.is_some() {
        Some(SpawnRefusal::ParentCancelRequested)
    } else {
        None
    };
    match refusal {
        Some(reason) => Err(Error::SpawnRefused { parent: parent.id.to_string(), reason }),
        None => Ok(()),
    }
}

/// A status change, from the engine or from a mirrored flow's owner: legal in the transition
/// table, and never back into `running` once a cancel was requested.
pub fn check_status_change(flow: &Flow, to: FlowStatus) -> Result<()> {
    if !flow.status.can_transition(to) {
        return Err(Error::IllegalTransition { from: flow.status, to });
    }
    if to == FlowStatus::Running && flow.cancel_requested_at.is_some() {
        return Err(Error::CancelRequested { id: flow.id.to_string() });
    }
    Ok(())
}

/// A state report is accepted only for a mirrored flow that has not ended, and only with a
/// legal status change. Returns the flow as the report leaves it.
pub fn apply_report(flow: &Flow, report: &StateReport, now: Timestamp) -> Result<Flow> {
    if flow.sync_mode != SyncMode::Mirrored {
        return Err(Error::NotMirrored { id: flow.id.to_string() });
    }
    // The status first: a change asked of an ended flow is refused naming both statuses.
    let change = report.status.filter(|&to| to != flow.status);
    if let Some(to) = change {
        check_status_change(flow, to)?;
        // A cancel request is sticky: the owner winds its work down, and the flow ends
        // cancelled (or failed, if winding down failed), never as if nothing was asked.
        let wound_down = matches!(to, FlowStatus::Cancelled | FlowStatus::Failed);
        if to.is_terminal() && !wound_down && flow.cancel_requested_at.is_some() {
            return Err(Error::InvalidInput(format!(
                "flow {} has a cancel request: report it `cancelled` (or `failed`), not `{to}`",
                flow.id
            )));
        }
        // An ended flow waits for nothing ([`set_status`] clears its wait): a wait given with
        // the end could not be kept, and is refused rather than dropped.
        if to.is_terminal() && report.wait.as_ref().is_some_and(|wait| !wait.is_null()) {
            return Err(Error::EndsWithWait { id: flow.id.to_string(), status: to });
        }
    }
    check_not_ended(flow)?;
    let mut after = flow.clone();
    if let Some(to) = change {
        set_status(&mut after, to, now);
    }
    if let Some(step) = &report.current_step {
        check_text("current step", step)?;
        after.current_step = Some(step.clone());
    }
    if let Some(state) = &report.state {
        after.state = non_null(state);
    }
    if let Some(wait) = &report.wait {
        after.wait = non_null(wait);
    }
    if let Some(goal) = &report.goal {
        after.goal = Some(free_text(goal.clone()));
    }
    if let Some(error) = &report.error {
        after.error = Some(free_text(error.clone()));
    }
    Ok(after)
}

/// Moves `flow` to `to`, stamping `ended_at` when it ends. A managed flow that stops waiting
/// waits for nothing any more (a mirrored flow's `wait` is its owner's to clear). The caller
/// has checked the transition.
pub fn set_status(flow: &mut Flow, to: FlowStatus, now: Timestamp) {
    if flow.status == FlowStatus::Waiting && to != FlowStatus::Waiting {
        flow.wake_at = None;
        if flow.sync_mode == SyncMode::Managed {
            flow.wait = None;
        }
    }
    flow.status = to;
    if to.is_terminal() {
        flow.ended_at = Some(now);
        flow.lease = None;
        flow.wait = None;
        flow.wake_at = None;
    }
}

/// A managed flow that is to become `cancelled` once its running work has ended: callers need
/// to count that work only then.
pub fn cancel_pending(flow: &Flow) -> bool {
    flow.sync_mode == SyncMode::Managed
        && flow.cancel_requested_at.is_some()
        && !flow.status.is_terminal()
}

/// Engine mutations of a managed flow must present the lease that is stored on it.
pub fn check_lease(flow: &Flow, stored_token: Option<&str>, lease: &Lease) -> Result<()> {
    check_managed(flow, "run")?;
    if stored_token != Some(lease.token.as_str()) || lease.flow_id != flow.id {
        return Err(Error::LeaseLost { id: flow.id.to_string() });
    }
    Ok(())
}

/// Refuses to run (lease, resume) a mirrored flow.
pub fn check_managed(flow: &Flow, action: &'static str) -> Result<()> {
    if flow.sync_mode == SyncMode::Mirrored {
        return Err(Error::Mirrored { id: flow.id.to_string(), action });
    }
    Ok(())
}

/// The status a child step takes when its child flow ends.
pub fn child_step_status(child: FlowStatus) -> StepOutcome {
    match child {
        FlowStatus::Succeeded => StepOutcome::Succeeded(serde_json::Value::Null),
        FlowStatus::Cancelled => StepOutcome::Cancelled,
        other => StepOutcome::Failed(format!("child flow {other}")),
    }
}

/// Whether a flow can be resumed, and what resuming it means. A live lease held by another
/// runner is checked when the runner takes the lease, not here.
pub fn resume_plan(flow: &Flow, now: Timestamp) -> Result<ResumePlan> {
    check_managed(flow, "resume")?;
    check_not_ended(flow)?;
    if flow.cancel_requested_at.is_some() {
        return Ok(ResumePlan::FinishCancel);
    }
    Ok(ResumePlan::Run { stalled: flow.is_stalled(now) })
}

/// A step that ended is not changed again.
pub fn check_step_running(flow: &Flow, seq: u32, status: StepStatus) -> Result<()> {
    if status.is_ended() {
        return Err(Error::StepEnded { id: flow.id.to_string(), seq, status });
    }
    Ok(())
}

/// A `failed` managed flow may be opened again so that a resume retries it: it goes back to
/// `queued` with its error and end cleared (the revision keeps both). No other ended flow ever
/// changes, and a child flow is left to its parent.
pub fn reopen(flow: &Flow) -> Result<Flow> {
    check_managed(flow, "resume")?;
    if flow.status != FlowStatus::Failed {
        return Err(Error::InvalidInput(format!(
            "flow {} is {}: only a failed flow is reopened",
            flow.id, flow.status
        )));
    }
    if let Some(parent) = &flow.parent_flow_id {
        return Err(Error::InvalidInput(format!(
            "flow {} is a child of flow {parent}, which decides what happens after it failed",
            flow.id
        )));
    }
    let mut after = flow.clone();
    after.status = FlowStatus::Queued;
    after.ended_at = None;
    after.error = None;
    Ok(after)
}

/// Only a managed flow that has ended can be forked.
pub fn check_fork(flow: &Flow) -> Result<()> {
    check_managed(flow, "fork")?;
    if !flow.status.is_terminal() {
        return Err(Error::NotEnded { id: flow.id.to_string(), status: flow.status });
    }
    Ok(())
}

/// A step that retries an earlier one has its name, and the earlier one failed or was
/// cancelled.
pub fn check_retry_of(flow: &Flow, earlier: &Step, name: &str) -> Result<()> {
    if earlier.name != name {
        return Err(Error::InvalidInput(format!(
            "step {} of flow {} is `{}`, not `{name}`",
            earlier.seq, flow.id, earlier.name
        )));
    }
    if !earlier.status.is_tried_again() {
        return Err(Error::InvalidInput(format!(
            "step {} of flow {} is {}: only a failed or cancelled step is tried again",
            earlier.seq, flow.id, earlier.status
        )));
    }
    Ok(())
}

fn non_null(value: &serde_json::Value) -> Option<serde_json::Value> {
    (!value.is_null()).then(|| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LeaseHolder;
    use crate::model::{FlowId, LeaseInfo};
    use serde_json::json;

    fn flow(status: FlowStatus, mode: SyncMode, cancel: bool) -> Flow {
        Flow {
            id: FlowId::new(),
            name: "f".into(),
            owner: "o".into(),
            sync_mode: mode,
            controller: None,
            status,
            revision: 3,
            goal: None,
            current_step: None,
            state: None,
            wait: None,
            wake_at: None,
            spec: None,
            parent_flow_id: None,
            cancel_requested_at: cancel.then(|| Timestamp::from_millis(5)),
            lease: None,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
            ended_at: None,
            error: None,
        }
    }

    use FlowStatus::*;
    use SyncMode::*;

    #[test]
    fn expected_revision() {
        fn check(expected: ExpectedRevision, ok: bool) {
            let result = check_expected(&flow(Running, Managed, false), expected);
            match result {
                Ok(()) => assert!(ok, "{expected:?}"),
                Err(Error::RevisionConflict { expected: e, current }) => {
                    assert!(!ok);
                    assert_eq!((Some(e), current), (expected, 3));
                }
                Err(other) => panic!("{other}"),
            }
        }
        check(None, true);
        check(Some(3), true);
        check(Some(2), false);
        check(Some(4), false);
    }

    #[test]
    fn spawning_children() {
        fn check(status: FlowStatus, mode: SyncMode, cancel: bool, refusal: Option<SpawnRefusal>) {
            match (check_spawn(&flow(status, mode, cancel)), refusal) {
                (Ok(()), None) => {}
                (Err(Error::SpawnRefused { reason, .. }), Some(expected)) => {
                    assert_eq!(reason, expected)
                }
                (result, expected) => {
                    panic!("{status} {mode} {cancel}: {result:?} vs {expected:?}")
                }
            }
        }
        for status in [Queued, Running, Waiting, Blocked] {
            check(status, Managed, false, None);
            check(status, Managed, true, Some(SpawnRefusal::ParentCancelRequested));
            check(status, Mirrored, false, Some(SpawnRefusal::ParentMirrored));
        }
        for status in [Succeeded, Failed, Cancelled, Lost] {
            for mode in [Managed, Mirrored] {
                check(status, mode, false, Some(SpawnRefusal::ParentTerminal(status)));
            }
        }
    }

    #[test]
    fn scheduling_after_a_cancel_request() {
        fn check(status: FlowStatus, cancel: bool, ok: bool) {
            assert_eq!(check_can_schedule(&flow(status, Managed, cancel)).is_ok(), ok);
        }
        check(Running, false, true);
        check(Running, true, false);
        check(Waiting, true, false);
        check(Succeeded, false, false);
    }

    #[test]
    fn status_changes_with_and_without_a_cancel_request() {
        fn check(from: FlowStatus, to: FlowStatus, cancel: bool, ok: bool) {
            let result = check_status_change(&flow(from, Managed, cancel), to);
            assert_eq!(result.is_ok(), ok, "{from} -> {to} (cancel {cancel}): {result:?}");
        }
        check(Queued, Running, false, true);
        check(Queued, Running, true, false);
        check(Waiting, Running, true, false);
        check(Running, Waiting, true, true);
        check(Running, Cancelled, true, true);
        check(Running, Succeeded, true, true);
        check(Succeeded, Running, false, false);
    }

    #[test]
    fn reports_of_mirrored_flows() {
        fn check(
            mode: SyncMode,
            from: FlowStatus,
            report: StateReport,
            expect: Result<FlowStatus, &str>,
        ) {
            match (
                apply_report(&flow(from, mode, false), &report, Timestamp::from_millis(9)),
                expect,
            ) {
                (Ok(after), Ok(status)) => assert_eq!(after.status, status),
                (Err(error), Err(fragment)) => {
                    assert!(error.to_string().contains(fragment), "{error}")
                }
                (result, expect) => panic!("{mode} {from}: {result:?} vs {expect:?}"),
            }
        }
        let to = |status| StateReport { status: Some(status), ..StateReport::default() };
        check(Mirrored, Queued, to(Running), Ok(Running));
        check(Mirrored, Running, to(Succeeded), Ok(Succeeded));
        check(Mirrored, Running, to(Running), Ok(Running));
        check(Mirrored, Queued, to(Succeeded), Err("illegal transition from queued to succeeded"));
        check(Mirrored, Failed, to(Running), Err("illegal transition from failed to running"));
        check(Mirrored, Failed, to(Failed), Err("already ended (failed)"));
        check(Managed, Running, to(Succeeded), Err("is managed"));
        check(Mirrored, Running, StateReport::default(), Ok(Running));
    }

    #[test]
    fn a_report_changes_only_what_it_names_and_null_clears() {
        let mut before = flow(Waiting, Mirrored, false);
        before.wait = Some(json!({"until": "approval"}));
        before.state = Some(json!({"n": 1}));
        let report = StateReport {
            status: Some(Running),
            wait: Some(serde_json::Value::Null),
            current_step: Some("draft".into()),
            ..StateReport::default()
        };
        let after = apply_report(&before, &report, Timestamp::from_millis(9)).unwrap();
        assert_eq!(after.wait, None);
        assert_eq!(after.state, before.state);
        assert_eq!(after.current_step.as_deref(), Some("draft"));
        assert_eq!(after.ended_at, None);
        let ended = apply_report(
            &after,
            &StateReport { status: Some(Failed), error: Some("boom".into()), ..Default::default() },
            Timestamp::from_millis(10),
        )
        .unwrap();
        assert_eq!(ended.ended_at, Some(Timestamp::from_millis(10)));
        assert_eq!(ended.error.as_deref(), Some("boom"));
    }

    #[test]
    fn a_cancel_is_pending_on_a_live_managed_flow_with_a_request() {
        fn check(status: FlowStatus, mode: SyncMode, cancel: bool, pending: bool) {
            assert_eq!(cancel_pending(&flow(status, mode, cancel)), pending, "{status} {mode}");
        }
        check(Running, Managed, true, true);
        check(Queued, Managed, true, true);
        check(Running, Managed, false, false);
        check(Running, Mirrored, true, false);
        check(Cancelled, Managed, true, false);
    }

    #[test]
    fn an_illegal_status_change_names_both_statuses() {
        let error = check_status_change(&flow(Succeeded, Managed, false), Running).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("succeeded") && message.contains("running"), "{message}");
        assert!(check_status_change(&flow(Queued, Managed, false), Running).is_ok());
    }

    #[test]
    fn reopening_and_forking() {
        fn check(status: FlowStatus, mode: SyncMode, child: bool, reopen_ok: bool, fork_ok: bool) {
            let mut f = flow(status, mode, false);
            f.error = Some("boom".into());
            f.ended_at = status.is_terminal().then(|| Timestamp::from_millis(9));
            if child {
                f.parent_flow_id = Some(FlowId::new());
            }
            match reopen(&f) {
                Ok(after) => {
                    assert!(reopen_ok, "{status} {mode} reopened");
                    assert_eq!((after.status, after.error, after.ended_at), (Queued, None, None));
                }
                Err(error) => assert!(!reopen_ok, "{status} {mode}: {error}"),
            }
            assert_eq!(check_fork(&f).is_ok(), fork_ok, "{status} {mode} fork");
        }
        check(Failed, Managed, false, true, true);
        check(Failed, Managed, true, false, true);
        check(Failed, Mirrored, false, false, false);
        for status in [Succeeded, Cancelled, Lost] {
            check(status, Managed, false, false, true);
        }
        for status in [Queued, Running, Waiting, Blocked] {
            check(status, Managed, false, false, false);
        }
    }

    #[test]
    fn resume_plans() {
        let now = Timestamp::from_millis(1_000);
        fn check(f: &Flow, now: Timestamp, expect: Result<ResumePlan, &str>) {
            match (resume_plan(f, now), expect) {
                (Ok(plan), Ok(expected)) => assert_eq!(plan, expected),
                (Err(error), Err(fragment)) => {
                    assert!(error.to_string().contains(fragment), "{error}")
                }
                (result, expect) => panic!("{result:?} vs {expect:?}"),
            }
        }
        check(&flow(Queued, Managed, false), now, Ok(ResumePlan::Run { stalled: false }));
        check(&flow(Running, Managed, false), now, Ok(ResumePlan::Run { stalled: true }));
        let mut leased = flow(Running, Managed, false);
        leased.lease = Some(LeaseInfo {
            holder: LeaseHolder { host: "h".into(), pid: 1, process_start: None },
            expires_at: Timestamp::from_millis(2_000),
        });
        check(&leased, now, Ok(ResumePlan::Run { stalled: false }));
        check(&leased, Timestamp::from_millis(2_000), Ok(ResumePlan::Run { stalled: true }));
        check(&flow(Running, Managed, true), now, Ok(ResumePlan::FinishCancel));
        check(&flow(Running, Mirrored, false), now, Err("is mirrored"));
        check(&flow(Running, Mirrored, false), now, Err("does not resume it"));
        check(&flow(Succeeded, Managed, false), now, Err("already ended (succeeded)"));
    }
}
