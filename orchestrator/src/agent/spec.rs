//! What an agent run is, stored on its flow (as `{"agent": …}`) so that a resume runs the same
//! agent: the prompt, the provider and model, the tools and what they may touch, the turn
//! limit. It holds no secret: keys come from the environment of whichever process runs it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskflow_providers::{ApiKey, Provider, ProviderConfig};

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

/// Which provider and model to use, as names and addresses (never keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderChoice {
    /// A preset name (`moonshot`, `vllm`, `replay`, …).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The replay provider's script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<PathBuf>,
    /// The environment variable that holds the API key. Only its name is kept (a stored flow
    /// reads the key again when it resumes); the key itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

impl ProviderChoice {
    /// The preset's configuration with this choice's model, address and script; the key from
    /// the choice's environment variable, else the preset's.
    pub fn config(&self) -> Result<ProviderConfig, String> {
        if self.provider.trim().is_empty() {
            return Err(
                "no provider chosen: name one (`provider`), or set a default in the config file"
                    .to_owned(),
            );
        }
        let mut config = ProviderConfig::named(&self.provider).map_err(|error| error.message)?;
        if let Some(model) = &self.model {
            config.model = model.clone();
        }
        if let Some(base_url) = &self.base_url {
            config.base_url = base_url.clone();
        }
        config.script = self.script.clone();
        if let Some(variable) = &self.api_key_env {
            config.api_key = ApiKey::from_env(variable);
        }
        Ok(config)
    }
}

/// Builds the provider a choice names. The CLI's factory adds its flags and config file; the
/// default ([`preset_providers`]) uses the presets and the environment.
pub type ProviderFactory =
    Arc<dyn Fn(&ProviderChoice) -> Result<Arc<dyn Provider>, String> + Send + Sync>;

/// Providers from the presets, keys from the environment.
pub fn preset_providers() -> ProviderFactory {
    Arc::new(|choice| choice.config()?.build().map_err(|error| error.message))
}
