//! `taskflow-tools`: what a step of a flow runs. The step contract ([`StepContext`],
//! [`ActionError`], [`ChildFlows`]), the [`Action`] and [`Tool`] traits with their registries
//! ([`Actions`], [`Tools`], keyed by names known at run time), the built-in actions
//! ([`actions`]) and tools ([`tools`]), the tools of MCP servers ([`mcp`]), and the confinement of file tools to a folder
//! ([`Workspace`]).
//!
//! Nothing here names the engine or a store backend: an engine runs actions through this
//! contract, and implements [`ChildFlows`] for the actions that start child flows.

mod action;
pub mod actions;
mod agent_spec;
pub mod budget;
mod http;
pub mod mcp;
pub mod process;
mod step;
mod tool;
pub mod tools;
pub mod workspace;
mod write;

pub use action::{Action, Actions, unknown_parameters};
pub use agent_spec::{AgentSpec, Approval, Approvals, DEFAULT_MAX_TURNS, DENIED_BY_POLICY};
pub use budget::{Budget, Exhausted, Price, Spent, StepModel};
pub use step::{
    ActionError, ActionFuture, ActionResult, ChildFlows, ChildFuture, SignalFuture, Signals,
    StepContext, Wait,
};
pub use tool::{Tool, Tools};
pub use tools::{AGENT_TOOLS, AgentToolSettings, register_agent_tools};
pub use workspace::{PathError, Workspace};
