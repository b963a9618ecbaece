//! Which server to talk to and how: the presets (Moonshot, Kimi Code, local OpenAI-compatible
//! servers, Anthropic, replay), the timeouts, and building a [`Provider`] from them.

use std::path::PathBuf;
use std::time::Duration;

use taskflow_parsers::Format;

use crate::error::{ErrorKind, ProviderError};
use crate::retry::RetryPolicy;
use crate::secret::ApiKey;

/// The wire protocol a preset speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Recorded turns from a script file; no network.
    Replay,
}

/// A known server: where it is, which key it takes, which model it serves by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub protocol: Protocol,
    pub base_url: &'static str,
    /// The environment variable holding the key. Local servers have none: a key for them is
    /// read only from a variable the user names (`--api-key-env`, `api_key_env`), so that a
    /// key for one service is never sent to whatever address `--base-url` gives.
    pub key_env: Option<&'static str>,
    /// Whether a request without a key is pointless (hosted APIs) or fine (local servers).
    pub key_required: bool,
    pub default_model: &'static str,
    pub about: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "moonshot",
        protocol: Protocol::OpenAi,
        base_url: "https://api.moonshot.ai/v1",
        key_env: Some("MOONSHOT_API_KEY"),
        key_required: true,
        default_model: "kimi-k2-0905-preview",
        about: "Moonshot / Kimi API",
    },
    Preset {
        name: "kimi-code",
        protocol: Protocol::OpenAi,
        base_url: "https://api.kimi.com/coding/v1",
        key_env: Some("KIMI_API_KEY"),
        key_required: true,
        default_model: "kimi-for-coding",
        about: "Kimi Code, OpenAI-compatible endpoint",
    },
    Preset {
        name: "kimi-code-anthropic",
        protocol: Protocol::Anthropic,
        base_url: "https://api.kimi.com/coding",
        key_env: Some("KIMI_API_KEY"),
        key_required: true,
        default_model: "kimi-for-coding",
        about: "Kimi Code, Anthropic-compatible endpoint",
    },
    Preset {
        name: "openai",
        protocol: Protocol::OpenAi,
        base_url: "https://api.openai.com/v1",
        key_env: Some("OPENAI_API_KEY"),
        key_required: true,
        default_model: "gpt-4o-mini",
        about: "OpenAI API",
    },
    Preset {
        name: "vllm",
        protocol: Protocol::OpenAi,
        base_url: "http://127.0.0.1:8000/v1",
        key_env: None,
        key_required: false,
        default_model: "",
        about: "a local vLLM server",
    },
    Preset {
        name: "llamacpp",
        protocol: Protocol::OpenAi,
        base_url: "http://127.0.0.1:8080/v1",
        key_env: None,
        key_required: false,
        default_model: "",
        about: "a local llama.cpp llama-server",
    },
    Preset {
        name: "ollama",
        protocol: Protocol::OpenAi,
        base_url: "http://127.0.0.1:11434/v1",
        key_env: None,
        key_required: false,
        default_model: "",
        about: "a local Ollama server (OpenAI-compatible /v1)",
    },
    Preset {
        name: "lmstudio",
        protocol: Protocol::OpenAi,
        base_url: "http://127.0.0.1:1234/v1",
        key_env: None,
        key_required: false,
        default_model: "",
        about: "a local LM Studio server",
    },
    Preset {
        name: "anthropic",
        protocol: Protocol::Anthropic,
        base_url: "https://api.anthropic.com",
        key_env: Some("ANTHROPIC_API_KEY"),
        key_required: true,
        default_model: "claude-sonnet-4-5",
        about: "Anthropic Messages API",
    },
    Preset {
        name: "replay",
        protocol: Protocol::Replay,
        base_url: "",
        key_env: None,
        key_required: false,
        default_model: "replay",
        about: "recorded turns from a script file (offline, deterministic)",
    },
];

