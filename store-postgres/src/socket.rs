//! A connection's socket, driven by the thread that uses the connection.
//!
//! tokio-postgres splits a connection in two: the `Client` that queues requests, and the
//! `Connection` that moves bytes between those requests and the socket. Driven by a thread of
//! its own, the `Connection` wakes up for each request a caller queues and writes each on its
//! own, and every answer crosses back to the caller: a checkpoint cost several context switches
//! per statement, and the first statement of a batch often left before the others were queued,
//! so a batch took two round trips instead of one. Here the caller drives it instead: it queues
//! every request of a batch, then writes them all at once, then waits on the socket itself
//! (`poll(2)`) until the answers are in. No other thread, no runtime: it works the same on any
//! thread, inside an async runtime or not.
//!
//! [`Stream`] is a non-blocking socket whose reads and writes answer "pending" when the socket is
//! not ready, without registering a waker: [`Driver`] does not rely on wake-ups from the socket,
//! it polls again once `poll(2)` says the socket is ready (and at least every
//! [`IDLE_CHECK`] in case a future is pending on something else). Between the two, a [`Merge`]
//! sends a transaction's batch with one `Sync` ([`Driver::block_on_merged`]).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, Notification};

use crate::error::{ConnectError, Doing, Refusal};
use crate::liveness::Liveness;
use crate::merge::{Merge, Shared};

/// How long the driver waits on the socket before it polls its futures again anyway.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// A connected socket in non-blocking mode.
pub(crate) struct Stream {
    io: Io,
    /// Set when a write found the socket's buffer full: the driver then waits until it can
    /// write too.
    write_blocked: Arc<AtomicBool>,
}

enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Io {
    fn fd(&self) -> RawFd {
        match self {
            Io::Tcp(stream) => stream.as_raw_fd(),
            Io::Unix(stream) => stream.as_raw_fd(),
        }
    }
}

