//! The Anthropic Messages adapter (`x-api-key`, `anthropic-version`), also used for Kimi
//! Code's Anthropic-compatible endpoint. Answers are content blocks (`text`, `thinking`,
//! `tool_use`); streamed tool input arrives as `input_json_delta` pieces. Tool-call ids are
//! mapped to Anthropic's alphabet and back ([`tool_ids`]). An answer that says nothing (no
//! text, no `tool_use`, no stop reason: `"content": []`, a stream of only `message_start` and
//! `message_stop`) is a bad response, not an empty success.

pub mod tool_ids;
mod wire;

use std::collections::{HashMap, VecDeque};

use futures_util::StreamExt;
use serde_json::Value;
use taskflow_parsers::{ArgumentsCheck, Diagnostic, DiagnosticKind, StreamEvent, check_arguments};

use crate::config::ProviderConfig;
use crate::error::{ErrorKind, ProviderError};
use crate::http::{self, Endpoint, Received, SseStream};
use crate::request::ChatRequest;
use crate::response::{ChatEvent, ChatResponse, FinishReason, ResponseBuilder, Usage};
use crate::{ChatStream, Provider};

/// The API version sent with every request.
const API_VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub(crate) struct AnthropicProvider {
    endpoint: Endpoint,
}

impl AnthropicProvider {
    pub(crate) fn new(config: &ProviderConfig) -> Result<Self, ProviderError> {
        Ok(Self { endpoint: Endpoint::new(config, "v1/messages")? })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        wire::request_body(request, self.endpoint.model(request), stream)
    }

    /// One attempt at sending `body`, with the API version and the key in `x-api-key`.
    async fn send(&self, body: &Value) -> Result<reqwest::Response, ProviderError> {
        self.endpoint
            .send(body, |post, key| {
                let post = post.header("anthropic-version", API_VERSION);
                match key {
                    Some(key) => post.header("x-api-key", key.expose()),
                    None => post,
                }
            })
            .await
    }
}

#[async_trait::async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        self.endpoint.name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request, false);
        let (answer, text): (Value, _) = self.endpoint.answer_json(|| self.send(&body)).await?;
        let mut blocks = Blocks::default();
        let mut events = Vec::new();
        blocks.whole_answer(&answer, &mut events)?;
        blocks.finish(&mut events, &text)?;
        Ok(ResponseBuilder::from_events(events))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = self.body(request, true);
        let response = self.endpoint.retry.run(|_| self.send(&body)).await?;
        let state = StreamState {
            events: http::sse(response, self.endpoint.api_key.clone()),
            blocks: Some(Blocks::default()),
            ready: VecDeque::new(),
            received: Received::default(),
        };
        Ok(Box::pin(futures_util::stream::unfold(state, StreamState::next)))
    }
}

/// Turns content blocks into events: one call index per `tool_use` block, in order.
#[derive(Default)]
struct Blocks {
    /// Open tool_use blocks by block index.
    open_calls: HashMap<u64, OpenCall>,
    calls: usize,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    stop_reason: Option<FinishReason>,
    /// Whether the answer holds text or a tool call (thinking alone is neither).
    said_something: bool,
}

struct OpenCall {
    index: usize,
    arguments: String,
}

/// Whether the stream goes on.
enum Flow {
    More,
    Done,
}

impl Blocks {
    /// A complete answer, as the same steps a stream would take.
    fn whole_answer(
        &mut self,
        answer: &Value,
        out: &mut Vec<ChatEvent>,
    ) -> Result<(), ProviderError> {
        let content = answer.get("content").and_then(Value::as_array).ok_or_else(|| {
            ProviderError::bad_response("the answer has no content blocks", &answer.to_string())
        })?;
        self.usage(answer.get("usage"));
        for (index, block) in content.iter().enumerate() {
            let index = index as u64;
            self.block_start(index, block, out);
            if block["type"] == "tool_use" {
                let input =
                    block.get("input").cloned().unwrap_or(Value::Object(Default::default()));
                self.input_json(index, &input.to_string(), out);
            }
            self.block_stop(index, out);
        }
        self.stop_reason = answer["stop_reason"].as_str().and_then(FinishReason::from_wire);
        Ok(())
    }

