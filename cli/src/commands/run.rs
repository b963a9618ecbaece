//! `taskflow run FILE.toml`: checks a pipeline file, creates its flow and runs it to the end
//! with the engine, showing progress on a terminal (steps done / total and the steps running)
//! and nothing extra when piped. Ctrl-C asks for a cancel and waits for it to settle. The same
//! driver runs `flows resume` and `flows fork`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taskflow_orchestrator::{
    Actions, Engine, EngineError, EngineOptions, Error, Flow, FlowId, FlowStatus, Progress,
    ProgressSink, StepStatus, pipeline,
};
use taskflow_store_sqlite::{Durability, OpenOptions};

use taskflow_orchestrator::agent::{AgentSpec, ProviderChoice};

use crate::GlobalArgs;
use crate::commands::flows::{busy_timeout, print_inspection, resolve_owner};
use crate::error::{CliError, CliResult};
use crate::provider_args::ProviderArgs;

#[derive(Debug, Args)]
#[command(after_help = "Relative file URLs and `output_dir` in the pipeline are relative to \
    the pipeline file. If the run stops (a crash, a kill), `taskflow flows resume ID` continues \
    it from its last checkpoint.")]
pub struct RunArgs {
    /// The pipeline file (TOML)
    pub file: PathBuf,

    /// Give the flow this id (a ULID); if your flow with this id exists, continue it instead
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Write the `write_file` steps' files into DIR instead of the pipeline's `output_dir`
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    #[command(flatten)]
    pub runner: RunnerArgs,

    /// The provider of the `llm` and `agent` steps: given here, it replaces the one each step
    /// names (in the flow as stored, so a resume uses it too), and the same file runs on
    /// recorded turns, Kimi or a local server
    #[command(flatten)]
    pub provider: ProviderArgs,
}

/// Options of every command that runs a flow.
#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// full: every checkpoint survives a power cut; normal: survives a crash of taskflow,
    /// faster, the last checkpoints may be lost on a power cut
    #[arg(long, value_name = "MODE", default_value = "full", value_parser = parse_durability)]
    pub durability: Durability,
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    text.parse().map_err(|error: Error| error.to_string())
}

