//! `taskflow chat`: one model request, to check that a server and model answer and call tools
//! before an agent is run on them. The reply streams to the terminal as it arrives; tool calls
//! in it are printed, not run. With `--json`, the normalized response is one JSON document.

use std::io::{self, Write};
use std::path::PathBuf;

use futures_util::StreamExt;
use taskflow_engine::agent::{AgentToolSettings, Workspace, register_agent_tools};
use taskflow_engine::tools::Tools;
use taskflow_providers::{
    ChatEvent, ChatMessage, ChatRequest, ChatResponse, ResponseBuilder, ToolDefinition,
};

use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;
use crate::provider_args::{ProviderArgs, SamplingArgs, provider_error};

use crate::shown::{shown, shown_prose};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    taskflow chat --provider replay --script fixtures/providers/replay/weather.toml 'Weather in Beijing?'\n  \
    taskflow chat --provider vllm --model Qwen/Qwen3-32B --tools-file tools.json 'List the files'\n  \
    MOONSHOT_API_KEY=… taskflow chat --provider moonshot --json 'Hello'")]
pub struct ChatArgs {
    #[command(flatten)]
    pub provider: ProviderArgs,

    /// Built-in tools to offer the model, by name; their JSON schemas are sent
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub tools: Vec<String>,

    /// More tools to offer, from a JSON file: an array of {"name", "description", "parameters"}
    #[arg(long, value_name = "FILE")]
    pub tools_file: Option<PathBuf>,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Ask for the whole answer at once instead of streaming it
    #[arg(long)]
    pub no_stream: bool,

    /// The message to send
    pub prompt: String,
}

pub fn run(global: &GlobalArgs, args: &ChatArgs) -> CliResult {
    let (config, warnings) = args.provider.settings().config()?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let mut tools = builtin_tools(&args.tools)?;
    if let Some(path) = &args.tools_file {
        tools.extend(crate::tools_file::read(path)?);
    }
    let request = ChatRequest {
        model: String::new(),
        system: args.sampling.system.clone(),
        messages: vec![ChatMessage::User { content: args.prompt.clone() }],
        tools,
        temperature: args.sampling.temperature,
        max_tokens: args.sampling.max_tokens,
    };
    let provider = config.build().map_err(|error| provider_error(error, &config))?;
    let live = !global.json && !args.no_stream;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::failure(format!("cannot start the async runtime: {error}")))?;
    let response = runtime
        .block_on(async {
            if args.no_stream {
                return provider.complete(&request).await;
            }
            let mut stream = provider.stream(&request).await?;
            let mut response = ResponseBuilder::new();
            let mut out = io::stdout().lock();
            while let Some(event) = stream.next().await {
                let event = event?;
                if live {
                    show_live(&mut out, &event);
                }
                response.apply(event);
            }
            Ok(response.finish())
        })
        .map_err(|error| provider_error(error, &config))?;
    if global.json {
        let json = serde_json::to_string_pretty(&response)
            .map_err(|error| CliError::failure(format!("cannot encode the response: {error}")))?;
        println!("{json}");
    } else {
        show_summary(&response, !live);
    }
    Ok(())
}

/// Text and reasoning as they arrive: text on stdout, reasoning on stderr.
fn show_live(out: &mut impl Write, event: &ChatEvent) {
    use taskflow_parsers::StreamEvent;
    match event {
        ChatEvent::Message(StreamEvent::TextDelta { text }) => {
            let _ = out.write_all(shown_prose(text).as_bytes());
            let _ = out.flush();
        }
        ChatEvent::Message(StreamEvent::ReasoningDelta { text }) => {
            eprint!("{}", shown_prose(text));
        }
        _ => {}
    }
}

/// What was not shown live: the content (when not streamed), the tool calls, the diagnostics,
/// and one line of usage.
fn show_summary(response: &ChatResponse, with_content: bool) {
    let message = &response.message;
    if with_content {
        if let Some(reasoning) = &message.reasoning {
            eprintln!("{}", shown_prose(reasoning));
        }
        if let Some(content) = &message.content {
            print!("{}", shown_prose(content));
        }
    }
    if message.content.as_deref().is_some_and(|content| !content.ends_with('\n')) {
        println!();
    }
    for (index, call) in message.tool_calls.iter().enumerate() {
        println!("tool call {index}: {} (id {})", shown(&call.function.name), shown(&call.id));
        println!("  {}", shown(&call.function.arguments));
    }
    for diagnostic in &message.diagnostics {
        let call = diagnostic.call_index.map(|index| format!("call {index}: ")).unwrap_or_default();
        eprintln!("warning: {call}{}: {}", diagnostic.kind, diagnostic.message);
    }
    let finish = response
        .finish_reason
        .as_ref()
        .map(|reason| {
            serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let usage = response.usage.map_or(String::new(), |usage| {
        format!(
            " · tokens: {} prompt + {} completion",
            usage.prompt_tokens, usage.completion_tokens
        )
    });
    eprintln!("finish: {finish}{usage}");
}

/// The definitions of built-in tools named on the command line: the agent's tools
/// (`read_file`, `list_dir`, `write_file`, `fetch_url`, `run_command`) and the pipeline tools.
fn builtin_tools(names: &[String]) -> CliResult<Vec<ToolDefinition>> {
    let mut tools = Tools::builtin();
    let here = Workspace::new(".")
        .map_err(|error| CliError::failure(format!("cannot use the current folder: {error}")))?;
    register_agent_tools(
        &mut tools,
        &AgentToolSettings { workspace: here, allowed_commands: vec![] },
    );
    names
        .iter()
        .filter(|name| !name.trim().is_empty())
        .map(|name| {
            let tool = tools.get(name.trim()).ok_or_else(|| {
                CliError::usage(format!("unknown tool `{name}`")).with_hint(format!(
                    "built-in tools: {}; for others, describe them in --tools-file",
                    tools.names().join(", ")
                ))
            })?;
            Ok(ToolDefinition {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            })
        })
        .collect()
}
