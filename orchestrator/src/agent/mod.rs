//! Agent runs (DESIGN §5 "Agent runs"): a model and tools taking turns, each LLM call and each
//! tool call a checkpointed step, so that a run killed at any moment resumes without sending a
//! checkpointed request again or running a finished tool call again.
//!
//! What an agent run is ([`AgentSpec`]), its tools and their confinement are `taskflow-tools`';
//! choosing its provider is `taskflow-providers`'. Both are re-exported here.

mod runner;

pub use runner::AgentEvent;
pub(crate) use runner::AgentRunner;
pub use taskflow_providers::{ProviderChoice, ProviderFactory, preset_providers};
pub use taskflow_tools::{
    AgentSpec, AgentToolSettings, DEFAULT_MAX_TURNS, Workspace, register_agent_tools,
};
