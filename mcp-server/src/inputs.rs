//! The arguments of each tool, as Rust types: their JSON schemas (what `tools/list` shows a
//! client) are generated from these types, and a call's arguments are read into them strictly
//! (an unknown key or a wrong type is refused, naming the key), so the schema a client sees and
//! what the server accepts cannot drift apart.

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use taskflow_api::ApiError;
use taskflow_store::FlowStatus;

/// `list_flows`: the caller's flows, newest first.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFlows {
    /// Only flows with this status; `stalled` is a running flow that no live runner holds.
    #[serde(default)]
    #[schemars(schema_with = "status_filter")]
    pub status: Option<String>,
    /// Only flows with this name (a pipeline's `name`).
    pub name: Option<String>,
    /// At most this many flows [default: 50].
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

/// One flow, by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowRef {
    /// The flow's id, as `list_flows` shows it.
    pub id: String,
}

/// `run_pipeline`: a pipeline to submit and run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunPipeline {
    /// The pipeline file (TOML) to run, on the server's machine; a relative path is relative
    /// to the folder the server was started in, and the pipeline's own relative paths to the
    /// file's folder. Give this or `pipeline`.
    pub file: Option<String>,
    /// The pipeline itself, as the TOML text of a pipeline file; relative paths in it are
    /// relative to the folder the server runs in. Give this or `file`.
    pub pipeline: Option<String>,
    /// Give the flow this id (1 to 128 of `A-Z a-z 0-9 . _ : @ -`). If your flow with this id
    /// exists and runs the same pipeline, it is found instead of created, so a call can be
    /// repeated safely; one that runs another pipeline is refused.
    pub id: Option<String>,
}

/// `resume_flow`: run a flow on from its last checkpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeFlow {
    /// The flow's id.
    pub id: String,
    /// An agent run's or a pipeline's token budget from now on (a flow blocked by its budget
    /// goes on; a pipeline's covers its agent children too).
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
    /// An agent run's or a pipeline's cost budget in US dollars from now on (a pipeline's
    /// needs the prices of its models, stored when it started with a cost budget).
    #[schemars(range(min = 0.0))]
    pub max_cost_usd: Option<f64>,
}

/// `cancel_flow`: a sticky cancel.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelFlow {
    /// The flow's id.
    pub id: String,
    /// Refuse if the flow is no longer at this revision (as `inspect_flow` shows it).
    pub expected_revision: Option<u64>,
}

/// `signal_flow`: deliver a signal.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalFlow {
    /// The flow's id.
    pub id: String,
    /// The signal's name, as the `wait_signal` step's `with.name` says it.
    pub name: String,
    /// The payload, any JSON: the output of the step that takes the signal [default: null].
    #[serde(default)]
    pub payload: Value,
}

/// `decide_approval`: approve or deny a tool call an agent run waits for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    /// The flow's id.
    pub id: String,
    /// The call's id, as the flow's `wait` names it [default: the one call the flow waits
    /// for].
    pub call_id: Option<String>,
    /// true: the call runs; false: it does not, and the model reads "denied: REASON".
    pub approve: bool,
    /// Why (the model reads it after a denial).
    pub reason: Option<String>,
}

/// The arguments of a call read into `T`; what does not fit is a bad request naming the key.
pub fn read<T: DeserializeOwned>(arguments: Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(arguments)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if path == "." { inner.to_string() } else { format!("`{path}`: {inner}") };
        ApiError::Invalid {
            message,
            hint: Some("`tools/list` shows each tool's input schema".to_owned()),
        }
    })
}

/// A flow status or `stalled`, as the store names them.
fn status_filter(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut names: Vec<&str> = FlowStatus::ALL.map(FlowStatus::as_str).to_vec();
    names.push("stalled");
    let mut values: Vec<Value> = names.into_iter().map(Value::from).collect();
    values.push(Value::Null);
    let schema = json!({
        "type": ["string", "null"],
        "enum": values,
        "description": "Only flows with this status; `stalled` is a running flow that no live \
                        runner holds.",
    });
    schema.try_into().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{DecideApproval, ListFlows, SignalFlow, read};

    fn check<T: serde::de::DeserializeOwned + std::fmt::Debug>(
        arguments: Value,
        expected: Result<&str, &str>,
    ) {
        let Value::Object(arguments) = arguments else { panic!("not an object") };
        match (read::<T>(arguments.clone()), expected) {
            (Ok(value), Ok(shown)) => assert_eq!(format!("{value:?}"), shown, "{arguments:?}"),
            (Err(error), Err(message)) => assert_eq!(error.to_string(), message, "{arguments:?}"),
            (result, expected) => panic!("{arguments:?}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn arguments_are_read_strictly_and_a_misfit_names_its_key() {
        check::<ListFlows>(json!({}), Ok("ListFlows { status: None, name: None, limit: None }"));
        check::<ListFlows>(
            json!({"status": "waiting", "limit": 5}),
            Ok(r#"ListFlows { status: Some("waiting"), name: None, limit: Some(5) }"#),
        );
        check::<ListFlows>(
            json!({"limit": -1}),
            Err("`limit`: invalid value: integer `-1`, expected u32"),
        );
        check::<ListFlows>(
            json!({"owner": "bob"}),
            Err("`owner`: unknown field `owner`, expected one of `status`, `name`, `limit`"),
        );
        check::<SignalFlow>(
            json!({"id": "f", "name": "go"}),
            Ok(r#"SignalFlow { id: "f", name: "go", payload: Null }"#),
        );
        check::<SignalFlow>(json!({"name": "go"}), Err("missing field `id`"));
        check::<DecideApproval>(
            json!({"id": "f", "approve": "yes"}),
            Err(r#"`approve`: invalid type: string "yes", expected a boolean"#),
        );
    }
}
