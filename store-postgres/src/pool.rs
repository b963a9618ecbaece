//! The store's connections: an r2d2 pool of connections, each with the statements it has
//! prepared (so a query costs one round trip, not a prepare and an execute).
//!
//! The store's traits are synchronous and are called from anywhere, async tasks of the engine
//! included. A connection's socket is therefore driven by the thread that uses it
//! ([`Driver`]), in a runtime or not; the notifications it receives (LISTEN) are kept until
//! asked for. A connection the server closed (a restart, an admin) is noticed when used and
//! left out of the pool.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::{MaybeDone, maybe_done};
use taskflow_store::StorageErrorKind;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Notification, Row, Statement};

use crate::error::ConnectError;
use crate::liveness::Liveness;
use crate::location::Location;
use crate::merge::AboveTls;
use crate::socket::Driver;
use crate::tls::Tls;

/// Set on each new connection. Every statement of the store is prepared once per connection,
/// and its plan does not turn on the values bound to it (keys, ids, times, limits), so one
/// generic plan serves every execution. By default the server plans a prepared statement again
/// for each of its first five executions on a connection: a worker's pool, whose connections
/// run each statement a few times per batch of flows, spent a sixth of the server's CPU
/// planning.
///
/// Those plans are made once, with the statistics of the moment: while the journal was short, a
/// scan of the whole table cost about as much as a lookup by key at the default
/// `random_page_cost` (4), and a plan made then read the whole journal at each step once it was
/// long, until the next analysis of the table. The store's reads are lookups of a few rows, on
/// pages a running flow keeps in the server's cache: at a `random_page_cost` of 1.1 a lookup
/// by key is planned whatever the table's size.
pub(crate) const SESSION: [&str; 2] =
    ["SET random_page_cost = 1.1", "SET plan_cache_mode = force_generic_plan"];

/// One connection, its prepared statements, and the driver of its socket.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    driver: Driver,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One statement of a [`Conn::pipeline`].
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    /// Sent as text, without parameters (`LOCK TABLE …`): a simple query, which takes its own
    /// `Sync` (`merge.rs`).
    Text(&'a str),
    /// A prepared statement whose rows are wanted.
    Query(&'static str, Params<'a>),
    /// A prepared statement whose count of rows written is wanted.
    Execute(&'static str, Params<'a>),
}

/// What the server answered to a [`Request`].
pub(crate) enum Answer {
    Done,
    Rows(Vec<Row>),
    Count(u64),
}

type AnswerFuture<'a> = Pin<Box<dyn Future<Output = Result<Answer, tokio_postgres::Error>> + 'a>>;

/// Awaits `futures` together, polling them in their order, so that each sends its request
/// (tokio-postgres sends when a future is first polled) before any that follows it.
async fn all_in_order<T>(futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut pending: Vec<MaybeDone<_>> = futures.into_iter().map(maybe_done).collect();
    poll_fn(|cx| {
        let mut done = true;
        for future in &mut pending {
            done &= Pin::new(future).poll(cx).is_ready();
        }
        if !done {
            return Poll::Pending;
        }
        let outputs = pending.iter_mut().map(|future| Pin::new(future).take_output());
        Poll::Ready(outputs.map(|output| output.expect("each future is done")).collect())
    })
    .await
}

impl Conn {
    /// Connects with `settings`.
    pub fn connect(settings: &Settings) -> Result<Conn, ConnectError> {
        let Settings { config, liveness, tls, connect_timeout } = settings;
        let timeout = *connect_timeout;
        let (client, driver) = match tls.clone() {
            Tls::Plain => Driver::connect(config, liveness, NoTls, timeout)?,
            Tls::Rustls(tls) => Driver::connect(config, liveness, AboveTls(tls), timeout)?,
            // libpq's `allow`: TLS only when the server refuses the log-in in plain text.
            Tls::PlainFirst(tls) => match Driver::connect(config, liveness, NoTls, timeout) {
                Err(plain) if plain.answered => {
                    let mut config = config.clone();
                    config.ssl_mode(SslMode::Require);
                    Driver::connect(&config, liveness, AboveTls(tls), timeout).map_err(
                        |mut failure| {
                            failure.said = format!(
                                "in plain text: {}; with TLS: {}",
                                plain.said, failure.said
                            );
                            failure
                        },
                    )?
                }
                connected => connected?,
            },
        };
        let mut conn = Conn { client, statements: HashMap::new(), driver };
        // Not waited for: they go ahead of the connection's first request, each on its own, so
        // that a server before PostgreSQL 12, which refuses the plan mode, keeps the other.
        for setting in SESSION {
            conn.send_unawaited(setting);
        }
        Ok(conn)
    }

