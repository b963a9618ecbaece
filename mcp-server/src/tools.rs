//! The tool set, defined once for every transport: each tool's name, what it does (the text a
//! model reads to choose it), its input schema (generated from its arguments' type in
//! [`inputs`](crate::inputs)) and its hints (read-only, destructive, idempotent).

use std::sync::Arc;

use rmcp::handler::server::common::schema_for_type;
use rmcp::model::{Tool, ToolAnnotations};
use schemars::JsonSchema;

use crate::inputs::{
    CancelFlow, DecideApproval, FlowRef, ListFlows, ResumeFlow, RunPipeline, SignalFlow,
};

/// One tool of the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowTool {
    ListFlows,
    InspectFlow,
    FlowHistory,
    RunPipeline,
    ResumeFlow,
    CancelFlow,
    SignalFlow,
    DecideApproval,
}

impl FlowTool {
    pub const ALL: [FlowTool; 8] = [
        FlowTool::ListFlows,
        FlowTool::InspectFlow,
        FlowTool::FlowHistory,
        FlowTool::RunPipeline,
        FlowTool::ResumeFlow,
        FlowTool::CancelFlow,
        FlowTool::SignalFlow,
        FlowTool::DecideApproval,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FlowTool::ListFlows => "list_flows",
            FlowTool::InspectFlow => "inspect_flow",
            FlowTool::FlowHistory => "flow_history",
            FlowTool::RunPipeline => "run_pipeline",
            FlowTool::ResumeFlow => "resume_flow",
            FlowTool::CancelFlow => "cancel_flow",
            FlowTool::SignalFlow => "signal_flow",
            FlowTool::DecideApproval => "decide_approval",
        }
    }

    pub fn named(name: &str) -> Option<FlowTool> {
        FlowTool::ALL.into_iter().find(|tool| tool.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            FlowTool::ListFlows => {
                "Your flows (durable pipeline and agent runs), newest first: id, name, status, \
                 revision, steps done and total. Answers {\"flows\": [...]}, as `taskflow flows \
                 list --json` does."
            }
            FlowTool::InspectFlow => {
                "One flow: its record (status, error, what it waits for in `wait`), its steps \
                 with their outputs, tokens and cost so far, and its child flows. Answers \
                 {\"flow\", \"steps\", \"usage\", \"children\"}, as `taskflow flows inspect \
                 --json` does."
            }
            FlowTool::FlowHistory => {
                "A flow's revisions, oldest first: each accepted change, when, by whom, each \
                 field before and after. Answers {\"revisions\": [...]}."
            }
            FlowTool::RunPipeline => {
                "Submit a pipeline (a pipeline file, or its TOML text) as a durable flow and \
                 start running it; answers at once with {\"flow\", \"created\"}. Follow it with \
                 inspect_flow. The same `id` again finds the flow instead of running it twice."
            }
            FlowTool::ResumeFlow => {
                "Run a flow on from its last checkpoint: done steps keep their output, a failed \
                 step is tried again, an agent run or a pipeline blocked by its budget goes on \
                 under the new budget given here. Answers at once with {\"flow\"}; refused for a flow that \
                 ended (other than failed), a mirrored one, or one another runner holds."
            }
            FlowTool::CancelFlow => {
                "Sticky cancel: recorded at once (it survives restarts), nothing new starts, \
                 the flow becomes cancelled once its running steps have stopped. Answers \
                 {\"flow\", \"already_requested\", \"active_steps\"}."
            }
            FlowTool::SignalFlow => {
                "Deliver a signal to a flow: stored before this answers and kept until a \
                 `wait_signal` step of that name takes it; a flow waiting for it runs on. \
                 Answers {\"signal\", \"flow\"}."
            }
            FlowTool::DecideApproval => {
                "Approve or deny a tool call an agent run waits for (its flow's `wait` names \
                 the call): approved, the call runs; denied, the model reads \"denied: \
                 REASON\". A call is decided once. Answers {\"approval\", \"flow\"}; the flow \
                 runs on."
            }
        }
    }

    fn schema(self) -> Arc<rmcp::model::JsonObject> {
        match self {
            FlowTool::ListFlows => schema::<ListFlows>(),
            FlowTool::InspectFlow | FlowTool::FlowHistory => schema::<FlowRef>(),
            FlowTool::RunPipeline => schema::<RunPipeline>(),
            FlowTool::ResumeFlow => schema::<ResumeFlow>(),
            FlowTool::CancelFlow => schema::<CancelFlow>(),
            FlowTool::SignalFlow => schema::<SignalFlow>(),
            FlowTool::DecideApproval => schema::<DecideApproval>(),
        }
    }

    fn annotations(self) -> ToolAnnotations {
        let hints = ToolAnnotations::new().open_world(false);
        match self {
            FlowTool::ListFlows | FlowTool::InspectFlow | FlowTool::FlowHistory => {
                hints.read_only(true)
            }
            FlowTool::CancelFlow => hints.read_only(false).destructive(true).idempotent(true),
            FlowTool::RunPipeline
            | FlowTool::ResumeFlow
            | FlowTool::SignalFlow
            | FlowTool::DecideApproval => {
                hints.read_only(false).destructive(false).idempotent(false)
            }
        }
    }

    /// The tool as `tools/list` shows it.
    pub fn describe(self) -> Tool {
        Tool::new(self.name(), self.description(), self.schema())
            .with_annotations(self.annotations())
    }
}

fn schema<T: JsonSchema + 'static>() -> Arc<rmcp::model::JsonObject> {
    schema_for_type::<T>()
}

#[cfg(test)]
mod tests {
    use super::FlowTool;

    #[test]
    fn every_tool_has_a_unique_name_and_an_object_schema_that_lists_its_arguments() {
        let mut names: Vec<&str> = FlowTool::ALL.map(FlowTool::name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FlowTool::ALL.len());
        for tool in FlowTool::ALL {
            assert_eq!(FlowTool::named(tool.name()), Some(tool));
            let described = tool.describe();
            assert_eq!(described.input_schema["type"], "object", "{}", tool.name());
            let properties = described.input_schema["properties"].as_object().unwrap();
            assert!(!properties.is_empty() || tool == FlowTool::ListFlows, "{}", tool.name());
        }
        let list = FlowTool::ListFlows.describe();
        let status = &list.input_schema["properties"]["status"]["enum"];
        assert_eq!(status[0], "queued");
        assert!(status.as_array().unwrap().contains(&"stalled".into()));
        // Every argument of `list_flows` may be left out, as the server takes `{}`.
        let required = list.input_schema.get("required");
        assert!(required.is_none_or(|required| required == &serde_json::json!([])), "{required:?}");
        assert_eq!(FlowTool::named("drop_table"), None);
    }
}
