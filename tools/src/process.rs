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
//!
//! Its output is read as it comes and only a bounded part of each stream is kept ([`Keep`]):
//! a command may print without end (`yes`), and what is kept goes to a model or the journal,
//! so memory must not grow with it. A command whose output passes what may be kept of it is
//! stopped the way a cancel stops it, and the caller says so.
//!
//! What a process must not inherit: the password of a database server in `TASKFLOW_DB`
//! ([`keep_database_server_off`]), kept from every process; and, from the processes a model
//! starts, every variable whose name looks like a secret ([`keep_secrets_off`]).

use std::future::Future;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::step::{ActionError, StepContext};

/// How much of one output stream of a child is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Its first bytes, at most this many. Once it passes them, the command is stopped (SIGTERM
    /// to its process group, SIGKILL after the grace period): the rest would not be kept, and a
    /// command that prints without end must not hold the step.
    Head(usize),
    /// Its last bytes, at most this many (where an error's reason usually is); it never stops
    /// the command.
    Tail(usize),
}

/// What is kept of a child's stdout and stderr.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capture {
    pub stdout: Keep,
    pub stderr: Keep,
}

/// What was kept of one output stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Kept {
    pub bytes: Vec<u8>,
    /// How many bytes were read and not kept: after the head, or before the tail.
    pub dropped: u64,
}

impl Kept {
    /// Takes `chunk`, read after what came before, as `keep` says; `true` when a head was
    /// passed.
    fn take(&mut self, chunk: &[u8], keep: Keep) -> bool {
        match keep {
            Keep::Head(limit) => {
                let room = limit.saturating_sub(self.bytes.len()).min(chunk.len());
                self.bytes.extend_from_slice(&chunk[..room]);
                self.dropped += (chunk.len() - room) as u64;
                self.dropped > 0
            }
            Keep::Tail(limit) => {
                self.bytes.extend_from_slice(chunk);
                let excess = self.bytes.len().saturating_sub(limit);
                self.bytes.drain(..excess);
                self.dropped += excess as u64;
                false
            }
        }
    }
}

/// How a child ended, and what was kept of its output.
#[derive(Debug)]
pub(crate) struct Ended {
    pub status: ExitStatus,
    pub stdout: Kept,
    pub stderr: Kept,
    /// Why it was stopped before its end, when it was: `its stdout passed 64 KiB`.
    pub stopped: Option<String>,
}

/// The variable that carries a step's idempotency key.
const IDEMPOTENCY_KEY_ENV: &str = "TASKFLOW_IDEMPOTENCY_KEY";

/// Runs `command` to its end, `input` on its stdin (closed at once without), and as much of its
/// output kept as `capture` says, unless the step is cancelled first. An output that passes a
/// [`Keep::Head`] stops it ([`Ended::stopped`] says which). Dropped before its end (a caller's
/// own timeout), it kills the command's process group, not only the command.
pub(crate) async fn run_child(
    mut command: tokio::process::Command,
    context: &StepContext,
    capture: Capture,
    input: Option<Vec<u8>>,
) -> Result<Ended, ActionError> {
    command
        .env(IDEMPOTENCY_KEY_ENV, &context.idempotency_key)
        .env("TASKFLOW_FLOW_ID", context.flow_id.to_string())
        .env("TASKFLOW_STEP", &context.step)
        .env("TASKFLOW_ATTEMPT", context.attempt.to_string())
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
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
    let mut child = command.spawn().map_err(|error| {
        if error.kind() == std::io::ErrorKind::ArgumentListTooLong {
            // The same command and variables would be as long on every attempt.
            return ActionError::permanent(format!(
                "cannot start `{program}`: its command and variables are longer than the system \
                 takes (128 KiB in one, about 2 MiB in all); pass long text on its standard input"
            ));
        }
        ActionError::failed(format!("cannot start `{program}`: {error}"))
    })?;
    let group = child.id().map(|pid| pid as i32);
    let mut guard = GroupGuard(group);
    let passed = CancellationToken::new();
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let finished = async {
        let (stdout, stderr, ()) = tokio::try_join!(
            read_kept(stdout, capture.stdout, &passed),
            read_kept(stderr, capture.stderr, &passed),
            write_input(stdin, input),
        )?;
        Ok::<_, std::io::Error>((child.wait().await?, stdout, stderr))
    };
    tokio::pin!(finished);
    let (outcome, how) = tokio::select! {
        outcome = &mut finished => (outcome, How::Ended),
        () = passed.cancelled() => {
            (stop(group, finished.as_mut(), context.kill_grace).await.0, How::Stopped)
        }
        () = context.cancel.cancelled() => {
            let (outcome, in_grace) = stop(group, finished.as_mut(), context.kill_grace).await;
            (outcome, How::Cancelled { in_grace })
        }
    };
    guard.0 = None;
    let (status, stdout, stderr) = match (outcome, how) {
        // It finished its work after all: that is its outcome, not to be done again.
        (Ok(ended), How::Cancelled { in_grace: true }) if ended.0.success() => ended,
        (_, How::Cancelled { .. }) => return Err(ActionError::Cancelled),
        (Err(error), _) => {
            return Err(ActionError::failed(format!("waiting for `{program}`: {error}")));
        }
        (Ok(ended), _) => ended,
    };
    let stopped = match how {
        How::Stopped => [("stdout", capture.stdout, &stdout), ("stderr", capture.stderr, &stderr)]
            .into_iter()
            .find_map(|(stream, keep, kept)| match keep {
                Keep::Head(limit) if kept.dropped > 0 => {
                    Some(format!("its {stream} passed {}", bytes_text(limit)))
                }
                _ => None,
            }),
        _ => None,
    };
    Ok(Ended { status, stdout, stderr, stopped })
}

