//! How a proxy is set up: where the upstream is, which format its models write, what clients
//! must send, and how ids and tools are treated. Built by the CLI from its flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use taskflow_parsers::Format;
use taskflow_providers::ApiKey;

use crate::error::ProxyError;
use crate::upstream::Upstream;

/// The tool-call ids a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMode {
    /// The model's own ids, verbatim (`functions.get_weather:0`).
    #[default]
    Keep,
    /// Ids within `^[a-zA-Z0-9_-]+$`, for clients that accept no other: ids outside it are
    /// escaped reversibly (`tf_functions_2eget__weather_3a0`) and turned back into the model's
    /// own in the history of the next request, so the upstream sees its own ids again.
    Safe,
}

impl IdMode {
    pub fn name(self) -> &'static str {
        match self {
            IdMode::Keep => "keep",
            IdMode::Safe => "safe",
        }
    }

    /// The mode named `name` (`keep` or `safe`).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "keep" => Some(IdMode::Keep),
            "safe" => Some(IdMode::Safe),
            _ => None,
        }
    }
}

/// The header through which one client picks its [`IdMode`] (`keep` or `safe`), overriding
/// the proxy's default.
pub const IDS_HEADER: &str = "x-taskflow-ids";
/// The header of a non-streamed answer that lists what the proxy could not turn into calls
/// (at most 4 KB: notes beyond that are counted, not listed; `--log` records them all).
pub const DIAGNOSTICS_HEADER: &str = "x-taskflow-diagnostics";

/// The default longest silence of the upstream while it answers. A local model may think for
/// minutes before its first byte (a long prompt's prefill, an answer that is not streamed), so
/// it is the OpenAI SDK's own default (600 s), not the 120 s the taskflow providers wait: a
/// client's request must not be cut by the proxy sooner than the client would cut it.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(600);

/// Everything a proxy needs to run.
#[derive(Debug)]
pub struct ProxyConfig {
    pub upstream: Upstream,
    pub listen: SocketAddr,
    /// The tagged-text format answers are read in; [`Format::Auto`] means the request's model
    /// tells it ([`Format::for_model`]), else the first marker.
    pub format: Format,
    /// The key sent to the upstream as a bearer token instead of the client's `Authorization`.
    pub api_key: Option<ApiKey>,
    /// The bearer token clients must send; required to listen beyond loopback.
    pub client_token: Option<ApiKey>,
    pub ids: IdMode,
    /// The upstream refuses `tools`: they, the calls and the results of the conversation are
    /// written into the prompt in the model's own format instead.
    pub tools_in_prompt: bool,
    /// Where one JSON line per exchange is appended.
    pub log: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// The longest the upstream may send nothing while it answers; past it the client gets an
    /// `upstream_timeout` error.
    pub read_timeout: Duration,
}

impl ProxyConfig {
    /// A configuration with the defaults for everything but the upstream.
    pub fn new(upstream: &str) -> Result<Self, ProxyError> {
        Ok(Self {
            upstream: Upstream::parse(upstream)?,
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            format: Format::Auto,
            api_key: None,
            client_token: None,
            ids: IdMode::Keep,
            tools_in_prompt: false,
            log: None,
            connect_timeout: taskflow_providers::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        })
    }

    /// Refuses an address beyond loopback unless clients must present a token.
    pub fn check_listen(&self) -> Result<(), ProxyError> {
        if self.listen.ip().is_loopback() || self.client_token.is_some() {
            Ok(())
        } else {
            Err(ProxyError::NotLocal { addr: self.listen })
        }
    }

    /// The format to read an answer of `model` in.
    pub(crate) fn format_for(&self, model: &str) -> Format {
        match self.format {
            Format::Auto => Format::for_model(model).unwrap_or(Format::Auto),
            format => format,
        }
    }
}
