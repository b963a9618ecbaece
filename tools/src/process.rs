//! Running a child process for a step: with the step's identity in its environment
//! (`TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`, `TASKFLOW_STEP`, `TASKFLOW_ATTEMPT`), in its
//! own process group, so that a cancel or timeout
//! reaches everything it started (SIGTERM first, SIGKILL after the grace period), and on Linux
//! killed if the runner itself dies, so an orphan does not keep working after a crash (the
//! resumed step runs it again instead). What that process started itself outlives such a
//! death, so every process a step starts carries its run's lease token (`TASKFLOW_RUN_TOKEN`):
//! the run that takes the flow over ends, on its host, what the dead run left ([`end_run`]),
//! before it runs the interrupted steps again.

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
    if !context.run_token.is_empty() {
        command.env(RUN_TOKEN_ENV, &context.run_token);
    }
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

/// What every process a step starts carries: the token of its run's lease.
pub const RUN_TOKEN_ENV: &str = "TASKFLOW_RUN_TOKEN";

/// How long [`end_run`] looks for, and waits for the end of, what a dead run left.
const LEFTOVERS_GONE_WITHIN: Duration = Duration::from_secs(2);

/// Kills (SIGKILL) every process of this host that a run under the lease `token` started and
/// left behind: the processes whose environment holds that token (every process a step starts
/// inherits it, unless it clears its environment or runs as another user), this process and
/// its ancestors left out. A run that takes a flow over from a dead one calls it first, so that
/// the steps it runs again do not run beside what the dead run's steps started. Gives up after
/// [`LEFTOVERS_GONE_WITHIN`] (a process whose environment cannot be read in that time is not
/// waited for). Nothing off Linux.
pub async fn end_run(token: &str) {
    if token.is_empty() {
        return;
    }
    let entry = format!("{RUN_TOKEN_ENV}={token}").into_bytes();
    let deadline = tokio::time::Instant::now() + LEFTOVERS_GONE_WITHIN;
    loop {
        let looking = entry.clone();
        let scan = tokio::task::spawn_blocking(move || carrying(&looking));
        let found = match tokio::time::timeout_at(deadline, scan).await {
            Ok(Ok(found)) => found,
            _ => return,
        };
        if found.is_empty() {
            return;
        }
        for pid in found {
            kill_if_carrying(pid, &entry);
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `environ` (a `/proc/PID/environ`) holds `entry` (`NAME=VALUE`).
#[cfg(target_os = "linux")]
fn holds(environ: &[u8], entry: &[u8]) -> bool {
    environ.split(|&byte| byte == 0).any(|held| held == entry)
}

/// The live processes whose environment holds `entry`, this process and its ancestors left
/// out. A process whose environment cannot be read (another user's) or is empty (one that has
/// exited) is not one.
#[cfg(target_os = "linux")]
fn carrying(entry: &[u8]) -> Vec<i32> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let spared = lineage();
    processes
        .filter_map(|process| process.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !spared.contains(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| holds(&env, entry))
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn carrying(_entry: &[u8]) -> Vec<i32> {
    Vec::new()
}

/// This process and its ancestors, up to the first process.
#[cfg(target_os = "linux")]
fn lineage() -> Vec<i32> {
    let mut pids = Vec::new();
    let mut pid = std::process::id() as i32;
    while pid > 0 && !pids.contains(&pid) {
        pids.push(pid);
        // `PID (COMMAND) STATE PPID …`: the command may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { break };
        let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
        pid = parent.and_then(|parent| parent.parse().ok()).unwrap_or(0);
    }
    pids
}

/// Kills `pid` if it still holds `entry`: the process is pinned first (a pidfd), then its
/// environment read again, so that a process that ended meanwhile and whose id was reused is
/// not the one killed. Where pidfds are missing (Linux before 5.3) it is killed by its id.
#[cfg(target_os = "linux")]
fn kill_if_carrying(pid: i32, entry: &[u8]) {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        // SAFETY: kill(2) of one process; no memory effects in this process.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        return;
    }
    let pidfd = pidfd as i32;
    if std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| holds(&env, entry)) {
        // SAFETY: pidfd_send_signal(2) on the descriptor just opened, with no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                libc::SIGKILL,
                std::ptr::null::<u8>(),
                0,
            );
        }
    }
    // SAFETY: the descriptor is this function's, closed once.
    unsafe {
        libc::close(pidfd);
    }
}

#[cfg(not(target_os = "linux"))]
fn kill_if_carrying(_pid: i32, _entry: &[u8]) {}