/// How the wait for a child ended.
#[derive(Clone, Copy)]
enum How {
    Ended,
    /// Its output passed what may be kept of it.
    Stopped,
    /// The step was cancelled; `in_grace`: the command ended before the grace period did.
    Cancelled {
        in_grace: bool,
    },
}

/// Writes `input` to the command's stdin, then closes it. A command that exits, or closes its
/// stdin, before reading it all is not an error: reading is its choice.
async fn write_input(
    pipe: Option<tokio::process::ChildStdin>,
    input: Option<Vec<u8>>,
) -> std::io::Result<()> {
    let (Some(mut pipe), Some(input)) = (pipe, input) else { return Ok(()) };
    match pipe.write_all(&input).await {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// Reads `pipe` to its end, keeping of it what `keep` says; cancels `passed` when it passes a
/// head, and reads on without keeping, so that the command is not held on a full pipe while it
/// is stopped.
async fn read_kept(
    pipe: Option<impl AsyncRead + Unpin>,
    keep: Keep,
    passed: &CancellationToken,
) -> std::io::Result<Kept> {
    let mut kept = Kept::default();
    let Some(mut pipe) = pipe else { return Ok(kept) };
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = pipe.read(&mut buffer).await?;
        if read == 0 {
            return Ok(kept);
        }
        if kept.take(&buffer[..read], keep) {
            passed.cancel();
        }
    }
}

/// Stops the command of process group `group`: SIGTERM, then SIGKILL if `finished` is not over
/// within `grace`. Its outcome, and whether it ended within the grace period.
async fn stop<F: Future>(
    group: Option<i32>,
    mut finished: Pin<&mut F>,
    grace: Duration,
) -> (F::Output, bool) {
    signal(group, libc::SIGTERM);
    tokio::select! {
        outcome = finished.as_mut() => (outcome, true),
        () = tokio::time::sleep(grace) => {
            signal(group, libc::SIGKILL);
            (finished.await, false)
        }
    }
}

/// Kills (SIGKILL) a command's process group when dropped armed: when the wait for it is
/// dropped before its end, what it started dies with it, not only the command itself.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal(self.0, libc::SIGKILL);
    }
}

/// `bytes` for a person: `64 KiB`, `1 MiB`, `1000 bytes`.
fn bytes_text(bytes: usize) -> String {
    match bytes {
        0 => "0 bytes".to_owned(),
        _ if bytes.is_multiple_of(1024 * 1024) => format!("{} MiB", bytes / (1024 * 1024)),
        _ if bytes.is_multiple_of(1024) => format!("{} KiB", bytes / 1024),
        _ => format!("{bytes} bytes"),
    }
}

/// Sends `signal` to the command's process group.
pub(crate) fn signal(group: Option<i32>, signal: i32) {
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

/// Variables the crate sets on the processes of a step, kept whatever their names look like:
/// [`end_interrupted`] finds what an interrupted step left by them.
const OWN_VARIABLES: [&str; 2] = [RUN_TOKEN_ENV, IDEMPOTENCY_KEY_ENV];

/// The last words of a name (split at `_`) that say it holds a secret.
const SECRET_WORDS: [&str; 6] = ["KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD"];

/// The parts of a name that say it holds a secret wherever they are in it.
const SECRET_PARTS: [&str; 5] = ["API_KEY", "APIKEY", "SECRET", "PASSWORD", "PASSWD"];

/// Whether a variable called `name` looks like it holds a secret, case aside: its last word is
/// `KEY`, `APIKEY`, `TOKEN`, `SECRET`, `PASSWORD` or `PASSWD` (`MOONSHOT_API_KEY`,
/// `GITHUB_TOKEN`, `DB_PASSWORD`), or it holds `API_KEY`, `APIKEY`, `SECRET`, `PASSWORD` or
/// `PASSWD` (`AWS_SECRET_ACCESS_KEY`, `PGPASSWORD`). The crate's own `TASKFLOW_RUN_TOKEN` and
/// `TASKFLOW_IDEMPOTENCY_KEY` are no secrets.
pub(crate) fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    if OWN_VARIABLES.contains(&name.as_str()) {
        return false;
    }
    let last = name.rsplit('_').next().unwrap_or_default();
    SECRET_WORDS.contains(&last) || SECRET_PARTS.iter().any(|part| name.contains(part))
}

