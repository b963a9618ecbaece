//! The flags that choose and tune a provider, shared by the commands that talk to models. The
//! api resolves them ([`ProviderSettings`]): flags win over environment variables and the
//! config file, which win over the preset's defaults.

use std::path::PathBuf;

use taskflow_api::ProviderSettings;
use taskflow_providers::{CONNECT_TIMEOUT_ENV, ErrorKind, ProviderConfig, ProviderError};

use crate::error::CliError;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProviderArgs {
    /// The server to talk to: moonshot, kimi-code, kimi-code-anthropic, openai, vllm,
    /// llamacpp, ollama, lmstudio, anthropic, replay (recorded turns, offline), or a provider
    /// of the config file [default: the config file's]
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,

    /// The model name (default: the provider's)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// The server's base URL (default: the provider's, e.g. http://127.0.0.1:8000/v1 for vllm)
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Read the API key from this environment variable (local servers take none by default).
    /// A flow keeps the variable's name, never the key, so a resume reads it again
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,

    /// The replay provider's script of recorded turns
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Connect timeout in milliseconds [env: TASKFLOW_CONNECT_TIMEOUT_MS] [default: 10000]
    #[arg(long, value_name = "MS")]
    pub connect_timeout_ms: Option<u64>,

    /// Longest silence of the server while it answers, in milliseconds [default: 120000]
    #[arg(long, value_name = "MS")]
    pub read_timeout_ms: Option<u64>,

    /// Attempts per request, the first included; transient failures before the answer begins
    /// are retried [default: 4] (an agent's turn cut while it streams is asked for again, up to
    /// three times, apart from these)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: Option<u32>,
}

/// What to ask of the model besides the messages.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SamplingArgs {
    /// A system prompt
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,

    /// The most tokens per answer
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,

    /// Sampling temperature
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
}

impl ProviderArgs {
    /// What these flags say, for the api to resolve against the config file and presets.
    pub fn settings(&self) -> ProviderSettings {
        ProviderSettings {
            provider: self.provider.clone(),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            api_key_env: self.api_key_env.clone(),
            script: self.script.clone(),
            connect_timeout_ms: self.connect_timeout_ms,
            read_timeout_ms: self.read_timeout_ms,
            attempts: self.attempts,
        }
    }
}

/// A provider failure as a CLI error, with what to do about it.
pub fn provider_error(error: ProviderError, config: &ProviderConfig) -> CliError {
    let hint = match error.kind {
        ErrorKind::Auth => {
            config.preset.key_env.map(|variable| format!("check the key in {variable}"))
        }
        ErrorKind::Connect => Some(format!("is the server running at {}?", config.base_url)),
        ErrorKind::Timeout => Some(format!(
            "the server was too slow; raise --read-timeout-ms or {CONNECT_TIMEOUT_ENV}"
        )),
        ErrorKind::RateLimited => Some("wait a little, or lower the request rate".to_owned()),
        ErrorKind::ContextLength => {
            Some("shorten the conversation or use a model with a longer context".to_owned())
        }
        ErrorKind::ScriptExhausted => Some("add a [[turn]] to the replay script".to_owned()),
        _ => None,
    };
    let failure = match error.kind {
        ErrorKind::Config => CliError::failure(error.message),
        _ => CliError::failure(format!("{}: {}", config.preset.name, error.message)),
    };
    match hint {
        Some(hint) => failure.with_hint(hint),
        None => failure,
    }
}
