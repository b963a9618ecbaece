//! `taskflow-serve`: the local gateway (DESIGN §8). One long-running process over the flow
//! database: an HTTP API through which programs in any language submit managed flows and own
//! mirrored ones, the change feed as server-sent events, recovery, so that every flow left
//! behind by a crash (of serve, of a CLI run) finishes, the waking of waiting flows when
//! their timer is due or their signal arrived, and the scheduler that fires schedules.
//!
//! The dashboard at `/` shows the same flows and schedules to people, in a browser.
//!
//! Local by default: a listen address that is not loopback is refused unless tokens are
//! configured, and each token is bound to one owner (the owner-bound API over HTTP: a request
//! never chooses its owner).
//!
//! ```text
//! Server::bind(taskflow, engine, options).await? → server.local_addr()
//! server.run(shutdown).await?   // serves until `shutdown`, then drains and stops its runs
//! ```

mod actions;
mod app;
mod auth;
mod blocking;
mod bodies;
mod dashboard;
mod error;
mod event_data;
mod feed;
mod guard;
mod json_errors;
mod openapi;
pub mod outage;
mod query;
mod routes;
mod schedule_bodies;
mod scheduler;
mod sessions;
mod state;
mod wakes;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use taskflow_api::ServeToken;
use taskflow_engine::{Engine, Runs};
use taskflow_store::TaskFlow;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use event_data::EventData;
pub use openapi::ApiDoc;
pub use routes::events::AFTER_HEADER;

use feed::Feed;

/// How often events past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
use state::AppState;

/// How serve runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// At most this many flows run at once.
    pub workers: usize,
    /// Whose flows requests see when no token is configured.
    pub owner: String,
    /// The tokens requests must present, each bound to its owner; none: loopback only.
    pub tokens: Vec<ServeToken>,
    /// On shutdown, how long running steps get to reach their checkpoint.
    pub grace: Duration,
    /// The largest request body.
    pub body_limit: usize,
    /// The longest a request may take (the event stream excepted), and its head to arrive.
    pub request_timeout: Duration,
    /// How often flows no runner holds are looked for.
    pub sweep_every: Duration,
    /// How often the change feed is read for new events.
    pub feed_every: Duration,
    /// How long events are kept (the newest always is); `None`: forever.
    pub keep_events: Option<Duration>,
}

impl ServeOptions {
    pub fn new(listen: SocketAddr, owner: impl Into<String>) -> Self {
        ServeOptions {
            listen,
            workers: 16,
            owner: owner.into(),
            tokens: Vec::new(),
            grace: Duration::from_secs(10),
            body_limit: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            sweep_every: Duration::from_secs(5),
            feed_every: Duration::from_millis(100),
            keep_events: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// Why serve could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Listening beyond this host without a token would hand the flows to anyone who can reach
    /// the address.
    #[error("{0} is not a loopback address, and no token is configured")]
    NotLoopback(SocketAddr),

    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("the server stopped: {0}")]
    Serve(#[source] std::io::Error),
}

/// A serve process with its socket bound.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    options: ServeOptions,
}

impl Server {
    /// Binds the listen address (refusing one beyond this host without tokens). `engine` runs
    /// the flows, each for its own owner ([`Engine::for_owner`]).
    pub async fn bind(
        taskflow: TaskFlow,
        engine: Engine,
        options: ServeOptions,
    ) -> Result<Server, ServeError> {
        if !options.listen.ip().is_loopback() && options.tokens.is_empty() {
            return Err(ServeError::NotLoopback(options.listen));
        }
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| ServeError::Listen { address: options.listen, source })?;
        let runs = Runs::new(taskflow.clone(), engine.clone(), options.workers);
        runs.warn_on_failure();
        let state = AppState::new(
            taskflow,
            engine,
            options.tokens.clone(),
            options.owner.clone(),
            runs,
            Feed::new(),
        );
        Ok(Server { listener, state, options })
    }

