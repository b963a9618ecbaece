//! The transport of a stdio MCP server: its child process, the messages written to its stdin,
//! and its stdout read a line (one message) at a time. It exists because the SDK's own drops a
//! line it cannot read (past its length limit, or not UTF-8) without a word, so the call it
//! answered waited for `tool_timeout_sec`, and keeps the child to itself, so how a server that
//! died ended was lost. Here a reply that cannot be read answers its call at once with an error
//! saying why (the session goes on with the next line), and when stdout ends, how the process
//! ended is kept in [`Stopped`] for the calls that then fail.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{ErrorData, JsonRpcError, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::Mutex;

/// The longest line (one message) read from a server's stdout: the limit the SDK puts on an
/// event of its HTTP transport, so a reply that passes over HTTP passes over stdio too.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// How long a server whose stdout ended gets to exit before it is said to have closed it; and,
/// when its session ends, to exit after its stdin is closed, then after SIGTERM.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// The `data` key that marks an error this transport made for a call, not one the server sent.
const UNREADABLE_REPLY: &str = "taskflow/unreadable_reply";

/// How a stdio server stopped, once it has: what a call that then fails tells the model, with
/// the server's log.
#[derive(Debug, Default)]
pub(crate) struct Stopped {
    log: Option<PathBuf>,
    how: OnceLock<String>,
}

impl Stopped {
    /// The state of a server whose stderr goes to `log` (none for an HTTP server).
    pub(crate) fn new(log: Option<PathBuf>) -> Stopped {
        Stopped { log, how: OnceLock::new() }
    }

    /// How it stopped (`it exited with status 7`), once it has.
    pub(crate) fn how(&self) -> Option<&str> {
        self.how.get().map(String::as_str)
    }

    /// `the MCP server `NAME` stopped: HOW; its stderr is in LOG`, once it has.
    pub(crate) fn message(&self, server: &str) -> Option<String> {
        let how = self.how()?;
        Some(match &self.log {
            Some(log) => {
                format!(
                    "the MCP server `{server}` stopped: {how}; its stderr is in {}",
                    log.display()
                )
            }
            None => format!("the MCP server `{server}` stopped: {how}"),
        })
    }
}

/// The message of an error this transport made for a call whose reply could not be read.
pub(crate) fn unreadable_reply(error: &ErrorData) -> Option<&str> {
    let marked = error.data.as_ref().and_then(|data| data.get(UNREADABLE_REPLY));
    (marked == Some(&Value::Bool(true))).then_some(error.message.as_ref())
}

/// A running stdio server, as the SDK's client talks to it.
pub(crate) struct StdioTransport {
    server: String,
    child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    stdout: BufReader<ChildStdout>,
    /// The line being read; kept here, since a read is dropped and taken up again whenever
    /// the client has something to send first.
    line: Vec<u8>,
    /// Set while the rest of a line too long to read is skipped.
    skipping: bool,
    /// The requests sent and not answered yet.
    waiting: Vec<RequestId>,
    /// Errors made for calls whose reply could not be read, handed to the client in order.
    made: VecDeque<RxJsonRpcMessage<RoleClient>>,
    stopped: Arc<Stopped>,
}

/// One line of stdout, or why there is none.
enum Line {
    /// A whole line is in `line`.
    Whole,
    /// A line passed [`MAX_REPLY_BYTES`]; what is left of it is skipped as it comes.
    TooLong,
    /// Stdout ended or cannot be read.
    End,
}

