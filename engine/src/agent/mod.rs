//! Agent runs (DESIGN §5 "Agent runs") in one place for a program that starts them: what an
//! agent run is ([`AgentSpec`]), its tools and their confinement (`taskflow-tools`), choosing
//! its provider (`taskflow-providers`), which tools need approval ([`Approvals`]), what it may
//! spend ([`Budget`]), and what a run reports ([`AgentEvent`]). The engine runs them
//! (`engine/agent_runner.rs`).

pub use crate::engine::AgentEvent;
pub use taskflow_providers::{ProviderChoice, ProviderFactory, preset_providers};
pub use taskflow_tools::{
    AgentSpec, AgentToolSettings, Approval, Approvals, Budget, DEFAULT_MAX_TURNS, DENIED_BY_POLICY,
    Exhausted, Price, Spent, StepModel, Workspace, register_agent_tools,
};
