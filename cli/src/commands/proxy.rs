//! `taskflow proxy`: the tool-call-fixing OpenAI-compatible endpoint (DESIGN §12) in front
//! of an upstream server. This module turns the flags into a `ProxyConfig`, prints the address
//! it listens on as the first line of stdout (a JSON document with `--json`), and serves until
//! Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use taskflow_api::tokens::MIN_SECRET_LEN;
use taskflow_parsers::Format;
use taskflow_providers::ApiKey;
use taskflow_proxy::{DEFAULT_READ_TIMEOUT, IdMode, ProxyConfig, ProxyError, Server};

use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::shutdown::shutdown;

#[derive(Debug, clap::Args)]
#[command(after_help = "Clients use http://ADDR/v1 as their OpenAI base URL. Answers whose \
    content or reasoning holds tool calls written as tagged text get them as `tool_calls`; \
    everything else passes through.\n\n\
    Examples:\n  \
    taskflow proxy --upstream http://localhost:8000/v1\n  \
    taskflow proxy --upstream http://localhost:11434/v1 --format qwen3-coder --log proxy.jsonl\n  \
    MOONSHOT_API_KEY=… taskflow proxy --upstream https://api.moonshot.ai/v1 --api-key-env MOONSHOT_API_KEY\n  \
    TOKEN=… taskflow proxy --upstream http://gpu-box:8000/v1 --listen 0.0.0.0:4000 --token-env TOKEN")]
pub struct ProxyArgs {
    /// The upstream's OpenAI base URL, as its own clients would use it
    #[arg(long, value_name = "URL")]
    pub upstream: String,

    /// Where to listen; a port of 0 takes a free one. Only loopback unless --token-env is set
    #[arg(long, default_value = "127.0.0.1:4000", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// The tagged-text format answers are read in; auto: the request's model tells it, else the
    /// first marker (formats as in `taskflow parse --help`)
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: Format,

    /// The environment variable holding the upstream's API key, sent as a bearer token in place
    /// of the client's (without it, the client's Authorization header goes on)
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,

    /// The environment variable holding a token that clients must send as
    /// `Authorization: Bearer TOKEN`; required to listen beyond loopback
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,

    /// The tool-call ids clients get: keep (the model's own) or safe (escaped into
    /// [A-Za-z0-9_-], and restored in the next request); a client may pick with the
    /// X-Taskflow-Ids header
    #[arg(long, default_value = "keep", value_name = "MODE", value_parser = parse_ids)]
    pub ids: IdMode,

    /// The upstream refuses `tools`: write the tools, earlier calls and their results into the
    /// prompt in the model's own format instead
    #[arg(long)]
    pub tools_in_prompt: bool,

    /// Append one JSON line per exchange to FILE (timings, tokens, calls fixed, diagnostics)
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Connect timeout in milliseconds [env: TASKFLOW_CONNECT_TIMEOUT_MS] [default: 10000]
    #[arg(long, value_name = "MS", value_parser = more_than_zero)]
    pub connect_timeout_ms: Option<u64>,

    /// Longest silence of the upstream while it answers, in milliseconds (a local model's long
    /// prefill, or an answer that is not streamed, may take minutes); past it the client gets
    /// a 504 upstream_timeout
    #[arg(long, value_name = "MS", value_parser = more_than_zero,
          default_value_t = DEFAULT_READ_TIMEOUT.as_millis() as u64)]
    pub read_timeout_ms: u64,
}

fn parse_ids(name: &str) -> Result<IdMode, String> {
    IdMode::parse(name).ok_or_else(|| format!("`{name}` is not keep or safe"))
}

/// A timeout of 0 ms would fail every request at once.
fn more_than_zero(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be more than 0".to_owned()),
        Ok(ms) => Ok(ms),
        Err(_) => Err(format!("`{text}` is not a number of milliseconds")),
    }
}

pub fn run(global: &GlobalArgs, args: &ProxyArgs) -> CliResult {
    let mut config = ProxyConfig::new(&args.upstream).map_err(proxy_error)?;
    config.listen = args.listen;
    config.format = args.format;
    config.ids = args.ids;
    config.tools_in_prompt = args.tools_in_prompt;
    config.log = args.log.clone();
    config.api_key =
        args.api_key_env.as_deref().map(|var| key_from(var, "--api-key-env")).transpose()?;
    config.client_token = args.token_env.as_deref().map(client_token).transpose()?;
    config.connect_timeout = crate::environment::connect_timeout(args.connect_timeout_ms)?;
    config.read_timeout = Duration::from_millis(args.read_timeout_ms);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::failure(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let server = Server::bind(config).await.map_err(proxy_error)?;
        let stop = shutdown();
        let address = format!("http://{}", server.local_addr().map_err(proxy_error)?);
        let line = if global.json {
            json!({ "listening": address }).to_string()
        } else {
            format!("listening on {address}")
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
        drop(stdout);
        server.run(stop).await.map_err(proxy_error)
    })
}

/// A secret from the environment variable `var`, which the flag `flag` named.
fn key_from(var: &str, flag: &str) -> CliResult<ApiKey> {
    ApiKey::from_env(var).ok_or_else(|| {
        CliError::usage(format!(
            "the environment variable {var} named by {flag} is not set or empty"
        ))
        .with_hint(format!("export {var}=… before starting the proxy"))
    })
}

/// The token clients must send, as serve's tokens: a guess must not open a proxy that may
/// listen beyond this host.
fn client_token(var: &str) -> CliResult<ApiKey> {
    let token = key_from(var, "--token-env")?;
    if token.expose().trim().chars().count() < MIN_SECRET_LEN {
        return Err(CliError::usage(format!(
            "the token in {var} (--token-env) is shorter than {MIN_SECRET_LEN} characters"
        ))
        .with_hint("`openssl rand -hex 32` makes one"));
    }
    Ok(token)
}

fn proxy_error(error: ProxyError) -> CliError {
    match &error {
        ProxyError::NotLocal { .. } => CliError::usage(error.to_string()).with_hint(
            "listen on 127.0.0.1 (or [::1]), or set --token-env VAR so that clients must send a token",
        ),
        ProxyError::Upstream { .. } => CliError::usage(error.to_string())
            .with_hint("give the base URL clients of the upstream use, e.g. http://localhost:8000/v1"),
        ProxyError::Listen { .. } => CliError::failure(error.to_string())
            .with_hint("another process may hold that port; pick another --listen, or port 0 for a free one"),
        ProxyError::Log { .. } => {
            CliError::failure(error.to_string()).with_hint("check the folder of --log and its permissions")
        }
        ProxyError::Client(_) | ProxyError::Serve(_) => CliError::failure(error.to_string()),
    }
}