impl StdioTransport {
    /// Starts `command` (stdin, stdout and stderr piped; killed if the transport is dropped
    /// while it runs) as the server `server`; the transport and the server's stderr.
    pub(crate) fn spawn(
        server: &str,
        mut command: tokio::process::Command,
        stopped: Arc<Stopped>,
    ) -> std::io::Result<(StdioTransport, Option<ChildStderr>)> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("its stdin or stdout could not be piped"));
        };
        let stderr = child.stderr.take();
        let transport = StdioTransport {
            server: server.to_owned(),
            child,
            stdin: Arc::new(Mutex::new(Some(stdin))),
            stdout: BufReader::new(stdout),
            line: Vec::new(),
            skipping: false,
            waiting: Vec::new(),
            made: VecDeque::new(),
            stopped,
        };
        Ok((transport, stderr))
    }

    /// Reads the next line into `line` without letting it grow past [`MAX_REPLY_BYTES`].
    /// Dropped at an await, it loses nothing: what was read is in `line`, or still buffered.
    async fn read_line(&mut self) -> Line {
        loop {
            let (used, line) = {
                let Ok(available) = self.stdout.fill_buf().await else { return Line::End };
                if available.is_empty() {
                    return Line::End;
                }
                let newline = available.iter().position(|byte| *byte == b'\n');
                let used = newline.map_or(available.len(), |at| at + 1);
                if self.skipping {
                    self.skipping = newline.is_none();
                    (used, None)
                } else if self.line.len() + newline.unwrap_or(available.len()) > MAX_REPLY_BYTES {
                    self.line.clear();
                    self.skipping = newline.is_none();
                    (used, Some(Line::TooLong))
                } else {
                    self.line.extend_from_slice(&available[..used]);
                    (used, newline.map(|_| Line::Whole))
                }
            };
            self.stdout.consume(used);
            if let Some(line) = line {
                return line;
            }
        }
    }

    /// Answers the calls a reply that cannot be read may be for with an error saying `what`
    /// was wrong with it: the call of `id` when the reply names it, else every call waiting
    /// (the client drops an answer to a call that no longer waits).
    fn unreadable(&mut self, id: Option<RequestId>, what: &str) {
        let calls = match id {
            Some(id) => {
                self.waiting.retain(|waiting| *waiting != id);
                vec![id]
            }
            None => std::mem::take(&mut self.waiting),
        };
        let message = format!("the MCP server `{}` sent {what}", self.server);
        for id in calls {
            let error =
                ErrorData::internal_error(message.clone(), Some(json!({ UNREADABLE_REPLY: true })));
            self.made.push_back(JsonRpcMessage::Error(JsonRpcError::new(Some(id), error)));
        }
    }

    /// The message of the line in `line`, if it is one. A line that is no message (a server's
    /// banner on stdout) is skipped, as the SDK does; but a reply that is not UTF-8 answers its
    /// call with an error (its id read with the bad bytes replaced).
    fn take_message(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let mut line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let message = match String::from_utf8_lossy(line) {
            Cow::Borrowed(text) => serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(text).ok(),
            Cow::Owned(text) => {
                let reply = serde_json::from_str::<Value>(&text).ok();
                let id = (reply.filter(|reply| reply.get("method").is_none()))
                    .and_then(|reply| serde_json::from_value(reply.get("id")?.clone()).ok());
                if let Some(id) = id {
                    self.unreadable(Some(id), "a reply that is not UTF-8");
                }
                None
            }
        };
        self.line.clear();
        let answered = match &message {
            Some(JsonRpcMessage::Response(response)) => Some(&response.id),
            Some(JsonRpcMessage::Error(error)) => error.id.as_ref(),
            _ => None,
        };
        if let Some(id) = answered {
            self.waiting.retain(|waiting| waiting != id);
        }
        message
    }

    /// Keeps how the server ended, its stdout closed: its exit status, once it exits within
    /// [`EXIT_GRACE`].
    async fn note_end(&mut self) {
        if self.stopped.how().is_some() {
            return;
        }
        let how = match tokio::time::timeout(EXIT_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => match (status.code(), status.signal()) {
                (Some(code), _) => format!("it exited with status {code}"),
                (None, Some(signal)) => format!("it was killed by signal {signal}"),
                (None, None) => format!("it ended: {status}"),
            },
            Ok(Err(error)) => format!("its stdout closed, and its end cannot be known: {error}"),
            Err(_) => "it closed its stdout".to_owned(),
        };
        let _ = self.stopped.how.set(how);
    }

    /// Sends `signal` to the server's process group, while the server has not been waited for
    /// (so its id is still its own).
    fn signal(&self, signal: i32) {
        // The server leads its own process group (`process_group(0)`).
        let group = self.child.id().and_then(|pid| i32::try_from(pid).ok());
        crate::process::signal(group, signal);
    }

    /// Whether the server exits within [`EXIT_GRACE`].
    async fn exits(&mut self) -> bool {
        tokio::time::timeout(EXIT_GRACE, self.child.wait()).await.is_ok()
    }
}

