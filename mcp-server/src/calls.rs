//! What each tool does, for one owner: the same store calls, api checks and JSON documents as
//! the CLI's `--json` and serve's answers (`taskflow_api::documents`), and flows handed to the
//! process's background runs ([`Runs`]) where serve would run them. Every failure is an
//! [`ApiError`]; the server turns it into a tool error.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use taskflow_api::{
    ApiError, Hold, approvals, control, create_or_continue, documents, prepare_model_steps,
    step_reaching_host,
};
use taskflow_engine::agent::Budget;
use taskflow_engine::{Engine, Runs, builtin_actions, pipeline};
use taskflow_store::{
    ApprovalDecision, Flow, FlowId, ListQuery, OwnerHandle, StatusFilter, SyncMode, TaskFlow,
    Timestamp,
};

use crate::inputs::{
    self, CancelFlow, DecideApproval, FlowRef, ListFlows, ResumeFlow, RunPipeline, SignalFlow,
};
use crate::tools::FlowTool;

/// What the tools act on: the database, the engine that runs flows (acting for each caller's
/// owner in turn), the background runs, and whether a call may name a file on this machine.
#[derive(Clone)]
pub struct Flows {
    pub taskflow: TaskFlow,
    pub engine: Engine,
    pub runs: Runs,
    /// `run_pipeline` may read `file` (a local server for the machine's own user); otherwise
    /// the pipeline comes as text.
    pub files: bool,
}

type Answer = Result<Value, ApiError>;

impl Flows {
    /// Calls `tool` with `arguments` for `owner`, whose pipelines may reach the host if `host`;
    /// the JSON document it answers.
    pub async fn call(
        &self,
        owner: &str,
        host: bool,
        tool: FlowTool,
        arguments: Map<String, Value>,
    ) -> Answer {
        let handle = self.taskflow.bind(owner)?;
        match tool {
            FlowTool::ListFlows => list(handle, inputs::read(arguments)?).await,
            FlowTool::InspectFlow => {
                let FlowRef { id } = inputs::read(arguments)?;
                let id = flow_id(&id)?;
                let inspection = blocking(move || Ok(handle.inspect(&id)?)).await?;
                Ok(documents::inspection(&inspection, Timestamp::now()))
            }
            FlowTool::FlowHistory => {
                let FlowRef { id } = inputs::read(arguments)?;
                let id = flow_id(&id)?;
                let revisions = blocking(move || Ok(handle.history(&id)?)).await?;
                Ok(documents::history(&revisions))
            }
            FlowTool::RunPipeline => {
                self.run_pipeline(handle, host, inputs::read(arguments)?).await
            }
            FlowTool::ResumeFlow => self.resume(handle, inputs::read(arguments)?).await,
            FlowTool::CancelFlow => {
                let CancelFlow { id, expected_revision } = inputs::read(arguments)?;
                let id = flow_id(&id)?;
                let outcome =
                    blocking(move || Ok(handle.request_cancel(&id, expected_revision)?)).await?;
                Ok(documents::cancel(&outcome, Timestamp::now()))
            }
            FlowTool::SignalFlow => {
                let SignalFlow { id, name, payload } = inputs::read(arguments)?;
                let id = flow_id(&id)?;
                let starter = handle.clone();
                let (signal, flow) =
                    blocking(move || control::send_signal(&handle, &id, &name, payload)).await?;
                let now = Timestamp::now();
                self.start_if_due(&starter, &flow, now);
                Ok(documents::signal_sent(&signal, &flow, now))
            }
            FlowTool::DecideApproval => self.decide(handle, inputs::read(arguments)?).await,
        }
    }

