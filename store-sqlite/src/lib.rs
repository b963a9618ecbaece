//! `taskflow-store-sqlite`: the SQLite backend of Task Flow's store.
//!
//! One database file holds flows, their steps and their revisions. Every write goes through one
//! connection in WAL mode, each operation one `BEGIN IMMEDIATE` transaction (so a check and the
//! write it allows cannot be split by another process); reads go through a second connection
//! and see the last commit without waiting for the write in progress. The flow semantics are
//! `taskflow-store`'s; this crate holds the SQL ([`tx`](crate::tx)), the schema and its
//! migrations, the pragmas, and the flow cache that spares a checkpoint reading what the last
//! one wrote.
//!
//! ```
//! use taskflow_store::NewFlow;
//! use taskflow_store_sqlite::OpenOptions;
//!
//! let dir = tempfile::tempdir()?;
//! let taskflow = taskflow_store_sqlite::open(dir.path().join("flows.db"), &OpenOptions::default())?;
//! let alice = taskflow.bind("alice")?;
//! let flow = alice.create(NewFlow::managed("daily digest"))?;
//! assert!(taskflow.bind("bob")?.flow(&flow.id).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpointer;
mod disk;
mod error;
mod flow_cache;
mod list;
mod location;
#[cfg(test)]
mod query_plan;
mod rows;
mod schedules;
mod schema;
mod transaction;
mod tx;
mod update;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use taskflow_store::semantics::{self, CheckpointMemory, KnownFlow};
use taskflow_store::{
    Backend, Caller, CheckpointDone, CheckpointOp, Error, Flow, FlowId, Lease, Result, Submission,
    TaskFlow, Timestamp, lease,
};

pub use location::{create_private, default_path, default_path_from};
pub use schema::CURRENT_VERSION as SCHEMA_VERSION;
pub use schema::version_of as schema_version_of;
pub use taskflow_store::Durability;

use error::Sql;
use flow_cache::{DataVersion, FlowCache};
pub use transaction::Transaction;
use writer::{LeaseRequest, ReportRequest, Who, Writer};

/// How many prepared statements a connection keeps: more than the store has.
const STATEMENT_CACHE: usize = 64;

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    pub durability: Durability,
    /// How long to wait for another process's write lock before failing as locked.
    pub busy_timeout: Duration,
    /// Create the file (and its directory) when missing. Without it a missing file is an error.
    pub create: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

/// A flow store in one SQLite file.
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// Started by the first submission.
    writer: OnceLock<Writer>,
}

/// The store's connections and what it remembers; shared with its writer thread.
pub(crate) struct Inner {
    /// Every write goes through this connection.
    conn: Mutex<Connection>,
    /// Copies the log's tail into the database before a write transaction, when due.
    tail: checkpointer::Tail,
    /// Reads go through this one, opened at the first read: in WAL mode a read sees the last
    /// commit while the writer works on the next, so reads neither wait for writes nor hold
    /// them up.
    reader: Mutex<Option<Connection>>,
    busy_timeout: Duration,
    /// Locked before `conn` where both are.
    known: Mutex<FlowCache>,
    /// Writes of this connection other than checkpoints, which the cache cannot see through
    /// `data_version` (that only moves for other connections' commits).
    other_writes: AtomicU64,
    path: PathBuf,
    host: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// A connection to the database at `path` as the store uses it.
fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let sqlite = |error| error::from_sqlite(path, error);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    conn.busy_timeout(busy_timeout).map_err(sqlite)?;
    // Every statement of the store stays prepared (the default keeps 16), and plans do not
    // depend on bound values, so a cached statement is never prepared again because a
    // parameter changed (the bundled SQLite is built with STAT4).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sqlite)?;
    Ok(conn)
}

/// Opens the store at `path` ([`SqliteStore::open`]), ready to be bound to owners.
pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<TaskFlow> {
    Ok(TaskFlow::new(Arc::new(SqliteStore::open(path, options)?)))
}