    /// The statement for `sql`, prepared on first use.
    pub fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.driver.block_on(self.client.prepare(sql))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub fn query_one(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.statement(sql)?;
        self.driver.block_on(self.client.query_one(&statement, params))
    }

    /// Sends every request before it awaits the first answer, so that they take one round trip
    /// (the server runs them in order), and returns their answers. `requests` belong to one
    /// transaction (they begin it, or it is open): they go with one `Sync` (`merge.rs`). The
    /// first failure is returned instead: the server then skips what follows, a prepared
    /// `COMMIT` included, and the transaction stays open, failed, until rolled back.
    pub fn pipeline(
        &mut self,
        requests: &[Request<'_>],
    ) -> Result<Vec<Answer>, tokio_postgres::Error> {
        for request in requests {
            if let Request::Query(sql, _) | Request::Execute(sql, _) = request {
                self.statement(sql)?;
            }
        }
        let (client, statements) = (&self.client, &self.statements);
        let sent = requests.iter().map(|request| -> AnswerFuture<'_> {
            match *request {
                Request::Text(sql) => {
                    Box::pin(async move { client.batch_execute(sql).await.map(|()| Answer::Done) })
                }
                Request::Query(sql, params) => {
                    let statement = &statements[sql];
                    Box::pin(async move { client.query(statement, params).await.map(Answer::Rows) })
                }
                Request::Execute(sql, params) => {
                    let statement = &statements[sql];
                    Box::pin(
                        async move { client.execute(statement, params).await.map(Answer::Count) },
                    )
                }
            }
        });
        let answers = self.driver.block_on_merged(all_in_order(sent.collect()));
        answers.into_iter().collect()
    }

    /// Runs `sql` (any number of statements, no parameters) as text.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.driver.block_on(self.client.batch_execute(sql))
    }

    /// Sends `sql` (no parameters) as text without waiting for the server's answer, which is
    /// then never known: for the end of a read-only transaction, which has nothing to lose.
    pub fn send_unawaited(&mut self, sql: &'static str) {
        self.driver.send_unawaited(self.client.batch_execute(sql));
    }

    /// Sends the prepared statement `sql` without waiting for the server's answer, which is
    /// then never known (nor its failure, nor one to prepare it).
    pub fn execute_unawaited(&mut self, sql: &'static str, params: Params<'_>) {
        if let Ok(statement) = self.statement(sql) {
            self.driver.send_unawaited(self.client.execute(&statement, params));
        }
    }

    /// A query sent as text, unprepared (for statements run once, like a schema's).
    pub fn query_text(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.driver.block_on(self.client.query(sql, params))
    }

    pub fn is_closed(&self) -> bool {
        self.driver.is_closed()
    }

    /// Whether the server closed the connection while it sat unused (found without a round
    /// trip: see [`Driver::closed_while_idle`]).
    pub fn closed_while_idle(&mut self) -> bool {
        self.driver.closed_while_idle()
    }

    /// The next notification, waiting at most `timeout` for one.
    pub fn notification(&mut self, timeout: Duration) -> Option<Notification> {
        self.driver.notification(timeout)
    }
}

/// How to connect: the driver's settings, the socket's, and the TLS connector.
#[derive(Clone)]
pub(crate) struct Settings {
    config: tokio_postgres::Config,
    liveness: Liveness,
    tls: Tls,
    connect_timeout: Duration,
}

/// Makes connections to one database for r2d2.
pub(crate) struct Manager {
    settings: Settings,
    failures: std::sync::Arc<Failures>,
}