    async fn run_pipeline(&self, handle: OwnerHandle, host: bool, run: RunPipeline) -> Answer {
        let RunPipeline { file, pipeline, id } = run;
        let id = match id {
            Some(text) => Some(
                FlowId::parse(&text)
                    .map_err(|error| ApiError::invalid(format!("`id`: {error}")))?,
            ),
            None => None,
        };
        let source = match (file, pipeline) {
            (Some(file), None) if self.files => Source::File(PathBuf::from(file)),
            (Some(_), None) => {
                return Err(ApiError::Refused {
                    message: "this server reads no files for its callers".to_owned(),
                    hint: Some("send the pipeline's TOML text in `pipeline`".to_owned()),
                });
            }
            (None, Some(text)) => Source::Text(text),
            _ => {
                return Err(ApiError::Invalid {
                    message: "give one of `file` and `pipeline`".to_owned(),
                    hint: Some("`file`: a pipeline file's path; `pipeline`: its TOML text".into()),
                });
            }
        };
        let mut spec = blocking(move || source.plan()).await?.spec;
        prepare_model_steps(&mut spec)?;
        let engine = self.engine.for_owner(handle);
        if !host && let Some((_, why)) = step_reaching_host(&engine, &spec) {
            return Err(ApiError::Refused {
                message: why,
                hint: Some(
                    "a token's pipelines stay off the host unless the token has `host = true` in \
                     `[serve.tokens]`"
                        .to_owned(),
                ),
            });
        }
        let submitted = create_or_continue(&engine, &spec, id, None, Hold::Queue).await?;
        let created = submitted.is_new();
        let flow = submitted.flow();
        if flow.sync_mode == SyncMode::Managed && !flow.status.is_terminal() {
            self.runs.start(engine.handle().owner(), &flow.id);
        }
        Ok(json!({ "flow": documents::flow(flow, None, Timestamp::now()), "created": created }))
    }

    async fn resume(&self, handle: OwnerHandle, resume: ResumeFlow) -> Answer {
        let ResumeFlow { id, max_tokens, max_cost_usd } = resume;
        if max_tokens == Some(0) {
            return Err(ApiError::invalid("`max_tokens` must be at least 1"));
        }
        let id = flow_id(&id)?;
        let (checking, checked) = (handle.clone(), id.clone());
        let mut flow = blocking(move || control::check_resumable(&checking, &checked)).await?;
        let raise = Budget { max_tokens, max_cost: max_cost_usd };
        if !raise.is_empty() {
            flow = self.engine.for_owner(handle.clone()).raise_budget(&id, raise).await?;
        }
        self.runs.start(handle.owner(), &id);
        Ok(json!({ "flow": documents::flow(&flow, None, Timestamp::now()) }))
    }

    async fn decide(&self, handle: OwnerHandle, decide: DecideApproval) -> Answer {
        let DecideApproval { id, call_id, approve, reason } = decide;
        let id = flow_id(&id)?;
        let decision = ApprovalDecision { approved: approve, reason };
        let deciding = handle.clone();
        let decided =
            blocking(move || approvals::decide(&deciding, &id, call_id.as_deref(), &decision))
                .await?;
        for due in &decided.due {
            self.runs.start(handle.owner(), due);
        }
        let approvals::Decided { call_id, signal, flow, .. } = decided;
        Ok(documents::approval_decided(&call_id, &signal, &flow, Timestamp::now()))
    }

    /// A waiting flow that a signal or a decision made due runs on here, as serve runs it.
    fn start_if_due(&self, handle: &OwnerHandle, flow: &Flow, now: Timestamp) {
        if flow.is_due(now) {
            self.runs.start(handle.owner(), &flow.id);
        }
    }
}

async fn list(handle: OwnerHandle, list: ListFlows) -> Answer {
    let filter = match &list.status {
        Some(text) => Some(
            text.parse::<StatusFilter>()
                .map_err(|error| ApiError::invalid(format!("`status`: {error}")))?,
        ),
        None => None,
    };
    let limit = list.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("`limit` must be 1 to 1000"));
    }
    let query = ListQuery { name: list.name, limit, ..ListQuery::filtered(filter) };
    let flows = blocking(move || Ok(handle.list(&query)?)).await?;
    Ok(documents::flows_list(&flows, Timestamp::now()))
}

/// Where a pipeline comes from.
enum Source {
    File(PathBuf),
    Text(String),
}

impl Source {
    /// The pipeline read and checked; every problem with its line and column.
    fn plan(self) -> Result<pipeline::Plan, ApiError> {
        let actions = builtin_actions();
        let read = match &self {
            Source::File(path) => pipeline::load(path, &actions),
            Source::Text(text) => pipeline::parse(text, Path::new("pipeline"), None, &actions),
        };
        read.map_err(|errors| ApiError::Invalid {
            message: errors.to_string(),
            hint: Some("nothing was run; fix the pipeline and submit it again".to_owned()),
        })
    }
}

/// The flow an id names; text that cannot be an id names no flow.
fn flow_id(text: &str) -> Result<FlowId, ApiError> {
    FlowId::parse(text).map_err(|_| taskflow_store::Error::NotFound { id: text.to_owned() }.into())
}

/// Runs a store call on a blocking thread.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        Err(ApiError::Refused { message: "the store call stopped".to_owned(), hint: None })
    })
}
