//! `agent`: an agent run (DESIGN §5 "Agent runs") as a step of a pipeline. The step spawns the
//! agent as a child flow of the pipeline's flow and runs it to its end through
//! [`StepContext::children`]; the step's output is the agent's final answer.
//!
//! `with`: `prompt` (a template over earlier outputs), optional `system`, `provider`, `model`,
//! `base_url`, `script` (the provider left out is the provider factory's default, as for
//! `llm`), `tools` (names; all the agent tools when left out), `mcp` (names of MCP servers
//! of the config file's `[mcp_servers]`, whose tools are offered as `NAME__TOOL`), `workspace` (the folder the file
//! tools are confined to; the pipeline's folder when left out), `allow_commands` (programs
//! `run_command` may start), `max_turns`, `max_tokens`, `temperature`, `name` (the child
//! flow's name; `STEP (agent)` when left out), `ask` (each call of these tools waits for a
//! person's decision), `deny` (tools never run: the model reads that they were denied).
//! Relative `script` and `workspace` paths resolve against the pipeline's folder.
//!
//! A child that waits for a decision about a call leaves the step waiting for the child
//! ([`Wait::child`]): the pipeline's flow waits too, without a lease, until the call is decided
//! (`taskflow flows approve CHILD`), when the store makes it due; its next run runs the step
//! again, which runs the same child on.
//!
//! A child blocked by its pipeline's budget (the pipeline's `[budget]`, spent by the pipeline's
//! `llm` steps and its children's model calls together) blocks the step
//! ([`ActionError::Blocked`]): the pipeline is `blocked` with the reason, and its resume runs
//! the same child on.
//!
//! Because the agent is a child flow, a cancel of the pipeline reaches it, and a resumed
//! pipeline continues the same child (found by the step's idempotency key) instead of starting
//! the agent again. A child that fails fails the step with its error (not retried: the agent
//! already retried its model calls; a resume of the failed pipeline starts a new child).

use std::path::PathBuf;

use serde_json::Value;

use super::params::{optional_number, optional_text, provider_choice, string_param};
use crate::action::Action;
use crate::agent_spec::{AgentSpec, Approvals, DEFAULT_MAX_TURNS};
use crate::step::{ActionError, ActionFuture, StepContext, Wait};
use crate::tools::AGENT_TOOLS;
use taskflow_store::model::Flow;
use taskflow_store::status::FlowStatus;

/// The keys `with` may hold ([`Action::parameters`]).
const KEYS: &[&str] = &[
    "prompt",
    "system",
    "provider",
    "model",
    "base_url",
    "script",
    "api_key_env",
    "tools",
    "mcp",
    "workspace",
    "allow_commands",
    "max_turns",
    "max_tokens",
    "temperature",
    "name",
    "ask",
    "deny",
];

/// The most turns a step may allow, as for `taskflow agent --max-turns`.
const MAX_TURNS_LIMIT: u64 = 1000;

/// The `agent` action.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentAction;

fn names(with: &Value, key: &str) -> Result<Vec<String>, String> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
                _ => Err(format!("`with.{key}` must be a list of names")),
            })
            .collect(),
        Some(_) => Err(format!("`with.{key}` must be a list of names")),
    }
}

fn count(with: &Value, key: &str, max: u64) -> Result<Option<u32>, String> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(Some(n as u32)),
            _ => Err(format!("`with.{key}` must be a whole number from 1 to {max}")),
        },
    }
}

/// Checks the names of a policy list (`ask`, `deny`): each is an agent tool or a tool of one
/// of the step's MCP servers (`SERVER__TOOL`; the server's tools are known only once it runs).
fn check_policy(with: &Value, key: &str) -> Result<(), String> {
    let servers = names(with, "mcp")?;
    let of_a_server = |name: &str| {
        name.split_once("__").is_some_and(|(server, tool)| {
            !tool.is_empty() && servers.iter().any(|known| known == server)
        })
    };
    match names(with, key)?
        .into_iter()
        .find(|name| !AGENT_TOOLS.contains(&name.as_str()) && !of_a_server(name))
    {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "`with.{key}` names `{unknown}`, which is no agent tool ({}) nor a tool of a server \
             of `with.mcp` (SERVER__TOOL)",
            AGENT_TOOLS.join(", ")
        )),
    }
}

/// Checks everything about `with` that does not need the step to run.
fn check_with(with: &Value) -> Result<(), String> {
    if !with.is_object() {
        return Err("`with` must be a table".to_owned());
    }
    string_param(with, "prompt")?;
    for key in ["system", "workspace", "name"] {
        optional_text(with, key)?;
    }
    names(with, "tools")?;
    names(with, "mcp")?;
    names(with, "allow_commands")?;
    for key in ["ask", "deny"] {
        check_policy(with, key)?;
    }
    count(with, "max_turns", MAX_TURNS_LIMIT)?;
    count(with, "max_tokens", u64::from(u32::MAX))?;
    optional_number(with, "temperature")?;
    provider_choice(with, None).map(|_| ())
}