/// How to connect to `location`, with a connect timeout and the application's name.
pub(crate) fn settings(location: &Location, connect_timeout: Duration) -> Settings {
    let mut config = location.config.clone();
    if config.get_application_name().is_none() {
        config.application_name("taskflow");
    }
    Settings { config, liveness: location.liveness, tls: location.tls.clone(), connect_timeout }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    fn connect(&self) -> Result<Conn, ConnectError> {
        let conn = Conn::connect(&self.settings)?;
        self.failures.set(None);
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnectError> {
        conn.batch_execute("").map_err(ConnectError::unanswered)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.is_closed()
    }
}

/// The pool's last failed attempt to connect: when it came, what it said, and whether the
/// server refused the log-in for good (see `socket.rs`); cleared by the next connection made.
#[derive(Debug, Default)]
pub(crate) struct Failures(std::sync::Mutex<Option<Failure>>);

#[derive(Debug)]
struct Failure {
    at: std::time::Instant,
    /// The kind of storage error a refusal for good is.
    refusal: Option<StorageErrorKind>,
    said: String,
}

impl Failures {
    /// What the last failed attempt after `since` said, if one failed.
    pub fn since(&self, since: std::time::Instant) -> Option<String> {
        let last = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        last.as_ref().filter(|failure| failure.at >= since).map(|failure| failure.said.clone())
    }

    /// What the last attempt after `since` said, and the kind of storage error it is, if the
    /// server refused it for good.
    pub fn refusal_since(&self, since: std::time::Instant) -> Option<(StorageErrorKind, String)> {
        let last = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let failure = last.as_ref().filter(|failure| failure.at >= since)?;
        failure.refusal.map(|kind| (kind, failure.said.clone()))
    }

    fn set(&self, failure: Option<&ConnectError>) {
        let mut last = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *last = failure.map(|error| Failure {
            at: std::time::Instant::now(),
            refusal: error.refusal.map(|_| error.kind()),
            said: error.said.clone(),
        });
    }
}

/// Keeps the pool's failed connection attempts, which r2d2 makes on threads of its own.
struct KeepFailures(std::sync::Arc<Failures>);

impl std::fmt::Debug for KeepFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeepFailures")
    }
}

impl r2d2::HandleError<ConnectError> for KeepFailures {
    fn handle_error(&self, error: ConnectError) {
        self.0.set(Some(&error));
    }
}

