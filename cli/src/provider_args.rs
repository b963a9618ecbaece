//! The flags that choose and tune a provider, shared by the commands that talk to models.
//! Flags win over environment variables, which win over the preset's defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use taskflow_orchestrator::agent::{ProviderChoice, ProviderFactory};
use taskflow_providers::{
    CONNECT_TIMEOUT_ENV, ErrorKind, Preset, ProviderConfig, ProviderError, resolve_connect_timeout,
};

use crate::error::CliError;

#[derive(Debug, Clone, clap::Args)]
pub struct ProviderArgs {
    /// The server to talk to: moonshot, kimi-code, kimi-code-anthropic, openai, vllm,
    /// llamacpp, ollama, lmstudio, anthropic, or replay (recorded turns, offline)
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,

    /// The model name (default: the provider's)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// The server's base URL (default: the provider's, e.g. http://127.0.0.1:8000/v1 for vllm)
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// The replay provider's script of recorded turns
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Connect timeout in milliseconds [env: TASKFLOW_CONNECT_TIMEOUT_MS] [default: 10000]
    #[arg(long, value_name = "MS")]
    pub connect_timeout_ms: Option<u64>,

    /// Longest silence of the server while it answers, in milliseconds [default: 120000]
    #[arg(long, value_name = "MS")]
    pub read_timeout_ms: Option<u64>,

    /// Attempts per request, the first included; transient failures are retried [default: 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: Option<u32>,
}

impl ProviderArgs {
    /// The provider's configuration, and warnings to show (an unreadable environment value).
    pub fn config(&self) -> Result<(ProviderConfig, Vec<String>), CliError> {
        let name = self.provider.as_deref().ok_or_else(|| {
            CliError::usage("no provider chosen")
                .with_hint(format!("pass --provider, one of: {}", Preset::names()))
        })?;
        let mut config =
            ProviderConfig::named(name).map_err(|error| CliError::usage(error.message))?;
        let mut warnings = Vec::new();
        if let Some(model) = &self.model {
            config.model = model.clone();
        }
        if let Some(base_url) = &self.base_url {
            config.base_url = base_url.clone();
        }
        config.script = self.script.clone();
        let env_timeout = std::env::var(CONNECT_TIMEOUT_ENV).ok();
        let (connect_timeout, warning) =
            resolve_connect_timeout(self.connect_timeout_ms, env_timeout.as_deref());
        config.connect_timeout = connect_timeout;
        warnings.extend(warning);
        if let Some(ms) = self.read_timeout_ms {
            config.read_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(attempts) = self.attempts {
            config.retry.max_attempts = attempts;
        }
        Ok((config, warnings))
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

impl ProviderArgs {
    /// Builds providers for agent runs and `llm` steps: a provider named on the command line
    /// replaces the one a step or an agent names (so one pipeline file runs on any server);
    /// the timeouts and attempts of the flags apply to every provider.
    pub fn factory(&self) -> Result<(ProviderFactory, Vec<String>), CliError> {
        let env_timeout = std::env::var(CONNECT_TIMEOUT_ENV).ok();
        let (connect_timeout, warning) =
            resolve_connect_timeout(self.connect_timeout_ms, env_timeout.as_deref());
        let overriding = match &self.provider {
            Some(name) => {
                ProviderConfig::named(name).map_err(|error| CliError::usage(error.message))?;
                Some(ProviderChoice {
                    provider: name.clone(),
                    model: self.model.clone(),
                    base_url: self.base_url.clone(),
                    script: self.script.as_deref().map(absolute).transpose()?,
                })
            }
            None => None,
        };
        let read_timeout = self.read_timeout_ms.map(|ms| Duration::from_millis(ms.max(1)));
        let attempts = self.attempts;
        let factory: ProviderFactory = Arc::new(move |choice: &ProviderChoice| {
            let mut config = overriding.as_ref().unwrap_or(choice).config()?;
            config.connect_timeout = connect_timeout;
            if let Some(read_timeout) = read_timeout {
                config.read_timeout = read_timeout;
            }
            if let Some(attempts) = attempts {
                config.retry.max_attempts = attempts;
            }
            config.build().map_err(|error| error.message)
        });
        Ok((factory, warning.into_iter().collect()))
    }

    /// The choice these flags make, for an agent spec.
    pub fn choice(&self) -> Result<ProviderChoice, CliError> {
        let provider = self.provider.clone().ok_or_else(|| {
            CliError::usage("no provider chosen")
                .with_hint(format!("pass --provider, one of: {}", Preset::names()))
        })?;
        ProviderConfig::named(&provider).map_err(|error| CliError::usage(error.message))?;
        Ok(ProviderChoice {
            provider,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            script: self.script.as_deref().map(absolute).transpose()?,
        })
    }
}

/// `path` made absolute, so that a stored flow finds it again from any folder.
fn absolute(path: &std::path::Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path)
        .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))
}
