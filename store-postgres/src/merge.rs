//! The statements of one transaction's pipeline answered in one send.
//!
//! tokio-postgres ends every statement it sends with a `Sync`, and the server flushes its
//! answers at each `Sync`: a checkpoint's seven statements (`BEGIN`, the guards, the writes,
//! `COMMIT`) cost the server seven sends and the caller as many wake-ups, where one would do.
//! Inside a transaction the `Sync` between two statements changes nothing else: they already
//! commit or roll back together, and after a failure the server refuses what follows up to the
//! transaction's end either way.
//!
//! [`Merge`] sits between tokio-postgres and the socket (or its TLS session). While its
//! connection's owner sends one transaction's pipeline ([`Shared::set_window`]), it leaves out
//! each `Sync` that another statement of the pipeline follows, so that the pipeline ends with
//! one `Sync`. tokio-postgres waits for each statement's `ReadyForQuery`, so the answers get one
//! back where each such statement ends. After a failure the server skips everything up to the
//! next `Sync`; each statement it skipped is answered as it would have answered it after a
//! `Sync`: "current transaction is aborted" (SQLSTATE 25P02).
//!
//! Outside a window, or before the log-in is done ([`Shared::track`]), the bytes pass as they
//! are.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// What the connection's owner tells its [`Merge`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set once the log-in is done: from then on every message is a typed one.
    tracking: AtomicBool,
    /// Set while one transaction's pipeline is written.
    window: AtomicBool,
    /// How many `Sync`s were left out (for the tests).
    #[cfg(test)]
    left_out: AtomicU64,
}

impl Shared {
    pub fn track(&self) {
        self.tracking.store(true, Ordering::Release);
    }

    pub fn set_window(&self, open: bool) {
        self.window.store(open, Ordering::Release);
    }

    #[cfg(test)]
    pub fn left_out(&self) -> u64 {
        self.left_out.load(Ordering::Relaxed)
    }
}

/// How a statement sent since tracking began ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// With the server's `ReadyForQuery` (a `Sync` or a simple query).
    Ready,
    /// Where its answer ends: its `Sync` was left out.
    Merged,
}

/// A stream of the frontend/backend protocol whose pipelines go with one `Sync` each.
pub(crate) struct Merge<S> {
    inner: S,
    shared: Arc<Shared>,
    /// Bytes tokio-postgres wrote that do not make a whole message yet.
    written: Vec<u8>,
    /// Bytes for the server, from `sent` on.
    outgoing: Vec<u8>,
    sent: usize,
    /// How each statement whose answer has not ended ends, in order.
    endings: VecDeque<Ending>,
    /// Bytes from the server that do not make a whole message yet.
    received: Vec<u8>,
    /// Bytes for tokio-postgres, from `read` on.
    answers: Vec<u8>,
    read: usize,
    /// Set after a failure of a merged statement: the server skips up to the next `Sync`.
    skipping: bool,
}

impl<S> Merge<S> {
    pub fn new(inner: S, shared: Arc<Shared>) -> Self {
        Merge {
            inner,
            shared,
            written: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            endings: VecDeque::new(),
            received: Vec::new(),
            answers: Vec::new(),
            read: 0,
            skipping: false,
        }
    }

    fn tracking(&self) -> bool {
        self.shared.tracking.load(Ordering::Acquire)
    }

    /// Moves the whole messages of `written` to `outgoing`, leaving out the `Sync`s that a
    /// statement of the same window follows.
    fn take_written(&mut self) {
        let window = self.shared.window.load(Ordering::Acquire);
        let mut at = 0;
        while let Some(end) = message_end(&self.written[at..]).map(|length| at + length) {
            let message = &self.written[at..end];
            match message[0] {
                b'S' if window && self.written.get(end).is_some_and(|&tag| extended(tag)) => {
                    self.endings.push_back(Ending::Merged);
                    #[cfg(test)]
                    self.shared.left_out.fetch_add(1, Ordering::Relaxed);
                }
                tag => {
                    if matches!(tag, b'S' | b'Q') {
                        self.endings.push_back(Ending::Ready);
                    }
                    self.outgoing.extend_from_slice(message);
                }
            }
            at = end;
        }
        self.written.drain(..at);
        release(&mut self.written);
        self.answer_skipped();
    }

