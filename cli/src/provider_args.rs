//! The flags that choose and tune a provider, shared by the commands that talk to models.
//! Flags win over environment variables and the config file ([`crate::config`]), which win
//! over the preset's defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use taskflow_orchestrator::agent::{ProviderChoice, ProviderFactory};
use taskflow_providers::{
    ApiKey, CONNECT_TIMEOUT_ENV, ErrorKind, Preset, ProviderConfig, ProviderError,
    resolve_connect_timeout,
};

use crate::config::Config;
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

    /// Attempts per request, the first included; transient failures are retried [default: 4]
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
    /// Whether any flag chooses the provider or its model, address or script.
    pub fn chooses_a_provider(&self) -> bool {
        self.provider.is_some()
            || self.model.is_some()
            || self.base_url.is_some()
            || self.script.is_some()
    }

    /// These flags without the choice of provider: the timeouts, attempts and key variable.
    pub fn tuning_only(&self) -> ProviderArgs {
        ProviderArgs { provider: None, model: None, base_url: None, script: None, ..self.clone() }
    }

    /// The provider named by `--provider` or the config file's default.
    fn provider_name(&self, config: &Config) -> Result<String, CliError> {
        let name = self.provider.clone().or_else(|| config.defaults.provider.clone()).ok_or_else(
            || {
                CliError::usage("no provider chosen").with_hint(format!(
                    "pass --provider, one of: {}; or set [defaults] provider in the config file",
                    Preset::names()
                ))
            },
        )?;
        if !config.knows(&name) {
            let names = Preset::names();
            let own: Vec<&str> = config.providers.keys().map(String::as_str).collect();
            let known = if own.is_empty() { names } else { format!("{names}, {}", own.join(", ")) };
            return Err(CliError::usage(format!("unknown provider `{name}` (known: {known})")));
        }
        Ok(name)
    }

    /// The settings these flags give every provider: timeouts and attempts.
    fn tune(&self, config: &mut ProviderConfig, connect_timeout: Duration) {
        if let Some(variable) = &self.api_key_env {
            config.api_key = ApiKey::from_env(variable);
        }
        config.connect_timeout = connect_timeout;
        if let Some(ms) = self.read_timeout_ms {
            config.read_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(attempts) = self.attempts {
            config.retry.max_attempts = attempts;
        }
    }

    fn connect_timeout() -> (Duration, Option<String>) {
        let env_timeout = std::env::var(CONNECT_TIMEOUT_ENV).ok();
        resolve_connect_timeout(None, env_timeout.as_deref())
    }

    /// The provider's configuration, and warnings to show (an unreadable environment value).
    pub fn config(&self) -> Result<(ProviderConfig, Vec<String>), CliError> {
        let file = Config::load()?;
        let choice = self.choice_in(&file)?;
        let mut config = resolve(&file, &choice).map_err(CliError::usage)?;
        let env_timeout = std::env::var(CONNECT_TIMEOUT_ENV).ok();
        let (connect_timeout, warning) =
            resolve_connect_timeout(self.connect_timeout_ms, env_timeout.as_deref());
        self.tune(&mut config, connect_timeout);
        Ok((config, warning.into_iter().collect()))
    }

    /// Builds providers for agent runs and `llm` steps: a provider named on the command line
    /// replaces the one a step or an agent names (so one pipeline file runs on any server); a
    /// step that names none gets the config file's default; the timeouts and attempts of the
    /// flags apply to every provider.
    pub fn factory(&self) -> Result<(ProviderFactory, Vec<String>), CliError> {
        let file = Config::load()?;
        let overriding = match &self.provider {
            Some(_) => Some(self.choice_in(&file)?),
            None => None,
        };
        let (connect_timeout, warning) = match self.connect_timeout_ms {
            Some(ms) => resolve_connect_timeout(Some(ms), None),
            None => Self::connect_timeout(),
        };
        let flags = self.clone();
        let factory: ProviderFactory = Arc::new(move |choice: &ProviderChoice| {
            let mut choice = overriding.clone().unwrap_or_else(|| choice.clone());
            if choice.provider.trim().is_empty() {
                choice.provider = file.defaults.provider.clone().unwrap_or_default();
            }
            let mut config = resolve(&file, &choice)?;
            flags.tune(&mut config, connect_timeout);
            config.build().map_err(|error| error.message)
        });
        Ok((factory, warning.into_iter().collect()))
    }

    /// The choice these flags (and the config file) make, for an agent spec.
    pub fn choice(&self) -> Result<ProviderChoice, CliError> {
        self.choice_in(&Config::load()?)
    }

    fn choice_in(&self, file: &Config) -> Result<ProviderChoice, CliError> {
        Ok(ProviderChoice {
            provider: self.provider_name(file)?,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            script: self.script.as_deref().map(absolute).transpose()?,
            api_key_env: self.api_key_env.clone(),
        })
    }
}

/// A choice's provider configuration: the config file's settings for its name, then the
/// choice's own model, address and script.
fn resolve(file: &Config, choice: &ProviderChoice) -> Result<ProviderConfig, String> {
    if choice.provider.trim().is_empty() {
        return Err("no provider chosen: name one, or set [defaults] provider in the config file"
            .to_owned());
    }
    let mut config = file.provider(&choice.provider)?;
    if let Some(model) = &choice.model {
        config.model = model.clone();
    }
    if let Some(base_url) = &choice.base_url {
        config.base_url = base_url.clone();
    }
    if choice.script.is_some() {
        config.script = choice.script.clone();
    }
    if let Some(variable) = &choice.api_key_env {
        config.api_key = ApiKey::from_env(variable);
    }
    Ok(config)
}

/// `path` made absolute, so that a stored flow finds it again from any folder.
fn absolute(path: &std::path::Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path)
        .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))
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