impl Transport<RoleClient> for StdioTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let JsonRpcMessage::Request(request) = &item {
            self.waiting.push(request.id.clone());
        }
        let stdin = self.stdin.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item)?;
            bytes.push(b'\n');
            let mut stdin = stdin.lock().await;
            let Some(stdin) = stdin.as_mut() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the server's stdin is closed",
                ));
            };
            stdin.write_all(&bytes).await?;
            stdin.flush().await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            if let Some(made) = self.made.pop_front() {
                return Some(made);
            }
            match self.read_line().await {
                Line::Whole => {
                    if let Some(message) = self.take_message() {
                        return Some(message);
                    }
                }
                Line::TooLong => {
                    let what = format!("a reply larger than {} MiB", MAX_REPLY_BYTES >> 20);
                    self.unreadable(None, &what);
                }
                Line::End => {
                    self.note_end().await;
                    return None;
                }
            }
        }
    }

    /// Ends the server: its stdin closed, then SIGTERM, then SIGKILL, each after
    /// [`EXIT_GRACE`].
    async fn close(&mut self) -> Result<(), Self::Error> {
        // A write still under way (a server that reads nothing) holds stdin: SIGTERM then
        // stops the server all the same.
        if let Ok(mut stdin) = self.stdin.try_lock() {
            stdin.take();
        }
        if self.exits().await {
            return Ok(());
        }
        self.signal(libc::SIGTERM);
        if self.exits().await {
            return Ok(());
        }
        self.signal(libc::SIGKILL);
        self.child.wait().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ClientRequest, PingRequest};

    use super::*;

    fn ping(id: i64) -> TxJsonRpcMessage<RoleClient> {
        JsonRpcMessage::request(
            ClientRequest::PingRequest(PingRequest::default()),
            RequestId::Number(id),
        )
    }

    /// The id of an error made for a call, and its message.
    fn made(message: Option<RxJsonRpcMessage<RoleClient>>) -> (Option<RequestId>, String) {
        match message {
            Some(JsonRpcMessage::Error(JsonRpcError { id, error, .. })) => {
                (id, unreadable_reply(&error).expect("an error made by the transport").to_owned())
            }
            other => panic!("expected an error made for the call, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reply_that_cannot_be_read_answers_its_call_at_once_and_the_session_goes_on() {
        // The server answers ping 1 with a line past the limit, ping 2 as it should, ping 3
        // with bytes that are not UTF-8, then exits with status 7.
        let script = format!(
            "read l; head -c {} /dev/zero | tr '\\0' A; echo; \
             read l; echo '{{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{{}}}}'; \
             read l; printf '{{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{{\"t\":\"\\377\"}}}}\\n'; \
             exit 7",
            MAX_REPLY_BYTES + 1
        );
        let mut command = tokio::process::Command::new("sh");
        command.arg("-c").arg(script).process_group(0);
        let stopped = Arc::new(Stopped::new(Some("/logs/raw.log".into())));
        let (mut transport, _) = StdioTransport::spawn("raw", command, stopped.clone()).unwrap();

        transport.send(ping(1)).await.unwrap();
        assert_eq!(
            made(transport.receive().await),
            (
                Some(RequestId::Number(1)),
                "the MCP server `raw` sent a reply larger than 16 MiB".to_owned()
            )
        );
        transport.send(ping(2)).await.unwrap();
        match transport.receive().await {
            Some(JsonRpcMessage::Response(response)) => {
                assert_eq!(response.id, RequestId::Number(2))
            }
            other => panic!("expected the answer to ping 2, got {other:?}"),
        }
        transport.send(ping(3)).await.unwrap();
        assert_eq!(
            made(transport.receive().await),
            (
                Some(RequestId::Number(3)),
                "the MCP server `raw` sent a reply that is not UTF-8".to_owned()
            )
        );
        assert!(transport.receive().await.is_none(), "the server's stdout ended");
        assert_eq!(
            stopped.message("raw").as_deref(),
            Some(
                "the MCP server `raw` stopped: it exited with status 7; its stderr is in /logs/raw.log"
            )
        );
        transport.close().await.unwrap();
    }

    #[tokio::test]
    async fn closing_ends_a_server_that_ignores_its_stdin() {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "trap '' TERM; sleep 30 & wait"]).process_group(0);
        let (mut transport, _) =
            StdioTransport::spawn("deaf", command, Arc::new(Stopped::new(None))).unwrap();
        let started = std::time::Instant::now();
        transport.close().await.unwrap();
        assert!(transport.child.try_wait().unwrap().is_some(), "the server still runs");
        assert!(started.elapsed() < EXIT_GRACE * 3, "{:?}", started.elapsed());
    }
}
