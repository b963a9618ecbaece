//! The server over stdin and stdout, the way an agent (Claude Code, Codex, Kimi CLI) starts an
//! MCP server as its child: JSON-RPC lines in and out, nothing else on stdout. The flows its
//! tools start run in this process, in the background, while the session lasts (a run goes on
//! until its flow ends or waits, as with `taskflow run --detach`). When the client closes the
//! session (or `shutdown` fires), the runs are drained: their running steps get `grace` to
//! reach a checkpoint and the flows are given back, for `taskflow serve` or `taskflow flows
//! resume` to continue; nothing is lost.

use std::future::Future;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use serde_json::{Value, json};
use taskflow_engine::Runs;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;

use crate::server::FlowServer;

/// The longest request line taken, its line break counted (the MCP library's own limit; it
/// drops longer ones unsaid).
const MOST_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Lines out waiting to be written: past this many, the answers wait for the client to read.
const WAITING_LINES: usize = 64;
/// The byte order mark a line may begin with (the MCP library reads past it).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why the stdio server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    /// The client did not start an MCP session.
    #[error("the MCP session did not start: {0}")]
    Initialize(#[from] ServerInitializeError),
}

/// Serves `server` on stdin and stdout until the client closes the session or `shutdown`
/// completes, then drains `runs` (the runs `server` starts).
pub async fn serve_stdio(
    server: FlowServer,
    runs: Runs,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StdioError> {
    let (transport, written) = checked_stdio();
    let session = async {
        let running = server.serve(transport).await?;
        // Its end, whatever the reason: the client is gone either way.
        let _ = running.waiting().await;
        Ok::<_, StdioError>(())
    };
    let ended = tokio::select! {
        ended = session => ended,
        () = shutdown => Ok(()),
    };
    runs.shut_down(grace).await;
    // What was answered before the end goes out before the process does.
    let _ = tokio::time::timeout(Duration::from_secs(2), written).await;
    ended
}

/// stdin and stdout as the MCP library reads and writes them, with each request line checked
/// first: one that is not JSON (or nests deeper than a JSON reader goes), or is longer than
/// [`MOST_LINE_BYTES`], is answered with a JSON-RPC error instead of being dropped without a
/// word while its client waits for ever. Every line out, the library's answers and these
/// errors alike, is written whole by one task, which is returned too: it is done once every
/// line out has been written.
fn checked_stdio() -> ((DuplexStream, DuplexStream), tokio::task::JoinHandle<()>) {
    let (to_server, server_in) = tokio::io::duplex(64 * 1024);
    let (server_out, from_server) = tokio::io::duplex(64 * 1024);
    let (lines, out) = mpsc::channel::<Vec<u8>>(WAITING_LINES);
    tokio::spawn(check_requests(BufReader::new(tokio::io::stdin()), to_server, lines.clone()));
    tokio::spawn(async move {
        // The library's answers, whatever their length.
        let mut answers = BufReader::new(from_server);
        loop {
            let mut line = Vec::new();
            match answers.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if lines.send(line).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let written = tokio::spawn(write_lines(out, tokio::io::stdout()));
    ((server_in, server_out), written)
}

/// Passes the JSON lines of `input` on to `server`; answers the others on `errors`.
async fn check_requests(
    mut input: impl AsyncBufRead + Unpin,
    mut server: impl AsyncWrite + Unpin,
    errors: mpsc::Sender<Vec<u8>>,
) {
    while let Ok(Some(line)) = read_line(&mut input).await {
        let line = line.map(|line| match line.strip_prefix(BOM) {
            Some(rest) => rest.to_vec(),
            None => line,
        });
        let refusal = match &line {
            Err(length) => Some(Refusal {
                id: Value::Null,
                code: -32600,
                message: format!(
                    "the request is {:.1} MiB long, more than the {} MiB a request may be",
                    *length as f64 / (1024.0 * 1024.0),
                    MOST_LINE_BYTES / (1024 * 1024)
                ),
            }),
            Ok(line) if line.trim_ascii().is_empty() => None,
            Ok(line) => match serde_json::from_slice::<Value>(line) {
                Ok(message) => misshapen(&message),
                Err(error) => Some(Refusal {
                    id: Value::Null,
                    code: -32700,
                    message: format!("the request is not JSON: {error}"),
                }),
            },
        };
        match (refusal, line) {
            (Some(Refusal { id, code, message }), _) => {
                let answer = json!({"jsonrpc": "2.0", "id": id,
                                    "error": {"code": code, "message": message}});
                if errors.send(answer.to_string().into_bytes()).await.is_err() {
                    return;
                }
            }
            (None, Ok(mut line)) => {
                line.push(b'\n');
                if server.write_all(&line).await.is_err() {
                    return;
                }
            }
            (None, Err(_)) => {}
        }
    }
    let _ = server.shutdown().await;
}

/// A JSON-RPC error answered here, for the request `id` (null when it cannot be read).
struct Refusal {
    id: Value,
    code: i64,
    message: String,
}

/// Why `message`, which is JSON, is no message the MCP library answers as JSON-RPC 2.0 asks:
/// the library answers an invalid request without an `id`, and a tool call whose arguments
/// are not an object as an unknown method.
fn misshapen(message: &Value) -> Option<Refusal> {
    let invalid = |id: &Value, message: &str| {
        Some(Refusal { id: id.clone(), code: -32600, message: message.to_owned() })
    };
    let Value::Object(fields) = message else {
        return invalid(&Value::Null, "a request is one JSON object (batches are not taken)");
    };
    let id = fields.get("id").unwrap_or(&Value::Null);
    if !matches!(id, Value::Null | Value::String(_) | Value::Number(_)) {
        return invalid(&Value::Null, "a request's `id` is a string or a number");
    }
    if fields.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(id, "a request has `\"jsonrpc\": \"2.0\"`");
    }
    match fields.get("method") {
        Some(Value::String(method)) => {
            let arguments = fields.get("params").and_then(|params| params.get("arguments"));
            if method == "tools/call" && arguments.is_some_and(|arguments| !arguments.is_object()) {
                return Some(Refusal {
                    id: id.clone(),
                    code: -32602,
                    message: "a tool call's `params.arguments` is an object".to_owned(),
                });
            }
            None
        }
        Some(_) => invalid(id, "a request's `method` is a string"),
        // An answer to a request of the server's.
        None if fields.contains_key("result") || fields.contains_key("error") => None,
        None => invalid(id, "a request names its `method`"),
    }
}

/// Writes each line it is sent, whole, then a line break.
async fn write_lines(mut lines: mpsc::Receiver<Vec<u8>>, mut out: impl AsyncWrite + Unpin) {
    while let Some(mut line) = lines.recv().await {
        line.push(b'\n');
        if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

/// The next line of `input` without its line break: `Err(length)` for one that, with its line
/// break, is longer than [`MOST_LINE_BYTES`] (read to its end, not kept), `None` at the end of
/// the input.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<Option<Result<Vec<u8>, usize>>> {
    let mut line = Vec::new();
    let mut length = 0;
    loop {
        let buffer = input.fill_buf().await?;
        if buffer.is_empty() {
            return Ok((length > 0).then(|| kept(line, length)));
        }
        let (taken, ended) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(at) => (at, true),
            None => (buffer.len(), false),
        };
        if length + taken < MOST_LINE_BYTES {
            line.extend_from_slice(&buffer[..taken]);
        }
        length += taken;
        input.consume(taken + usize::from(ended));
        if ended {
            return Ok(Some(kept(line, length)));
        }
    }
}

fn kept(line: Vec<u8>, length: usize) -> Result<Vec<u8>, usize> {
    if length >= MOST_LINE_BYTES { Err(length) } else { Ok(line) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `check_requests` makes of `input`: the lines passed on, and the error codes
    /// answered (each with the id it names, null for none).
    async fn checked_with_ids(input: Vec<u8>) -> (Vec<String>, Vec<(i64, Value)>) {
        let (mut passed, server) = tokio::io::duplex(1024 * 1024);
        let (errors, mut answered) = mpsc::channel(16);
        let reading = tokio::spawn(check_requests(std::io::Cursor::new(input), server, errors));
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut passed, &mut text).await.unwrap();
        reading.await.unwrap();
        let mut codes = Vec::new();
        while let Ok(answer) = answered.try_recv() {
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(answer["jsonrpc"], "2.0");
            codes.push((answer["error"]["code"].as_i64().unwrap(), answer["id"].clone()));
        }
        (text.lines().map(str::to_owned).collect(), codes)
    }

    /// The same, for lines answered with no id.
    async fn checked(input: Vec<u8>) -> (Vec<String>, Vec<i64>) {
        let (passed, answered) = checked_with_ids(input).await;
        assert!(answered.iter().all(|(_, id)| id.is_null()), "{answered:?}");
        (passed, answered.into_iter().map(|(code, _)| code).collect())
    }

    #[tokio::test]
    async fn a_json_line_that_is_no_request_is_answered_as_json_rpc_says() {
        let call = |arguments: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"list_flows","arguments":{arguments}}}}}"#
            )
        };
        let answer = r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#;
        let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let lines = [
            "[1,2,3]".to_owned(),
            "{}".to_owned(),
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":4,"method":5}"#.to_owned(),
            call("[1]"),
            call("\"text\""),
            call("{}"),
            answer.to_owned(),
            notification.to_owned(),
        ];
        let (passed, answered) = checked_with_ids(lines.join("\n").into_bytes()).await;
        assert_eq!(passed, [call("{}"), answer.to_owned(), notification.to_owned()]);
        let null = Value::Null;
        assert_eq!(
            answered,
            [
                (-32600, null.clone()),
                (-32600, null.clone()),
                (-32600, null),
                (-32600, json!(3)),
                (-32600, json!(4)),
                (-32602, json!(7)),
                (-32602, json!(7)),
            ]
        );
    }

    #[tokio::test]
    async fn every_request_line_that_cannot_be_read_is_answered_and_the_others_pass() {
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        // With its line break, one byte more than the library takes.
        let long = format!("\"{}\"", "x".repeat(MOST_LINE_BYTES - 2));
        let bom = format!("\u{feff}{ping}");
        let input = format!("{ping}\n{{not json\n\n{deep}\n{long}\n{bom}\n{ping}");
        let (passed, codes) = checked(input.into_bytes()).await;
        assert_eq!(passed, [ping, "", ping, ping]);
        assert_eq!(codes, [-32700, -32700, -32600]);
    }
}