impl Stream {
    /// Connects to the first of `config`'s hosts that answers, each address within `timeout`,
    /// a TCP connection set up as `liveness` says. Also returns the host's name (for TLS) when
    /// it has one.
    pub fn connect(
        config: &Config,
        liveness: &Liveness,
        timeout: Duration,
    ) -> io::Result<(Stream, Option<String>)> {
        let hosts = config.get_hosts();
        let addrs = config.get_hostaddrs();
        let ports = config.get_ports();
        // `Location::parse` refuses a URL without a host.
        let count = hosts.len().max(addrs.len());
        let mut last = None;
        for index in 0..count {
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            let name = match hosts.get(index) {
                Some(Host::Tcp(name)) => Some(name.clone()),
                _ => None,
            };
            let attempt = match (addrs.get(index), hosts.get(index)) {
                (Some(ip), _) => tcp(&[SocketAddr::new(*ip, port)], liveness, timeout),
                (None, Some(Host::Tcp(name))) => (name.as_str(), port)
                    .to_socket_addrs()
                    .and_then(|found| tcp(&found.collect::<Vec<_>>(), liveness, timeout)),
                (None, Some(Host::Unix(folder))) => {
                    UnixStream::connect(folder.join(format!(".s.PGSQL.{port}"))).map(Io::Unix)
                }
                (None, None) => continue,
            };
            match attempt {
                Ok(io) => {
                    match &io {
                        Io::Tcp(stream) => stream.set_nonblocking(true)?,
                        Io::Unix(stream) => stream.set_nonblocking(true)?,
                    }
                    let stream = Stream { io, write_blocked: Arc::default() };
                    return Ok((stream, name));
                }
                Err(error) => {
                    let place = match (addrs.get(index), hosts.get(index)) {
                        (Some(ip), _) => SocketAddr::new(*ip, port).to_string(),
                        (None, Some(Host::Tcp(name))) => format!("{name}:{port}"),
                        (None, Some(Host::Unix(folder))) => {
                            folder.join(format!(".s.PGSQL.{port}")).display().to_string()
                        }
                        (None, None) => String::new(),
                    };
                    last = Some(io::Error::new(
                        error.kind(),
                        format!("cannot connect to {place}: {error}"),
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no address to connect to")))
    }

    fn fd(&self) -> RawFd {
        self.io.fd()
    }
}

/// A TCP connection to the first of `addrs` that accepts one within `timeout`, set up as
/// tokio-postgres sets its own: no delay, keepalives and the user timeout as `liveness` says.
fn tcp(addrs: &[SocketAddr], liveness: &Liveness, timeout: Duration) -> io::Result<Io> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                liveness.set_up(&stream)?;
                return Ok(Io::Tcp(stream));
            }
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("the host's name resolves to no address")))
}

/// What an operation on the non-blocking socket answers, as a poll.
fn ready<T>(result: io::Result<T>, blocked: impl FnOnce()) -> Poll<io::Result<T>> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            blocked();
            Poll::Pending
        }
        other => Poll::Ready(other),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let space = buf.initialize_unfilled();
            let read = match &mut this.io {
                Io::Tcp(stream) => stream.read(space),
                Io::Unix(stream) => stream.read(space),
            };
            match read {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                read => {
                    return ready(read, || {}).map_ok(|count| buf.advance(count));
                }
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = match &mut this.io {
            Io::Tcp(stream) => stream.write(bytes),
            Io::Unix(stream) => stream.write(bytes),
        };
        ready(written, || this.write_blocked.store(true, Ordering::Relaxed))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let closed = match &self.io {
            Io::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Io::Unix(stream) => stream.shutdown(Shutdown::Write),
        };
        match closed {
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

/// A tokio-postgres connection on a [`Stream`], whatever its TLS.
trait Driven: Send {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>>;
}

impl<T> Driven for Connection<Merge<Stream>, T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>> {
        Connection::poll_message(self, cx)
    }
}

/// Whether a future or the connection was woken since the flag was last cleared.
#[derive(Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Drives one connection's socket on the calling thread.
pub(crate) struct Driver {
    fd: RawFd,
    write_blocked: Arc<AtomicBool>,
    /// `None` while logging in, and once the connection has ended.
    connection: Option<Box<dyn Driven>>,
    /// Whether the connection has ended (the server closed it, or it failed): its socket is
    /// closed then.
    ended: bool,
    notifications: VecDeque<Notification>,
    woken: Arc<Woken>,
    merge: Arc<Shared>,
}

/// A future of [`Driver::run`] did not finish in time.
#[derive(Debug)]
pub(crate) struct TimedOut;

impl Driver {
    /// Connects to `config`'s server and logs in, within `timeout`; `tls` makes the TLS
    /// connector for a host's name.
    pub fn connect<M>(
        config: &Config,
        liveness: &Liveness,
        mut tls: M,
        timeout: Duration,
    ) -> Result<(Client, Driver), ConnectError>
    where
        M: tokio_postgres::tls::MakeTlsConnect<Merge<Stream>>,
        M::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        M::Error: std::fmt::Display,
    {
        let deadline = Instant::now() + timeout;
        let (stream, name) =
            Stream::connect(config, liveness, timeout).map_err(ConnectError::unanswered)?;
        let mut driver = Driver {
            fd: stream.fd(),
            write_blocked: Arc::clone(&stream.write_blocked),
            connection: None,
            ended: false,
            notifications: VecDeque::new(),
            woken: Arc::default(),
            merge: Arc::default(),
        };
        let stream = Merge::new(stream, Arc::clone(&driver.merge));
        let connector = tls
            .make_tls_connect(name.as_deref().unwrap_or(""))
            .map_err(ConnectError::unanswered)?;
        let logged_in = driver.run(config.connect_raw(stream, connector), Some(deadline));
        let (client, connection) = match logged_in {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => return Err(log_in_failed(&error)),
            Err(TimedOut) => {
                return Err(ConnectError::unanswered(format!(
                    "the server did not answer the log-in within {timeout:?}"
                )));
            }
        };
        driver.connection = Some(Box::new(connection));
        driver.merge.track();
        Ok((client, driver))
    }

    /// Runs `future` to its end, driving the connection meanwhile.
    pub fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        match self.run(future, None) {
            Ok(output) => output,
            Err(TimedOut) => unreachable!("no deadline was given"),
        }
    }

    /// Sends the request `future` makes when first polled and returns without its answer:
    /// the connection reads and drops the answer when it comes, before the answers to later
    /// requests.
    pub fn send_unawaited<F: Future>(&mut self, future: F) {
        let waker = Waker::from(Arc::clone(&self.woken));
        let mut cx = Context::from_waker(&waker);
        let _ = pin!(future).poll(&mut cx);
        self.drive(&mut cx);
    }

    /// The next notification, waiting at most `timeout` for one.
    pub fn notification(&mut self, timeout: Duration) -> Option<Notification> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(notification) = self.notifications.pop_front() {
                return Some(notification);
            }
            let waker = Waker::from(Arc::clone(&self.woken));
            self.woken.0.store(false, Ordering::Release);
            self.drive(&mut Context::from_waker(&waker));
            if !self.notifications.is_empty() {
                continue;
            }
            if self.ended || Instant::now() >= deadline {
                return None;
            }
            if !self.woken.0.load(Ordering::Acquire) {
                self.wait(Some(deadline));
            }
        }
    }

    /// Runs `future`, which sends the requests of one transaction, with one `Sync` for all of
    /// them (`merge.rs`).
    pub fn block_on_merged<F: Future>(&mut self, future: F) -> F::Output {
        self.merge.set_window(true);
        let output = self.block_on(future);
        self.merge.set_window(false);
        output
    }

    /// How many `Sync`s [`Self::block_on_merged`] left out.
    #[cfg(test)]
    pub fn syncs_left_out(&self) -> u64 {
        self.merge.left_out()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.ended
    }

    /// Reads what the server sent while the connection sat unused, without waiting, and says
    /// whether the connection has ended: a server that restarted closed it then.
    pub fn closed_while_idle(&mut self) -> bool {
        let waker = Waker::from(Arc::clone(&self.woken));
        self.drive(&mut Context::from_waker(&waker));
        self.ended
    }

    /// Polls `future` and the connection in turns, waiting on the socket whenever neither can
    /// go on, until `future` is done or `deadline` passes.
    fn run<F: Future>(
        &mut self,
        future: F,
        deadline: Option<Instant>,
    ) -> Result<F::Output, TimedOut> {
        let mut future = pin!(future);
        let waker = Waker::from(Arc::clone(&self.woken));
        let mut cx = Context::from_waker(&waker);
        loop {
            self.woken.0.store(false, Ordering::Release);
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Ok(output);
            }
            let open = !self.ended;
            self.drive(&mut cx);
            if open && self.ended {
                // The futures waiting on it now fail: poll them again.
                continue;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(TimedOut);
            }
            if !self.woken.0.load(Ordering::Acquire) {
                self.wait(deadline);
            }
        }
    }

    /// Polls the connection until it has nothing more to do, keeping the notifications it
    /// receives; drops it when it ends.
    fn drive(&mut self, cx: &mut Context<'_>) {
        let Some(connection) = &mut self.connection else { return };
        loop {
            match connection.poll_message(cx) {
                Poll::Ready(Some(Ok(AsyncMessage::Notification(notification)))) => {
                    self.notifications.push_back(notification);
                }
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(None | Some(Err(_))) => {
                    self.connection = None;
                    self.ended = true;
                    return;
                }
                Poll::Pending => return,
            }
        }
    }

    /// Waits until the socket can be read (or written, if a write found it full), at most until
    /// `deadline` and never longer than [`IDLE_CHECK`].
    fn wait(&mut self, deadline: Option<Instant>) {
        let mut events = libc::POLLIN;
        if self.write_blocked.swap(false, Ordering::Relaxed) {
            events |= libc::POLLOUT;
        }
        let mut slice = IDLE_CHECK;
        if let Some(deadline) = deadline {
            slice = slice.min(deadline.saturating_duration_since(Instant::now()));
        }
        if self.ended {
            std::thread::sleep(slice);
            return;
        }
        let mut fds = [libc::pollfd { fd: self.fd, events, revents: 0 }];
        let millis = slice.as_millis().clamp(0, i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a valid array of one pollfd for the duration of the call, and
        // `self.fd` is open until the connection ends (the stream, then the connection, owns
        // it).
        unsafe {
            libc::poll(fds.as_mut_ptr(), 1, millis);
        }
    }
}

