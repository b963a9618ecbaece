//! The replay provider: answers from a script of recorded model turns, offline and
//! deterministic. It is the embedded default for examples and tests.
//!
//! The turn answered is chosen by the conversation, not by a counter: a request whose
//! conversation already holds N assistant turns gets turn N+1. A run that crashes and sends the
//! same request again therefore gets the same answer, with no state kept between processes.
//!
//! A script is a TOML file:
//!
//! ```toml
//! format = "kimi"          # how tool calls are written in `text` turns (default: kimi)
//!
//! [[turn]]                 # the raw text a model wrote, tagged tool calls included
//! text = "Let me look. <|tool_calls_section_begin|>…<|tool_calls_section_end|>"
//!
//! [[turn]]                 # or a structured message
//! content = "Done."
//! tool_calls = [{ id = "call_1", name = "read_file", arguments = '{"path": "a.md"}' }]
//! usage = { prompt_tokens = 120, completion_tokens = 30 }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use taskflow_parsers::Format;

use crate::assemble::Assembler;
use crate::error::{ErrorKind, ProviderError};
use crate::request::ChatRequest;
use crate::response::{ChatEvent, ChatResponse, FinishReason, ResponseBuilder, Usage};
use crate::{ChatStream, Provider};

/// Characters per event when a `text` turn is streamed.
const STREAM_CHUNK_CHARS: usize = 16;

/// A parsed replay script.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayScript {
    format: Format,
    turns: Vec<Turn>,
}

#[derive(Debug, Clone, PartialEq)]
enum Turn {
    Text {
        text: String,
        usage: Option<Usage>,
    },
    Structured {
        content: Option<String>,
        reasoning: Option<String>,
        tool_calls: Vec<ScriptedCall>,
        finish_reason: Option<FinishReason>,
        usage: Option<Usage>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct ScriptedCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    #[serde(default)]
    format: Option<String>,
    #[serde(default, rename = "turn")]
    turns: Vec<TurnFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnFile {
    text: Option<String>,
    content: Option<String>,
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Vec<CallFile>,
    finish_reason: Option<String>,
    usage: Option<UsageFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallFile {
    id: String,
    name: String,
    /// The argument text, or a table written out as compact JSON.
    arguments: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageFile {
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl ReplayScript {
    /// Reads a script from its text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ProviderError> {
        let file: ScriptFile = toml::from_str(text).map_err(|error| {
            let position = match error.span() {
                Some(span) => {
                    let (line, column) = line_and_column(text, span.start);
                    format!(":{line}:{column}")
                }
                None => String::new(),
            };
            config_error(format!("{origin}{position}: {}", error.message()))
        })?;
        let format = match file.format.as_deref() {
            None => Format::Kimi,
            Some(name) => name
                .parse()
                .map_err(|error| config_error(format!("{origin}: `format`: {error}")))?,
        };
        let turns = file
            .turns
            .into_iter()
            .enumerate()
            .map(|(index, turn)| {
                read_turn(turn).map_err(|problem| {
                    config_error(format!("{origin}: turn {}: {problem}", index + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if turns.is_empty() {
            return Err(config_error(format!("{origin}: the script has no [[turn]]")));
        }
        Ok(Self { format, turns })
    }

    /// How many turns the script holds.
    pub fn len(&self) -> usize {
        self.turns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

fn read_turn(turn: TurnFile) -> Result<Turn, String> {
    let usage = turn.usage.map(|usage| Usage::new(usage.prompt_tokens, usage.completion_tokens));
    if let Some(text) = turn.text {
        if turn.content.is_some() || turn.reasoning.is_some() || !turn.tool_calls.is_empty() {
            return Err("a turn has either `text` or `content`/`reasoning`/`tool_calls`, not both"
                .to_owned());
        }
        return Ok(Turn::Text { text, usage });
    }
    let tool_calls = turn
        .tool_calls
        .into_iter()
        .map(|call| {
            let arguments = match call.arguments {
                Value::String(text) => text,
                other => other.to_string(),
            };
            ScriptedCall { id: call.id, name: call.name, arguments }
        })
        .collect();
    Ok(Turn::Structured {
        content: turn.content,
        reasoning: turn.reasoning,
        tool_calls,
        finish_reason: turn.finish_reason.as_deref().and_then(FinishReason::from_wire),
        usage,
    })
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

fn config_error(message: String) -> ProviderError {
    ProviderError::new(ErrorKind::Config, message)
}

/// Answers requests from a [`ReplayScript`].
#[derive(Debug, Clone)]
pub struct ReplayProvider {
    origin: String,
    script: ReplayScript,
}

impl ReplayProvider {
    pub fn new(script: ReplayScript, origin: impl Into<String>) -> Self {
        Self { origin: origin.into(), script }
    }

    pub fn from_file(path: &Path) -> Result<Self, ProviderError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| {
            config_error(format!("cannot read the replay script {origin}: {error}"))
        })?;
        Ok(Self::new(ReplayScript::parse(&text, &origin)?, origin))
    }

    /// The script file this provider reads, if it came from one.
    pub fn origin(&self) -> PathBuf {
        PathBuf::from(&self.origin)
    }

    /// Every event of the answer to `request`, in order.
    fn answer(
        &self,
        request: &ChatRequest,
        chunk_chars: usize,
    ) -> Result<Vec<ChatEvent>, ProviderError> {
        let number = request.assistant_turns();
        let turn = self.script.turns.get(number).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::ScriptExhausted,
                format!(
                    "the replay script {} has {} turn(s); this conversation needs turn {}",
                    self.origin,
                    self.script.len(),
                    number + 1
                ),
            )
        })?;
        let mut assembler = Assembler::new(self.script.format, request.tool_specs());
        let mut events = Vec::new();
        match turn {
            Turn::Text { text, usage } => {
                for chunk in chunks(text, chunk_chars) {
                    assembler.content(chunk, &mut events);
                }
                if let Some(usage) = usage {
                    assembler.usage(*usage);
                }
                assembler.finish_reason(Some(FinishReason::Stop));
            }
            Turn::Structured { content, reasoning, tool_calls, finish_reason, usage } => {
                if let Some(reasoning) = reasoning {
                    assembler.reasoning(reasoning, &mut events);
                }
                if let Some(content) = content {
                    assembler.content(content, &mut events);
                }
                for (index, call) in tool_calls.iter().enumerate() {
                    assembler.tool_call(
                        index as u64,
                        Some(&call.id),
                        Some(&call.name),
                        &call.arguments,
                        &mut events,
                    );
                }
                if let Some(usage) = usage {
                    assembler.usage(*usage);
                }
                assembler.finish_reason(finish_reason.clone().or(Some(FinishReason::Stop)));
            }
        }
        // Every turn has a finish reason, so the assembler never finds it empty.
        assembler.finish(&mut events, "")?;
        Ok(events)
    }
}

fn chunks(text: &str, chunk_chars: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest.char_indices().nth(chunk_chars).map_or(rest.len(), |(at, _)| at);
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        Some(chunk)
    })
}

#[async_trait::async_trait]
impl Provider for ReplayProvider {
    fn name(&self) -> &str {
        "replay"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Ok(ResponseBuilder::from_events(self.answer(request, usize::MAX)?))
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let events = self.answer(request, STREAM_CHUNK_CHARS)?;
        Ok(Box::pin(futures_util::stream::iter(events.into_iter().map(Ok))))
    }
}