/// The agent a step's input asks for.
fn agent_spec(input: &Value, context: &StepContext) -> Result<AgentSpec, String> {
    check_with(input)?;
    let workspace = match optional_text(input, "workspace")? {
        Some(path) => context.resolve(path),
        None => context.base_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    let workspace = workspace.canonicalize().map_err(|error| {
        format!("the workspace {} cannot be used: {error}", workspace.display())
    })?;
    Ok(AgentSpec {
        name: optional_text(input, "name")?.unwrap_or_else(|| format!("{} (agent)", context.step)),
        prompt: string_param(input, "prompt")?.to_owned(),
        system: optional_text(input, "system")?,
        provider: provider_choice(input, Some(context))?,
        tools: names(input, "tools")?,
        mcp: names(input, "mcp")?,
        workspace,
        allowed_commands: names(input, "allow_commands")?,
        max_turns: count(input, "max_turns", MAX_TURNS_LIMIT)?.unwrap_or(DEFAULT_MAX_TURNS),
        max_tokens: count(input, "max_tokens", u64::from(u32::MAX))?,
        temperature: optional_number(input, "temperature")?.map(|t| t as f32),
        approvals: Approvals { ask: names(input, "ask")?, deny: names(input, "deny")? },
        budget: Default::default(),
        price: None,
    })
}

/// The step's outcome from the child as its run left it.
fn outcome(child: &Flow, context: &StepContext) -> Result<Value, ActionError> {
    let id = &child.id;
    match child.status {
        FlowStatus::Succeeded => {
            let state = child.state.as_ref();
            match state.and_then(|state| state.get("answer")).and_then(Value::as_str) {
                Some(answer) => Ok(Value::String(answer.to_owned())),
                None => Err(ActionError::permanent(format!(
                    "the agent's child flow {id} succeeded without an answer"
                ))),
            }
        }
        _ if context.cancel.is_cancelled() => Err(ActionError::Cancelled),
        FlowStatus::Waiting => Err(ActionError::Waiting(Wait {
            until: None,
            signal: None,
            child: Some(id.to_string()),
        })),
        // Stopped by its pipeline's budget (or a storage fault): the pipeline blocks with it.
        FlowStatus::Blocked => Err(ActionError::Blocked(format!(
            "{} (in the agent's child flow {id})",
            child.error.as_deref().unwrap_or("blocked, no reason was recorded")
        ))),
        FlowStatus::Failed | FlowStatus::Lost => {
            let error = child.error.as_deref().unwrap_or("no error was recorded");
            Err(ActionError::permanent(format!(
                "the agent's child flow {id} {}: {error}",
                child.status
            )))
        }
        FlowStatus::Cancelled => {
            Err(ActionError::permanent(format!("the agent's child flow {id} was cancelled")))
        }
        other => Err(ActionError::failed(format!(
            "the agent's child flow {id} stopped before it ended (it is {other})"
        ))),
    }
}

impl Action for AgentAction {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        Box::pin(async move {
            let spec = agent_spec(&input, &context).map_err(ActionError::permanent)?;
            let children = context.children.clone().ok_or_else(|| {
                ActionError::permanent("`agent` steps run only in an engine that runs child flows")
            })?;
            let child = children.run_agent(spec, &context).await?;
            outcome(&child, &context)
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        check_with(with)
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(KEYS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::unknown_parameters;
    use serde_json::json;

    #[test]
    fn with_tables_are_checked_before_anything_runs() {
        let ok = json!({
            "prompt": "Summarize {{steps.scrape.output}}",
            "provider": "replay",
            "script": "turns.toml",
            "tools": ["read_file", "list_dir"],
            "mcp": ["docs"],
            "allow_commands": ["ls"],
            "ask": ["run_command", "docs__search"],
            "deny": ["write_file"],
            "max_turns": 5,
            "temperature": 0.2,
        });
        assert_eq!(check_with(&ok), Ok(()));
        assert_eq!(unknown_parameters("agent", &AgentAction, &ok), []);
        for (with, expected) in [
            (json!({}), "`with.prompt` is missing"),
            (json!({"prompt": "hi", "tools": "read_file"}), "`with.tools` must be a list of names"),
            (json!({"prompt": "hi", "tools": [""]}), "`with.tools` must be a list of names"),
            (json!({"prompt": "hi", "mcp": "docs"}), "`with.mcp` must be a list of names"),
            (json!({"prompt": "hi", "deny": [3]}), "`with.deny` must be a list of names"),
            (json!({"prompt": "hi", "ask": ["run_comand"]}), "`with.ask` names `run_comand`"),
            (json!({"prompt": "hi", "deny": ["docs__search"]}), "`with.deny` names `docs__"),
            (json!({"prompt": "hi", "mcp": ["docs"], "ask": ["docs__"]}), "names `docs__`"),
            (json!({"prompt": "hi", "ask": "run_command"}), "`with.ask` must be a list of names"),
            (json!({"prompt": "hi", "max_turns": 0}), "`with.max_turns` must be a whole number"),
            (json!({"prompt": "hi", "max_turns": 1001}), "from 1 to 1000"),
            (json!({"prompt": "hi", "workspace": 3}), "`with.workspace` must be a string"),
            (json!({"prompt": "hi", "script": ["a"]}), "`with.script` must be a string"),
            (json!({"prompt": "hi", "allowed_commands": ["ls"]}), "`with.allowed_commands` is not"),
        ] {
            // As a spec is checked: each unknown key first, then the action's own check.
            let unknown = unknown_parameters("agent", &AgentAction, &with).into_iter();
            let error = unknown.map(|(_, message)| message).next().or(check_with(&with).err());
            let error = error.unwrap_or_default();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
    }
}
