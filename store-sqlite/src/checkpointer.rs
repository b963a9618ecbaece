//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs inside the commit
//! that pushes the log past its limit: that commit, and every writer waiting for it, first
//! copies the whole log into the database file and syncs it. The store's writing connection
//! instead hands that work to a thread of its own, with a connection of its own, which runs a
//! passive checkpoint (it never waits for a writer or a reader) while commits go on.
//!
//! A log is only started over (written again from its beginning) by a transaction that begins
//! when every frame of it is in the database. Under a steady stream of commits the thread never
//! gets there by itself: each of its passes ends behind the commits made while it copied, the
//! next transaction finds the log unfinished, and the log grows without end (every commit a
//! checkpoint of its own, every frame a new block of the file). So once a pass of the thread
//! has copied everything that was in the log when it began, the writing connection copies the
//! rest, the commits made during that pass, itself, just before its next transaction begins: a
//! few commits' pages instead of the whole log, after which that transaction starts the log
//! over. It does so before a transaction rather than inside the commit before it, so the
//! writes that commit carried are answered without waiting for the copy and its syncs.
//!
//! Readers do not keep that copy from finishing as a rule: a read transaction holds back only
//! the frames committed after it began, and the store's reads (the change feed's among them)
//! are short. A copy that a reader did cut short leaves the log as it was; the next commit past
//! the limit asks the thread again.
//!
//! The thread starts the first time the log passes the limit and ends when the writing
//! connection is closed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

/// Log frames (pages) past which a checkpoint is asked for: SQLite's own default.
const LIMIT: i32 = 1000;

/// Where the copying of the log stands, between the writing connection and the thread.
#[derive(Default)]
struct Progress(AtomicU8);

/// Nothing asked: the next commit past the limit asks the thread.
const IDLE: u8 = 0;
/// The thread is copying.
const COPYING: u8 = 1;
/// The thread copied everything the log held when its pass began: the writing connection
/// copies what came after before its next transaction.
const CAUGHT_UP: u8 = 2;

impl Progress {
    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }
}

/// The writing connection's part of the copying: the log's tail, once the thread has caught up.
pub(crate) struct Tail {
    progress: Arc<Progress>,
}

impl Tail {
    /// Copies into the database what the log gained since the thread's last pass, if that
    /// pass caught up, so that the transaction `conn` begins next starts the log over. Call
    /// it on the writing connection, outside a transaction.
    pub(crate) fn copy(&self, conn: &Connection) {
        if self.progress.get() == CAUGHT_UP {
            self.progress.set(IDLE);
            // Like the thread's, a copy that fails or is cut short is asked for again past
            // the limit.
            let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        }
    }
}

/// Has `conn` ask a checkpointer thread for a checkpoint once its log holds more than
/// [`LIMIT`] pages, in place of SQLite's checkpoint in the commit. The returned [`Tail`]
/// copies the rest once the thread has caught up (see the module's doc).
pub(crate) fn attach(
    conn: &mut Connection,
    path: PathBuf,
    busy_timeout: Duration,
) -> rusqlite::Result<Tail> {
    let mut asks: Option<SyncSender<()>> = None;
    let progress = Arc::new(Progress::default());
    let shared = Arc::clone(&progress);
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages < LIMIT || progress.get() != IDLE {
            return Ok(());
        }
        let ask =
            asks.get_or_insert_with(|| start(path.clone(), busy_timeout, Arc::clone(&progress)));
        progress.set(COPYING);
        // A full channel means a checkpoint is asked for already; a closed one, that the
        // thread could not start, and the next commit past the limit tries again.
        if let Err(TrySendError::Disconnected(())) = ask.try_send(()) {
            progress.set(IDLE);
            asks = None;
        }
        Ok(())
    }))?;
    Ok(Tail { progress: shared })
}

/// Starts the checkpointer thread; it runs until the returned sender is dropped.
fn start(path: PathBuf, busy_timeout: Duration, progress: Arc<Progress>) -> SyncSender<()> {
    let (ask, asked) = mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name("taskflow-checkpoint".to_owned())
        .spawn(move || run(&path, busy_timeout, &asked, &progress));
    if started.is_err() {
        // The receiver went with the closure: the sender reports itself disconnected.
        return mpsc::sync_channel(1).0;
    }
    ask
}

fn run(path: &std::path::Path, busy_timeout: Duration, asked: &Receiver<()>, progress: &Progress) {
    let mut conn: Option<Connection> = None;
    while asked.recv().is_ok() {
        let open = match &mut conn {
            Some(conn) => Ok(&*conn),
            empty => super::connect(path, busy_timeout).and_then(|opened| {
                // A connection learns that the file is in WAL mode at its first read; until
                // then it has no log to checkpoint.
                opened
                    .query_row("PRAGMA schema_version", [], |_| Ok(()))
                    .map_err(crate::error::storage)?;
                Ok(&*empty.insert(opened))
            }),
        };
        // A checkpoint that fails (the file is busy, or gone), or that a reader kept from
        // copying the whole log, is tried again at the next ask; until then the log only
        // grows, and a commit stays durable either way.
        let copied = open
            .ok()
            .and_then(|conn| conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE).ok());
        let caught_up = matches!(copied, Some((log, done)) if log >= 0 && done == log);
        progress.set(if caught_up { CAUGHT_UP } else { IDLE });
    }
}

#[cfg(test)]
mod tests {
    use taskflow_store::NewFlow;

    use super::LIMIT;
    use crate::OpenOptions;

    /// A store at `path` whose commits skip the fsync (the tests look at the files' sizes).
    fn open(path: &std::path::Path) -> taskflow_store::TaskFlow {
        let options =
            OpenOptions { durability: crate::Durability::Normal, ..OpenOptions::default() };
        crate::open(path, &options).unwrap()
    }

    /// Creates `count` flows, one commit each, with goals of `goal_bytes` bytes.
    fn create_flows(taskflow: &taskflow_store::TaskFlow, count: usize, goal_bytes: usize) {
        let alice = taskflow.bind("alice").unwrap();
        let goal = "g".repeat(goal_bytes);
        for n in 0..count {
            let mut flow = NewFlow::managed(format!("flow {n}"));
            flow.goal = Some(goal.clone());
            alice.create(flow).unwrap();
        }
    }

    /// Commits one right after another never leave the thread a moment with the whole log
    /// copied: the log is started over all the same, so its file stays near the limit's size
    /// instead of holding every page written.
    #[test]
    fn the_log_starts_over_under_a_steady_stream_of_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        // Measured while the store is open: its close copies the log and removes it.
        let taskflow = open(&path);
        create_flows(&taskflow, 6000, 3000);
        let log = std::fs::metadata(dir.path().join("flows.db-wal")).unwrap().len();
        let written = std::fs::metadata(&path).unwrap().len();
        drop(taskflow);
        assert!(written > 16_000_000, "the database holds the flows ({written} bytes)");
        assert!(log < 4 * 4096 * u64::from(LIMIT as u32), "the log grew to {log} bytes");
    }

    /// What the database file holds grows only when a checkpoint copies the log into it: the
    /// writer's commits never do that themselves any more.
    #[test]
    fn the_log_is_copied_into_the_database_by_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let taskflow = open(&path);
        let before = std::fs::metadata(&path).unwrap().len();
        create_flows(&taskflow, 1500, 2000);
        let started = std::time::Instant::now();
        while std::fs::metadata(&path).unwrap().len() < before + 2_000_000 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "no checkpoint copied the log into the database file"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok());
        assert!(
            threads.into_iter().any(|name| name.trim() == "taskflow-checkp"),
            "the checkpoint ran on the committing thread"
        );
    }
}
