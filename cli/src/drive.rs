//! The run driver of every command that runs a flow (`run`, `agent`, `flows resume`, `flows
//! fork`): it opens the engine, runs the flow to its end showing progress on a terminal (steps
//! done / total and the steps running; an agent's text as it streams) and nothing extra when
//! piped, turns Ctrl-C into a cancel it waits for, and reports how the flow ended as the exit
//! code. A flow that waits (a timer, a signal) holds no lease: the driver waits in the
//! foreground until it is due and runs it on, or, when another runner (serve, a worker) takes
//! it meanwhile, follows it to its end; with `--detach` it returns as soon as the flow waits (an
//! agent's call that waits for approval, most of all), printing what it waits for. Killed while
//! it waits, the flow stays `waiting`; serve, a worker or `flows resume` continues it.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskflow_api::{Config, Durability, ProviderSettings, database};
use taskflow_engine::agent::AgentSpec;
use taskflow_engine::tools::budget::turns_in_force;
use taskflow_engine::{
    Actions, Engine, EngineError, EngineOptions, Flow, FlowId, FlowStatus, Lease, Progress,
    ProgressSink, RunControl, StepKind, StepStatus,
};

use crate::agent_display;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::render;

/// How durable checkpoints are, for every command that runs flows.
#[derive(Debug, Args)]
pub struct DurabilityArgs {
    /// full: every checkpoint survives a power cut; normal: survives a crash of taskflow,
    /// faster, the last checkpoints may be lost on a power cut
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = parse_durability)]
    pub durability: Durability,
}

/// Options of every command that runs a flow in the foreground.
#[derive(Debug, Args)]
pub struct RunnerArgs {
    #[command(flatten)]
    pub checkpoints: DurabilityArgs,

    /// Once the flow waits (a timer, a signal, a tool call waiting for approval), exit with
    /// its id instead of waiting in the foreground; serve, a worker (on PostgreSQL) or `flows
    /// resume` continues it
    #[arg(long)]
    pub detach: bool,
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    text.parse().map_err(|error: taskflow_engine::Error| error.to_string())
}

/// An engine over the database of `--db` (created if missing) for the resolved owner, with the
/// config file's MCP servers (their logs beside the database).
pub(crate) fn open_engine(global: &GlobalArgs, runner: &RunnerArgs) -> CliResult<Engine> {
    engine_with(global, runner.checkpoints.durability)
}

/// An engine for the command's owner, its checkpoints `durability`.
pub(crate) fn engine_with(global: &GlobalArgs, durability: Durability) -> CliResult<Engine> {
    let path = database::location(global.db.as_deref())?;
    let handle = database::open_for_running(&path, durability)?.bind(global.owner())?;
    let (providers, _) = ProviderSettings::default().factory()?;
    let mcp = Config::load()?.mcp_settings(&path);
    Ok(Engine::new(handle, Actions::builtin(), EngineOptions::default())
        .with_providers(providers)
        .with_mcp(mcp))
}

pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|error| CliError::failure(format!("cannot start the async runtime: {error}")))
}

pub(crate) fn engine_error(error: EngineError) -> CliError {
    match error {
        EngineError::Store(error) => error.into(),
        other => CliError::failure(other.to_string()),
    }
}

/// Whether the flow a command runs is one it just made and holds the lease of (a run, a fork,
/// an agent, a resume that raised a budget), so that no other runner (a worker, serve) takes it
/// first; or one it was asked to run on (a resume), which another runner must not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Held(Lease),
    Asked,
}

/// Runs flow `id` to its end (or, `detach`ed, until it waits) with progress and Ctrl-C
/// handling, then reports it.
pub(crate) async fn drive(
    engine: &Engine,
    id: FlowId,
    json: bool,
    detach: bool,
    origin: Origin,
) -> CliResult {
    let is_agent = engine
        .handle()
        .flow(&id)
        .ok()
        .and_then(|flow| flow.spec)
        .is_some_and(|spec| AgentSpec::from_flow_spec(&spec).is_some());
    let display = Display::new(!is_agent && !json && std::io::stderr().is_terminal());
    let sink = if is_agent { agent_display::sink(json) } else { display.sink() };
    let run = run_on(engine, &id, sink, detach, origin);
    tokio::pin!(run);
    let mut interrupted = false;
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            signal = tokio::signal::ctrl_c() => {
                if signal.is_err() {
                    break run.await;
                }
                if interrupted {
                    display.finish();
                    return Err(CliError::failure(format!(
                        "interrupted again: flow {id} has a cancel request and is left as it is"
                    ))
                    .with_hint(format!("`taskflow flows resume {id}` finishes the cancel")));
                }
                interrupted = true;
                display.note("cancelling (Ctrl-C again to stop waiting)");
                engine.cancel(&id).await.map_err(engine_error)?;
            }
        }
    };
    display.finish();
    let flow = result.map_err(|error| run_error(error, &id))?;
    report(engine, &flow, json)
}

