//! The shapes of the API's requests and answers. Requests are read strictly (an unknown field is
//! a 400 naming it); answers are the api crate's documents, the same as the CLI's `--json`, and
//! the types here describe them to the OpenAPI document. A flow's `state` and `wait` and a
//! step's input and output are any JSON; statuses are the store's names, listed from the store.

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Number, Value, json};
use taskflow_store::{FlowStatus, StepStatus};
use utoipa::ToSchema;
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type,
};

/// Who drives a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncModeBody {
    /// serve runs it: `spec` is the pipeline.
    #[default]
    Managed,
    /// The caller drives it and reports its state.
    Mirrored,
}

/// `POST /v1/flows` (and `/v1/flows/{id}/children`), as read: one struct, so that an error names
/// the field it is about. The document describes it as [`NewFlowBody`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    pub spec: Option<Value>,
    pub goal: Option<String>,
    /// A mirrored flow's controller: who drives it [default: the owner].
    pub controller: Option<String>,
    /// A mirrored flow's first state.
    pub state: Option<Value>,
}

/// A flow to submit: a managed flow (serve runs its pipeline) or a mirrored one (the caller
/// drives it and reports its state). The same id with the same body again finds the flow
/// (200), a mirrored one whatever state it reported since (its `state` is compared with the
/// state it was created with); another body is 409, naming the first difference.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // It describes the body to the document; the body is read as `CreateFlow`.
pub enum NewFlowBody {
    Managed(ManagedFlowBody),
    Mirrored(MirroredFlowBody),
}

/// A managed flow: serve queues it and runs its pipeline.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ManagedFlowBody {
    /// The flow's id [default: a new ULID].
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub id: Option<String>,
    pub name: String,
    #[schema(schema_with = managed)]
    pub sync_mode: Option<String>,
    pub spec: PipelineBody,
    pub goal: Option<String>,
}

/// A mirrored flow: it starts `queued` at revision 1; its owner reports the rest.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct MirroredFlowBody {
    /// The flow's id [default: a new ULID].
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub id: Option<String>,
    pub name: String,
    #[schema(schema_with = mirrored)]
    pub sync_mode: String,
    pub goal: Option<String>,
    /// Who drives it [default: the owner].
    pub controller: Option<String>,
    /// Its first state, any JSON.
    pub state: Option<Value>,
}

/// A managed flow's pipeline: the fields of a pipeline file, as JSON. What no schema can say is
/// refused with 422 naming the step and field: an action serve does not know, a step id used
/// twice, `needs` naming no step, a cycle, a template reading no step or its own step, a `name`
/// other than the flow's. A step whose output a template reads is needed, as if `needs` said
/// so.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PipelineBody {
    /// The flow's name [default: it; another is refused].
    #[serde(default)]
    pub name: String,
    /// Where relative file URLs and `output_dir` are resolved.
    pub base_dir: Option<String>,
    /// The folder `write_file` steps write into; nothing is written elsewhere.
    pub output_dir: Option<String>,
    /// At most this many steps run at once [default: 4].
    #[schema(minimum = 1)]
    pub concurrency: Option<u32>,
    /// What the pipeline's model calls may spend in all (`[budget]` in a pipeline file).
    #[serde(default)]
    pub budget: BudgetBody,
    /// By step id, the model each `llm` or `agent` step calls and its price. With a cost
    /// budget taskflow sets it from the config file's `[prices."MODEL"]` as the flow is
    /// created (what is given here is replaced); without one it is kept as given.
    #[serde(default)]
    pub prices: std::collections::BTreeMap<String, StepModelBody>,
    pub steps: Vec<PipelineStepBody>,
}

/// The limits of a pipeline's model calls; a limit left out does not apply.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BudgetBody {
    /// Input and output tokens together.
    #[schema(minimum = 0)]
    pub max_tokens: Option<u64>,
    /// US dollars, at the prices of the models the steps call.
    #[schema(minimum = 0)]
    pub max_cost: Option<f64>,
}

/// The model a step calls, and its price when known.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct StepModelBody {
    pub model: String,
    pub price: Option<PriceBody>,
}

/// What a model costs, in US dollars per million tokens.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PriceBody {
    #[schema(minimum = 0)]
    pub input_per_mtok: f64,
    #[schema(minimum = 0)]
    pub output_per_mtok: f64,
}

/// One step of a pipeline.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PipelineStepBody {
    /// 1 to 64 letters, digits, `_` or `-`, unique in the pipeline.
    pub id: String,
    /// The action it runs: `echo`, `shell`, `fetch_urls`, `llm`, `agent`, `tool`,
    /// `write_file`.
    pub action: String,
    /// Steps that must succeed first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// The action's parameters; string values may hold `{{steps.ID.output}}` templates.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub with: Value,
    pub retry: Option<RetryBody>,
    /// Each attempt is stopped after this long: seconds, or a duration such as `500ms`,
    /// `30s`, `5m`, `1h`, `7d`.
    #[schema(schema_with = duration_or_null)]
    pub timeout: Option<Value>,
}

