//! Agent runs (DESIGN §5 "Agent runs"): a model and tools taking turns, each LLM call and each
//! tool call a checkpointed step, so that a run killed at any moment resumes without sending a
//! checkpointed request again or running a finished tool call again.

mod runner;
mod spec;
pub mod tools;
pub mod workspace;

pub use runner::AgentEvent;
pub(crate) use runner::AgentRunner;
pub use spec::{AgentSpec, DEFAULT_MAX_TURNS};
pub use taskflow_providers::{ProviderChoice, ProviderFactory, preset_providers};
