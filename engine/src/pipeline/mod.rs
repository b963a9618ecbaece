//! Pipelines: a flow spec (steps, what they need, how they retry), built in code or read from
//! a TOML file, and the templates by which a step reads earlier outputs.

pub mod file;
pub mod spec;
pub mod template;

pub use file::{PipelineError, PipelineErrors, load, parse};
pub use spec::{FlowSpec, Plan, RetryPolicy, SpecError, SpecField, StepSpec};