    /// Moves the whole messages of `received` to `answers`, with a `ReadyForQuery` where each
    /// merged statement ends and the answers the server skipped after a failure.
    fn take_received(&mut self) {
        let mut at = 0;
        while let Some(end) = message_end(&self.received[at..]).map(|length| at + length) {
            let tag = self.received[at];
            self.answers.extend_from_slice(&self.received[at..end]);
            at = end;
            match tag {
                b'Z' => {
                    self.endings.pop_front();
                }
                b'C' | b'I' | b'E' if self.endings.front() == Some(&Ending::Merged) => {
                    self.endings.pop_front();
                    if tag == b'E' {
                        self.answers.extend_from_slice(&ready_for_query(b'E'));
                        self.skipping = true;
                    } else {
                        self.answers.extend_from_slice(&ready_for_query(b'T'));
                    }
                }
                _ => {}
            }
            self.answer_skipped();
        }
        self.received.drain(..at);
        release(&mut self.received);
    }

    /// Answers the statements the server skipped after a failure, up to the next one that ends
    /// with a `Sync`, whose `ReadyForQuery` the server sends.
    fn answer_skipped(&mut self) {
        while self.skipping {
            match self.endings.front() {
                Some(Ending::Merged) => {
                    self.endings.pop_front();
                    self.answers.extend_from_slice(&aborted());
                    self.answers.extend_from_slice(&ready_for_query(b'E'));
                }
                Some(Ending::Ready) => {
                    self.answers.extend_from_slice(&aborted());
                    self.skipping = false;
                }
                None => break,
            }
        }
    }
}

/// A TLS connector whose sessions go through a [`Merge`]: the `Sync`s are left out of the
/// protocol's messages, before they are encrypted.
pub(crate) struct AboveTls<T>(pub T);

impl<S, M: MakeTlsConnect<S>> MakeTlsConnect<Merge<S>> for AboveTls<M>
where
    M::TlsConnect: 'static,
    S: 'static,
{
    type Stream = Merge<M::Stream>;
    type TlsConnect = AboveTls<M::TlsConnect>;
    type Error = M::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        self.0.make_tls_connect(domain).map(AboveTls)
    }
}

impl<S: 'static, T: TlsConnect<S> + 'static> TlsConnect<Merge<S>> for AboveTls<T> {
    type Stream = Merge<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>>>>;

    /// Called before the log-in, while the plain [`Merge`] only passes bytes through, and holds
    /// none.
    fn connect(self, plain: Merge<S>) -> Self::Future {
        let Merge { inner, shared, .. } = plain;
        Box::pin(async move { Ok(Merge::new(self.0.connect(inner).await?, shared)) })
    }
}

impl<S: TlsStream + Unpin> TlsStream for Merge<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

