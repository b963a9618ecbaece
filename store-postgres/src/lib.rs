//! `taskflow-store-postgres`: the PostgreSQL backend of Task Flow's store, for flows shared by
//! processes on many machines.
//!
//! The flow semantics are `taskflow-store`'s, written once; this crate holds the SQL
//! ([`tx`](crate::tx)), the schema and its migrations, the pool of connections, and how writers
//! take turns: each write transaction locks the root row of the tree of the flow it loads
//! (see `transaction.rs`), so the writers of one tree go one at a time and those of different
//! trees in parallel, each on its own connection; the server's group commit shares the fsync of
//! transactions that commit together.
//!
//! A connection the server dropped (a restart) is replaced: a transaction is begun on a fresh
//! connection, waiting with backoff while the server is unreachable, for up to
//! [`OpenOptions::retry_for`]. Work is never sent twice: once a transaction has begun, a lost
//! connection fails it (nothing of it committed, unless the loss came during the commit itself,
//! which the error then says it may have).
//!
//! The URL's password never appears in a message: errors and `Debug` show the database as
//! [`Location::shown`].

mod error;
mod known;
mod lead;
mod list;
mod listen;
mod liveness;
mod location;
mod memo;
mod merge;
mod pool;
mod rows;
mod schedules;
mod schema;
#[cfg(feature = "testkit")]
pub mod scratch;
mod socket;
mod tls;
mod transaction;
mod tx;
mod update;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use taskflow_store::backend::commit_now;
use taskflow_store::{
    Backend, Caller, CheckpointDone, CheckpointOp, Flow, Leadership, Result, Step,
    StorageErrorKind, Submission, TaskFlow, Timestamp, lease, semantics,
};
use tokio::runtime::RuntimeFlavor;

pub use listen::{Listener, Wake};
pub use location::Location;
pub use schema::CURRENT_VERSION as SCHEMA_VERSION;
pub use transaction::Transaction;
pub use tx::WAKE_CHANNEL;

use known::{Known, Recalled, Remembered};
use pool::{Conn, Failures, Manager};
use transaction::Kind;

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// The most connections the store holds at once.
    pub pool_size: u32,
    /// How long one attempt to connect may take.
    pub connect_timeout: Duration,
    /// How long a transaction waits for the server to be reachable before failing as
    /// unavailable (a restart, a failover).
    pub retry_for: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(30),
        }
    }
}

/// A flow store in one PostgreSQL database.
pub struct PostgresStore {
    pool: r2d2::Pool<Manager>,
    /// The pool's failed attempts to connect: a log-in the server refused for good
    /// (credentials, certificate) is reported at once, any other failure once waiting ends.
    failures: Arc<Failures>,
    location: Location,
    retry_for: Duration,
    connect_timeout: Duration,
    host: String,
    /// The connection of the last refused [`Backend::lead`], for the next try (`lead.rs`).
    lead_conn: std::sync::Mutex<Option<Conn>>,
    /// Batches of statements its transactions have sent (each is one round trip).
    round_trips: AtomicU64,
    /// What its committed checkpoints left of the flows they wrote (`known.rs`).
    known: Known,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.location).finish_non_exhaustive()
    }
}

/// Opens the store at `url` ([`PostgresStore::open`]), ready to be bound to owners.
pub fn open(url: &str, options: &OpenOptions) -> Result<TaskFlow> {
    Ok(TaskFlow::new(Arc::new(PostgresStore::open(url, options)?)))
}

/// The schema version of the database at `url`, read without writing anything.
pub fn schema_version_of(url: &str, options: &OpenOptions) -> Result<i64> {
    let store = PostgresStore::connect(url, options)?;
    let mut conn = store.connection()?;
    schema::version_of(&mut conn, store.location.shown())
        .map_err(|error| error::at(store.location.shown(), error))
}