impl SqliteStore {
    /// Opens (and, with `options.create`, creates) the store at `path`, refusing a database
    /// newer than this build and migrating an older one.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let sqlite = |error| error::from_sqlite(&path, error);
        if options.create {
            location::create_private(&path)?;
        } else if !path.exists() {
            return Err(error::refused(
                &path,
                taskflow_store::StorageErrorKind::Unavailable,
                "no such file",
            ));
        }
        location::check_file(&path)?;
        let mut conn = connect(&path, options.busy_timeout)?;
        schema::prepare(&mut conn, &path, options.busy_timeout)?;
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sqlite)?;
        let tail =
            checkpointer::attach(&mut conn, path.clone(), options.busy_timeout).map_err(sqlite)?;
        let inner = Inner {
            conn: Mutex::new(conn),
            tail,
            reader: Mutex::new(None),
            busy_timeout: options.busy_timeout,
            known: Mutex::default(),
            other_writes: AtomicU64::new(0),
            path,
            host: lease::host_name(),
        };
        Ok(SqliteStore { inner: Arc::new(inner), writer: OnceLock::new() })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    #[cfg(test)]
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.inner.lock()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no transaction open (it rolls back on
        // drop), so the connection is still sound.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A write transaction; `counted` tells the flow cache that this connection wrote outside
    /// the checkpoints it tracks (only those keep the cache's entries current).
    fn write_counted<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<T>,
        counted: bool,
    ) -> Result<T> {
        let conn = self.lock();
        self.tail.copy(&conn);
        if counted {
            // Under the connection's lock, so a checkpoint reads it in order with the writes.
            self.other_writes.fetch_add(1, Ordering::Relaxed);
        }
        let result = (|| {
            let tx = Transaction::immediate(&conn).map_err(error::storage)?;
            let value = work(&tx, Timestamp::now())?;
            tx.commit().map_err(error::storage)?;
            Ok(value)
        })();
        result.map_err(|error| error::at(&self.path, error))
    }
}