    /// The address it listens on (the port chosen, for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.options.listen)
    }

    /// Serves until `shutdown` completes: then it stops accepting, drains its runs (running
    /// steps get `grace` to reach their checkpoint) and gives their flows back.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server { listener, state, options } = self;
        let mcp_stop = CancellationToken::new();
        let app = app::router(
            state.clone(),
            app::RouterOptions {
                body_limit: options.body_limit,
                timeout: options.request_timeout,
                loopback: options.listen.ip().is_loopback(),
                mcp_stop: mcp_stop.clone(),
            },
        );
        // Event streams (MCP's, the change feed's) stay open until told: they end when serve
        // stops accepting, so that their connections can close. The runs drain at the same
        // time, not once the last connection has closed.
        let stopping = CancellationToken::new();
        let shutdown = {
            let (feed, stopping) = (state.feed().clone(), stopping.clone());
            async move {
                shutdown.await;
                stopping.cancel();
                mcp_stop.cancel();
                feed.close();
            }
        };
        let sweep = tokio::spawn({
            let state = state.clone();
            async move { state.runs().sweep(options.sweep_every).await }
        });
        let wakes = tokio::spawn(wakes::wake(state.taskflow().clone(), state.runs().clone()));
        let scheduler = tokio::spawn(scheduler::fire(
            state.taskflow().clone(),
            state.runs().clone(),
            std::sync::Arc::new(outage::Outage::default()),
        ));
        let feed = tokio::spawn({
            let state = state.clone();
            async move { state.feed().poll(state.taskflow().clone(), options.feed_every).await }
        });
        let retention = options.keep_events.map(|keep| {
            let taskflow = state.taskflow().clone();
            tokio::spawn(feed::retain(taskflow, keep, PRUNE_EVERY))
        });
        // Connections get the runs' grace to finish the requests they are in: one that sent
        // half a request would otherwise hold serve until its head timeout.
        let http = taskflow_http_server::Options {
            head_timeout: options.request_timeout,
            drain: options.grace,
        };
        let serving = async {
            let served = taskflow_http_server::serve(listener, app, http, shutdown).await;
            stopping.cancel();
            served
        };
        let draining = async {
            stopping.cancelled().await;
            // Nothing new is taken from the moment serve is told to stop.
            sweep.abort();
            wakes.abort();
            scheduler.abort();
            state.runs().shut_down(options.grace).await;
        };
        let (served, ()) = tokio::join!(serving, draining);
        feed.abort();
        if let Some(retention) = retention {
            retention.abort();
        }
        served.map_err(ServeError::Serve)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_engine::{Actions, EngineOptions};
    use taskflow_store::Durability;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);

    /// Everything `stream` is sent until it closes, as text, within 5 s.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
        read.await.expect("the connection closed in time").unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_client_is_cut_off_at_the_request_timeout_and_holds_nothing_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let taskflow = taskflow_api::database::open_for_running(&path, Durability::Normal).unwrap();
        let engine = Engine::new(
            taskflow.bind("alice").unwrap(),
            Actions::builtin(),
            EngineOptions::default(),
        );
        let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap(), "alice");
        options.request_timeout = REQUEST_TIMEOUT;
        let server = Server::bind(taskflow, engine, options).await.unwrap();
        let address = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));

        // A head that never ends, and a body that stops halfway.
        let mut slow_head = TcpStream::connect(address).await.unwrap();
        slow_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        let mut slow_body = TcpStream::connect(address).await.unwrap();
        let head = "POST /v1/flows HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
        slow_body.write_all(head.as_bytes()).await.unwrap();
        slow_body.write_all(b"{\"name\": \"half").await.unwrap();
        let started = std::time::Instant::now();
        // Meanwhile serve answers others at once.
        let mut other = TcpStream::connect(address).await.unwrap();
        other
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut other).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"ok\":true"), "{answer}");

        let answer = read_to_close(&mut slow_body).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#"{"error":{"code":"timeout","#), "{answer}");
        let answer = read_to_close(&mut slow_head).await;
        assert_eq!(answer, "", "a head that never ended gets no answer");
        assert!(started.elapsed() >= REQUEST_TIMEOUT - Duration::from_millis(50));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), serving).await.unwrap().unwrap().unwrap();
    }
}