/// A run that stopped on an error. When the storage failed under it (a full disk, an I/O error,
/// a file made read-only, a server gone), or another process held the database past the wait
/// for it, the hint names the fix and the flow to resume after it. The database opened when the
/// run began, so one that cannot be reached now went away meanwhile: the error says so, not
/// that it cannot be opened.
fn run_error(error: EngineError, id: &FlowId) -> CliError {
    use taskflow_engine::StorageErrorKind as Kind;
    let storage = match &error {
        EngineError::Store(taskflow_engine::Error::Storage(storage)) => Some(storage),
        _ => None,
    };
    let on_postgres = storage
        .is_some_and(|storage| database::postgres_url(Path::new(&storage.database)).is_some());
    let fix = match storage.map(|storage| storage.kind) {
        Some(Kind::Full) => "free space on the disk that holds it",
        Some(Kind::ReadOnly) => "make the database writable again (or put it back)",
        Some(Kind::Locked) => {
            "let the process that holds the database finish (the run waited for it \
             TASKFLOW_BUSY_TIMEOUT_MS)"
        }
        Some(Kind::Unavailable) if on_postgres => {
            "check that the PostgreSQL server runs and takes connections"
        }
        Some(Kind::Unavailable) => "check the database file, its folder and their permissions",
        Some(kind) if kind.is_fault() => {
            "check the disk that holds it (the system log names the device)"
        }
        _ => return engine_error(error),
    };
    let cli = match storage {
        Some(storage) if storage.kind == Kind::Unavailable => CliError::failure(format!(
            "the flow database {} could not be reached: {}",
            storage.database, storage.detail
        )),
        _ => engine_error(error),
    };
    cli.with_hint(format!(
        "{fix}, then `taskflow flows resume {id}` continues from its last checkpoint"
    ))
}

/// How often a waiting flow is looked at.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Runs flow `id` until it ends (under the lease `origin` holds, if it holds one): each time it
/// waits, waits until it is due and runs it again (unless `detach`ed: then it returns the
/// waiting flow); if another runner holds it by then, follows it to its end instead.
async fn run_on(
    engine: &Engine,
    id: &FlowId,
    sink: ProgressSink,
    detach: bool,
    origin: Origin,
) -> Result<Flow, EngineError> {
    let mut flow = match origin {
        Origin::Held(lease) => {
            engine.run_claimed(lease, Arc::clone(&sink), RunControl::default()).await?
        }
        Origin::Asked => engine.run_with_progress(id, Arc::clone(&sink)).await?,
    };
    loop {
        if flow.status != FlowStatus::Waiting || detach {
            return Ok(flow);
        }
        let seen = loop {
            tokio::time::sleep(WAIT_POLL).await;
            let now = taskflow_engine::Timestamp::now();
            let seen = read_flow(engine, id).await?;
            if seen.status != FlowStatus::Waiting || seen.wake_at.is_some_and(|at| at <= now) {
                break seen;
            }
        };
        flow = match seen.status {
            FlowStatus::Waiting => match engine.run_with_progress(id, Arc::clone(&sink)).await {
                Err(EngineError::Store(taskflow_engine::Error::LeaseHeld { .. })) => {
                    follow(engine, id).await?
                }
                other => other?,
            },
            status if status.is_terminal() => seen,
            // Another runner took it (serve): it runs there; this process follows it.
            _ => follow(engine, id).await?,
        };
    }
}

/// Waits for a flow another runner drives until it ends, waits again or is blocked.
async fn follow(engine: &Engine, id: &FlowId) -> Result<Flow, EngineError> {
    loop {
        tokio::time::sleep(WAIT_POLL).await;
        let flow = read_flow(engine, id).await?;
        // Anything but queued or running needs no more of the runner that has it: an end, a
        // wait, or a block that only a user lifts.
        if !matches!(flow.status, FlowStatus::Queued | FlowStatus::Running) {
            return Ok(flow);
        }
    }
}

