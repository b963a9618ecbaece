//! `taskflow agent`: an agent run as a durable flow. The model's turns and the tool calls are
//! checkpointed steps, so a run that is killed continues with `taskflow flows resume ID`
//! without asking the model again for a turn it already answered.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use taskflow_orchestrator::agent::{AgentEvent, AgentSpec, DEFAULT_MAX_TURNS};
use taskflow_orchestrator::{Progress, ProgressSink};

use crate::GlobalArgs;
use crate::commands::run::{RunnerArgs, drive, engine_error, open_engine, runtime};
use crate::config::Config;
use crate::error::{CliError, CliResult};
use crate::provider_args::{ProviderArgs, SamplingArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    taskflow agent --provider replay --script examples/agent/kimi-turns.toml \\\n      \
    --workspace examples/agent/workspace 'What is left to do in this project?'\n  \
    KIMI_API_KEY=… taskflow agent --provider kimi-code --workspace . --allow-command ls,cargo 'Why does the build fail?'\n\n\
    The tools are read_file, list_dir, write_file (inside --workspace), fetch_url and run_command \
    (only the programs of --allow-command). If the run stops, `taskflow flows resume ID` continues it.")]
pub struct AgentArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,

    /// The tools to offer, by name [default: all: read_file, list_dir, write_file, fetch_url,
    /// run_command]
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub tools: Vec<String>,

    /// The folder the file tools are confined to
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,

    /// Programs run_command may start (by name) [default: the config file's, else none]
    #[arg(long = "allow-command", value_delimiter = ',', value_name = "PROGRAM,…")]
    pub allow_commands: Vec<String>,

    /// The most model turns; a run still calling tools after that many fails [default: the
    /// config file's, else 20]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_turns: Option<u32>,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    #[command(flatten)]
    pub runner: RunnerArgs,

    /// What to ask the agent
    pub prompt: String,
}

pub fn run(global: &GlobalArgs, args: &AgentArgs) -> CliResult {
    let (factory, warnings) = args.provider.factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let defaults = Config::load()?.defaults;
    let allowed_commands = if args.allow_commands.is_empty() {
        defaults.allow_commands
    } else {
        args.allow_commands.clone()
    };
    let workspace = args.workspace.canonicalize().map_err(|error| {
        CliError::failure(format!("--workspace {}: {error}", args.workspace.display()))
    })?;
    let spec = AgentSpec {
        name: flow_name(&args.prompt),
        prompt: args.prompt.clone(),
        system: args.sampling.system.clone(),
        provider: args.provider.choice()?,
        tools: args
            .tools
            .iter()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect(),
        workspace,
        allowed_commands,
        max_turns: args.max_turns.or(defaults.max_turns).unwrap_or(DEFAULT_MAX_TURNS),
        max_tokens: args.sampling.max_tokens,
        temperature: args.sampling.temperature,
    };
    let engine = open_engine(global, &args.runner)?.with_providers(factory);
    runtime()?.block_on(async {
        let flow = engine.create_agent(&spec, None).await.map_err(engine_error)?;
        if !global.json {
            eprintln!("flow {}", flow.id);
        }
        drive(&engine, flow.id, global.json).await
    })
}

/// A flow name from the prompt: its first line, shortened.
fn flow_name(prompt: &str) -> String {
    let line = prompt.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("agent: {}…", &line[..at]),
        None => format!("agent: {line}"),
    }
}

/// What an agent run shows as it goes: the model's text on stdout as it streams (reasoning on
/// stderr), and one line on stderr per tool call and per result. Nothing with `--json`.
pub(crate) fn display(json: bool) -> ProgressSink {
    if json {
        return taskflow_orchestrator::engine::quiet();
    }
    // Whether the last text printed left the line open.
    let open_line = Mutex::new(false);
    Arc::new(move |progress: &Progress| {
        let mut open = open_line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let close_line = |open: &mut bool| {
            if std::mem::take(open) {
                println!();
            }
        };
        match progress {
            Progress::Agent(AgentEvent::Text { text, reasoning: false }) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                *open = !text.ends_with('\n');
            }
            Progress::Agent(AgentEvent::Text { text, reasoning: true }) => eprint!("{text}"),
            Progress::Agent(AgentEvent::ToolCall { name, arguments, .. }) => {
                close_line(&mut open);
                eprintln!("→ {name} {}", one_line(arguments, 120));
            }
            Progress::Agent(AgentEvent::ToolResult { name, content, is_error, .. }) => {
                let summary = if *is_error {
                    one_line(content, 160)
                } else {
                    let lines = content.lines().count();
                    format!("{lines} line(s), {} bytes: {}", content.len(), one_line(content, 80))
                };
                eprintln!("← {name}: {summary}");
            }
            Progress::StepFinished { .. } | Progress::Cancelling => close_line(&mut open),
            _ => {}
        }
    })
}

/// `text` on one line, cut to about `limit` characters.
fn one_line(text: &str, limit: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}