/// A pool with no idle minimum (connections are made as they are needed) that gives up on
/// making one after `connect_timeout`, trying again meanwhile with backoff.
pub(crate) fn build(
    location: &Location,
    size: u32,
    connect_timeout: Duration,
    failures: &std::sync::Arc<Failures>,
) -> r2d2::Pool<Manager> {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(KeepFailures(std::sync::Arc::clone(failures))))
        .build_unchecked(Manager {
            settings: settings(location, connect_timeout),
            failures: std::sync::Arc::clone(failures),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_plans_each_statement_once() {
        let location = Location::parse(&crate::scratch::server_url()).unwrap();
        let mut conn = Conn::connect(&settings(&location, Duration::from_secs(10))).unwrap();
        let row = conn.query_one("SHOW plan_cache_mode", &[]).unwrap();
        assert_eq!(row.get::<_, String>(0), "force_generic_plan");
        let row = conn.query_one("SHOW random_page_cost", &[]).unwrap();
        assert_eq!(row.get::<_, String>(0), "1.1");
    }

    /// Whether a connection to `url` is encrypted, as the server sees it.
    fn encrypted(url: &str) -> bool {
        let location = Location::parse(url).unwrap();
        let mut conn = Conn::connect(&settings(&location, Duration::from_secs(10))).unwrap();
        let row = conn.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]);
        row.unwrap().get(0)
    }

    /// libpq's `sslmode=allow` logs in in plain text when the server takes that (the test
    /// server takes both); `prefer` encrypts when the server can.
    #[test]
    fn sslmode_allow_is_plain_text_where_the_server_takes_it() {
        let url = crate::scratch::server_url();
        let separator = if url.contains('?') { '&' } else { '?' };
        let check = |mode: &str, expected: bool| {
            let url = format!("{url}{separator}sslmode={mode}");
            assert_eq!(encrypted(&url), expected, "{mode}");
        };
        check("disable", false);
        check("allow", false);
        check("prefer", true);
        check("require", true);
    }

    fn scratch_connection() -> Conn {
        connection_with_table(&crate::scratch::server_url())
    }

    /// The test server's URL with TLS checked against its authority.
    fn tls_url() -> String {
        let ca = std::env::var("TASKFLOW_TEST_POSTGRES_CA").expect(
            "TASKFLOW_TEST_POSTGRES_CA is not set: run the tests through scripts/test, which \
             starts the server with TLS (scripts/services/postgres.sh)",
        );
        let url = crate::scratch::server_url();
        let (user, hosts) = url.split_once("://").unwrap().1.split_once('@').unwrap();
        let hosts = hosts.split('?').next().unwrap();
        format!("postgres://{user}:pg-s3cret@{hosts}?sslmode=verify-full&sslrootcert={ca}")
    }

    fn connection_with_table(url: &str) -> Conn {
        let location = Location::parse(url).unwrap();
        let mut conn = Conn::connect(&settings(&location, Duration::from_secs(10))).unwrap();
        conn.batch_execute("CREATE TEMPORARY TABLE t (v int PRIMARY KEY)").unwrap();
        conn
    }

    fn count(answer: &Answer) -> u64 {
        match answer {
            Answer::Count(count) => *count,
            _ => panic!("a count was expected"),
        }
    }

    #[test]
    fn a_transactions_pipeline_goes_with_one_sync_and_each_statement_is_answered() {
        check_one_sync(scratch_connection());
        check_one_sync(connection_with_table(&tls_url()));
    }

    fn check_one_sync(mut conn: Conn) {
        let answers = conn
            .pipeline(&[
                Request::Execute("BEGIN", &[]),
                Request::Execute("INSERT INTO t VALUES (1), (2)", &[]),
                Request::Query("SELECT v FROM t ORDER BY v", &[]),
                Request::Execute("DELETE FROM t WHERE v = 1", &[]),
                Request::Execute("COMMIT", &[]),
            ])
            .unwrap();
        assert_eq!(conn.driver.syncs_left_out(), 4);
        assert_eq!(count(&answers[1]), 2);
        let Answer::Rows(rows) = &answers[2] else { panic!("rows were expected") };
        assert_eq!(rows.iter().map(|row| row.get::<_, i32>(0)).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(count(&answers[3]), 1);
        let row = conn.query_one("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(row.get::<_, i64>(0), 1);
    }

    #[test]
    fn a_pipeline_that_fails_answers_its_first_failure_and_leaves_the_connection_usable() {
        let mut conn = scratch_connection();
        let failure = conn
            .pipeline(&[
                Request::Execute("BEGIN", &[]),
                Request::Execute("INSERT INTO t VALUES (1)", &[]),
                Request::Query("SELECT 1 / 0", &[]),
                Request::Execute("INSERT INTO t VALUES (2)", &[]),
                Request::Execute("COMMIT", &[]),
            ])
            .err()
            .expect("the division fails");
        assert_eq!(failure.code(), Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO));
        // The server skipped the `COMMIT`: the transaction is open, and failed.
        let refused = conn.query_one("SELECT count(*) FROM t", &[]).err().unwrap();
        assert_eq!(
            refused.code(),
            Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
        );
        conn.batch_execute("ROLLBACK").unwrap();
        let row = conn.query_one("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(row.get::<_, i64>(0), 0);
        // A statement that fails where the server checks it against the table (a duplicate
        // key), then a pipeline after it.
        conn.batch_execute("INSERT INTO t VALUES (7)").unwrap();
        let duplicate = conn
            .pipeline(&[
                Request::Execute("BEGIN", &[]),
                Request::Execute("INSERT INTO t VALUES (7)", &[]),
                Request::Execute("COMMIT", &[]),
            ])
            .err()
            .unwrap();
        assert_eq!(duplicate.code(), Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION));
        conn.batch_execute("ROLLBACK").unwrap();
        let answers = conn
            .pipeline(&[
                Request::Execute("BEGIN", &[]),
                Request::Execute("INSERT INTO t VALUES (8)", &[]),
                Request::Execute("COMMIT", &[]),
            ])
            .unwrap();
        assert_eq!(count(&answers[1]), 1);
        let row = conn.query_one("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(row.get::<_, i64>(0), 2);
    }
}
