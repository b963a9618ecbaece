//! `taskflow run FILE.toml`: checks a pipeline file, creates its flow (or finds the one with
//! the same `--id` and pipeline) and runs it to the end with the run driver. `--budget-tokens`
//! and `--budget-cost` set the pipeline's budget (its `[budget]`) before the flow is created;
//! with a cost budget, the price of each model step's model is read from the config file and
//! stored with the flow.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;
use taskflow_api::{
    Hold, Submitted, create_or_continue, documents, override_model_steps, prepare_model_steps,
};
use taskflow_engine::{Flow, FlowId, FlowStatus, Timestamp, builtin_actions, pipeline};

use crate::drive::{Origin, RunnerArgs, drive, open_engine, report, runtime};
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::provider_args::ProviderArgs;

#[derive(Debug, Args)]
#[command(after_help = "Relative file URLs and `output_dir` in the pipeline are relative to \
    the pipeline file. If the run stops (a crash, a kill), `taskflow flows resume ID` continues \
    it from its last checkpoint.")]
pub struct RunArgs {
    /// The pipeline file (TOML)
    pub file: PathBuf,

    /// Give the flow this id: 1 to 128 letters, digits and . _ : @ - (a ULID when left out).
    /// If your flow with this id exists and runs this pipeline, continue it instead (a failed one
    /// from the step that failed; one that ended otherwise is only reported); one that
    /// runs another pipeline is refused
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Create the flow queued and exit: a running `taskflow serve` or `taskflow worker` (or a
    /// later `flows resume`) runs it, with its own request settings and durability
    #[arg(long, conflicts_with_all = [
        "detach", "durability", "attempts", "connect_timeout_ms", "read_timeout_ms",
    ])]
    pub queue: bool,

    /// Write the `write_file` steps' files into DIR instead of the pipeline's `output_dir`
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Stop before the next model call once the pipeline's `llm` steps and its agents' turns
    /// have used N tokens in all (in place of the file's `[budget] max_tokens`); the flow is
    /// then `blocked` until `taskflow flows resume ID --max-tokens N` raises it
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_tokens: Option<u64>,

    /// Stop before the next model call once the pipeline's `llm` steps and its agents' turns
    /// have cost USD dollars in all (in place of the file's `[budget] max_cost_usd`), each call
    /// at the price of its step's model in the config file ([prices."MODEL"], stored with the
    /// flow); raised by `taskflow flows resume ID --max-cost USD`
    #[arg(long, value_name = "USD", value_parser = crate::commands::agent::parse_dollars)]
    pub budget_cost: Option<f64>,

    #[command(flatten)]
    pub runner: RunnerArgs,

    /// The provider of the `llm` and `agent` steps: given here, it replaces the one each step
    /// names (in the flow as stored, so a resume uses it too), and the same file runs on
    /// recorded turns, Kimi or a local server
    #[command(flatten)]
    pub provider: ProviderArgs,
}

pub fn run(global: &GlobalArgs, args: &RunArgs) -> CliResult {
    let plan = pipeline::load(&args.file, &builtin_actions()).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        CliError::failure(lines.join("\nerror: "))
            .with_hint("nothing was run; fix the pipeline file and run it again")
    })?;
    let mut spec = plan.spec;
    if let Some(dir) = &args.output_dir {
        spec.output_dir = Some(absolute(dir)?);
    }
    if let Some(max) = args.budget_tokens {
        spec.budget.max_tokens = Some(max);
    }
    if let Some(max) = args.budget_cost {
        spec.budget.max_cost = Some(max);
    }
    let settings = args.provider.settings();
    override_model_steps(&mut spec, &settings)?;
    prepare_model_steps(&mut spec)?;
    let (providers, warnings) = settings.tuning_only().factory()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let id = match &args.id {
        Some(text) => {
            Some(FlowId::parse(text).map_err(|error| CliError::usage(format!("--id: {error}")))?)
        }
        None => None,
    };
    let engine = open_engine(global, &args.runner)?.with_providers(providers);
    runtime()?.block_on(async {
        let hold = if args.queue { Hold::Queue } else { Hold::ToRun };
        let submitted = create_or_continue(&engine, &spec, id, None, hold).await?;
        if args.queue {
            return queued(submitted.flow(), global.json);
        }
        let (flow, origin) = match submitted {
            Submitted::Held(flow, lease) => (flow, Origin::Held(lease)),
            Submitted::Existing(flow)
                if flow.status.is_terminal() && flow.status != FlowStatus::Failed =>
            {
                return report(&engine, &flow, global.json);
            }
            Submitted::Created(flow) | Submitted::Existing(flow) => (flow, Origin::Asked),
        };
        drive(&engine, flow.id, global.json, args.runner.detach, origin).await
    })
}

/// `--queue`: the flow's id (or its document), and nothing run.
fn queued(flow: &Flow, json: bool) -> CliResult {
    if json {
        let document = documents::flow(flow, None, Timestamp::now());
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "flow": document })).unwrap_or_default()
        );
    } else {
        println!("flow {} {}", flow.id, flow.status);
    }
    Ok(())
}

fn absolute(dir: &Path) -> CliResult<PathBuf> {
    std::path::absolute(dir)
        .map_err(|error| CliError::usage(format!("--output-dir {}: {error}", dir.display())))
}
