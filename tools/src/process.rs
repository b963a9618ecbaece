//! Running a child process for a step: with the step's identity in its environment
//! (`TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`, `TASKFLOW_STEP`, `TASKFLOW_ATTEMPT`), in its
//! own process group, so that a cancel or timeout
//! reaches everything it started (SIGTERM first, SIGKILL after the grace period), and on Linux
//! killed if the runner itself dies, so an orphan does not keep working after a crash (the
//! resumed step runs it again instead). What that process started itself outlives such a
//! death, so every process a step starts carries its run's lease token (`TASKFLOW_RUN_TOKEN`):
//! the run that takes the flow over ends, on its host, what the dead run's interrupted steps
//! left ([`end_interrupted`]), before it runs them again, and a run that tries a step again
//! ends what the step's earlier attempts left.

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
    keep_database_server_off(&mut command);
    // A step tried again by the run that tried it before: what its earlier attempts left
    // running ends first, as a takeover ends what a dead run's did.
    if context.attempt > 1 {
        end_interrupted(&context.run_token, &[context.idempotency_key.as_str()]).await;
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

/// The variable that names the flow database.
const DATABASE_ENV: &str = "TASKFLOW_DB";

/// Keeps `TASKFLOW_DB` out of `command`'s environment when it names a database server (a URL,
/// or `key=value` settings) rather than a file: its password would reach a step's processes (or
/// an MCP server's), and through a step's output the journal. A `taskflow` run inside a step is
/// then given its `--db`, or the step's own `env` sets the variable (which is kept).
pub(crate) fn keep_database_server_off(command: &mut tokio::process::Command) {
    let given = command.as_std().get_envs().any(|(name, _)| name == DATABASE_ENV);
    let names_a_server = |value: std::ffi::OsString| {
        let value = value.to_string_lossy().into_owned();
        value.contains("://") || value.split_whitespace().any(|word| word.contains('='))
    };
    if !given && std::env::var_os(DATABASE_ENV).is_some_and(names_a_server) {
        command.env_remove(DATABASE_ENV);
    }
}

/// How long [`end_interrupted`] looks for, and waits for the end of, what a dead run left.
const LEFTOVERS_GONE_WITHIN: Duration = Duration::from_secs(2);

/// Kills (SIGKILL) every process of this host that the interrupted attempts of a dead run
/// left behind: those whose environment holds both the run's lease `token` and the
/// idempotency key of one of the steps `keys` (the steps the dead run had running, which run
/// again). Every process a step starts inherits both, unless it clears its environment or runs
/// as another user. What the dead run's finished steps left on purpose (a server a step
/// started) is not one of them, nor is this process or any of its ancestors. A run that takes
/// a flow over from a dead one calls it first, so that the steps it runs again do not run
/// beside their interrupted attempts; a step's later attempt calls it with its own run's token
/// before it starts. Gives up after [`LEFTOVERS_GONE_WITHIN`]; the search
/// runs on a thread of its own, which a process whose environment cannot be read (stuck in the
/// kernel) may hold for longer without holding the run. Nothing off Linux.
pub async fn end_interrupted(token: &str, keys: &[&str]) {
    if token.is_empty() || keys.is_empty() {
        return;
    }
    let wanted = Wanted {
        token: format!("{RUN_TOKEN_ENV}={token}").into_bytes(),
        keys: keys
            .iter()
            .map(|key| format!("TASKFLOW_IDEMPOTENCY_KEY={key}").into_bytes())
            .collect(),
    };
    let (done, ended) = tokio::sync::oneshot::channel();
    let spawned =
        std::thread::Builder::new().name("taskflow-end-interrupted".to_owned()).spawn(move || {
            let deadline = std::time::Instant::now() + LEFTOVERS_GONE_WITHIN;
            let spared = lineage();
            while std::time::Instant::now() < deadline {
                let found = wanted.carriers(&spared);
                if found.is_empty() {
                    break;
                }
                for pid in found {
                    wanted.kill(pid);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = tokio::time::timeout(LEFTOVERS_GONE_WITHIN, ended).await;
    }
}

/// The environment entries of an interrupted attempt's processes: the run's token and one of
/// the keys.
struct Wanted {
    token: Vec<u8>,
    keys: Vec<Vec<u8>>,
}

impl Wanted {
    /// Whether `environ` (a `/proc/PID/environ`) holds the token and one of the keys.
    #[cfg(target_os = "linux")]
    fn held_by(&self, environ: &[u8]) -> bool {
        let mut entries = environ.split(|&byte| byte == 0);
        let (mut token, mut key) = (false, false);
        for entry in &mut entries {
            token |= entry == self.token.as_slice();
            key |= self.keys.iter().any(|wanted| entry == wanted.as_slice());
        }
        token && key
    }

    /// The live processes that carry it, those `spared` (this process and its ancestors) left
    /// out. A process whose environment cannot be read (another user's) or is empty (one that
    /// has exited) is not one.
    #[cfg(target_os = "linux")]
    fn carriers(&self, spared: &[i32]) -> Vec<i32> {
        let Ok(processes) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        processes
            .filter_map(|process| process.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| !spared.contains(pid))
            .filter(|pid| self.environ_of(*pid).is_some_and(|env| self.held_by(&env)))
            .collect()
    }

    #[cfg(target_os = "linux")]
    fn environ_of(&self, pid: i32) -> Option<Vec<u8>> {
        std::fs::read(format!("/proc/{pid}/environ")).ok()
    }

    /// Kills `pid` if it still carries it: the process is pinned first (a pidfd), then its
    /// environment read again, so that a process that ended meanwhile and whose id was reused
    /// is not the one killed. Only where the kernel has no pidfds (Linux before 5.3) is it
    /// killed by its id.
    #[cfg(target_os = "linux")]
    fn kill(&self, pid: i32) {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if pidfd < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                // SAFETY: kill(2) of one process; no memory effects in this process.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            return;
        }
        let pidfd = pidfd as i32;
        if self.environ_of(pid).is_some_and(|env| self.held_by(&env)) {
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
    fn carriers(&self, _spared: &[i32]) -> Vec<i32> {
        Vec::new()
    }

    #[cfg(not(target_os = "linux"))]
    fn kill(&self, _pid: i32) {}
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

#[cfg(not(target_os = "linux"))]
fn lineage() -> Vec<i32> {
    Vec::new()
}
