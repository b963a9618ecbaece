//! A model server on loopback that answers from the recordings under `fixtures/proxy/`: the
//! request's `x-fixture` header names the recording, its `stream` field picks `NAME.sse` or
//! `NAME.json`, and `NAME.status` (when present) the status. It keeps every request it got.
//! Two answers are made on the spot: `hold` streams one text chunk and then waits, pinging the
//! client until the connection is gone (and says so); `faults/cut` stops a chunked stream in
//! the middle, without its last chunk. A `.json` recording is sent byte for byte (one need not
//! be UTF-8).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A request as the upstream got it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub struct ReplayUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Notified when the client of a `hold` answer is gone.
    pub gone: Arc<Notify>,
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/proxy")
}

impl ReplayUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gone = Arc::new(Notify::new());
        let (seen_by_server, gone_by_server) = (seen.clone(), gone.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (seen, gone) = (seen_by_server.clone(), gone_by_server.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, seen, gone).await;
                });
            }
        });
        Self { addr, seen, gone }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(socket: &mut TcpStream) -> std::io::Result<Option<Seen>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..]).into_owned();
    Ok(Some(Seen { path, headers, body }))
}

async fn serve(
    mut socket: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    gone: Arc<Notify>,
) -> std::io::Result<()> {
    let Some(request) = read_request(&mut socket).await? else { return Ok(()) };
    seen.lock().unwrap().push(request.clone());
    if request.path == "/v1/models" {
        let body = r#"{"object": "list", "data": [{"id": "moonshotai/Kimi-K2-Instruct", "object": "model", "owned_by": "replay"}]}"#;
        return write_json(&mut socket, 200, body).await;
    }
    if request.path != "/v1/chat/completions" {
        return write_json(&mut socket, 404, r#"{"error": {"message": "no such path"}}"#).await;
    }
    let fixture = request.header("x-fixture").unwrap_or("structured/plain").to_owned();
    let stream = serde_json::from_str::<serde_json::Value>(&request.body)
        .ok()
        .and_then(|body| body.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    if fixture == "hold" {
        return hold(&mut socket, gone).await;
    }
    let status = std::fs::read_to_string(fixtures().join(format!("{fixture}.status")))
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok());
    if status.is_some() || !stream {
        let body = std::fs::read(fixtures().join(format!("{fixture}.json")))?;
        return write_json(&mut socket, status.unwrap_or(200), &body).await;
    }
    let sse = std::fs::read_to_string(fixtures().join(format!("{fixture}.sse")))?;
    socket.write_all(sse_head().as_bytes()).await?;
    for event in sse.split_inclusive("\n\n") {
        write_chunk(&mut socket, event).await?;
    }
    if fixture != "faults/cut" {
        socket.write_all(b"0\r\n\r\n").await?;
    }
    socket.flush().await
}

async fn hold(socket: &mut TcpStream, gone: Arc<Notify>) -> std::io::Result<()> {
    socket.write_all(sse_head().as_bytes()).await?;
    let first = r#"{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "kimi-k2", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": null}]}"#;
    write_chunk(socket, &format!("data: {first}\n\n")).await?;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if write_chunk(socket, ": ping\n\n").await.is_err() {
            gone.notify_one();
            return Ok(());
        }
    }
    Ok(())
}

fn sse_head() -> String {
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\
     x-upstream: replay\r\nconnection: close\r\n\r\n"
        .to_owned()
}

async fn write_chunk(socket: &mut TcpStream, data: &str) -> std::io::Result<()> {
    socket.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes()).await?;
    socket.flush().await
}

async fn write_json(
    socket: &mut TcpStream,
    status: u16,
    body: impl AsRef<[u8]>,
) -> std::io::Result<()> {
    let body = body.as_ref();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-upstream: replay\r\nconnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.flush().await
}
