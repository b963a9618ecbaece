//! The loop: accept, serve each connection with hyper's HTTP/1, stop gracefully.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the loop serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long a request's head may take to arrive, from when the connection is ready for it
    /// (accepted, or done with the request before).
    pub head_timeout: Duration,
    /// Once stopping, how long the connections get to finish the requests they are in (a
    /// client that sent half a request holds one); those still open then are closed.
    pub drain: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { head_timeout: Duration::from_secs(30), drain: Duration::from_secs(30) }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops as the crate says.
/// Fails only when accepting fails for good; a failed accept is retried (after a second when
/// it is not about one connection, such as running out of file descriptors).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(options.head_timeout);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_about_one_connection(&error) => continue,
            Err(error) => {
                eprintln!("warning: accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let (builder, mut stopping) = (builder.clone(), stopping.clone());
        connections.spawn(async move {
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                // A connection's errors (a client gone, a head too slow) are the client's.
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(options.drain, drained).await.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

fn is_about_one_connection(error: &io::Error) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    const HEAD_TIMEOUT: Duration = Duration::from_millis(300);

    /// [`start_with`] a short head timeout.
    async fn start() -> (std::net::SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        start_with(Options { head_timeout: HEAD_TIMEOUT, drain: Duration::from_secs(5) }).await
    }

    /// A server of `/hello`, `/slow` (answered after 500 ms) and `/stream` (five chunks 150 ms
    /// apart), and what stops it.
    async fn start_with(
        options: Options,
    ) -> (std::net::SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let router = Router::new().route("/hello", get(|| async { "hello" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        );
        let router = router.route(
            "/stream",
            get(|| async {
                let ticks = futures_util::stream::unfold(0, |sent| async move {
                    if sent == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    Some((Ok::<_, std::convert::Infallible>("tick"), sent + 1))
                });
                axum::body::Body::from_stream(ticks)
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(listener, router, options, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        (address, stop, server)
    }

    /// Everything `stream` sends until it closes, as text, within 5 s.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
        read.await.expect("the connection closed in time").unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_request_whose_head_never_ends_is_closed_after_the_head_timeout() {
        let (address, _stop, _server) = start().await;
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let waited = std::time::Instant::now();
        let answer = read_to_close(&mut slow).await;
        assert!(waited.elapsed() >= HEAD_TIMEOUT, "closed after {:?}", waited.elapsed());
        assert!(!answer.contains("hello"), "{answer}");
        // A connection that says nothing at all is closed the same way.
        let mut silent = TcpStream::connect(address).await.unwrap();
        assert_eq!(read_to_close(&mut silent).await, "");
    }

    #[tokio::test]
    async fn a_kept_connection_serves_a_request_whose_head_arrives_in_pieces_in_time() {
        let (address, _stop, _server) = start().await;
        let mut client = TcpStream::connect(address).await.unwrap();
        for piece in ["GET /hel", "lo HTTP/1.1\r\nHo", "st: x\r\n\r\n"] {
            client.write_all(piece.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answers = read_to_close(&mut client).await;
        assert_eq!(answers.matches("200 OK").count(), 2, "{answers}");
    }

    #[tokio::test]
    async fn a_streamed_answer_may_outlast_the_head_timeout_and_an_idle_connection_may_not() {
        let (address, _stop, _server) = start().await;
        let mut client = TcpStream::connect(address).await.unwrap();
        client.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        while !String::from_utf8_lossy(&answer).contains("\r\n0\r\n\r\n") {
            let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer));
            let read = read.await.expect("the stream goes on").unwrap();
            assert_ne!(read, 0, "closed mid-stream: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buffer[..read]);
        }
        assert_eq!(String::from_utf8_lossy(&answer).matches("tick").count(), 5);
        // Kept idle past the head timeout, the connection is closed.
        let waited = std::time::Instant::now();
        assert_eq!(read_to_close(&mut client).await, "");
        assert!(waited.elapsed() >= HEAD_TIMEOUT - Duration::from_millis(50));
    }

    #[tokio::test]
    async fn shutdown_finishes_the_request_being_answered_and_closes_idle_connections() {
        let (address, stop, server) = start().await;
        let mut busy = TcpStream::connect(address).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut idle = TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut first = [0u8; 12];
        idle.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let answer = read_to_close(&mut busy).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"), "{answer}");
        read_to_close(&mut idle).await;
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
        assert!(TcpStream::connect(address).await.is_err(), "no longer accepting");
    }

    #[tokio::test]
    async fn shutdown_closes_a_connection_still_in_a_request_once_the_drain_is_over() {
        let options = Options { head_timeout: Duration::from_secs(60), drain: HEAD_TIMEOUT };
        let (address, stop, server) = start_with(options).await;
        let mut half = TcpStream::connect(address).await.unwrap();
        half.write_all(b"GET /hel").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        // Not the head timeout's minute: the drain's 300 ms.
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
        read_to_close(&mut half).await;
    }
}
