//! The store's connections: an r2d2 pool of connections, each with the statements it has
//! prepared (so a query costs one round trip, not a prepare and an execute).
//!
//! The store's traits are synchronous and are called from anywhere, async tasks of the engine
//! included. A connection's socket is therefore driven by a thread of its own, in a small
//! runtime of its own; the caller sends requests through tokio-postgres's client and waits for
//! the answers with a plain executor, which works on any thread, in a runtime or not. The
//! driving thread also hands over the notifications the connection receives (LISTEN), and ends
//! when the connection closes. A connection the server closed (a restart, an admin) is noticed
//! when used and left out of the pool.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use futures_executor::block_on;
use futures_util::future::{MaybeDone, maybe_done};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Notification, Row, Statement};

use crate::location::Location;
use crate::tls::Tls;

/// One connection, its prepared statements, and the notifications it has received.
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    notifications: mpsc::Receiver<Notification>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// One statement of a [`Conn::pipeline`].
#[derive(Clone, Copy)]
pub(crate) enum Request<'a> {
    /// Sent as text, without parameters (`BEGIN`, `COMMIT`, `LOCK TABLE …`).
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
    /// Connects with `settings`, starting the thread that drives the connection.
    pub fn connect(settings: &Settings) -> std::io::Result<Conn> {
        let (ready, answer) = mpsc::sync_channel(1);
        let (notify, notifications) = mpsc::channel();
        let Settings { config, tls } = settings.clone();
        let spawned = std::thread::Builder::new().name("taskflow-pg".to_owned()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(_) => return,
            };
            runtime.block_on(async move {
                match tls {
                    Tls::Plain => drive(config.connect(NoTls).await, ready, notify).await,
                    Tls::Rustls(tls) => drive(config.connect(tls).await, ready, notify).await,
                }
            });
        });
        spawned?;
        match answer.recv() {
            Ok(Ok(client)) => Ok(Conn { client, statements: HashMap::new(), notifications }),
            Ok(Err(error)) => Err(std::io::Error::other(with_causes(&error))),
            Err(_) => Err(std::io::Error::other("the connection's thread ended")),
        }
    }

    /// The statement for `sql`, prepared on first use.
    pub fn statement(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = block_on(self.client.prepare(sql))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub fn query_one(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.statement(sql)?;
        block_on(self.client.query_one(&statement, params))
    }

    /// Sends every request before it awaits the first answer, so that they take one round trip
    /// (the server runs them in order), and returns their answers. The first failure is
    /// returned instead: in a transaction, the server then ignores what follows up to the
    /// transaction's end, and answers a `COMMIT` with a rollback.
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
        block_on(all_in_order(sent.collect())).into_iter().collect()
    }

    /// Runs `sql` (any number of statements, no parameters) as text.
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        block_on(self.client.batch_execute(sql))
    }

    /// A query sent as text, unprepared (for statements run once, like a schema's).
    pub fn query_text(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        block_on(self.client.query(sql, params))
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The next notification, waiting at most `timeout` for one.
    pub fn notification(&mut self, timeout: Duration) -> Option<Notification> {
        self.notifications.recv_timeout(timeout).ok()
    }
}

/// `error` and what caused it, in one line: the driver's own message leaves the cause out
/// ("error performing TLS handshake", not that the certificate was refused, and why).
fn with_causes(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = inner.source();
    }
    text
}

/// Hands the client of a connection just made to `ready`, then drives the connection until it
/// closes, passing on the notifications it receives.
async fn drive<S, T>(
    connected: Result<(Client, Connection<S, T>), tokio_postgres::Error>,
    ready: mpsc::SyncSender<Result<Client, tokio_postgres::Error>>,
    notify: mpsc::Sender<Notification>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (client, mut connection) = match connected {
        Ok(pair) => pair,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    if ready.send(Ok(client)).is_err() {
        return;
    }
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    use futures_util::StreamExt;
    while let Some(Ok(message)) = messages.next().await {
        if let AsyncMessage::Notification(notification) = message {
            let _ = notify.send(notification);
        }
    }
}

/// How to connect: the driver's settings and the TLS connector.
#[derive(Clone)]
pub(crate) struct Settings {
    config: tokio_postgres::Config,
    tls: Tls,
}

/// Makes connections to one database for r2d2.
pub(crate) struct Manager {
    settings: Settings,
}

impl Manager {
    pub fn new(location: &Location, connect_timeout: Duration) -> Self {
        Manager { settings: settings(location, connect_timeout) }
    }
}

/// How to connect to `location`, with a connect timeout and the application's name.
pub(crate) fn settings(location: &Location, connect_timeout: Duration) -> Settings {
    let mut config = location.config.clone();
    config.connect_timeout(connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("taskflow");
    }
    Settings { config, tls: location.tls.clone() }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = std::io::Error;

    fn connect(&self) -> std::io::Result<Conn> {
        Conn::connect(&self.settings)
    }

    fn is_valid(&self, conn: &mut Conn) -> std::io::Result<()> {
        conn.batch_execute("").map_err(std::io::Error::other)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.is_closed()
    }
}

/// A pool with no idle minimum (connections are made as they are needed) that gives up on
/// making one after `connect_timeout`, trying again meanwhile with backoff.
pub(crate) fn build(
    location: &Location,
    size: u32,
    connect_timeout: Duration,
) -> r2d2::Pool<Manager> {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(Manager::new(location, connect_timeout))
}