/// How often a failing step is tried, and the wait between tries (doubling from `backoff_ms`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RetryBody {
    /// [default: 3]
    #[serde(default)]
    pub max_attempts: u32,
    /// [default: 500]
    #[serde(default)]
    pub backoff_ms: u64,
}

/// `POST /v1/flows/{id}/report`: what a mirrored flow's owner reports. Fields left out are
/// unchanged; `state` and `wait` set to `null` clear the stored value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// Refused (409, with `current_revision`) if the flow is at another revision.
    #[serde(default, deserialize_with = "whole_number")]
    pub expected_revision: Option<u64>,
    /// The flow's new status, if it changes (checked against the transition table).
    #[schema(schema_with = flow_status_or_null)]
    pub status: Option<String>,
    pub current_step: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub state: Option<Value>,
    /// What the flow waits for, any JSON. An ended flow waits for nothing: a report that ends
    /// the flow and gives it a wait is refused (422).
    #[serde(default, deserialize_with = "present")]
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

/// A whole number ≥ 0, written `7` or `7.0`: JSON has one kind of number, and a schema's
/// `integer` is any number without a fraction.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<Number>::deserialize(deserializer)? else { return Ok(None) };
    match whole(&number) {
        Some(value) => Ok(Some(value)),
        None => Err(D::Error::invalid_value(
            Unexpected::Other(&number.to_string()),
            &"a whole number, 0 or more",
        )),
    }
}

/// `number` as a whole number ≥ 0 (`7.0` included), if it is one.
pub fn whole(number: &Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        // 2^64: the first whole number past u64's range (as f64, it is exact).
        let limit = 18_446_744_073_709_551_616.0;
        number.as_f64().filter(|x| x.fract() == 0.0 && *x >= 0.0 && *x < limit).map(|x| x as u64)
    })
}

/// One reported step.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepReportBody {
    pub name: String,
    /// `running` begins the step: after it failed or was cancelled, as its next attempt (the
    /// same `idempotency_key`); after it succeeded, as a new step of that name.
    #[schema(schema_with = step_status)]
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
}

/// `POST /v1/flows/{id}/fork`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkBody {
    /// The first step to run again: its seq (a number, or a string of digits), or its name.
    /// One past the last seq keeps every succeeded step and runs only what the journal has not
    /// reached.
    #[schema(schema_with = step_ref)]
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
    #[schema(schema_with = flow_status)]
    pub status: String,
    pub sync_mode: String,
    pub owner: String,
    pub revision: u64,
    /// Its succeeded steps; `null` in the answer to a change (submit, report, cancel, resume,
    /// fork, signal, approval), which gives the flow's row without counting its journal: read
    /// the flow for it.
    pub steps_done: Option<u64>,
    /// Its steps; `null` where `steps_done` is.
    pub steps_total: Option<u64>,
    pub created_at: String,
    pub updated_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    pub cancel_requested_at: Option<String>,
    pub parent_flow_id: Option<String>,
    pub controller: Option<String>,
    pub goal: Option<String>,
    pub current_step: Option<String>,
    pub state: Option<Value>,
    pub wait: Option<Value>,
    /// When a waiting flow is due to run again (its earliest timer, or when a signal it waits
    /// for arrived).
    pub wake_at: Option<String>,
    #[schema(value_type = Object, nullable)]
    pub spec: Option<Value>,
    pub lease: Option<LeaseDoc>,
    /// Running, managed, and no live runner holds it.
    pub stalled: bool,
    /// Why it is stalled, when it is.
    pub stall: Option<StallDoc>,
}

/// Why a running flow has no live runner.
#[derive(Debug, Serialize, ToSchema)]
pub struct StallDoc {
    /// `holder_gone` (its runner's process on this host is gone), `lease_expired` or `no_lease`.
    pub reason: String,
    /// The lease's holder, `host:pid`.
    pub holder: Option<String>,
    /// When the lease expired, for `lease_expired`.
    pub since: Option<String>,
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
    #[schema(schema_with = flow_status)]
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
    pub stall: Option<StallDoc>,
}

/// One step of a journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepDoc {
    pub seq: u32,
    pub name: String,
    pub kind: String,
    #[schema(schema_with = step_status)]
    pub status: String,
    pub attempt: u32,
    pub idempotency_key: String,
    pub input: Option<Value>,
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
    #[schema(schema_with = flow_status)]
    pub status: String,
    /// `running` with no live runner, as the child's own `stalled` says.
    pub stalled: bool,
}

/// `{"flow"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowEnvelope {
    pub flow: FlowDoc,
}

/// `{"flow", "steps", "usage", "children"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InspectionDoc {
    pub flow: FlowDoc,
    pub steps: Vec<StepDoc>,
    pub usage: UsageDoc,
    pub children: Vec<ChildDoc>,
}

/// What the flow's model calls spent (summed from its succeeded `llm` steps) and its budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDoc {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub tokens: u64,
    /// The model calls whose response reported no usage: the tokens and a budget do not count
    /// them.
    pub calls_without_usage: u64,
    /// At the price of each call's model, when the flow stored them.
    pub cost_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
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
    /// The JSON the sender gave, any value (`null` for none): the output of the step that
    /// takes it.
    pub payload: Value,
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