impl PostgresStore {
    /// Opens the store at `url`, refusing a database newer than this build and migrating an
    /// older (or empty) one.
    pub fn open(url: &str, options: &OpenOptions) -> Result<Self> {
        let store = Self::connect(url, options)?;
        let mut conn = store.connection()?;
        schema::prepare(&mut conn, store.location.shown())
            .map_err(|error| error::at(store.location.shown(), error))?;
        drop(conn);
        Ok(store)
    }

    /// The same store, waiting `retry_for` from now on for a server it cannot reach (a worker
    /// that opened it with a short first wait rides out the outages after it).
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    fn connect(url: &str, options: &OpenOptions) -> Result<Self> {
        let location = Location::parse(url)?;
        let failures = Arc::new(Failures::default());
        let pool =
            pool::build(&location, options.pool_size.max(1), options.connect_timeout, &failures);
        Ok(PostgresStore {
            pool,
            failures,
            location,
            retry_for: options.retry_for,
            connect_timeout: options.connect_timeout,
            host: lease::host_name(),
            lead_conn: std::sync::Mutex::new(None),
            round_trips: AtomicU64::new(0),
            known: Known::default(),
        })
    }

    /// The spare connection of `lead.rs`.
    pub(crate) fn spare_lead_conn(&self) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.lead_conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection of its own that wakes at once when a flow is queued, parked, signalled or
    /// cancelled.
    pub fn listen(&self) -> Result<Listener> {
        Listener::new(self, Duration::from_secs(5))
    }

    /// The database, as it may be shown.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// How many round trips its transactions have made since it was opened: each batch of
    /// statements they send together, and wait for, is one.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// A pooled connection, waiting with backoff while the server cannot be reached, for
    /// [`OpenOptions::retry_for`] at most; a log-in the server refused for good (credentials,
    /// certificate) fails at once. A failure says what the last attempt to connect met.
    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>> {
        let asked = Instant::now();
        let deadline = asked + self.retry_for;
        let mut pause = FIRST_PAUSE;
        loop {
            let turn = (Instant::now() + self.connect_timeout).min(deadline);
            let conn = loop {
                match self.pool.get_timeout(REFUSAL_CHECK) {
                    Ok(conn) => break Some(conn),
                    Err(_) => {
                        if let Some((kind, refusal)) = self.failures.refusal_since(asked) {
                            return Err(error::refused(self.location.shown(), kind, refusal));
                        }
                        if Instant::now() >= turn {
                            break None;
                        }
                    }
                }
            };
            match conn {
                Some(conn) => return Ok(conn),
                None if Instant::now() >= deadline => {
                    let waited = format!("{:.1} s", asked.elapsed().as_secs_f64());
                    let detail = match self.failures.since(asked) {
                        Some(said) => format!("{said} (tried for {waited})"),
                        None => format!(
                            "no connection to the server came free within {waited} (the \
                             server is silent or busy, or this process's {} connections are all in use)",
                            self.pool.max_size()
                        ),
                    };
                    let kind = StorageErrorKind::Unavailable;
                    return Err(error::refused(self.location.shown(), kind, detail));
                }
                None => pause = backoff(pause),
            }
        }
    }

    fn named(&self, error: taskflow_store::Error) -> taskflow_store::Error {
        error::at(self.location.shown(), error)
    }

    fn run<T>(&self, kind: Kind, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let result = (|| {
            let tx = Transaction::new(self, self.connection()?, kind);
            let value = work(&tx);
            let created = tx.created.take();
            let value = value.map_err(|failed| error::id_taken(failed, &created))?;
            if tx.is_write() {
                tx::flush_and_commit(tx).map_err(|failed| error::id_taken(failed, &created))?;
            } else {
                tx.commit()?;
            }
            Ok(value)
        })();
        result.map_err(|error| self.named(error))
    }
}

/// How often a wait for a pooled connection looks whether the server refused the log-in.
const REFUSAL_CHECK: Duration = Duration::from_millis(50);

