//! The shapes of the API's requests and answers. Requests are read strictly (an unknown field is
//! a 400 naming it); answers are the api crate's documents, the same as the CLI's `--json`, and
//! the types here describe them to the OpenAPI document.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Who drives a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncModeBody {
    /// serve runs it: `spec` is the pipeline.
    #[default]
    Managed,
    /// The caller drives it and reports its state.
    Mirrored,
}

/// `POST /v1/flows` (and `/v1/flows/{id}/children`).
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFlow {
    /// The flow's id: 1 to 128 of `[A-Za-z0-9._:@-]`; a ULID when left out. Submitting the
    /// same id again with the same body finds the flow (200); another body is 409.
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub sync_mode: SyncModeBody,
    /// A managed flow's pipeline, with the fields of a pipeline file (`steps` with `id`,
    /// `action`, `needs`, `with`, `retry`, `timeout`; `concurrency`; `output_dir`). Its `name`
    /// may be left out (the flow's is used).
    #[schema(value_type = Object)]
    pub spec: Option<Value>,
    pub goal: Option<String>,
    /// A mirrored flow's controller: who drives it [default: the owner].
    pub controller: Option<String>,
    /// A mirrored flow's first state.
    #[schema(value_type = Object)]
    pub state: Option<Value>,
}

/// `POST /v1/flows/{id}/report`: what a mirrored flow's owner reports. Fields left out are
/// unchanged; `state` and `wait` set to `null` clear the stored value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// Refused (409, with `current_revision`) if the flow is at another revision.
    pub expected_revision: Option<u64>,
    /// `queued`, `running`, `waiting`, `blocked`, `succeeded`, `failed`, `cancelled`, `lost`.
    pub status: Option<String>,
    pub current_step: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object, nullable)]
    pub state: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Object, nullable)]
    pub wait: Option<Value>,
    pub goal: Option<String>,
    pub error: Option<String>,
    /// Steps of the owner's work, by name, in the order they happened.
    #[serde(default)]
    pub steps: Vec<StepReportBody>,
}

/// A value given, `null` included: `Some(Value::Null)` tells "clear it" from "left out".
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// One reported step.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReportBody {
    pub name: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    #[schema(value_type = Object)]
    pub output: Option<Value>,
    pub error: Option<String>,
}

/// `POST /v1/flows/{id}/fork`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkBody {
    /// The first step to run again: its seq, or its name.
    #[schema(value_type = Object)]
    pub from_step: Value,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub ok: bool,
    pub version: String,
}

/// A flow, as `flows inspect --json` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowDoc {
    pub id: String,
    pub name: String,
    pub status: String,
    pub sync_mode: String,
    pub owner: String,
    pub revision: u64,
    pub steps_done: u64,
    pub steps_total: u64,
    pub created_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    pub cancel_requested_at: Option<String>,
    pub parent_flow_id: Option<String>,
    pub controller: Option<String>,
    pub goal: Option<String>,
    pub current_step: Option<String>,
    #[schema(value_type = Object, nullable)]
    pub state: Option<Value>,
    #[schema(value_type = Object, nullable)]
    pub wait: Option<Value>,
    /// When a waiting flow is due to run again (its earliest timer, or when a signal it waits
    /// for arrived).
    pub wake_at: Option<String>,
    #[schema(value_type = Object, nullable)]
    pub spec: Option<Value>,
    pub lease: Option<LeaseDoc>,
    /// Running, managed, and no live runner holds it.
    pub stalled: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseDoc {
    pub holder: String,
    pub expires_at: String,
}

/// One row of a flow list.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowSummaryDoc {
    pub id: String,
    pub name: String,
    pub status: String,
    pub sync_mode: String,
    pub owner: String,
    pub revision: u64,
    pub steps_done: u64,
    pub steps_total: u64,
    pub created_at: String,
    pub updated_at: String,
    pub cancel_requested_at: Option<String>,
    pub stalled: bool,
}

/// One step of a journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepDoc {
    pub seq: u32,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub attempt: u32,
    pub idempotency_key: String,
    #[schema(value_type = Object, nullable)]
    pub input: Option<Value>,
    #[schema(value_type = Object, nullable)]
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub child_flow_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChildDoc {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// `{"flow"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowEnvelope {
    pub flow: FlowDoc,
}

/// `{"flow", "steps", "children"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InspectionDoc {
    pub flow: FlowDoc,
    pub steps: Vec<StepDoc>,
    pub children: Vec<ChildDoc>,
}

/// `{"flows", "next_cursor"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowListDoc {
    pub flows: Vec<FlowSummaryDoc>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One revision of a flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionDoc {
    pub revision: u64,
    pub at: String,
    pub actor: String,
    /// `{FIELD: {"before", "after"}}`.
    #[schema(value_type = Object)]
    pub change: Value,
}

/// `{"revisions"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDoc {
    pub revisions: Vec<RevisionDoc>,
}

/// What a cancel request did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelDoc {
    pub flow: FlowDoc,
    pub already_requested: bool,
    pub active_steps: u64,
}

/// A signal delivered to a flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalDoc {
    /// Increasing in the order signals were stored.
    pub id: u64,
    pub flow_id: String,
    pub name: String,
    /// The JSON the sender gave (`null` for none): the output of the step that takes it.
    #[schema(value_type = Object, nullable)]
    pub payload: Option<Value>,
    pub sent_at: String,
    /// The seq of the step that took it.
    pub taken_by: Option<u32>,
    pub taken_at: Option<String>,
}

/// `{"signal", "flow"}`: the signal, stored, and the flow as it left it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalSentDoc {
    pub signal: SignalDoc,
    pub flow: FlowDoc,
}