impl Preset {
    pub fn find(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|preset| preset.name.eq_ignore_ascii_case(name))
    }

    /// The names of all presets, for messages.
    pub fn names() -> String {
        PRESETS.iter().map(|preset| preset.name).collect::<Vec<_>>().join(", ")
    }
}

/// The default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// The environment variable that sets the connect timeout, in milliseconds.
pub const CONNECT_TIMEOUT_ENV: &str = "TASKFLOW_CONNECT_TIMEOUT_MS";
const CONNECT_TIMEOUT_RANGE_MS: (u64, u64) = (250, 120_000);
/// The default longest silence of a server in the middle of an answer.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The connect timeout: the flag if given, else the environment variable's value, else the
/// default; clamped to 250–120000 ms. An unreadable variable is ignored, with a warning to show.
pub fn resolve_connect_timeout(
    flag_ms: Option<u64>,
    env_value: Option<&str>,
) -> (Duration, Option<String>) {
    let (low, high) = CONNECT_TIMEOUT_RANGE_MS;
    let clamp = |ms: u64| Duration::from_millis(ms.clamp(low, high));
    if let Some(ms) = flag_ms {
        return (clamp(ms), None);
    }
    match env_value.map(str::trim) {
        None | Some("") => (DEFAULT_CONNECT_TIMEOUT, None),
        Some(text) => match text.parse::<u64>() {
            Ok(ms) => (clamp(ms), None),
            Err(_) => (
                DEFAULT_CONNECT_TIMEOUT,
                Some(format!(
                    "{CONNECT_TIMEOUT_ENV}={text:?} is not a number of milliseconds; using {} ms",
                    DEFAULT_CONNECT_TIMEOUT.as_millis()
                )),
            ),
        },
    }
}

/// Checks that `base_url` can address a model server: an `http` or `https` URL with a host.
/// Anything else (`not a url`, `ftp://host/v1`) would fail every request alike, and reqwest's
/// error for it reads as an unreachable server, so it is refused before a request is made.
pub fn check_base_url(base_url: &str) -> Result<(), String> {
    let refused = || {
        format!(
            "the base URL must be an http(s) URL such as http://127.0.0.1:8000/v1, not \
             {base_url:?}"
        )
    };
    let url = reqwest::Url::parse(base_url.trim()).map_err(|_| refused())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(refused());
    }
    Ok(())
}

/// Everything needed to build a provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub preset: &'static Preset,
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub retry: RetryPolicy,
    /// The format of tool calls written as tagged text in `content`; by default the one the
    /// model's name implies (`Format::for_model`), else told by the markers (`Format::Auto`).
    pub tagged_format: Option<Format>,
    /// The script file of the replay provider.
    pub script: Option<PathBuf>,
}

impl ProviderConfig {
    /// The preset's settings, with the key from its environment variable.
    pub fn from_preset(preset: &'static Preset) -> Self {
        Self {
            preset,
            base_url: preset.base_url.to_owned(),
            model: preset.default_model.to_owned(),
            api_key: preset.key_env.and_then(ApiKey::from_env),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            retry: RetryPolicy::default(),
            tagged_format: None,
            script: None,
        }
    }

    /// Checks what no request could succeed without, whichever way the configuration was made
    /// (flags, the config file, a pipeline step's `with`): an http(s) base URL for the servers
    /// that need one, and timeouts longer than zero (a zero timeout fails every request at once).
    pub fn check(&self) -> Result<(), ProviderError> {
        let refuse = |problem: String| {
            Err(ProviderError::new(
                ErrorKind::Config,
                format!("provider `{}`: {problem}", self.preset.name),
            ))
        };
        if self.preset.protocol != Protocol::Replay
            && let Err(problem) = check_base_url(&self.base_url)
        {
            return refuse(problem);
        }
        if self.connect_timeout.is_zero() {
            return refuse("the connect timeout must be longer than 0 ms".to_owned());
        }
        if self.read_timeout.is_zero() {
            return refuse("the read timeout must be longer than 0 ms".to_owned());
        }
        Ok(())
    }