/// The flow as stored now, without its spec.
async fn read_flow(engine: &Engine, id: &FlowId) -> Result<Flow, EngineError> {
    let (handle, read) = (engine.handle().clone(), id.clone());
    let read = tokio::task::spawn_blocking(move || handle.flow_without_spec(&read)).await;
    read.unwrap_or_else(|_| Err(taskflow_engine::Error::NotFound { id: id.to_string() }))
        .map_err(EngineError::Store)
}

/// Prints the flow (one line, or the `flows inspect --json` document) and turns its end into
/// the exit code: 0 only when it succeeded, or when it waits after a `--detach` (then what it
/// waits for is said on stderr).
pub(crate) fn report(engine: &Engine, flow: &Flow, json: bool) -> CliResult {
    let inspection = engine.handle().inspect(&flow.id)?;
    if json {
        render::inspection(&inspection, true);
    } else {
        let (done, _) = taskflow_api::documents::step_counts(&inspection.flow, &inspection.steps);
        // The flow's end, not whether anyone still reads, decides the exit code.
        let _ = writeln!(std::io::stdout(), "flow {} {} ({done} steps done)", flow.id, flow.status);
    }
    let id = &flow.id;
    match flow.status {
        FlowStatus::Succeeded => Ok(()),
        FlowStatus::Failed => {
            let step_failed = inspection.steps.iter().any(|step| step.status == StepStatus::Failed);
            let agent = (inspection.flow.spec.as_ref())
                .and_then(AgentSpec::from_flow_spec)
                .and_then(Result::ok);
            let hint = if step_failed {
                Some(format!("`taskflow flows resume {id}` tries the failed step again"))
            } else if let Some(agent) = agent {
                // An agent run ends failed with no failed step when it used its turns (a rule
                // of its own: more turns go on), or when it cannot start its next turn as it is
                // (an MCP server it cannot use, a policy naming no tool of one): that error
                // says what to mend, and whether a resume then goes on.
                let turns = inspection.steps.iter().filter(|step| {
                    step.kind == StepKind::Llm && step.status == StepStatus::Succeeded
                });
                let limit = turns_in_force(agent.max_turns, inspection.flow.state.as_ref());
                (turns.count() >= limit as usize).then(|| {
                    format!("`taskflow flows resume {id} --max-turns N` goes on with more turns")
                })
            } else {
                Some(format!(
                    "no step of it failed, so `taskflow flows resume {id}` would end the same way"
                ))
            };
            let error = CliError::failure(
                flow.error.clone().unwrap_or_else(|| format!("flow {id} failed")),
            );
            Err(match hint {
                Some(hint) => error.with_hint(hint),
                None => error,
            })
        }
        FlowStatus::Cancelled => Err(CliError::failure(format!("flow {id} was cancelled"))),
        FlowStatus::Waiting => {
            if !json {
                for line in render::waiting_lines(flow) {
                    eprintln!("{}", crate::shown::shown(&line));
                }
            }
            Ok(())
        }
        // Its error says why (a spent budget, a storage fault) and how to go on.
        FlowStatus::Blocked if flow.error.is_some() => Err(CliError::failure(format!(
            "flow {id} is blocked: {}",
            flow.error.clone().unwrap_or_default()
        ))),
        other => Err(CliError::failure(format!("flow {id} stopped while {other}"))
            .with_hint(format!("`taskflow flows resume {id}` continues it"))),
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// The progress line on a terminal: `[done/total] running steps`.
struct Display {
    bar: Option<ProgressBar>,
}

/// The steps running now (with their attempt), whether a cancel is under way, and what the flow
/// waits for while it waits.
#[derive(Default)]
struct Running {
    steps: Vec<(String, u32)>,
    cancelling: bool,
    waiting: Option<String>,
}

/// `waiting until T` / `waiting for signal S`, as the progress line says it.
fn waiting_text(until: Option<taskflow_engine::Timestamp>, signals: &[String]) -> String {
    let signals = signals.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    match (until, signals.is_empty()) {
        (Some(until), true) => format!("waiting until {until}"),
        (Some(until), false) => format!("waiting for signal {signals} or until {until}"),
        (None, false) => format!("waiting for signal {signals}"),
        (None, true) => "waiting".to_owned(),
    }
}

impl Running {
    fn message(&self) -> String {
        if let Some(waiting) = &self.waiting {
            return waiting.clone();
        }
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(step, attempt)| match attempt {
                1 => step.clone(),
                n => format!("{step} (attempt {n})"),
            })
            .collect();
        let prefix = if self.cancelling { "cancelling… " } else { "" };
        format!("{prefix}{}", steps.join(", "))
    }
}

impl Display {
    fn new(visible: bool) -> Display {
        let bar = visible.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            // Counts only once the run says how many steps it has: `[0/0]` until then.
            bar.set_style(style("{spinner} {wide_msg}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Display { bar }
    }

    fn sink(&self) -> ProgressSink {
        let Some(bar) = self.bar.clone() else { return taskflow_engine::engine::quiet() };
        let running = Mutex::new(Running::default());
        Arc::new(move |progress: &Progress| {
            let mut running = running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Reports this display does not know (new kinds of runs) leave it as it is.
            if let Progress::Started { done, total, .. } = progress {
                bar.set_style(style("{spinner} [{pos}/{len}] {wide_msg}"));
                bar.set_length(*total as u64);
                bar.set_position(*done as u64);
                running.waiting = None;
            } else if let Progress::StepStarted { step, attempt, .. } = progress {
                running.waiting = None;
                running.steps.retain(|(name, _)| name != step);
                running.steps.push((step.clone(), *attempt));
            } else if let Progress::StepRetrying { step, attempt, error, delay } = progress {
                bar.println(format!(
                    "step {step}: attempt {attempt} failed: {}; retrying in {} ms",
                    crate::shown::shown(&error.to_string()),
                    delay.as_millis()
                ));
            } else if let Progress::StepFinished { step, done, status, .. } = progress {
                running.steps.retain(|(name, _)| name != step);
                bar.set_position(*done as u64);
                if *status == StepStatus::Failed {
                    bar.println(format!("step {step} failed"));
                }
            } else if let Progress::Cancelling = progress {
                running.cancelling = true;
            } else if let Progress::Waiting { until, signals } = progress {
                running.steps.clear();
                running.waiting = Some(waiting_text(*until, signals));
            }
            bar.set_message(running.message());
        })
    }

    fn note(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.println(text);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_engine::{Error, StorageError, StorageErrorKind as Kind};

    const RESUME: &str = "then `taskflow flows resume nightly` continues from its last checkpoint";

    fn run_stopped_by(kind: Kind, database: &str, detail: &str) -> CliError {
        let error = StorageError::new(kind, database, detail);
        run_error(EngineError::Store(Error::Storage(error)), &FlowId::parse("nightly").unwrap())
    }

    #[test]
    fn a_run_whose_server_went_away_says_it_could_not_be_reached_and_how_to_go_on() {
        let error = run_stopped_by(
            Kind::Unavailable,
            "postgres://taskflow@db.internal/flows",
            "Connection refused (tried for 5.0 s)",
        );
        assert_eq!(error.exit_code(), crate::error::EXIT_FAILURE);
        assert_eq!(
            error.to_string(),
            "the flow database postgres://taskflow@db.internal/flows could not be reached: \
             Connection refused (tried for 5.0 s)"
        );
        assert_eq!(
            error.hint(),
            Some(
                format!("check that the PostgreSQL server runs and takes connections, {RESUME}")
                    .as_str()
            )
        );

        let file = run_stopped_by(Kind::Unavailable, "/data/flows.db", "unable to open");
        assert_eq!(
            file.to_string(),
            "the flow database /data/flows.db could not be reached: unable to open"
        );
        assert!(file.hint().unwrap().ends_with(RESUME), "{:?}", file.hint());
    }

    #[test]
    fn a_run_stopped_by_a_storage_fault_says_what_to_fix_and_which_flow_to_resume() {
        for kind in [Kind::Full, Kind::Io, Kind::ReadOnly, Kind::Corrupt, Kind::Locked] {
            let error = run_stopped_by(kind, "/data/flows.db", "disk I/O error");
            assert!(error.hint().unwrap().ends_with(RESUME), "{kind:?}: {:?}", error.hint());
            assert!(!error.to_string().contains("could not be reached"), "{kind:?}: {error}");
        }
        let raced = run_stopped_by(Kind::Conflict, "/data/flows.db", "raced");
        assert_eq!(raced.hint(), None);
    }
}
