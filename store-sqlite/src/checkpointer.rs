//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs inside the commit
//! that pushes the log past its limit: that commit, and every writer waiting for it, first
//! copies the whole log into the database file and syncs it. The store's writing connection
//! instead hands that work to a thread of its own, with a connection of its own, which runs a
//! passive checkpoint (it never waits for a writer or a reader) while commits go on.
//!
//! The thread starts the first time the log passes the limit and ends when the writing
//! connection is closed.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

/// Log frames (pages) past which a checkpoint is asked for: SQLite's own default.
const LIMIT: i32 = 1000;

/// Has `conn` ask a checkpointer thread for a checkpoint once its log holds more than
/// [`LIMIT`] pages, in place of SQLite's checkpoint in the commit.
pub(crate) fn attach(
    conn: &mut Connection,
    path: PathBuf,
    busy_timeout: Duration,
) -> rusqlite::Result<()> {
    let mut asks: Option<SyncSender<()>> = None;
    conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages < LIMIT {
            return Ok(());
        }
        let ask = asks.get_or_insert_with(|| start(path.clone(), busy_timeout));
        // A full channel means a checkpoint is asked for already; a closed one, that the
        // thread could not start, and the next commit past the limit tries again.
        if let Err(TrySendError::Disconnected(())) = ask.try_send(()) {
            asks = None;
        }
        Ok(())
    }))
}

/// Starts the checkpointer thread; it runs until the returned sender is dropped.
fn start(path: PathBuf, busy_timeout: Duration) -> SyncSender<()> {
    let (ask, asked) = mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name("taskflow-checkpoint".to_owned())
        .spawn(move || run(&path, busy_timeout, &asked));
    if started.is_err() {
        // The receiver went with the closure: the sender reports itself disconnected.
        return mpsc::sync_channel(1).0;
    }
    ask
}

fn run(path: &std::path::Path, busy_timeout: Duration, asked: &Receiver<()>) {
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
        // A checkpoint that fails (the file is busy, or gone) is tried again at the next ask;
        // until then the log only grows, and a commit stays durable either way.
        if let Ok(conn) = open {
            let _ = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        }
    }
}

#[cfg(test)]
mod tests {
    use taskflow_store::NewFlow;

    use crate::OpenOptions;

    /// What the database file holds grows only when a checkpoint copies the log into it: the
    /// writer's commits never do that themselves any more.
    #[test]
    fn the_log_is_copied_into_the_database_by_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let options =
            OpenOptions { durability: crate::Durability::Normal, ..OpenOptions::default() };
        let taskflow = crate::open(&path, &options).unwrap();
        let alice = taskflow.bind("alice").unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let goal = "g".repeat(2000);
        for n in 0..1500 {
            let mut flow = NewFlow::managed(format!("flow {n}"));
            flow.goal = Some(goal.clone());
            alice.create(flow).unwrap();
        }
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