    /// One streamed event.
    fn event(&mut self, data: &Value, out: &mut Vec<ChatEvent>) -> Result<Flow, ProviderError> {
        let index = data["index"].as_u64().unwrap_or(0);
        match data["type"].as_str().unwrap_or_default() {
            "message_start" => self.usage(data["message"].get("usage")),
            "content_block_start" => self.block_start(index, &data["content_block"], out),
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap_or_default() {
                    "text_delta" => self.text(out, delta["text"].as_str()),
                    "thinking_delta" => text(out, delta["thinking"].as_str(), true),
                    "input_json_delta" => self.input_json(
                        index,
                        delta["partial_json"].as_str().unwrap_or_default(),
                        out,
                    ),
                    _ => {}
                }
            }
            "content_block_stop" => self.block_stop(index, out),
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = FinishReason::from_wire(reason);
                }
                self.usage(data.get("usage"));
            }
            "message_stop" => return Ok(Flow::Done),
            "error" => return Err(stream_error(&data["error"])),
            _ => {}
        }
        Ok(Flow::More)
    }

    fn usage(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage else { return };
        if let Some(tokens) = usage["input_tokens"].as_u64() {
            self.input_tokens = Some(tokens);
        }
        if let Some(tokens) = usage["output_tokens"].as_u64() {
            self.output_tokens = Some(tokens);
        }
    }

    fn block_start(&mut self, index: u64, block: &Value, out: &mut Vec<ChatEvent>) {
        match block["type"].as_str().unwrap_or_default() {
            "text" => self.text(out, block["text"].as_str()),
            "thinking" => text(out, block["thinking"].as_str(), true),
            "tool_use" => {
                self.said_something = true;
                let call = self.calls;
                self.calls += 1;
                self.open_calls.insert(index, OpenCall { index: call, arguments: String::new() });
                out.push(ChatEvent::Message(StreamEvent::CallStart {
                    index: call,
                    id: tool_ids::decode(block["id"].as_str().unwrap_or_default()),
                    name: block["name"].as_str().unwrap_or_default().to_owned(),
                }));
            }
            _ => {}
        }
    }

    /// A piece of the answer's text.
    fn text(&mut self, out: &mut Vec<ChatEvent>, piece: Option<&str>) {
        self.said_something |= piece.is_some_and(|piece| !piece.is_empty());
        text(out, piece, false);
    }

    fn input_json(&mut self, index: u64, piece: &str, out: &mut Vec<ChatEvent>) {
        if let Some(call) = self.open_calls.get_mut(&index).filter(|_| !piece.is_empty()) {
            call.arguments.push_str(piece);
            out.push(ChatEvent::Message(StreamEvent::ArgumentsDelta {
                index: call.index,
                text: piece.to_owned(),
            }));
        }
    }

    fn block_stop(&mut self, index: u64, out: &mut Vec<ChatEvent>) {
        let Some(call) = self.open_calls.remove(&index) else { return };
        // A tool without parameters streams no input at all.
        if call.arguments.trim().is_empty() {
            out.push(ChatEvent::Message(StreamEvent::ArgumentsDelta {
                index: call.index,
                text: "{}".to_owned(),
            }));
            out.push(ChatEvent::Message(StreamEvent::CallEnd {
                index: call.index,
                arguments: None,
            }));
            return;
        }
        let (arguments, note) = match check_arguments(call.arguments.trim()) {
            ArgumentsCheck::Object => (None, None),
            ArgumentsCheck::DoubleEncoded(decoded) => (
                Some(decoded),
                Some((
                    DiagnosticKind::DoubleEncodedArguments,
                    "the input was a JSON string holding an object; decoded once".to_owned(),
                )),
            ),
            ArgumentsCheck::Invalid(reason) => {
                (None, Some((DiagnosticKind::InvalidArguments, reason)))
            }
        };
        out.push(ChatEvent::Message(StreamEvent::CallEnd { index: call.index, arguments }));
        if let Some((kind, message)) = note {
            out.push(ChatEvent::Message(StreamEvent::Diagnostic(Diagnostic {
                kind,
                call_index: Some(call.index),
                offset: 0,
                message,
                text: None,
            })));
        }
    }

    /// The answer is complete; one that said nothing is a bad response, with a snippet of
    /// `received` (the body, or the events of the stream).
    fn finish(mut self, out: &mut Vec<ChatEvent>, received: &str) -> Result<(), ProviderError> {
        if !self.said_something && self.stop_reason.is_none() {
            return Err(ProviderError::bad_response(
                "the answer has no text, no tool_use block and no stop reason",
                received,
            ));
        }
        let mut open: Vec<u64> = self.open_calls.keys().copied().collect();
        open.sort_unstable();
        for index in open {
            self.block_stop(index, out);
        }
        if self.input_tokens.is_some() || self.output_tokens.is_some() {
            let usage = Usage::new(self.input_tokens.unwrap_or(0), self.output_tokens.unwrap_or(0));
            out.push(ChatEvent::Usage { usage });
        }
        if let Some(finish_reason) = self.stop_reason {
            out.push(ChatEvent::Finish { finish_reason });
        }
        Ok(())
    }
}

