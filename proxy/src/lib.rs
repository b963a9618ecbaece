//! `taskflow proxy`: an OpenAI-compatible endpoint in front of any model server, so that any
//! client gets structured tool calls from models that write them as tagged text (DESIGN §12).
//!
//! `POST /v1/chat/completions` goes to the upstream; its answer, streamed or whole, is read
//! by the taskflow parsers: tool calls written as text in `content` or in the reasoning field
//! become standard `tool_calls` (streamed as index-keyed deltas), the text around them stays
//! content, and everything else passes as it came (an answer without tagged text, byte for
//! byte). Every other path passes through untouched. See [`ProxyConfig`] for what can be set
//! and [`Server`] to run one.

mod chunk;
mod config;
mod error;
mod fault;
mod forward;
mod log;
mod redact;
mod render;
mod request;
mod rewrite;
mod server;
mod sse;
mod upstream;

pub use config::{DEFAULT_READ_TIMEOUT, DIAGNOSTICS_HEADER, IDS_HEADER, IdMode, ProxyConfig};
pub use error::ProxyError;
pub use server::Server;
pub use upstream::Upstream;