    /// The preset named `name`.
    pub fn named(name: &str) -> Result<Self, ProviderError> {
        Preset::find(name).map(Self::from_preset).ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Config,
                format!("unknown provider `{name}` (known: {})", Preset::names()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(flag: Option<u64>, env: Option<&str>, expected_ms: u64, warns: bool) {
        let (timeout, warning) = resolve_connect_timeout(flag, env);
        assert_eq!(timeout, Duration::from_millis(expected_ms), "flag {flag:?} env {env:?}");
        assert_eq!(warning.is_some(), warns, "flag {flag:?} env {env:?}: {warning:?}");
    }

    #[test]
    fn connect_timeout_resolution() {
        check(None, None, 10_000, false);
        check(None, Some(""), 10_000, false);
        check(None, Some("3000"), 3_000, false);
        check(None, Some(" 3000 "), 3_000, false);
        check(None, Some("10"), 250, false);
        check(None, Some("999999"), 120_000, false);
        check(None, Some("fast"), 10_000, true);
        check(None, Some("-5"), 10_000, true);
        check(Some(500), Some("3000"), 500, false);
        check(Some(500), Some("fast"), 500, false);
        check(Some(1), None, 250, false);
    }

    fn check_url(base_url: &str, expected: Result<(), ()>) {
        assert_eq!(check_base_url(base_url).map_err(|_| ()), expected, "{base_url:?}");
    }

    #[test]
    fn base_urls_must_be_http_urls() {
        check_url("http://127.0.0.1:8000/v1", Ok(()));
        check_url("https://api.moonshot.ai/v1", Ok(()));
        check_url("HTTP://localhost:11434/v1/", Ok(()));
        check_url(" http://[::1]:8080 ", Ok(()));
        check_url("not a url", Err(()));
        check_url("ftp://host/v1", Err(()));
        check_url("127.0.0.1:8000/v1", Err(()));
        check_url("localhost:8000", Err(()));
        check_url("http://", Err(()));
        check_url("file:///tmp/model", Err(()));
        check_url("", Err(()));
        let message = check_base_url("ftp://host/v1").unwrap_err();
        assert_eq!(
            message,
            "the base URL must be an http(s) URL such as http://127.0.0.1:8000/v1, not \
             \"ftp://host/v1\""
        );
    }

    #[test]
    fn a_configuration_that_no_request_could_use_is_refused() {
        let mut config = ProviderConfig::named("vllm").unwrap();
        config.model = "m".to_owned();
        assert!(config.check().is_ok());
        let refused = |change: fn(&mut ProviderConfig)| {
            let mut config = config.clone();
            change(&mut config);
            let error = config.check().unwrap_err();
            assert_eq!(error.kind, ErrorKind::Config);
            // `build` refuses it too, before any request.
            assert_eq!(config.build().unwrap_err().message, error.message);
            error.message
        };
        let message = refused(|config| config.base_url = "not a url".to_owned());
        assert!(message.starts_with("provider `vllm`: the base URL must be"), "{message}");
        let message = refused(|config| config.read_timeout = Duration::ZERO);
        assert_eq!(message, "provider `vllm`: the read timeout must be longer than 0 ms");
        let message = refused(|config| config.connect_timeout = Duration::ZERO);
        assert_eq!(message, "provider `vllm`: the connect timeout must be longer than 0 ms");
        // The replay provider talks to no server.
        let mut replay = ProviderConfig::named("replay").unwrap();
        replay.base_url = String::new();
        assert!(replay.check().is_ok());
    }

    #[test]
    fn presets_are_found_by_name() {
        assert_eq!(Preset::find("Kimi-Code").unwrap().base_url, "https://api.kimi.com/coding/v1");
        assert_eq!(Preset::find("moonshot").unwrap().key_env, Some("MOONSHOT_API_KEY"));
        assert!(Preset::find("nope").is_none());
        let error = ProviderConfig::named("nope").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Config);
        assert!(error.message.contains("ollama"), "{}", error.message);
    }
}
