//! `taskflow worker`: runs the flows of a PostgreSQL database shared by many hosts, with no HTTP
//! API (serve's runs, see `taskflow_serve::worker`). It wakes at once when a flow is queued,
//! signalled or cancelled (LISTEN/NOTIFY), and polls as the fallback. On SIGTERM or Ctrl-C it
//! lets running steps reach their checkpoint and gives its flows back. While the server cannot
//! be reached it says so once, and once when it is back.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use taskflow_api::{ApiError, Config, ProviderSettings, database};
use taskflow_engine::{Actions, Engine, EngineOptions, Error as StoreError, StorageErrorKind};
use taskflow_serve::outage::Outage;
use taskflow_serve::worker::{WorkerOptions, work};

use crate::drive::runtime;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

#[derive(Debug, Args)]
#[command(after_help = "Start one worker per host (or several) on the same database:\n\n  \
    taskflow --db postgres://USER@HOST/DB worker --concurrency 16\n\n\
    A flow runs on one worker at a time, under a lease the worker renews. If a worker dies, \
    its flows are taken over by another once their leases expire; completed steps are never \
    run again, the step in flight runs again with the same idempotency key. Set TASKFLOW_HOST \
    to name the host a worker takes itself to be on.")]
pub struct WorkerArgs {
    /// At most this many flows run at once in this worker
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,

    /// How often to look for work when no wake-up arrives, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub poll_ms: u64,

    /// How long this worker's lease on a flow lasts unless renewed, in milliseconds: after a
    /// worker dies, another takes its flows over once their leases expire
    #[arg(long, value_name = "MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(500..))]
    pub lease_ms: u64,

    /// On shutdown, how long running steps get to reach their checkpoint, in milliseconds;
    /// then a step's commands get SIGTERM, and SIGKILL 5 s later (one that ends its work in
    /// between keeps its outcome)
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub grace_ms: u64,
}

/// How long a worker's first try at the server lasts before it says it waits.
const FIRST_WAIT: Duration = Duration::from_secs(1);

pub fn run(global: &GlobalArgs, args: &WorkerArgs) -> CliResult {
    // TASKFLOW_OWNER is not refused: people export it for their other commands.
    if global.owner_on_command_line {
        return Err(CliError::usage("--owner does not apply to `taskflow worker`")
            .with_hint("a worker runs every owner's flows; leave --owner out"));
    }
    let path = database::location(global.db.as_deref())?;
    // A server that cannot be reached at once is said so, then waited for.
    let first_try = Instant::now();
    let opened = match database::open_worker(&path, FIRST_WAIT) {
        Err(ApiError::Store(StoreError::Storage(error)))
            if error.kind == StorageErrorKind::Unavailable && first_try.elapsed() >= FIRST_WAIT =>
        {
            let wait = database::worker_wait();
            eprintln!("warning: {error}; waiting up to {} s for it", wait.as_secs());
            database::open_worker(&path, wait)?
        }
        other => other?,
    };
    let Some((taskflow, mut listener)) = opened else {
        return Err(CliError::usage(format!(
            "a worker runs the flows of a PostgreSQL database, and {} is a SQLite file",
            database::shown(&path)
        ))
        .with_hint(
            "give --db (or TASKFLOW_DB) postgres://USER@HOST/DB; `taskflow serve` runs the flows \
             of a SQLite file",
        ));
    };
    let owner = global.owner();
    let mcp = Config::load()?.mcp_settings(&path);
    let (providers, warnings) = ProviderSettings::default().factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let options = WorkerOptions {
        concurrency: args.concurrency as usize,
        sweep_every: Duration::from_millis(args.poll_ms.max(10)),
        grace: Duration::from_millis(args.grace_ms),
    };
    let (wake, wake_ups) = tokio::sync::mpsc::unbounded_channel();
    let stopped = Arc::new(AtomicBool::new(false));
    let listening = {
        let stopped = Arc::clone(&stopped);
        std::thread::spawn(move || {
            // The wake-up connection finds out first that the server is gone, and is back.
            let outage = Outage::default();
            while !stopped.load(Ordering::Acquire) {
                match listener.wait(Duration::from_millis(250)) {
                    Ok(woken) => {
                        outage.reached();
                        if woken.is_some() && wake.send(()).is_err() {
                            break;
                        }
                    }
                    Err(error) => {
                        outage.failed(&error);
                    }
                }
            }
        })
    };
    let shown = database::shown(&path);
    let result = runtime()?.block_on(async {
        let engine_options = EngineOptions {
            lease_ttl: Duration::from_millis(args.lease_ms),
            ..EngineOptions::default()
        };
        let engine = Engine::new(taskflow.bind(owner)?, Actions::builtin(), engine_options)
            .with_providers(providers)
            .with_mcp(mcp);
        let stop = crate::shutdown::shutdown();
        let line = if global.json {
            json!({ "working": shown, "concurrency": options.concurrency }).to_string()
        } else {
            format!("working on {shown} ({} at once)", options.concurrency)
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        drop(out);
        work(taskflow, engine, options, wake_ups, stop).await;
        Ok::<_, CliError>(())
    });
    stopped.store(true, Ordering::Release);
    let _ = listening.join();
    result
}