pub fn run(global: &GlobalArgs, args: &RunArgs) -> CliResult {
    let plan = pipeline::load(&args.file, &Actions::builtin()).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        CliError::failure(lines.join("\nerror: "))
            .with_hint("nothing was run; fix the pipeline file and run it again")
    })?;
    let mut spec = plan.spec;
    if let Some(dir) = &args.output_dir {
        spec.output_dir = Some(absolute(dir)?);
    }
    let model_steps =
        spec.steps.iter_mut().filter(|step| matches!(step.action.as_str(), "llm" | "agent"));
    if args.provider.chooses_a_provider() {
        let choice = args.provider.choice()?;
        for step in model_steps {
            choose_provider(&mut step.with, &choice);
        }
    } else if let Some(variable) = &args.provider.api_key_env {
        // The steps keep their providers; the key for them comes from this variable, on a
        // resume too.
        for step in model_steps {
            if let Some(with) = step.with.as_object_mut() {
                with.insert("api_key_env".to_owned(), variable.clone().into());
            }
        }
    }
    let (providers, warnings) = args.provider.tuning_only().factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let engine = open_engine(global, &args.runner)?.with_providers(providers);
    runtime()?.block_on(async {
        let id = match &args.id {
            None => engine.create(&spec, None).await.map_err(engine_error)?.id,
            Some(text) => {
                let id: FlowId = text.parse().map_err(|_| {
                    CliError::usage(format!("--id {text} is not a flow id (a ULID)"))
                })?;
                match engine.handle().flow(&id) {
                    Ok(existing) => {
                        if existing.spec.as_ref() != Some(&spec.to_value()) {
                            return Err(CliError::failure(format!(
                                "flow {id} exists and runs another pipeline (or the file changed)"
                            ))
                            .with_hint(
                                "pick another --id, or `taskflow flows resume ID` to continue it",
                            ));
                        }
                        if existing.status.is_terminal() && existing.status != FlowStatus::Failed {
                            return report(&engine, &existing, global.json);
                        }
                        id
                    }
                    Err(Error::NotFound { .. }) => {
                        engine.create(&spec, Some(id)).await.map_err(engine_error)?.id
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        };
        drive(&engine, id, global.json).await
    })
}

/// An engine over the database of `--db` (created if missing) for the resolved owner.
pub(crate) fn open_engine(global: &GlobalArgs, runner: &RunnerArgs) -> CliResult<Engine> {
    let path = match &global.db {
        Some(path) => path.clone(),
        None => taskflow_store_sqlite::default_path()?,
    };
    let options =
        OpenOptions { durability: runner.durability, busy_timeout: busy_timeout(), create: true };
    let owner = resolve_owner(global.owner.as_deref());
    let handle = taskflow_store_sqlite::open(&path, &options)?.bind(owner)?;
    let (providers, _) = ProviderArgs::default().factory()?;
    Ok(Engine::new(handle, Actions::builtin(), EngineOptions::default()).with_providers(providers))
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

/// Points a step's `with` at `choice`: its provider, model, address, script and key variable,
/// and no other.
fn choose_provider(with: &mut serde_json::Value, choice: &ProviderChoice) {
    let Some(with) = with.as_object_mut() else { return };
    with.insert("provider".to_owned(), choice.provider.clone().into());
    let fields = [
        ("model", choice.model.clone()),
        ("base_url", choice.base_url.clone()),
        ("script", choice.script.as_ref().map(|path| path.display().to_string())),
        ("api_key_env", choice.api_key_env.clone()),
    ];
    for (key, value) in fields {
        match value {
            Some(value) => with.insert(key.to_owned(), value.into()),
            None => with.remove(key),
        };
    }
}

fn absolute(dir: &Path) -> CliResult<PathBuf> {
    std::path::absolute(dir)
        .map_err(|error| CliError::usage(format!("--output-dir {}: {error}", dir.display())))
}

/// Runs flow `id` to its end with progress and Ctrl-C handling, then reports it.
pub(crate) async fn drive(engine: &Engine, id: FlowId, json: bool) -> CliResult {
    let is_agent = engine
        .handle()
        .flow(&id)
        .ok()
        .and_then(|flow| flow.spec)
        .is_some_and(|spec| AgentSpec::from_flow_spec(&spec).is_some());
    let display = Display::new(!is_agent && !json && std::io::stderr().is_terminal());
    let sink = if is_agent { crate::commands::agent::display(json) } else { display.sink() };
    let run = engine.run_with_progress(&id, sink);
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
    let flow = result.map_err(engine_error)?;
    report(engine, &flow, json)
}

/// Prints the flow (one line, or the `flows inspect --json` document) and turns its end into
/// the exit code: 0 only when it succeeded.
fn report(engine: &Engine, flow: &Flow, json: bool) -> CliResult {
    let inspection = engine.handle().inspect(&flow.id)?;
    if json {
        print_inspection(&inspection, true);
    } else {
        let steps = &inspection.steps;
        let done = steps.iter().filter(|step| step.status == StepStatus::Succeeded).count();
        println!("flow {} {} ({done} steps done)", flow.id, flow.status);
    }
    let id = flow.id;
    match flow.status {
        FlowStatus::Succeeded => Ok(()),
        FlowStatus::Failed => Err(CliError::failure(
            flow.error.clone().unwrap_or_else(|| format!("flow {id} failed")),
        )
        .with_hint(format!("`taskflow flows resume {id}` tries the failed step again"))),
        FlowStatus::Cancelled => Err(CliError::failure(format!("flow {id} was cancelled"))),
        other => Err(CliError::failure(format!("flow {id} stopped while {other}"))
            .with_hint(format!("`taskflow flows resume {id}` continues it"))),
    }
}

/// The progress line on a terminal: `[done/total] running steps`.
struct Display {
    bar: Option<ProgressBar>,
}

/// The steps running now (with their attempt), and whether a cancel is under way.
#[derive(Default)]
struct Running {
    steps: Vec<(String, u32)>,
    cancelling: bool,
}

impl Running {
    fn message(&self) -> String {
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
            let style = ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Display { bar }
    }

    fn sink(&self) -> ProgressSink {
        let Some(bar) = self.bar.clone() else { return taskflow_orchestrator::engine::quiet() };
        let running = Mutex::new(Running::default());
        Arc::new(move |progress: &Progress| {
            let mut running = running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Reports this display does not know (new kinds of runs) leave it as it is.
            if let Progress::Started { done, total, .. } = progress {
                bar.set_length(*total as u64);
                bar.set_position(*done as u64);
            } else if let Progress::StepStarted { step, attempt, .. } = progress {
                running.steps.retain(|(name, _)| name != step);
                running.steps.push((step.clone(), *attempt));
            } else if let Progress::StepRetrying { step, attempt, error, delay } = progress {
                bar.println(format!(
                    "step {step}: attempt {attempt} failed: {error}; retrying in {} ms",
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
