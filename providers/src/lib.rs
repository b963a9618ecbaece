//! Provider adapters: one async trait over the servers people run models on.
//!
//! A [`ChatRequest`] (conversation, tools with JSON schemas, sampling) goes in; a
//! [`ChatResponse`] (the normalized message of DESIGN §3, usage, finish reason) comes out, in
//! one piece ([`Provider::complete`]) or as a stream of [`ChatEvent`]s ([`Provider::stream`]).
//! Adapters: `openai` (chat completions: Moonshot/Kimi, Kimi Code, vLLM, llama.cpp, Ollama,
//! LM Studio), `anthropic` (Messages API, also Kimi Code's Anthropic-compatible endpoint) and
//! `replay` (recorded turns, offline). This crate knows HTTP, not SQLite.

mod anthropic;
mod assemble;
mod build;
mod choice;
mod config;
mod error;
mod http;
mod openai;
mod replay;
mod request;
mod response;
mod retry;
mod secret;

use std::pin::Pin;

use futures_util::{Stream, StreamExt};

pub use anthropic::tool_ids;
pub use choice::{ProviderChoice, ProviderFactory, preset_providers};
pub use config::{
    CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, PRESETS, Preset, Protocol,
    ProviderConfig, check_base_url, resolve_connect_timeout,
};
pub use error::{ErrorKind, ProviderError};
pub use replay::{ReplayProvider, ReplayScript};
pub use request::{AssistantToolCall, ChatMessage, ChatRequest, ToolDefinition};
pub use response::{ChatEvent, ChatResponse, FinishReason, ResponseBuilder, Usage};
pub use retry::RetryPolicy;
pub use secret::ApiKey;

/// The events of a streamed answer; an error ends the stream.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatEvent, ProviderError>> + Send>>;

/// A model server.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The preset or adapter name, for messages.
    fn name(&self) -> &str;

    /// Sends the request and returns the whole answer. Transient failures are retried.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// Sends the request and returns the answer as it arrives. Failures before the answer
    /// starts (no connection, an error status) are retried; a failure once it has started ends
    /// the stream with an error (an [`ErrorKind::Interrupted`] for a broken connection), since
    /// what was streamed cannot be taken back.
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError>;
}

/// Reads a whole stream into the response it describes.
pub async fn collect(mut stream: ChatStream) -> Result<ChatResponse, ProviderError> {
    let mut response = ResponseBuilder::new();
    while let Some(event) = stream.next().await {
        response.apply(event?);
    }
    Ok(response.finish())
}