/// Keeps every variable whose name looks like a secret ([`looks_secret`]) out of `command`'s
/// environment: for the processes a model starts (`run_command`), whose output the model reads
/// and the journal keeps, so that an `env` does not hand it the provider's API key. The
/// commands of pipeline steps, which the user writes, keep theirs, as do MCP servers, which
/// read their secrets from their environment.
pub(crate) fn keep_secrets_off(command: &mut tokio::process::Command) {
    for (name, _) in std::env::vars_os() {
        if looks_secret(&name.to_string_lossy()) {
            command.env_remove(name);
        }
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
        keys: keys.iter().map(|key| format!("{IDEMPOTENCY_KEY_ENV}={key}").into_bytes()).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_like_secrets() {
        let cases = [
            ("MOONSHOT_API_KEY", true),
            ("openai_api_key", true),
            ("OPENAI_APIKEY", true),
            ("MY_API_KEY_FILE", true),
            ("LOCAL_VLLM_KEY", true),
            ("KEY", true),
            ("GITHUB_TOKEN", true),
            ("Token", true),
            ("CLIENT_SECRET", true),
            ("AWS_SECRET_ACCESS_KEY", true),
            ("DB_PASSWORD", true),
            ("PGPASSWORD", true),
            ("SMTP_PASSWD", true),
            // The crate's own, which cleanup relies on.
            ("TASKFLOW_RUN_TOKEN", false),
            ("taskflow_run_token", false),
            ("TASKFLOW_IDEMPOTENCY_KEY", false),
            ("TASKFLOW_FLOW_ID", false),
            ("PATH", false),
            ("HOME", false),
            ("MONKEY", false),
            ("KEYBOARD_LAYOUT", false),
            ("TOKENIZERS_PARALLELISM", false),
            ("AWS_ACCESS_KEY_ID", false),
            ("SSH_AUTH_SOCK", false),
        ];
        for (name, secret) in cases {
            assert_eq!(looks_secret(name), secret, "{name}");
        }
    }

    #[test]
    fn a_stream_keeps_its_head_or_its_tail() {
        // (how it is kept, the chunks read, the bytes kept, those dropped, head passed)
        let cases: [(Keep, &[&str], &str, u64, bool); 7] = [
            (Keep::Head(4), &["ab", "c"], "abc", 0, false),
            (Keep::Head(4), &["abcd"], "abcd", 0, false),
            (Keep::Head(4), &["abc", "de", "fgh"], "abcd", 4, true),
            (Keep::Head(0), &["a"], "", 1, true),
            (Keep::Tail(4), &["ab", "c"], "abc", 0, false),
            (Keep::Tail(4), &["abc", "de", "fgh"], "efgh", 4, false),
            (Keep::Tail(4), &["abcdefghij"], "ghij", 6, false),
        ];
        for (keep, chunks, bytes, dropped, passed) in cases {
            let mut kept = Kept::default();
            let mut was_passed = false;
            for chunk in chunks {
                was_passed = kept.take(chunk.as_bytes(), keep);
            }
            assert_eq!(kept, Kept { bytes: bytes.into(), dropped }, "{keep:?} {chunks:?}");
            assert_eq!(was_passed, passed, "{keep:?} {chunks:?}");
        }
    }

    #[test]
    fn sizes_read_as_a_person_would_write_them() {
        let cases = [
            (0, "0 bytes"),
            (1000, "1000 bytes"),
            (16 * 1024, "16 KiB"),
            (1024 * 1024, "1 MiB"),
            (1536 * 1024, "1536 KiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(bytes_text(bytes), text);
        }
    }

    /// Whether process `pid` has ended (or is a zombie, ended but not yet reaped).
    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            }
            Err(_) => true,
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_wait_dropped_before_its_end_kills_what_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
        let context = StepContext::for_test();
        let capture = Capture { stdout: Keep::Head(10), stderr: Keep::Head(10) };
        let run = run_child(command, &context, capture, None);
        let written = async {
            while std::fs::read_to_string(&pid_file).map_or(true, |pid| !pid.ends_with('\n')) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            _ = run => panic!("`sleep 60` ended"),
            () = written => {}
        }
        let sleep: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone(sleep) {
            assert!(std::time::Instant::now() < deadline, "`sleep` ({sleep}) outlived the wait");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
