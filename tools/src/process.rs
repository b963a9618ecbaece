//! Running a child process for a step: with the step's identity in its environment
//! (`TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`, `TASKFLOW_STEP`, `TASKFLOW_ATTEMPT`), in its
//! own process group, so that a cancel or timeout
//! reaches everything it started (SIGTERM first, SIGKILL after the grace period), and on Linux
//! killed if the runner itself dies, so an orphan does not keep working after a crash (the
//! resumed step runs it again instead). What that process started itself outlives such a
//! death; a later attempt of the step ends it first, on this host, so that it does not run
//! beside the new attempt.

use std::process::{Output, Stdio};
use std::time::Duration;

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
    if context.attempt > 1 {
        end_leftovers(&context.idempotency_key).await;
    }
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

/// How long a later attempt waits for what it killed of earlier attempts to be gone.
const LEFTOVERS_GONE_WITHIN: Duration = Duration::from_secs(2);

/// Kills (SIGKILL) every process of this host, other than this one, that an earlier attempt of
/// the step with `key` started: the processes whose environment holds the step's key, as every
/// process a step's command starts inherits it (unless it clears its environment). Waits until
/// they are gone, or [`LEFTOVERS_GONE_WITHIN`].
async fn end_leftovers(key: &str) {
    if key.is_empty() {
        return;
    }
    let entry = format!("TASKFLOW_IDEMPOTENCY_KEY={key}").into_bytes();
    let deadline = tokio::time::Instant::now() + LEFTOVERS_GONE_WITHIN;
    loop {
        let looking = entry.clone();
        let found = tokio::task::spawn_blocking(move || carrying(&looking)).await;
        let found = found.unwrap_or_default();
        if found.is_empty() || tokio::time::Instant::now() >= deadline {
            return;
        }
        for pid in found {
            // SAFETY: kill(2) of one process; no memory effects in this process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The live processes whose environment holds `entry` (`NAME=VALUE`), this one left out. A
/// process whose environment cannot be read (another user's) or is empty (one that has
/// exited) is not one.
#[cfg(target_os = "linux")]
fn carrying(entry: &[u8]) -> Vec<i32> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    processes
        .filter_map(|process| process.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ.split(|&byte| byte == 0).any(|held| held == entry))
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn carrying(_entry: &[u8]) -> Vec<i32> {
    Vec::new()
}
