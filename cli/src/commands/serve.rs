//! `taskflow serve`: the local gateway (the `taskflow-serve` crate) on the flow database: it
//! prints `listening on http://ADDR` once its socket accepts, runs and adopts flows, and on
//! SIGTERM or Ctrl-C stops accepting, lets running steps reach their checkpoint and gives the
//! flows back.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use taskflow_api::{Config, ProviderSettings, database};
use taskflow_engine::{Actions, Engine, EngineOptions};
use taskflow_serve::{ServeError, ServeOptions, Server};

use crate::drive::{DurabilityArgs, runtime};
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::shutdown::shutdown;

#[derive(Debug, Args)]
#[command(
    after_help = "Without tokens serve listens on loopback only. Tokens are set in the config \
    file, each bound to one owner:\n\n  [serve.tokens]\n  alice = { owner = \"alice\", token_env = \"ALICE_TOKEN\" }\n\n\
    A request then carries `Authorization: Bearer TOKEN`, and sees and changes only that \
    owner's flows. `GET /openapi.json` describes the API."
)]
pub struct ServeArgs {
    /// The address to listen on (`127.0.0.1:0` takes a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7878")]
    pub listen: SocketAddr,

    /// At most this many flows run at once
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub workers: u64,

    /// On shutdown, how long running steps get to reach their checkpoint, in milliseconds;
    /// then a step's commands get SIGTERM, and SIGKILL 5 s later (one that ends its work in
    /// between keeps its outcome)
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub grace_ms: u64,

    /// How many days the change feed keeps events (0: forever); a watcher further behind
    /// resumes from the oldest kept
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub keep_events_days: u32,

    #[command(flatten)]
    pub checkpoints: DurabilityArgs,
}

pub fn run(global: &GlobalArgs, args: &ServeArgs) -> CliResult {
    let config = Config::load()?;
    let tokens = config.serve.tokens()?;
    let path = database::location(global.db.as_deref())?;
    let mcp = config.mcp_settings(&path);
    let taskflow = database::open_for_running(&path, args.checkpoints.durability)?;
    let owner = global.owner();
    let (providers, warnings) = ProviderSettings::default().factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let mut options = ServeOptions::new(args.listen, owner.clone());
    options.workers = args.workers as usize;
    options.tokens = tokens;
    options.grace = Duration::from_millis(args.grace_ms);
    options.keep_events = (args.keep_events_days > 0)
        .then(|| Duration::from_secs(u64::from(args.keep_events_days) * 24 * 3600));
    runtime()?.block_on(async {
        let engine =
            Engine::new(taskflow.bind(owner)?, Actions::builtin(), EngineOptions::default())
                .with_providers(providers)
                .with_mcp(mcp);
        let server = Server::bind(taskflow, engine, options).await.map_err(serve_error)?;
        let stop = shutdown();
        let address = format!("http://{}", server.local_addr());
        let mut out = std::io::stdout().lock();
        let line = if global.json {
            json!({ "listening": address }).to_string()
        } else {
            format!("listening on {address}")
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        drop(out);
        server.run(stop).await.map_err(serve_error)
    })
}

fn serve_error(error: ServeError) -> CliError {
    match error {
        ServeError::NotLoopback(_) => CliError::usage(error.to_string()).with_hint(
            "listen on 127.0.0.1 (the default), or configure tokens under [serve.tokens] in the \
             config file (see `taskflow serve --help`)",
        ),
        ServeError::Listen { .. } => CliError::failure(error.to_string())
            .with_hint("is another serve running there? `--listen 127.0.0.1:0` takes a free port"),
        ServeError::Serve(_) => CliError::failure(error.to_string()),
    }
}