/// The first pause of a [`backoff`].
const FIRST_PAUSE: Duration = Duration::from_millis(25);

/// Sleeps `pause` (with jitter) and returns the next, doubled up to a second.
fn backoff(pause: Duration) -> Duration {
    let jitter = fastrand::u64(0..=pause.as_millis() as u64 / 2);
    std::thread::sleep(pause + Duration::from_millis(jitter));
    (pause * 2).min(Duration::from_secs(1))
}

impl Backend for PostgresStore {
    type Tx<'a> = Transaction<'a>;

    /// One `READ COMMITTED` transaction that locks the tree of each flow it loads.
    fn write<T>(&self, work: impl FnOnce(&Transaction<'_>, Timestamp) -> Result<T>) -> Result<T> {
        self.run(Kind::Write, |tx| work(tx, Timestamp::now()))
    }

    fn read<T>(&self, work: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.run(Kind::Read, work)
    }

    fn host(&self) -> &str {
        &self.host
    }

    /// Starts each flow from what this process's last checkpoint of it left, if the server
    /// confirms it is still so, and otherwise runs again reading the flow (`known.rs`).
    fn checkpoint(
        &self,
        caller: Caller<'_>,
        ops: Vec<CheckpointOp>,
    ) -> Result<Vec<Result<CheckpointDone>>> {
        let once = |ops: Vec<CheckpointOp>, recalled| {
            let mut guarded = false;
            let done = self.run(Kind::Write, |tx| {
                let mut memory = Remembered::new(tx, recalled);
                let answers = semantics::checkpoint(tx, caller, ops, Timestamp::now(), &mut memory);
                guarded = memory.guarded;
                Ok((answers?, memory.committed))
            });
            (done, guarded)
        };
        // What is remembered of the ops' flows is taken out before the transaction begins: a
        // run may start from that and from nothing kept later by another thread, and the ops
        // are kept for a second run only when it may.
        let recalled = self.known.take_for(&ops);
        let again = (!recalled.is_empty()).then(|| ops.clone());
        let (done, guarded) = once(ops, recalled);
        let (answers, committed) = match (done, again) {
            (Err(error), Some(ops)) if guarded && error::is_stale_memory(&error) => {
                once(ops, Recalled::new()).0?
            }
            (done, _) => done?,
        };
        self.known.keep(committed);
        Ok(answers)
    }

    /// Remembers the flow as its run's start read it: the run's first checkpoint then goes from
    /// memory, and its last need not count the running steps (`known.rs`).
    fn run_starts(&self, flow: &Flow, lease_token: Option<&str>, steps: &[Step]) {
        self.known.keep(vec![semantics::KnownFlow::read_whole(flow, lease_token, steps)]);
    }

    /// The server gives space back on its own (autovacuum); `VACUUM` can also be run by hand.
    fn compact(&self) -> Result<()> {
        let mut conn = self.connection()?;
        conn.batch_execute("VACUUM (ANALYZE) flows, steps, revisions, events, signals")
            .map_err(|failure| self.named(error::storage(failure)))
    }

    /// Commits at once, in a transaction of its own on a pooled connection: writes of different
    /// trees run side by side, and the server's group commit shares their fsyncs. Called from
    /// a task of a multi-threaded runtime (a run's checkpoint, a report to serve), the
    /// transaction's round trips must not stall the other tasks of the thread (the other runs'
    /// model calls), so the runtime is told the thread blocks.
    fn submit(&self, caller: Caller<'_>, work: Submission) {
        let on_runtime = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
        if on_runtime {
            tokio::task::block_in_place(|| commit_now(self, caller, work));
        } else {
            commit_now(self, caller, work);
        }
    }

    /// A session advisory lock on a connection of its own (`lead.rs`).
    fn lead(&self, role: &str) -> Result<Option<Leadership>> {
        lead::lead(self, role, self.connect_timeout)
    }
}