/// `POST /v1/flows/{id}/approvals/{call_id}`: the decision about a tool call the flow waits
/// for.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    /// `true` runs the call; `false` denies it (the model reads "denied: REASON").
    pub approve: bool,
    /// Why; the model reads it after a denial.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A decision, as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDoc {
    /// The model's id of the call.
    pub call_id: String,
    pub approved: bool,
    pub reason: Option<String>,
    /// The signal that carries it to the waiting step.
    pub signal: String,
    pub decided_at: String,
}

/// `{"approval", "flow"}`: the decision, recorded once, and the flow, due at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalDecidedDoc {
    pub approval: ApprovalDoc,
    pub flow: FlowDoc,
}

/// One server-sent event of `GET /v1/events` (an OpenAPI event-stream schema describes each
/// event of the stream).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDoc {
    /// Its place in the durable change feed: send it back as `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    /// `flow` (the flow record changed) or `step` (a step of its journal did).
    #[schema(schema_with = event_kind)]
    pub event: String,
    /// The change as JSON: `{"flow_id", "at"}` with, for a flow, `revision`, `status`,
    /// `current_step` and `fields` (the fields the revision changed); for a step, `seq`,
    /// `name`, `status` and `attempt`. Its id and kind are the event's `id` and `event`; its
    /// owner is the caller. A flow's event also holds `steps` when steps of that flow came
    /// with it at the same time (the steps its revision wrote): each `{"id", "seq", "name",
    /// "status", "attempt"}`, the step's own event, whose id comes before the flow's; they are
    /// not sent apart.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// `"managed"` (the default when left out).
fn managed() -> ObjectBuilder {
    names(&["managed"], false)
}

fn mirrored() -> ObjectBuilder {
    names(&["mirrored"], false)
}

/// The units of a duration's text, as the engine's `duration_text::parse` reads them (evidence
/// `every_duration_the_document_describes_has_the_engines_units`): the one list the document's
/// patterns and `GET /v1/flows`'s `since` and `until` are written from.
pub const DURATION_UNITS: [&str; 5] = ["ms", "s", "m", "h", "d"];

/// The pattern of a duration's text: 1 to 9 digits, then what `fraction` matches, then one of
/// [`DURATION_UNITS`], which may be left out when `unit_optional`.
fn duration_pattern(fraction: &str, unit_optional: bool) -> String {
    let optional = if unit_optional { "?" } else { "" };
    format!("^[0-9]{{1,9}}{fraction}({}){optional}$", DURATION_UNITS.join("|"))
}

/// Seconds, or a duration's text (`500ms`, `30s`, `5m`, `1h`, `7d`), or null.
fn duration_or_null() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(duration_pattern("(\\.[0-9]{1,9})?", true))),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
}

/// A time ago in whole units (`90m`, `24h`, `7d`), or an RFC 3339 instant.
pub fn time_ago_or_instant() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(duration_pattern("", false))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
}

fn event_kind() -> ObjectBuilder {
    names(&["flow", "step"], false)
}

/// A flow's status: one of the store's names.
pub fn flow_status() -> ObjectBuilder {
    names(&FlowStatus::ALL.map(FlowStatus::as_str), false)
}

/// A status, or `stalled`: what a flow list filters by.
pub fn status_filter() -> ObjectBuilder {
    let mut filters = FlowStatus::ALL.map(FlowStatus::as_str).to_vec();
    filters.push("stalled");
    names(&filters, false)
}

fn flow_status_or_null() -> ObjectBuilder {
    names(&FlowStatus::ALL.map(FlowStatus::as_str), true)
}

fn step_status() -> ObjectBuilder {
    names(&StepStatus::ALL.map(StepStatus::as_str), false)
}

/// A string that is one of `names` (or null).
fn names(names: &[&str], nullable: bool) -> ObjectBuilder {
    let mut values: Vec<Value> = names.iter().map(|name| json!(name)).collect();
    let kind = if nullable {
        values.push(Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new().schema_type(kind).enum_values(Some(values))
}

/// A step of a journal: its seq, or its name.
fn step_ref() -> OneOfBuilder {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(u32::MAX)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_a_whole_number_written_with_or_without_a_fraction() {
        let read =
            |body: Value| serde_json::from_value::<ReportBody>(body).map(|r| r.expected_revision);
        assert_eq!(read(json!({"expected_revision": 7})).unwrap(), Some(7));
        assert_eq!(read(json!({"expected_revision": 7.0})).unwrap(), Some(7));
        assert_eq!(read(json!({"expected_revision": null})).unwrap(), None);
        assert_eq!(read(json!({})).unwrap(), None);
        for wrong in [json!(7.5), json!(-1), json!(-1.0), json!(1e20), json!("7")] {
            assert!(read(json!({"expected_revision": wrong})).is_err(), "{wrong}");
        }
    }
}
