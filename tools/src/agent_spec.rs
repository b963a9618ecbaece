//! What an agent run is, stored on its flow (as `{"agent": …}`) so that a resume runs the same
//! agent: the prompt, the provider and model, the tools and what they may touch, the turn
//! limit, which tools need a person's approval, what it may spend, the MCP servers it uses (by
//! name). It holds no secret: keys come from the environment of whichever process runs it, and
//! MCP servers from its config file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskflow_providers::ProviderChoice;

use crate::budget::{Budget, Price};

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
    /// The MCP servers whose tools are offered too, by their names in the config file's
    /// `[mcp_servers]`: only the names are stored (no command, address, variable or token), and
    /// each run, a resume too, connects the servers the config file names so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp: Vec<String>,
    /// Programs `run_command` may start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_commands: Vec<String>,
    /// LLM turns at most; a run that still asks for tools after that many fails.
    pub max_turns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Which tools run only once a person approves the call, and which never run.
    #[serde(default, skip_serializing_if = "Approvals::is_empty")]
    pub approvals: Approvals,
    /// The tokens and money the run may spend, as it started (a raise is in the flow's state).
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    /// The model's price, from the config file when the run was started, for a cost limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

/// The approval policy of an agent's tools: a tool is `allow`ed unless it is named in `ask`
/// (each call waits for a person's decision) or in `deny` (no call runs; the model reads that
/// it was denied). A tool named in both is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// What the policy says about one call of a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Allow,
    Ask,
    Deny,
}

/// What a model reads as the result of a call the policy denies.
pub const DENIED_BY_POLICY: &str = "denied by policy";

impl Approvals {
    pub fn is_empty(&self) -> bool {
        self.ask.is_empty() && self.deny.is_empty()
    }

    /// The policy for a call of `tool`.
    pub fn policy(&self, tool: &str) -> Approval {
        if self.deny.iter().any(|name| name == tool) {
            Approval::Deny
        } else if self.ask.iter().any(|name| name == tool) {
            Approval::Ask
        } else {
            Approval::Allow
        }
    }

    /// The tools it names, each once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ask.iter().chain(&self.deny).map(String::as_str)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_is_allowed_unless_asked_for_or_denied_and_deny_wins() {
        let approvals = Approvals {
            ask: vec!["run_command".into(), "write_file".into()],
            deny: vec!["write_file".into(), "fetch_url".into()],
        };
        for (tool, expected) in [
            ("read_file", Approval::Allow),
            ("run_command", Approval::Ask),
            ("write_file", Approval::Deny),
            ("fetch_url", Approval::Deny),
        ] {
            assert_eq!(approvals.policy(tool), expected, "{tool}");
        }
        assert_eq!(Approvals::default().policy("run_command"), Approval::Allow);
    }

    #[test]
    fn a_spec_without_approvals_is_stored_as_before() {
        let spec: AgentSpec = serde_json::from_value(json!({
            "name": "a", "prompt": "p", "provider": {"provider": "replay"},
            "workspace": "/tmp", "max_turns": 3,
        }))
        .unwrap();
        assert!(spec.approvals.is_empty());
        assert!(spec.to_value()["agent"].get("approvals").is_none());
        let asking = AgentSpec {
            approvals: Approvals { ask: vec!["run_command".into()], deny: vec![] },
            ..spec
        };
        assert_eq!(asking.to_value()["agent"]["approvals"], json!({"ask": ["run_command"]}));
    }
}
