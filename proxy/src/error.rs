//! What can stop the proxy from starting or serving. Failures of one exchange are answered to
//! its client (a status and an OpenAI-style error body) and never end the server.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream URL cannot be used.
    #[error("the upstream URL `{url}` {reason}")]
    Upstream { url: String, reason: String },
    /// A non-loopback address was asked for without a client token.
    #[error(
        "refusing to listen on {addr}: it is not a loopback address and no client token is set"
    )]
    NotLocal { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the exchange log {path}: {source}")]
    Log { path: String, source: std::io::Error },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}