impl Inner {
    /// One read transaction of the reading connection, so its queries see one state: the last
    /// one committed when it began.
    fn read<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut reader = self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = (|| {
            let conn = match &mut *reader {
                Some(conn) => conn,
                empty => {
                    let conn = connect(&self.path, self.busy_timeout)?;
                    conn.pragma_update(None, "query_only", "ON").map_err(error::storage)?;
                    empty.insert(conn)
                }
            };
            let tx = Transaction::deferred(conn).map_err(error::storage)?;
            let value = work(&tx)?;
            tx.commit().map_err(error::storage)?;
            Ok(value)
        })();
        result.map_err(|error| error::at(&self.path, error))
    }

    /// The ops of several callers in one transaction, through the flow cache: a flow this
    /// store's last checkpoint wrote is not read again while nothing else has written since
    /// (see `flow_cache`). Answers each group of ops in order.
    fn checkpoint(
        &self,
        groups: Vec<(Caller<'_>, Vec<CheckpointOp>)>,
    ) -> Result<Vec<Vec<Result<CheckpointDone>>>> {
        let mut cache = self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (answers, version, committed) = self.write_counted(
            |tx, now| {
                let version = DataVersion::read(tx, self.other_writes.load(Ordering::Relaxed))?;
                let mut memory =
                    Remembered { tx, cache: &mut cache, version, committed: Vec::new() };
                let mut answers = Vec::with_capacity(groups.len());
                for (caller, ops) in groups {
                    answers.push(semantics::checkpoint(tx, caller, ops, now, &mut memory)?);
                }
                Ok((answers, version, memory.committed))
            },
            false,
        )?;
        cache.keep(version, committed.into_iter().map(|(_, known)| known));
        Ok(answers)
    }

    /// The lease requests of several callers in one transaction, each granted or refused on
    /// its own.
    fn acquire(
        &self,
        requests: Vec<(Caller<'_>, Vec<LeaseRequest>)>,
    ) -> Result<Vec<Vec<Result<Lease>>>> {
        self.write_counted(
            |tx, now| {
                requests
                    .into_iter()
                    .map(|(caller, requests)| {
                        semantics::acquire_leases(tx, caller, requests, now, &self.host)
                    })
                    .collect()
            },
            true,
        )
    }

    /// The reports of several callers in one transaction, each accepted or refused on its own:
    /// each runs inside a savepoint, and a refused one is rolled back to it, so it leaves
    /// nothing (a report can write steps before the rules refuse its end).
    fn report(&self, requests: Vec<(Caller<'_>, ReportRequest)>) -> Result<Vec<Result<Flow>>> {
        self.write_counted(
            |tx, now| {
                let mut answers = Vec::with_capacity(requests.len());
                for (caller, (id, report, expected)) in requests {
                    tx.prepare_cached("SAVEPOINT report").sql()?.execute([]).sql()?;
                    let answer = semantics::report(tx, caller, &id, report, expected, now);
                    if answer.is_err() {
                        tx.prepare_cached("ROLLBACK TO report").sql()?.execute([]).sql()?;
                    }
                    tx.prepare_cached("RELEASE report").sql()?.execute([]).sql()?;
                    match answer {
                        Err(error @ Error::Storage(_)) => return Err(error),
                        answer => answers.push(answer),
                    }
                }
                Ok(answers)
            },
            true,
        )
    }
}

impl Backend for SqliteStore {
    type Tx<'a> = Transaction<'a>;

    /// One `BEGIN IMMEDIATE` transaction: it holds the write lock from its first read, so what
    /// it checked is still true when it writes.
    fn write<T>(&self, work: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<T>) -> Result<T> {
        self.inner.write_counted(work, true)
    }

    fn read<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.inner.read(work)
    }

    fn host(&self) -> &str {
        &self.inner.host
    }

    fn compact(&self) -> Result<()> {
        let conn = self.inner.lock();
        conn.execute_batch("VACUUM").map_err(|error| error::from_sqlite(&self.inner.path, error))
    }

    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>> {
        let answers = self.inner.checkpoint(vec![(caller, ops)])?;
        Ok(answers.into_iter().next().unwrap_or_default())
    }

    /// Queued for the writer thread, committed with whatever else is waiting.
    fn submit(&self, caller: Caller<'_>, work: Submission) {
        let writer = self.writer.get_or_init(|| Writer::start(Arc::clone(&self.inner)));
        let who = Who { owner: caller.owner.to_owned(), actor: caller.actor.to_owned() };
        writer.send(who, work, &self.inner);
    }
}

/// The flow cache as one checkpoint transaction uses it: entries are taken out as the
/// transaction uses them, and what it wrote is kept only once it has committed.
struct Remembered<'a, 't> {
    tx: &'a Transaction<'t>,
    cache: &'a mut FlowCache,
    version: DataVersion,
    /// What each flow's last group left, in the order first written (a later group on the same
    /// flow saw the earlier one's writes and replaces it).
    committed: Vec<(FlowId, KnownFlow)>,
}

impl CheckpointMemory for Remembered<'_, '_> {
    fn recall(&mut self, owner: &str, id: &FlowId) -> Option<KnownFlow> {
        self.tx.take_flows_written();
        self.cache.take(self.version, owner, id)
    }

    fn applied(&mut self, id: FlowId, written: Option<KnownFlow>) {
        if self.tx.take_flows_written().iter().any(|written| *written != id) {
            // Another flow was written too (ending a child flow ends its parent's step, and
            // maybe more further up), which neither `data_version` nor the count of other
            // writes shows: what is known of any other flow may be out of date.
            self.cache.forget_all();
            self.committed.clear();
        }
        if let Some(known) = written {
            match self.committed.iter_mut().find(|(flow, _)| *flow == id) {
                Some(entry) => entry.1 = known,
                None => self.committed.push((id, known)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_settings_follow_the_options() {
        fn check(durability: Durability, synchronous: i64) {
            let dir = tempfile::tempdir().unwrap();
            let options = OpenOptions {
                durability,
                busy_timeout: Duration::from_millis(1234),
                ..OpenOptions::default()
            };
            let store = SqliteStore::open(dir.path().join("flows.db"), &options).unwrap();
            let conn = store.lock();
            let pragma = |name: &str| -> String {
                conn.query_row(&format!("PRAGMA {name}"), [], |row| {
                    row.get::<_, rusqlite::types::Value>(0)
                })
                .map(|value| match value {
                    rusqlite::types::Value::Integer(n) => n.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    other => format!("{other:?}"),
                })
                .unwrap()
            };
            assert_eq!(pragma("journal_mode"), "wal");
            assert_eq!(pragma("synchronous"), synchronous.to_string(), "{durability:?}");
            assert_eq!(pragma("busy_timeout"), "1234");
            assert_eq!(pragma("foreign_keys"), "1");
            assert_eq!(pragma("user_version"), schema::CURRENT_VERSION.to_string());
        }
        check(Durability::Full, 2);
        check(Durability::Normal, 1);
        assert_eq!("normal".parse::<Durability>().unwrap(), Durability::Normal);
        assert!("fast".parse::<Durability>().is_err());
    }

    #[test]
    fn a_path_that_is_no_file_is_refused_as_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|status| status.success()), "mkfifo");
        for (path, what) in [
            (dir.path().to_owned(), "a folder"),
            (PathBuf::from("/dev/null"), "a device, a pipe or a socket"),
            (fifo, "a device, a pipe or a socket"),
        ] {
            let Err(Error::Storage(error)) = SqliteStore::open(&path, &OpenOptions::default())
            else {
                panic!("{} opened", path.display());
            };
            assert_eq!(error.kind, taskflow_store::StorageErrorKind::Unavailable);
            assert_eq!(error.detail, format!("it is {what}, not a database file"));
        }
    }
}