fn text(out: &mut Vec<ChatEvent>, text: Option<&str>, reasoning: bool) {
    let Some(text) = text.filter(|text| !text.is_empty()) else { return };
    let text = text.to_owned();
    out.push(ChatEvent::Message(if reasoning {
        StreamEvent::ReasoningDelta { text }
    } else {
        StreamEvent::TextDelta { text }
    }));
}

/// An `error` event in the middle of a stream.
fn stream_error(error: &Value) -> ProviderError {
    let kind = match error["type"].as_str().unwrap_or_default() {
        "overloaded_error" | "api_error" => ErrorKind::Server,
        "rate_limit_error" => ErrorKind::RateLimited,
        "authentication_error" | "permission_error" => ErrorKind::Auth,
        "invalid_request_error" => ErrorKind::BadRequest,
        _ => ErrorKind::BadResponse,
    };
    let message = error["message"].as_str().unwrap_or("no message");
    ProviderError::new(kind, format!("the server reported an error in the stream: {message}"))
}

struct StreamState {
    events: SseStream,
    blocks: Option<Blocks>,
    ready: VecDeque<ChatEvent>,
    /// The start of what the server sent, for the snippet of an answer that said nothing.
    received: Received,
}

impl StreamState {
    async fn next(mut self) -> Option<(Result<ChatEvent, ProviderError>, Self)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((Ok(event), self));
            }
            let blocks = self.blocks.as_mut()?;
            let event = self.events.next().await;
            if let Some(Ok(event)) = &event {
                self.received.keep(&event.data);
            }
            match event {
                Some(Ok(event)) if event.data.trim().is_empty() => {}
                Some(Ok(event)) => {
                    let data: Value = match serde_json::from_str(&event.data) {
                        Ok(data) => data,
                        Err(error) => {
                            return self.fail(ProviderError::bad_response(
                                format_args!("a streamed event is not JSON ({error})"),
                                &event.data,
                            ));
                        }
                    };
                    let mut out = Vec::new();
                    match blocks.event(&data, &mut out) {
                        Ok(Flow::More) => self.ready.extend(out),
                        Ok(Flow::Done) => {
                            self.ready.extend(out);
                            if let Some(blocks) = self.blocks.take() {
                                let mut out = Vec::new();
                                if let Err(error) = blocks.finish(&mut out, self.received.text()) {
                                    return self.fail(error);
                                }
                                self.ready.extend(out);
                            }
                        }
                        Err(error) => return self.fail(error),
                    }
                }
                Some(Err(error)) => return self.fail(error),
                None => {
                    return self.fail(ProviderError::new(
                        ErrorKind::Interrupted,
                        "the stream ended before the answer was complete",
                    ));
                }
            }
        }
    }

    fn fail(mut self, error: ProviderError) -> Option<(Result<ChatEvent, ProviderError>, Self)> {
        self.blocks = None;
        self.ready.clear();
        Some((Err(error), self))
    }
}
