//! The OpenAI chat-completions adapter: Moonshot/Kimi, Kimi Code, vLLM, llama.cpp, Ollama
//! (`/v1`), LM Studio. Streaming uses server-sent events with index-keyed tool-call deltas;
//! `content` always passes through the tagged-text parser, so tool calls that a model writes
//! as text become calls, whether the answer streams or not. Every field of an answer is
//! optional on the wire, so an answer with no choice, or one that says nothing, is caught here
//! (and in the assembler) as a bad response rather than read as an empty success.

mod wire;

use std::collections::VecDeque;

use futures_util::StreamExt;
use taskflow_parsers::Format;

use crate::assemble::Assembler;
use crate::config::ProviderConfig;
use crate::error::{ErrorKind, ProviderError};
use crate::http::{self, Endpoint, Received, SseStream};
use crate::request::ChatRequest;
use crate::response::{ChatEvent, ChatResponse, FinishReason, ResponseBuilder};
use crate::{ChatStream, Provider};
use wire::{Completion, request_body};

#[derive(Debug)]
pub(crate) struct OpenAiProvider {
    endpoint: Endpoint,
    tagged_format: Option<Format>,
}

impl OpenAiProvider {
    pub(crate) fn new(config: &ProviderConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            endpoint: Endpoint::new(config, "chat/completions")?,
            tagged_format: config.tagged_format,
        })
    }

    /// One attempt at sending `body`, with the key as a bearer token.
    async fn send(&self, body: &serde_json::Value) -> Result<reqwest::Response, ProviderError> {
        self.endpoint
            .send(body, |post, key| match key {
                Some(key) => post.bearer_auth(key.expose()),
                None => post,
            })
            .await
    }

    /// Reads an answer to `request`, with the tagged-text format its model writes.
    fn assembler(&self, request: &ChatRequest) -> Assembler {
        let format = self.tagged_format.unwrap_or_else(|| {
            Format::for_model(self.endpoint.model(request)).unwrap_or(Format::Auto)
        });
        Assembler::new(format, request.tool_specs())
    }

    /// The events of an answer read whole (`text`, the body it was read from, for the snippet
    /// of a bad one).
    fn whole_answer(
        &self,
        request: &ChatRequest,
        completion: Completion,
        text: &str,
    ) -> Result<Vec<ChatEvent>, ProviderError> {
        if completion.choices.is_empty() && completion.error.is_none() {
            return Err(ProviderError::bad_response("the answer has no choices", text));
        }
        let mut assembler = self.assembler(request);
        let mut events = Vec::new();
        absorb(&mut assembler, completion, &mut events)?;
        assembler.finish(&mut events, text)?;
        Ok(events)
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        self.endpoint.name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = request_body(request, self.endpoint.model(request), false);
        let (completion, text): (Completion, _) =
            self.endpoint.answer_json(|| self.send(&body)).await?;
        Ok(ResponseBuilder::from_events(self.whole_answer(request, completion, &text)?))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = request_body(request, self.endpoint.model(request), true);
        let response = self.endpoint.retry.run(|_| self.send(&body)).await?;
        // A server that does not stream (it ignores `stream: true`) answers with one JSON body:
        // that is the whole answer, not a stream cut before its first event.
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|kind| kind.trim_start().starts_with("application/json"));
        if json {
            let (completion, text): (Completion, _) =
                http::read_json(response, self.endpoint.api_key.as_ref()).await?;
            let events = self.whole_answer(request, completion, &text)?;
            return Ok(Box::pin(futures_util::stream::iter(events.into_iter().map(Ok))));
        }
        let state = StreamState {
            events: http::sse(response, self.endpoint.api_key.clone()),
            assembler: Some(self.assembler(request)),
            ready: VecDeque::new(),
            finished: false,
            received: Received::default(),
        };
        Ok(Box::pin(futures_util::stream::unfold(state, StreamState::next)))
    }
}

/// Feeds one answer or chunk to the assembler.
fn absorb(
    assembler: &mut Assembler,
    completion: Completion,
    out: &mut Vec<ChatEvent>,
) -> Result<(), ProviderError> {
    if let Some(error) = completion.error {
        return Err(ProviderError::bad_response(
            "the server reported an error",
            &error.to_string(),
        ));
    }
    if let Some(usage) = completion.usage {
        assembler.usage(usage.into());
    }
    for choice in completion.choices.into_iter().take(1) {
        if let Some(message) = choice.message.or(choice.delta) {
            if let Some(reasoning) = message.reasoning_content.or(message.reasoning) {
                assembler.reasoning(&reasoning, out);
            }
            if let Some(content) = message.content {
                assembler.content(&content, out);
            }
            for (position, call) in message.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let function = call.function.unwrap_or_default();
                assembler.tool_call(
                    call.index.unwrap_or(position as u64),
                    call.id.as_deref(),
                    function.name.as_deref(),
                    &function.arguments_text(),
                    out,
                );
            }
        }
        assembler.finish_reason(choice.finish_reason.as_deref().and_then(FinishReason::from_wire));
    }
    Ok(())
}

struct StreamState {
    events: SseStream,
    assembler: Option<Assembler>,
    ready: VecDeque<ChatEvent>,
    finished: bool,
    /// The start of what the server sent, for the snippet of an answer that said nothing.
    received: Received,
}

impl StreamState {
    async fn next(mut self) -> Option<(Result<ChatEvent, ProviderError>, Self)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((Ok(event), self));
            }
            let assembler = self.assembler.as_mut()?;
            let event = self.events.next().await;
            if let Some(Ok(event)) = &event {
                self.received.keep(&event.data);
            }
            match event {
                Some(Ok(event)) if event.data.trim() == "[DONE]" => {
                    if let Err(error) = self.finish() {
                        return self.fail(error);
                    }
                }
                Some(Ok(event)) if event.data.trim().is_empty() => {}
                Some(Ok(event)) => {
                    let chunk = match serde_json::from_str::<Completion>(&event.data) {
                        Ok(chunk) => chunk,
                        Err(error) => {
                            return self.fail(ProviderError::bad_response(
                                format_args!("a streamed chunk is not the expected JSON ({error})"),
                                &event.data,
                            ));
                        }
                    };
                    self.finished |= chunk.choices.iter().any(|choice| {
                        choice.finish_reason.as_deref().is_some_and(|reason| !reason.is_empty())
                    });
                    let mut out = Vec::new();
                    if let Err(error) = absorb(assembler, chunk, &mut out) {
                        return self.fail(error);
                    }
                    self.ready.extend(out);
                }
                Some(Err(error)) => return self.fail(error),
                // Some servers close the stream after the finish reason without `[DONE]`.
                None if self.finished => {
                    if let Err(error) = self.finish() {
                        return self.fail(error);
                    }
                }
                None => {
                    return self.fail(ProviderError::new(
                        ErrorKind::Interrupted,
                        "the stream ended before the answer was complete",
                    ));
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), ProviderError> {
        if let Some(assembler) = self.assembler.take() {
            let mut out = Vec::new();
            assembler.finish(&mut out, self.received.text())?;
            self.ready.extend(out);
        }
        Ok(())
    }

    fn fail(mut self, error: ProviderError) -> Option<(Result<ChatEvent, ProviderError>, Self)> {
        self.assembler = None;
        self.ready.clear();
        Some((Err(error), self))
    }
}