/// What a failed log-in says, and whether the server, or its certificate, refused it for
/// good: the credentials (SQLSTATE class 28), a database that does not exist (3D), a role that
/// may not connect to it (42501), or TLS that cannot be had or found the certificate or the
/// protocol wrong. Trying again cannot help, unlike a server that is down.
fn log_in_failed(error: &tokio_postgres::Error) -> ConnectError {
    if let Some(db) = error.as_db_error() {
        let (said, refusal) = match &db.code().code()[..2] {
            "28" | "3D" => (crate::error::said(error), Some(Refusal::LogIn)),
            _ if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => {
                let said = crate::error::lacking(db.message(), Doing::LogIn);
                (format!("{}: {said}", db.severity()), Some(Refusal::Privilege))
            }
            _ => (crate::error::said(error), None),
        };
        return ConnectError { said, refusal, answered: true };
    }
    let causes = std::iter::successors(std::error::Error::source(error), |cause| cause.source());
    let mut refusal = None;
    let mut said = crate::error::said(error);
    for cause in causes {
        // The driver's kinds are not public; it says so in the words of its cause.
        if cause.to_string() == "server does not support TLS" {
            said = "the server does not take TLS connections, which the URL's sslmode insists \
                    on: turn ssl on in the server's configuration, or use sslmode=prefer where \
                    plain text will do"
                .to_owned();
            refusal = Some(Refusal::LogIn);
        }
        let wrapped = cause.downcast_ref::<io::Error>().and_then(|io| io.get_ref());
        if cause.is::<rustls::Error>() || wrapped.is_some_and(|inner| inner.is::<rustls::Error>()) {
            refusal = Some(Refusal::LogIn);
        }
    }
    // A password the server asks for and the URL lacks, an authentication method the driver
    // cannot do: none of them changes by trying again.
    let text = error.to_string();
    if text.starts_with("invalid configuration") || text.starts_with("authentication error") {
        refusal = Some(Refusal::LogIn);
    }
    ConnectError { said, refusal, answered: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCP settings a connection to `query`'s URL gets, read back from its socket; the
    /// system's own where none is set.
    fn socket_settings(query: &str) -> (bool, Duration, Duration, u32, Option<Duration>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("postgres://u:s3cret@127.0.0.1:{port}/d{query}");
        let location = crate::Location::parse(&url).unwrap();
        let timeout = Duration::from_secs(5);
        let (stream, _) = Stream::connect(&location.config, &location.liveness, timeout).unwrap();
        let Io::Tcp(tcp) = &stream.io else { panic!("a TCP connection was expected") };
        let socket = socket2::SockRef::from(tcp);
        (
            socket.keepalive().unwrap(),
            socket.tcp_keepalive_time().unwrap(),
            socket.tcp_keepalive_interval().unwrap(),
            socket.tcp_keepalive_retries().unwrap(),
            socket.tcp_user_timeout().unwrap(),
        )
    }

    #[test]
    fn the_socket_is_set_up_as_the_url_says_in_libpqs_units() {
        let (_, system_idle, system_interval, system_count, _) = socket_settings("?keepalives=0");
        let check = |query: &str, expected: (bool, Duration, Duration, u32, Option<Duration>)| {
            assert_eq!(socket_settings(query), expected, "{query}");
        };
        let secs = Duration::from_secs;
        let millis = Duration::from_millis;
        check("", (true, secs(10), secs(5), 3, Some(secs(30))));
        check("?tcp_user_timeout=30000", (true, secs(10), secs(5), 3, Some(millis(30_000))));
        check("?tcp_user_timeout=1500", (true, secs(10), secs(5), 3, Some(millis(1_500))));
        check("?tcp_user_timeout=0", (true, secs(10), secs(5), 3, None));
        check("?keepalives_idle=7200", (true, secs(7200), secs(5), 3, Some(secs(30))));
        check(
            "?keepalives_idle=0&keepalives_interval=0&keepalives_count=0",
            (true, system_idle, system_interval, system_count, Some(secs(30))),
        );
        check(
            "?keepalives_interval=2&keepalives_count=7",
            (true, secs(10), secs(2), 7, Some(secs(30))),
        );
        check("?keepalives=0", (false, system_idle, system_interval, system_count, Some(secs(30))));
    }
}
