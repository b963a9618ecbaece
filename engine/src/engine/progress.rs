//! What a run reports while it works, for a progress bar or a log. Reports are informational:
//! by the time a step is reported finished, its outcome is already committed.

use std::sync::Arc;
use std::time::Duration;

use taskflow_store::model::FlowId;
use taskflow_store::status::StepStatus;
use taskflow_store::time::Timestamp;

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The run holds the flow; `done` of `total` steps were already done (a resume).
    Started { flow: FlowId, done: usize, total: usize },
    /// An attempt of a step starts (`attempt` > 1 when it is tried again).
    StepStarted { step: String, seq: u32, attempt: u32 },
    /// An attempt failed; the next starts after `delay`.
    StepRetrying { step: String, attempt: u32, error: String, delay: Duration },
    /// A step ended and its outcome is committed.
    StepFinished { step: String, seq: u32, status: StepStatus, done: usize, total: usize },
    /// A cancel request was noticed: running steps are being stopped.
    Cancelling,
    /// Nothing runs but steps that wait: the flow is `waiting`, without a lease, until `until`
    /// (its earliest timer) or one of `signals` arrives. The run returns.
    Waiting { until: Option<Timestamp>, signals: Vec<String> },
    /// What an agent run's model and tools did.
    Agent(super::agent_runner::AgentEvent),
}

/// Where a run sends its reports.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A sink that drops every report.
pub fn quiet() -> ProgressSink {
    Arc::new(|_| {})
}