impl<S: AsyncWrite + Unpin> Merge<S> {
    /// Writes `outgoing` until it is all sent or the socket is full.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.outgoing[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(count)) => self.sent += count,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.outgoing.clear();
        release(&mut self.outgoing);
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Merge<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.read < this.answers.len() {
                let count = buf.remaining().min(this.answers.len() - this.read);
                buf.put_slice(&this.answers[this.read..this.read + count]);
                this.read += count;
                if this.read == this.answers.len() {
                    this.answers.clear();
                    release(&mut this.answers);
                    this.read = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if !this.tracking() && this.received.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 8192];
            let mut chunk = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => {
                    // The server closed the connection: what is left goes as it is.
                    this.answers.append(&mut this.received);
                    if this.answers.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    this.received.extend_from_slice(chunk.filled());
                    this.take_received();
                }
                other => return other,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Merge<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.tracking() {
            return match this.poll_send(cx) {
                Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_write(cx, bytes),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            };
        }
        // Taken whole, so that a `Sync` is seen with what follows it; sent as the socket takes
        // it, and by `poll_flush`.
        this.written.extend_from_slice(bytes);
        this.take_written();
        match this.poll_send(cx) {
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(bytes.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_send(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_send(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

/// The most a buffer keeps between batches: a pooled connection that once carried a large
/// batch (a report of megabytes) does not hold its size for good.
const KEPT_CAPACITY: usize = 64 * 1024;

/// Gives back the memory of `buffer` past [`KEPT_CAPACITY`] once it is empty.
fn release(buffer: &mut Vec<u8>) {
    if buffer.is_empty() && buffer.capacity() > KEPT_CAPACITY {
        buffer.shrink_to(KEPT_CAPACITY);
    }
}

/// The length of the whole message `bytes` begins with (its tag, its length field and its
/// body), once all of it is there.
fn message_end(bytes: &[u8]) -> Option<usize> {
    let length = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize;
    let end = 1 + length.max(4);
    (bytes.len() >= end).then_some(end)
}

/// Whether a frontend message of `tag` belongs to a statement of the extended protocol (parse,
/// bind, describe, execute, close, flush), which a left-out `Sync` may precede.
fn extended(tag: u8) -> bool {
    matches!(tag, b'P' | b'B' | b'D' | b'E' | b'C' | b'H')
}

fn ready_for_query(status: u8) -> [u8; 6] {
    [b'Z', 0, 0, 0, 5, status]
}

/// The error the server answers a statement with in a transaction that failed.
fn aborted() -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "25P02"),
        (b'M', "current transaction is aborted, commands ignored until end of transaction block"),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages of the protocol with the given tags (one character each, spaces ignored) and
    /// bodies of a few bytes, as the tests need only their framing.
    fn messages(tags: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for tag in tags.bytes().filter(|tag| *tag != b' ') {
            bytes.push(tag);
            let body: &[u8] = match tag {
                b'S' | b'H' => b"",
                b'Z' => b"T",
                _ => b"body",
            };
            bytes.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        bytes
    }

    /// The tags of `bytes`' messages, with each `ReadyForQuery`'s status and each error's
    /// SQLSTATE when it is the one made here.
    fn tags(mut bytes: &[u8]) -> String {
        let mut said = Vec::new();
        while let Some(end) = message_end(bytes) {
            let tag = bytes[0] as char;
            said.push(match tag {
                'Z' => format!("Z{}", bytes[5] as char),
                'E' if bytes[..end].windows(6).any(|field| field == b"C25P02") => {
                    "E25P02".to_owned()
                }
                _ => tag.to_string(),
            });
            bytes = &bytes[end..];
        }
        said.join(" ")
    }

    fn merge(window: bool) -> Merge<()> {
        let shared = Arc::new(Shared::default());
        shared.track();
        shared.set_window(window);
        Merge::new((), shared)
    }

    /// What `sent` becomes on its way to the server, written `in_pieces` bytes at a time.
    fn check_sent(window: bool, sent: &str, in_pieces: usize, expected: &str) {
        let mut merge = merge(window);
        for piece in messages(sent).chunks(in_pieces) {
            merge.written.extend_from_slice(piece);
            merge.take_written();
        }
        assert_eq!(tags(&merge.outgoing), tags(&messages(expected)), "{sent}");
    }

    #[test]
    fn a_windows_statements_keep_only_the_last_sync_before_a_simple_query_or_the_end() {
        // BEGIN, two statements, COMMIT, each bind/execute/sync.
        let pipeline = "BES BES BES BES";
        check_sent(true, pipeline, usize::MAX, "BE BE BE BES");
        check_sent(false, pipeline, usize::MAX, pipeline);
        // A simple query takes its own Sync: the one before it stays.
        check_sent(true, "Q BES BES Q", usize::MAX, "Q BE BES Q");
        check_sent(true, "BES Q BES", usize::MAX, "BES Q BES");
        // A statement prepared in the window (parse, describe, sync) merges too.
        check_sent(true, "PDS BES", usize::MAX, "PD BES");
    }

    #[test]
    fn a_large_message_passes_whole_and_its_buffers_are_given_back() {
        let mut merge = merge(true);
        let mut large = vec![b'B'];
        large.extend_from_slice(&(4 + 4_000_000u32).to_be_bytes());
        large.resize(1 + 4 + 4_000_000, b'x');
        large.extend_from_slice(&messages("ES"));
        for piece in large.chunks(100_000) {
            merge.written.extend_from_slice(piece);
            merge.take_written();
        }
        assert_eq!(merge.outgoing, large);
        assert!(merge.written.capacity() <= KEPT_CAPACITY);
        // Its answer: a row as large.
        let mut answer = messages("2");
        answer.push(b'D');
        answer.extend_from_slice(&large[1..1 + 4 + 4_000_000]);
        answer.extend_from_slice(&messages("CZ"));
        merge.endings.push_back(Ending::Ready);
        for piece in answer.chunks(100_000) {
            merge.received.extend_from_slice(piece);
            merge.take_received();
        }
        assert_eq!(merge.answers, answer);
        assert!(merge.received.capacity() <= KEPT_CAPACITY);
    }

    #[test]
    fn a_sync_written_last_is_kept_whatever_comes_after_it() {
        // Written a byte at a time, no Sync is seen with what follows it except where the
        // next message's tag has come.
        check_sent(true, "BES BES", 1, "BES BES");
        check_sent(true, "BES BES", 6, "BE BES");
    }

    /// What tokio-postgres reads when the statements sent end as `endings` (`M` merged, `R`
    /// with the server's `ReadyForQuery`) and the server answers `answers`, received
    /// `in_pieces` bytes at a time.
    fn check_answers(endings: &str, answers: &str, in_pieces: usize, expected: &str) {
        let mut merge = merge(true);
        for ending in endings.bytes().filter(|ending| *ending != b' ') {
            merge.endings.push_back(if ending == b'M' { Ending::Merged } else { Ending::Ready });
        }
        for piece in messages(answers).chunks(in_pieces) {
            merge.received.extend_from_slice(piece);
            merge.take_received();
        }
        assert_eq!(tags(&merge.answers), expected, "{endings}: {answers}");
        assert!(merge.endings.is_empty() && !merge.skipping, "{endings}: {answers}");
    }

    #[test]
    fn each_merged_statement_is_answered_ready_where_its_answer_ends() {
        let answers = "2C 2DDC 2C Z";
        let expected = "2 C ZT 2 D D C ZT 2 C ZT";
        check_answers("M M R", answers, usize::MAX, expected);
        check_answers("M M R", answers, 1, expected);
        // An empty statement, and notices and notifications between the answers.
        check_answers("M R", "2I N A 2C Z", usize::MAX, "2 I ZT N A 2 C ZT");
    }

    #[test]
    fn after_a_failure_each_statement_the_server_skipped_is_answered_aborted() {
        // The second of four fails: the server skips the third and the fourth up to its Sync.
        check_answers("M M M R", "2C E Z", usize::MAX, "2 C ZT E ZE E25P02 ZE E25P02 ZT");
        // The last fails: the server's own ReadyForQuery follows its error.
        check_answers("M R", "2C E Z", 3, "2 C ZT E ZT");
        // The first fails while binding, and a statement ends with the server's Sync alone.
        check_answers("M R R", "E Z 2C Z", usize::MAX, "E ZE E25P02 ZT 2 C ZT");
    }
}
