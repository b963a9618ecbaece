//! What an agent run is, stored on its flow (as `{"agent": …}`) so that a resume runs the same
//! agent: the prompt, the provider and model, the tools and what they may touch, the turn
//! limit. It holds no secret: keys come from the environment of whichever process runs it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskflow_providers::ProviderChoice;

/// The default turn limit.
pub const DEFAULT_MAX_TURNS: u32 = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The flow's name.
    pub name: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub provider: ProviderChoice,
    /// The tools offered to the model; empty means all the agent tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// The folder the file tools are confined to (absolute).
    pub workspace: PathBuf,
    /// Programs `run_command` may start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_commands: Vec<String>,
    /// LLM turns at most; a run that still asks for tools after that many fails.
    pub max_turns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

impl AgentSpec {
    /// The spec as stored on a flow.
    pub fn to_value(&self) -> Value {
        json!({ "agent": self })
    }

    /// The agent spec stored on a flow, if the flow is an agent run. `Err` when it is one but
    /// cannot be read.
    pub fn from_flow_spec(spec: &Value) -> Option<Result<AgentSpec, String>> {
        let agent = spec.get("agent")?;
        Some(serde_json::from_value(agent.clone()).map_err(|error| error.to_string()))
    }
}
