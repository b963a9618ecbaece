//! `taskflow agent`: an agent run as a durable flow. The model's turns and the tool calls are
//! checkpointed steps, so a run that is killed continues with `taskflow flows resume ID`
//! without asking the model again for a turn it already answered. `--ask` and `--deny` (or the
//! config file's `[approvals]`) set which tools wait for a person's decision and which never
//! run. `--budget-tokens` and `--budget-cost` cap what the run may spend (the price of its
//! model from the config file's `[prices."MODEL"]` is stored with it); a spent budget leaves the
//! flow `blocked` before the next model call. `--mcp` adds the tools of MCP servers of the config
//! file. (`--max-tokens` is the per-answer limit every command that asks a model shares.)

use std::path::PathBuf;

use taskflow_api::Config;
use taskflow_engine::agent::{AgentSpec, Approvals, Budget, DEFAULT_MAX_TURNS};

use crate::drive::{Origin, RunnerArgs, drive, engine_error, open_engine, runtime};
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::provider_args::{ProviderArgs, SamplingArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    taskflow agent --provider replay --script examples/agent/kimi-turns.toml \\\n      \
    --workspace examples/agent/workspace 'What is left to do in this project?'\n  \
    KIMI_API_KEY=… taskflow agent --provider kimi-code --workspace . --allow-command ls,cargo 'Why does the build fail?'\n\n\
    The tools are read_file, list_dir, write_file (inside --workspace), fetch_url and run_command \
    (only the programs of --allow-command), and with --mcp the tools of MCP servers (`taskflow mcp \
    list` shows them). A call of an --ask tool waits for \
    `taskflow flows approve ID`, in the foreground or, with --detach, after this command exits. \
    If the run stops, `taskflow flows resume ID` continues it.")]
pub struct AgentArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,

    /// The tools to offer, by name [default: all: read_file, list_dir, write_file, fetch_url,
    /// run_command]
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub tools: Vec<String>,

    /// MCP servers of the config file's [mcp_servers] whose tools are offered too, as
    /// NAME__TOOL; each is started (or reached) before the first model call, its stderr goes
    /// to mcp-logs/NAME.log beside the database, and it is shut down when the run ends
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub mcp: Vec<String>,

    /// The folder the file tools are confined to
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,

    /// Programs run_command may start (by name) [default: the config file's, else none]
    #[arg(long = "allow-command", value_delimiter = ',', value_name = "PROGRAM,…")]
    pub allow_commands: Vec<String>,

    /// Tools whose calls wait for a person's decision (`taskflow flows approve`) [default: the
    /// config file's [approvals] ask]
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub ask: Vec<String>,

    /// Tools never run: the model reads "denied: denied by policy" [default: the config file's
    /// [approvals] deny]
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub deny: Vec<String>,

    /// The most model turns; a run still calling tools after that many fails [default: the
    /// config file's, else 20]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_turns: Option<u32>,

    /// Stop before the next model call once the run has used N tokens (input and output);
    /// the flow is then `blocked` until `taskflow flows resume ID --max-tokens N` raises it
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_tokens: Option<u64>,

    /// Stop before the next model call once the run has cost USD dollars, at the model's
    /// price in the config file ([prices."MODEL"]); `flows resume ID --max-cost USD` raises it
    #[arg(long, value_name = "USD", value_parser = parse_dollars)]
    pub budget_cost: Option<f64>,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    #[command(flatten)]
    pub runner: RunnerArgs,

    /// What to ask the agent
    pub prompt: String,
}

pub fn run(global: &GlobalArgs, args: &AgentArgs) -> CliResult {
    let settings = args.provider.settings();
    let (factory, warnings) = settings.factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let config = Config::load()?;
    let defaults = config.defaults;
    let names = |given: &[String], configured: Vec<String>| -> Vec<String> {
        let given = trimmed(given);
        if given.is_empty() { configured } else { given }
    };
    let approvals = Approvals {
        ask: names(&args.ask, config.approvals.ask),
        deny: names(&args.deny, config.approvals.deny),
    };
    let allowed_commands = if args.allow_commands.is_empty() {
        defaults.allow_commands
    } else {
        args.allow_commands.clone()
    };
    let workspace = args.workspace.canonicalize().map_err(|error| {
        CliError::failure(format!("--workspace {}: {error}", args.workspace.display()))
    })?;
    let (provider_config, _) = settings.config()?;
    let budget = Budget { max_tokens: args.budget_tokens, max_cost: args.budget_cost };
    let price = config.prices.get(&provider_config.model).copied();
    budget.check_price(price, &provider_config.model).map_err(CliError::usage)?;
    let spec = AgentSpec {
        name: flow_name(&args.prompt),
        prompt: args.prompt.clone(),
        system: args.sampling.system.clone(),
        provider: settings.choice()?,
        tools: trimmed(&args.tools),
        mcp: trimmed(&args.mcp),
        workspace,
        allowed_commands,
        max_turns: args.max_turns.or(defaults.max_turns).unwrap_or(DEFAULT_MAX_TURNS),
        max_tokens: args.sampling.max_tokens,
        temperature: args.sampling.temperature,
        approvals,
        budget,
        price,
    };
    let engine = open_engine(global, &args.runner)?.with_providers(factory);
    runtime()?.block_on(async {
        let (flow, lease) = engine.create_agent_held(&spec, None).await.map_err(engine_error)?;
        if !global.json {
            eprintln!("flow {}", flow.id);
        }
        drive(&engine, flow.id, global.json, args.runner.detach, Origin::Held(lease)).await
    })
}

/// The names given, trimmed, without empty ones (`--tools a,,b`).
fn trimmed(names: &[String]) -> Vec<String> {
    names.iter().map(|name| name.trim().to_owned()).filter(|name| !name.is_empty()).collect()
}

/// A budget in dollars: a finite amount above zero.
pub(crate) fn parse_dollars(text: &str) -> Result<f64, String> {
    match text.trim().trim_start_matches('$').parse::<f64>() {
        Ok(dollars) if dollars.is_finite() && dollars > 0.0 => Ok(dollars),
        _ => Err(format!("`{text}` is no amount of dollars above zero (for example 0.50)")),
    }
}

/// A flow name from the prompt: its first line, shortened.
fn flow_name(prompt: &str) -> String {
    let line = prompt.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("agent: {}…", &line[..at]),
        None => format!("agent: {line}"),
    }
}
