//! Running a child process for a step: with the step's identity in its environment
//! (`TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`, `TASKFLOW_STEP`, `TASKFLOW_ATTEMPT`), in its
//! own process group, so that a cancel or timeout
//! reaches everything it started (SIGTERM first, SIGKILL after the grace period), and on Linux
//! killed if the runner itself dies, so an orphan does not keep working after a crash (the
//! resumed step runs it again instead).

use std::process::{Output, Stdio};

use crate::step::{ActionError, StepContext};

/// Runs `command` to its end, with its stdin closed and its output captured, unless the step
/// is cancelled first.
pub(crate) async fn run_child(
    mut command: tokio::process::Command,
    context: &StepContext,
) -> Result<Output, ActionError> {
    command
        .env("TASKFLOW_IDEMPOTENCY_KEY", &context.idempotency_key)
        .env("TASKFLOW_FLOW_ID", context.flow_id.to_string())
        .env("TASKFLOW_STEP", &context.step)
        .env("TASKFLOW_ATTEMPT", context.attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(&mut command);
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    let child = command
        .spawn()
        .map_err(|error| ActionError::failed(format!("cannot start `{program}`: {error}")))?;
    let group = child.id().map(|pid| pid as i32);
    let finished = child.wait_with_output();
    tokio::pin!(finished);
    let output = tokio::select! {
        output = &mut finished => output,
        () = context.cancel.cancelled() => {
            signal(group, libc::SIGTERM);
            tokio::select! {
                output = &mut finished => {
                    // It finished its work after all: that is its outcome, not to be done
                    // again.
                    if let Ok(output) = output
                        && output.status.success()
                    {
                        return Ok(output);
                    }
                }
                () = tokio::time::sleep(context.kill_grace) => {
                    signal(group, libc::SIGKILL);
                    let _ = finished.await;
                }
            }
            return Err(ActionError::Cancelled);
        }
    };
    output.map_err(|error| ActionError::failed(format!("waiting for `{program}`: {error}")))
}

/// Sends `signal` to the command's process group.
fn signal(group: Option<i32>, signal: i32) {
    if let Some(group) = group {
        // SAFETY: kill(2) with a negative pid signals that process group; it has no memory
        // effects in this process.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// On Linux, the child is killed when the process that started it dies.
#[cfg(target_os = "linux")]
pub(crate) fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_command: &mut tokio::process::Command) {}
