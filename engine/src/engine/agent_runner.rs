//! One run of one agent flow: from its journal to an answer.
//!
//! The conversation is rebuilt from the journal first: each succeeded `llm` step adds the
//! model's turn (its full response was checkpointed), each succeeded `tool` step adds a tool
//! result; an `llm` step stores no copy of the conversation it sent (see `turn_input`). No checkpointed request is sent again and no answered tool call runs again; a step
//! left running by a runner that died starts its next attempt with the same idempotency key.
//! Then the run goes on: the calls of the last turn that have no result yet run one by one, and
//! when all are answered the model gets the next turn, until it answers without tool calls or
//! the turn limit is reached.
//!
//! Each call goes through the spec's approval policy first: a denied tool is not run (the
//! model reads "denied: denied by policy"); an `ask` tool's step takes the decision about its
//! call (a signal named after the call, [`wait::approval_signal`]) and, while there is none,
//! waits for it: the flow becomes `waiting` with the call in its `wait`, without a lease, and
//! the run returns. The next run runs that step again in the same attempt; the decision it
//! took is kept with it, so a call is never asked about twice, an approved call runs, and a
//! denied one never does (the model reads "denied: REASON").
//!
//! The MCP servers the spec names are connected before anything else (`run_with_servers`), the
//! policy's names of their tools checked against the tools they list, their tools offered
//! beside the built-in ones, and shut down when the run returns. An MCP call is a
//! tool step like any other: a finished one is read from the journal, one left running is
//! called again with the same idempotency key, which the tool puts in the request's `_meta`.
//!
//! Before each new model call the run looks at its budget: what it has spent is the usage its
//! succeeded `llm` steps checkpointed (summed from the journal on every start, so it survives a
//! resume), and once a limit is reached no call is made: the flow becomes `blocked`, its error
//! naming the limit and the command that raises it (`taskflow flows resume ID --max-tokens N`).
//! A run that is a pipeline's `agent` step looks at the pipeline's budget too, which the whole
//! tree spends (`tree_budget`): spent, the run is `blocked` naming the pipeline to raise.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use taskflow_parsers::{DiagnosticKind, StreamEvent};
use taskflow_providers::{
    AssistantToolCall, ChatEvent, ChatMessage, ChatRequest, ChatResponse, Provider,
    ResponseBuilder, ToolDefinition,
};
use tokio_util::sync::CancellationToken;

use super::AgentSpec;
use super::attempts::{self, Attempts, Ended, LeaseWatch, Renewals};
use super::store_access::StoreAccess;
use super::tree_budget::TreeBudget;
use super::turn_input::{stored_request, turn_input};
use super::{EngineError, EngineOptions, Progress, ProgressSink};
use crate::pipeline::RetryPolicy;
use taskflow_store::error::Error;
use taskflow_store::lease::Lease;
use taskflow_store::model::{
    ApprovalDecision, ApprovalRequest, CheckpointDone, CheckpointOp, FlowId, NewStep, Step,
    StepKind, StepOutcome, WaitingStep,
};
use taskflow_store::status::{FlowStatus, StepStatus};
use taskflow_store::wait;
use taskflow_tools::budget::BUDGET_STATE_KEY;
use taskflow_tools::mcp::{McpServer, McpSession};
use taskflow_tools::{ActionError, ActionFuture, Approval, DENIED_BY_POLICY, StepContext, Tools};
use taskflow_tools::{Budget, Spent};

/// How long one tool call may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);
/// How a tool call whose failure may pass (a flaky fetch) is tried again.
const TOOL_RETRY: RetryPolicy = RetryPolicy { max_attempts: 3, backoff_ms: 200 };
/// How a turn whose answer was cut while it streamed (a dropped connection, a read timeout, an
/// overload event) is asked for again. The provider tries again only what fails before the
/// answer begins; once text has been passed on, only the whole turn can be asked again.
const TURN_RETRY: RetryPolicy = RetryPolicy { max_attempts: 3, backoff_ms: 500 };

/// What happened during an agent run, for a terminal or a log.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The model's turn `turn` (1-based) is being asked for.
    Turn { turn: u32 },
    /// Text or reasoning of the model, as it streams.
    Text { text: String, reasoning: bool },
    /// A tool call is about to run.
    ToolCall { id: String, name: String, arguments: String },
    /// A tool call's result, as the model will see it.
    ToolResult { id: String, name: String, content: String, is_error: bool },
    /// A tool call waits for a person's decision (`taskflow flows approve FLOW CALL`); the flow
    /// waits without a lease, and the run returns.
    ApprovalRequested { flow: FlowId, id: String, name: String, arguments: String },
    /// The turn's answer was cut while it streamed (`error`); what was shown of it is dropped,
    /// and the turn is asked for again (attempt `attempt`, from 2).
    TurnAgain { turn: u32, attempt: u32, error: String },
}

/// A call of the last turn, waiting for its result.
#[derive(Debug, Clone, PartialEq)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
    /// Why the call cannot run as written (a parser diagnostic), for the model.
    problem: Option<String>,
}

/// The conversation and where the run stands in it.
#[derive(Debug, Default)]
struct Conversation {
    messages: Vec<ChatMessage>,
    turns: u32,
    pending: VecDeque<PendingCall>,
    /// The last turn's text, when that turn asked for no tool.
    answer: Option<String>,
}

/// What the run does next.
#[derive(Debug, PartialEq)]
enum Next {
    Turn,
    Tool(PendingCall),
    Answer(String),
    OutOfTurns,
}

impl Conversation {
    fn new(prompt: &str) -> Self {
        Self { messages: vec![ChatMessage::User { content: prompt.to_owned() }], ..Self::default() }
    }

    fn add_turn(&mut self, response: &ChatResponse) {
        self.turns += 1;
        let message = &response.message;
        let ids = unique_ids(message.tool_calls.iter().map(|call| call.id.as_str()));
        self.pending = message
            .tool_calls
            .iter()
            .enumerate()
            .map(|(index, call)| PendingCall {
                id: ids[index].clone(),
                name: call.function.name.clone(),
                arguments: call.function.arguments.clone(),
                problem: message
                    .diagnostics
                    .iter()
                    .filter(|d| d.call_index == Some(index))
                    .find(|d| d.kind != DiagnosticKind::DoubleEncodedArguments)
                    .map(|d| format!("{}: {}", d.kind, d.message)),
            })
            .collect();
        let failed: Vec<String> =
            message.failed_calls().map(|d| format!("{}: {}", d.kind, d.message)).collect();
        let answered = message.tool_calls.is_empty() && failed.is_empty();
        self.answer = answered.then(|| message.content.clone().unwrap_or_default());
        self.messages.push(ChatMessage::Assistant {
            content: message.content.clone(),
            tool_calls: message
                .tool_calls
                .iter()
                .zip(ids)
                .map(|(call, id)| AssistantToolCall { id, ..AssistantToolCall::from(call) })
                .collect(),
        });
        // A turn whose only calls could not be read is no answer: the model is told why.
        if message.tool_calls.is_empty() && !failed.is_empty() {
            self.messages.push(ChatMessage::User {
                content: format!(
                    "Your tool call could not be read, so nothing was run ({}). Call the tool \
                     again with one of its names, or answer without a tool.",
                    failed.join("; ")
                ),
            });
        }
    }

    fn add_result(&mut self, id: &str, content: String, is_error: bool) {
        if let Some(at) = self.pending.iter().position(|call| call.id == id) {
            self.pending.remove(at);
        }
        self.messages.push(ChatMessage::Tool { tool_call_id: id.to_owned(), content, is_error });
    }

    fn next(&self, max_turns: u32) -> Next {
        if let Some(call) = self.pending.front() {
            return Next::Tool(call.clone());
        }
        match &self.answer {
            Some(answer) => Next::Answer(answer.clone()),
            None if self.turns >= max_turns => Next::OutOfTurns,
            None => Next::Turn,
        }
    }
}

fn llm_step_name(turn: u32) -> String {
    format!("llm {turn}")
}

/// The ids of one turn's calls, each unique in the turn and one a decision can name: an id
/// names its call's step, its result and its approval. A model may give two calls one id: the
/// first keeps it, a later one gets its place in the turn after it (`functions.run_command:0-1`).
/// An id no decision could name (empty, over 200 characters, with control characters) is the
/// call's place (`call_3`). The same turn read again from the journal gets the same ids.
fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let ids: Vec<&str> = ids.collect();
    let fits = |candidate: &str| taskflow_store::rules::check_text("call id", candidate).is_ok();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut unique = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        let base = if fits(id) { (*id).to_owned() } else { format!("call_{index}") };
        let suffixed = |n: usize| {
            let long = format!("{base}-{n}");
            if fits(&long) { long } else { format!("call_{index}-{n}") }
        };
        let mut candidate = base.clone();
        let mut n = index;
        while taken.contains(&candidate) || (candidate != *id && ids.contains(&candidate.as_str()))
        {
            candidate = suffixed(n);
            n += 1;
        }
        taken.insert(candidate.clone());
        unique.push(candidate);
    }
    unique
}

/// A tool step's name: the turn that made the call and the call's id (ids that formats number
/// by position repeat from one turn to the next).
fn tool_step_name(turn: u32, call_id: &str) -> String {
    format!("tool {turn}/{call_id}")
}

pub(crate) struct AgentRunner {
    pub(crate) store: StoreAccess,
    /// Fired, the run starts no new step and returns, the flow left as it is.
    pub(crate) drain: CancellationToken,
    pub(crate) lease: Lease,
    pub(crate) flow_id: FlowId,
    pub(crate) status: FlowStatus,
    pub(crate) journal: Vec<Step>,
    /// The steps that were waiting (for a decision) when the flow's last run gave it up: they
    /// run again in the same attempt, not as a restart.
    pub(crate) waiting: Vec<u32>,
    pub(crate) spec: AgentSpec,
    /// The limits in force: the spec's, with what the flow's state raised.
    pub(crate) budget: Budget,
    /// The budget of the pipeline whose `agent` step runs this flow, spent by its whole tree.
    pub(crate) tree: Option<Arc<TreeBudget>>,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) tools: Tools,
    pub(crate) options: EngineOptions,
    pub(crate) token: CancellationToken,
    pub(crate) progress: ProgressSink,
    /// The lease's time, kept for the whole run (its turns and tool calls renew it when due).
    pub(crate) lease_watch: LeaseWatch,
    /// When the lease is renewed next, whichever turn or call is under way then.
    pub(crate) renewals: Renewals,
}

/// What the approval policy lets a call do.
enum Gate {
    Run,
    /// Not run: the model reads "denied: REASON".
    Denied(String),
    /// No decision yet: the step waits for the signal named here.
    Ask(String),
    /// The store refused the decision's read for a cancel: the step is cancelled.
    Cancelled,
}

/// How a step's work ended.
enum Worked {
    Done(Value),
    Failed(String),
    Cancelled,
    /// The store refused the runner.
    Aborted(Error),
}

impl AgentRunner {
    /// Connects the MCP servers of the run, runs it with their tools, and shuts them down
    /// whatever the run's end. A server that cannot be used fails the flow with the reason
    /// before any model call (no step is begun); a resume tries them again. So does an
    /// approval policy that names a tool of a server that the server does not list, which
    /// would leave the tool meant unguarded (the spec holds the policy: a resume cannot mend it).
    pub(crate) async fn run_with_servers(
        mut self,
        servers: &[(String, McpServer)],
        logs: &Path,
    ) -> Result<(), EngineError> {
        if servers.is_empty() {
            return self.run().await;
        }
        let purpose = format!("flow {}", self.flow_id);
        let session = match McpSession::connect(servers, logs, &purpose).await {
            Ok(session) => session,
            Err(error) => {
                let reason =
                    format!("{error}; fix it and `taskflow flows resume {}`", self.flow_id);
                return self.end(FlowStatus::Failed, Some(reason), None).await;
            }
        };
        let unknown = self.spec.approvals.names().find_map(|name| {
            let (server, tools) = session.unknown_tool(name)?;
            Some(format!(
                "the approval policy names `{name}`, which is no tool of the MCP server \
                 `{server}` (its tools: {})",
                tools.join(", ")
            ))
        });
        if let Some(reason) = unknown {
            session.shutdown().await;
            return self.end(FlowStatus::Failed, Some(reason), None).await;
        }
        session.register(&mut self.tools);
        let outcome = self.run().await;
        session.shutdown().await;
        outcome
    }

    async fn run(mut self) -> Result<(), EngineError> {
        let mut conversation = Conversation::new(&self.spec.prompt);
        let mut in_flight = None;
        let mut retry_of: HashMap<String, u32> = HashMap::new();
        let mut journal = std::mem::take(&mut self.journal);
        journal.sort_by_key(|step| step.seq);
        let mut spent = Spent::from_journal(&journal);
        for step in journal {
            match (step.status, step.kind) {
                (StepStatus::Succeeded, StepKind::Llm) => {
                    let response = read_response(&step)?;
                    conversation.add_turn(&response);
                }
                (StepStatus::Succeeded, StepKind::Tool) => {
                    let output = step.output.clone().unwrap_or(Value::Null);
                    let id = output["call_id"].as_str().unwrap_or_default().to_owned();
                    let content = output["content"].as_str().unwrap_or_default().to_owned();
                    conversation.add_result(&id, content, output["is_error"] == true);
                }
                (StepStatus::Running, _) => in_flight = Some(step),
                (StepStatus::Failed | StepStatus::Cancelled, _) => {
                    retry_of.insert(step.name.clone(), step.seq);
                }
                (StepStatus::Succeeded, StepKind::Action | StepKind::Child) => {}
            }
        }
        self.report(Progress::Started {
            flow: self.flow_id.clone(),
            done: conversation.turns as usize,
            total: self.spec.max_turns as usize,
        });
        if self.status != FlowStatus::Running {
            self.store
                .apply(CheckpointOp::Status {
                    lease: self.lease.clone(),
                    to: FlowStatus::Running,
                    error: None,
                    state: None,
                })
                .await?;
        }
        loop {
            if self.token.is_cancelled() {
                self.report(Progress::Cancelling);
                return Ok(());
            }
            if self.drain.is_cancelled() && in_flight.is_none() {
                return Ok(());
            }
            let (step, work) = match in_flight.take() {
                // A call that waited for a decision runs again in the same attempt.
                Some(step) if self.waiting.contains(&step.seq) && step.kind == StepKind::Tool => {
                    let call = read_call(&step)?;
                    (step, Work::Tool(call))
                }
                Some(step) => match self.store.apply(attempts::restart(&self.lease, &step)).await {
                    Ok(CheckpointDone::Step(step)) => {
                        let work = match step.kind {
                            StepKind::Llm => {
                                let rebuilt = self.request(&conversation);
                                Work::Turn(read_request(&step, rebuilt)?)
                            }
                            _ => Work::Tool(read_call(&step)?),
                        };
                        (step, work)
                    }
                    Ok(_) => return Err(Error::InvalidInput("unexpected answer".into()).into()),
                    Err(error) if attempts::stops_the_run(&error) => {
                        self.finish(step.seq, StepOutcome::Cancelled, None).await?;
                        return Ok(());
                    }
                    Err(error) => return Err(error.into()),
                },
                None => match conversation.next(self.spec.max_turns) {
                    Next::Answer(answer) => {
                        let mut state = json!({"answer": answer, "turns": conversation.turns});
                        // A raised budget stays in the state, where `flows inspect` reads it.
                        if self.budget != self.spec.budget {
                            state[BUDGET_STATE_KEY] = json!(self.budget);
                        }
                        self.end(FlowStatus::Succeeded, None, Some(state)).await?;
                        return Ok(());
                    }
                    Next::OutOfTurns => {
                        let error = format!(
                            "the agent used its {} turns (--max-turns) without a final answer",
                            self.spec.max_turns
                        );
                        self.end(FlowStatus::Failed, Some(error), None).await?;
                        return Ok(());
                    }
                    Next::Turn => {
                        let exhausted = self
                            .budget
                            .spent_by(spent, self.spec.price.map(|price| spent.cost(price)))
                            .map(|exhausted| exhausted.message(&self.flow_id))
                            .or_else(|| self.tree.as_ref().and_then(|tree| tree.exhausted()));
                        if let Some(error) = exhausted {
                            self.end(FlowStatus::Blocked, Some(error), None).await?;
                            return Ok(());
                        }
                        let turn = conversation.turns + 1;
                        let request = self.request(&conversation);
                        let name = llm_step_name(turn);
                        let input = turn_input(turn, &request);
                        match self
                            .begin(&name, StepKind::Llm, input, retry_of.remove(&name))
                            .await?
                        {
                            Some(step) => (step, Work::Turn(request)),
                            None => return Ok(()),
                        }
                    }
                    Next::Tool(call) => {
                        let name = tool_step_name(conversation.turns, &call.id);
                        let input = json!({
                            "call_id": call.id, "name": call.name,
                            "arguments": call.arguments, "problem": call.problem,
                        });
                        match self
                            .begin(&name, StepKind::Tool, input, retry_of.remove(&name))
                            .await?
                        {
                            Some(step) => (step, Work::Tool(call)),
                            None => return Ok(()),
                        }
                    }
                },
            };
            self.report(Progress::StepStarted {
                step: step.name.clone(),
                seq: step.seq,
                attempt: step.attempt,
            });
            match work {
                Work::Turn(request) => {
                    let turn = step
                        .name
                        .trim_start_matches("llm ")
                        .parse()
                        .unwrap_or(conversation.turns + 1);
                    self.report(Progress::Agent(AgentEvent::Turn { turn }));
                    let worked = self.with_lease(self.call_model(&request, turn)).await?;
                    match worked {
                        Worked::Done(output) => {
                            let response: ChatResponse = serde_json::from_value(output.clone())
                                .map_err(|error| Error::InvalidInput(error.to_string()))?;
                            spent = spent.plus(&output);
                            if let Some(tree) = &self.tree {
                                tree.add(&output, self.spec.price);
                            }
                            self.finish(step.seq, StepOutcome::Succeeded(output), Some(&step))
                                .await?;
                            conversation.add_turn(&response);
                        }
                        Worked::Failed(error) => {
                            self.finish(step.seq, StepOutcome::Failed(error.clone()), Some(&step))
                                .await?;
                            let error = format!("turn {turn}: {error}");
                            self.end(FlowStatus::Failed, Some(error), None).await?;
                            return Ok(());
                        }
                        Worked::Cancelled => {
                            self.finish(step.seq, StepOutcome::Cancelled, Some(&step)).await?;
                            return Ok(());
                        }
                        Worked::Aborted(error) => return Err(error.into()),
                    }
                }
                Work::Tool(call) => {
                    self.report(Progress::Agent(AgentEvent::ToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    }));
                    let worked = match self.gate(&call, &step).await? {
                        Gate::Run => self.with_lease(self.call_tool(&call, &step)).await?,
                        Gate::Denied(reason) => {
                            Worked::Done(tool_output(&call, format!("denied: {reason}"), true))
                        }
                        Gate::Ask(signal) => {
                            return self.wait_for_decision(&call, &step, signal).await;
                        }
                        Gate::Cancelled => Worked::Cancelled,
                    };
                    match worked {
                        Worked::Done(output) => {
                            let content = output["content"].as_str().unwrap_or_default().to_owned();
                            let is_error = output["is_error"] == true;
                            self.finish(step.seq, StepOutcome::Succeeded(output), Some(&step))
                                .await?;
                            self.report(Progress::Agent(AgentEvent::ToolResult {
                                id: call.id.clone(),
                                name: call.name.clone(),
                                content: content.clone(),
                                is_error,
                            }));
                            conversation.add_result(&call.id, content, is_error);
                        }
                        Worked::Failed(error) => {
                            // Tool failures are results for the model; this is the store's.
                            self.finish(step.seq, StepOutcome::Failed(error.clone()), Some(&step))
                                .await?;
                            self.end(FlowStatus::Failed, Some(error), None).await?;
                            return Ok(());
                        }
                        Worked::Cancelled => {
                            self.finish(step.seq, StepOutcome::Cancelled, Some(&step)).await?;
                            return Ok(());
                        }
                        Worked::Aborted(error) => return Err(error.into()),
                    }
                }
            }
        }
    }

    /// The request for the next turn.
    fn request(&self, conversation: &Conversation) -> ChatRequest {
        ChatRequest {
            model: String::new(),
            system: self.spec.system.clone(),
            messages: conversation.messages.clone(),
            tools: self.offered_tools(),
            temperature: self.spec.temperature,
            max_tokens: self.spec.max_tokens,
        }
    }

    fn offered_tools(&self) -> Vec<ToolDefinition> {
        self.tools
            .names()
            .into_iter()
            .filter_map(|name| self.tools.get(name))
            .map(|tool| ToolDefinition {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
            })
            .collect()
    }

    /// One model turn, streamed: text is reported as it arrives; the whole response, usage
    /// and raw text included, is the step's output.
    /// One turn's answer, asked for again while it is cut by a failure that may pass
    /// ([`TURN_RETRY`]); nothing of a cut answer is kept.
    async fn call_model(&self, request: &ChatRequest, turn: u32) -> Worked {
        let mut attempt = 1;
        loop {
            match self.stream_answer(request).await {
                Err(error) if error.is_transient() && attempt < TURN_RETRY.max_attempts => {
                    attempt += 1;
                    let error = format!("{}: {error}", self.provider.name());
                    self.report(Progress::Agent(AgentEvent::TurnAgain { turn, attempt, error }));
                    let wait = TURN_RETRY.backoff(attempt - 1, fastrand::f64());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.token.cancelled() => return Worked::Cancelled,
                    }
                }
                Err(error) => {
                    return Worked::Failed(format!("{}: {}", self.provider.name(), error));
                }
                Ok(worked) => return worked,
            }
        }
    }

    /// One answer as it streams; `Err` for a provider's failure while it streamed.
    async fn stream_answer(
        &self,
        request: &ChatRequest,
    ) -> Result<Worked, taskflow_providers::ProviderError> {
        // A failure before the answer begins was tried again by the provider already; only an
        // answer cut while it streamed is asked for again.
        let mut stream = tokio::select! {
            stream = self.provider.stream(request) => match stream {
                Ok(stream) => stream,
                Err(error) => {
                    return Ok(Worked::Failed(format!("{}: {error}", self.provider.name())));
                }
            },
            () = self.token.cancelled() => return Ok(Worked::Cancelled),
        };
        let answer = async {
            let mut response = ResponseBuilder::new();
            while let Some(event) = stream.next().await {
                let event = event?;
                match &event {
                    ChatEvent::Message(StreamEvent::TextDelta { text }) => {
                        self.report(Progress::Agent(AgentEvent::Text {
                            text: text.clone(),
                            reasoning: false,
                        }));
                    }
                    ChatEvent::Message(StreamEvent::ReasoningDelta { text }) => {
                        self.report(Progress::Agent(AgentEvent::Text {
                            text: text.clone(),
                            reasoning: true,
                        }));
                    }
                    _ => {}
                }
                response.apply(event);
            }
            Ok::<_, taskflow_providers::ProviderError>(response.finish())
        };
        tokio::select! {
            answer = answer => match serde_json::to_value(answer?) {
                Ok(output) => Ok(Worked::Done(output)),
                Err(error) => Ok(Worked::Failed(format!("cannot record the response: {error}"))),
            },
            () = self.token.cancelled() => Ok(Worked::Cancelled),
        }
    }

    /// What the approval policy lets `call` do. A call that cannot run as written, or names
    /// no tool, is not asked about: its error is the model's at once.
    async fn gate(&self, call: &PendingCall, step: &Step) -> Result<Gate, EngineError> {
        if call.problem.is_some() || self.tools.get(&call.name).is_none() {
            return Ok(Gate::Run);
        }
        match self.spec.approvals.policy(&call.name) {
            Approval::Allow => Ok(Gate::Run),
            Approval::Deny => Ok(Gate::Denied(DENIED_BY_POLICY.to_owned())),
            Approval::Ask => {
                let signal = wait::approval_signal(&step_key(&step.name));
                let (lease, seq, name) = (self.lease.clone(), step.seq, signal.clone());
                let taken =
                    self.store.call(move |handle| handle.take_signal(&lease, seq, &name)).await;
                match taken {
                    Ok(Some(taken)) => Ok(match ApprovalDecision::from_value(&taken.payload) {
                        Some(ApprovalDecision { approved: true, .. }) => Gate::Run,
                        Some(ApprovalDecision { reason, .. }) => Gate::Denied(
                            reason
                                .filter(|reason| !reason.trim().is_empty())
                                .unwrap_or_else(|| "no reason was given".to_owned()),
                        ),
                        None => Gate::Denied("the decision could not be read".to_owned()),
                    }),
                    Ok(None) => Ok(Gate::Ask(signal)),
                    Err(error) if attempts::stops_the_run(&error) => Ok(Gate::Cancelled),
                    Err(error) => Err(error.into()),
                }
            }
        }
    }

    /// The flow waits for a decision about `call`: its `wait` names the call, the lease is
    /// given up in the same commit, and the run returns. A cancel request refuses the wait:
    /// the step ends `cancelled`.
    async fn wait_for_decision(
        &self,
        call: &PendingCall,
        step: &Step,
        signal: String,
    ) -> Result<(), EngineError> {
        let arguments = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()));
        let waiting = WaitingStep {
            seq: step.seq,
            step: step.name.clone(),
            until: None,
            signal: Some(signal.clone()),
            approval: Some(ApprovalRequest {
                call_id: call.id.clone(),
                tool: call.name.clone(),
                arguments,
            }),
            child: None,
        };
        let op = CheckpointOp::Wait { lease: self.lease.clone(), steps: vec![waiting] };
        match self.store.apply(op).await {
            Ok(_) => {
                self.report(Progress::Agent(AgentEvent::ApprovalRequested {
                    flow: self.flow_id.clone(),
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                }));
                self.report(Progress::Waiting { until: None, signals: vec![signal] });
                Ok(())
            }
            Err(error) if attempts::stops_the_run(&error) => {
                self.finish(step.seq, StepOutcome::Cancelled, Some(step)).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// One tool call. Whatever goes wrong with the call itself (bad arguments, an unknown
    /// tool, a failing tool) becomes a result that says so, for the model to read.
    async fn call_tool(&self, call: &PendingCall, step: &Step) -> Worked {
        let result = match self.run_tool(call, step).await {
            Ok(Ended::Succeeded(value)) => Ok(value),
            Ok(Ended::Failed { error, .. }) | Err(error) => Err(error),
            Ok(Ended::Cancelled) => return Worked::Cancelled,
            Ok(Ended::Aborted(error)) => return Worked::Aborted(error),
            Ok(Ended::Waiting(wait)) => Err(format!("a tool cannot wait ({wait})")),
            Ok(Ended::Blocked(reason)) => Err(format!("a tool cannot block its run ({reason})")),
        };
        let (content, is_error) = match result {
            Ok(Value::String(text)) => (text, false),
            Ok(value) => (value.to_string(), false),
            Err(message) => (format!("error: {message}"), true),
        };
        Worked::Done(tool_output(call, content, is_error))
    }

    /// Runs a call's attempts; `Err` when it cannot run as written.
    async fn run_tool(&self, call: &PendingCall, step: &Step) -> Result<Ended, String> {
        if let Some(problem) = &call.problem {
            return Err(format!("the call could not be read ({problem}); it was not run"));
        }
        let tool = self.tools.get(&call.name).ok_or_else(|| {
            format!(
                "there is no tool `{}`; the tools are: {}",
                call.name,
                self.tools.names().join(", ")
            )
        })?;
        let arguments: Value = serde_json::from_str(&call.arguments)
            .map_err(|error| format!("the arguments are not JSON: {error}"))?;
        let base = StepContext {
            flow_id: self.flow_id.clone(),
            step: step.name.clone(),
            seq: step.seq,
            attempt: step.attempt,
            idempotency_key: step.idempotency_key.clone(),
            run_token: self.lease.token.clone(),
            started_at: step.started_at,
            cancel: self.token.clone(),
            kill_grace: self.options.kill_grace,
            base_dir: Some(self.spec.workspace.clone()),
            output_dir: Some(self.spec.workspace.clone()),
            children: None,
            signals: None,
        };
        let attempts = Attempts {
            store: self.store.clone(),
            lease: self.lease.clone(),
            retry: TOOL_RETRY,
            timeout: None,
            flow_token: self.token.clone(),
            lapsed: self.lease_watch.token(),
            progress: Arc::clone(&self.progress),
        };
        let call_once = |context: StepContext| -> ActionFuture {
            let cancel = context.cancel.clone();
            let attempt = tool.call(arguments.clone(), context);
            Box::pin(async move {
                tokio::select! {
                    outcome = attempt => outcome,
                    () = tokio::time::sleep(TOOL_TIMEOUT) => {
                        cancel.cancel();
                        Err(ActionError::permanent(format!(
                            "the tool did not finish within {} s",
                            TOOL_TIMEOUT.as_secs()
                        )))
                    }
                }
            })
        };
        self.lease_watch.began(&step.idempotency_key);
        let ended = attempts.run(base, call_once).await;
        self.lease_watch.ended(&step.idempotency_key);
        Ok(ended)
    }

    /// Runs `work` while renewing the lease when due; a lost lease stops the run, and so does a
    /// lease the database did not renew in time (`work` is dropped: its commands are killed).
    async fn with_lease<F: Future<Output = Worked>>(&self, work: F) -> Result<Worked, EngineError> {
        tokio::pin!(work);
        let ttl = self.options.lease_ttl;
        let watch = &self.lease_watch;
        let lapsed = || EngineError::from(Error::LeaseLost { id: self.lease.flow_id.to_string() });
        loop {
            tokio::select! {
                biased;
                () = watch.lapsed() => return Err(lapsed()),
                worked = &mut work => return Ok(worked),
                () = tokio::time::sleep_until(self.renewals.due()) => {
                    self.renewals.begun();
                    let renewal = self.store.apply(CheckpointOp::Renew { lease: self.lease.clone(), ttl });
                    tokio::select! {
                        biased;
                        () = watch.lapsed() => return Err(lapsed()),
                        renewed = renewal => if let CheckpointDone::Lease(renewed) = renewed? {
                            watch.renewed(&renewed);
                        },
                    }
                }
            }
        }
    }

    /// Schedules a step; `None` when a cancel request came first.
    async fn begin(
        &self,
        name: &str,
        kind: StepKind,
        input: Value,
        retry_of: Option<u32>,
    ) -> Result<Option<Step>, EngineError> {
        let mut new = NewStep::new(name, kind).with_input(input);
        new.retry_of = retry_of;
        match self.store.apply(CheckpointOp::Begin { lease: self.lease.clone(), step: new }).await {
            Ok(CheckpointDone::Step(step)) => Ok(Some(step)),
            Ok(_) => Err(Error::InvalidInput("unexpected answer".into()).into()),
            Err(error) if attempts::stops_the_run(&error) => {
                self.report(Progress::Cancelling);
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn finish(
        &self,
        seq: u32,
        outcome: StepOutcome,
        step: Option<&Step>,
    ) -> Result<(), EngineError> {
        let status = outcome.status();
        self.store.apply(CheckpointOp::Finish { lease: self.lease.clone(), seq, outcome }).await?;
        if let Some(step) = step {
            self.report(Progress::StepFinished {
                step: step.name.clone(),
                seq,
                status,
                done: 0,
                total: 0,
            });
        }
        Ok(())
    }

    async fn end(
        &self,
        to: FlowStatus,
        error: Option<String>,
        state: Option<Value>,
    ) -> Result<(), EngineError> {
        match self
            .store
            .apply(CheckpointOp::Status { lease: self.lease.clone(), to, error, state })
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if attempts::stops_the_run(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    fn report(&self, progress: Progress) {
        (self.progress)(&progress);
    }
}

/// A tool step's output: the result the model reads.
fn tool_output(call: &PendingCall, content: String, is_error: bool) -> Value {
    json!({"call_id": call.id, "name": call.name, "content": content, "is_error": is_error})
}

/// A tool step's key among the flow's calls: its turn and the call's id (`1/call_0`).
fn step_key(step_name: &str) -> String {
    step_name.trim_start_matches("tool ").to_owned()
}

/// What a step does when it runs.
enum Work {
    Turn(ChatRequest),
    Tool(PendingCall),
}

fn read_response(step: &Step) -> Result<ChatResponse, EngineError> {
    let output = step.output.clone().unwrap_or(Value::Null);
    serde_json::from_value(output).map_err(|error| journal_error(step, &error))
}

/// The request an `llm` step left in flight sent, to send again.
fn read_request(step: &Step, rebuilt: ChatRequest) -> Result<ChatRequest, EngineError> {
    let input = step.input.clone().unwrap_or(Value::Null);
    stored_request(&input, rebuilt).map_err(|error| journal_error(step, &error))
}

fn read_call(step: &Step) -> Result<PendingCall, EngineError> {
    let input = step.input.clone().unwrap_or(Value::Null);
    let text = |key: &str| input[key].as_str().map(str::to_owned);
    match (text("call_id"), text("name"), text("arguments")) {
        (Some(id), Some(name), Some(arguments)) => {
            Ok(PendingCall { id, name, arguments, problem: text("problem") })
        }
        _ => Err(journal_error(step, &"the tool step has no call")),
    }
}

fn journal_error(step: &Step, error: &dyn std::fmt::Display) -> EngineError {
    Error::InvalidInput(format!(
        "step {} (`{}`) of the journal cannot be read: {error}",
        step.seq, step.name
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_parsers::{Diagnostic, FunctionCall, Message, ToolCall};

    #[test]
    fn the_calls_of_a_turn_get_ids_unique_in_it() {
        let check = |ids: &[&str], expected: &[&str]| {
            assert_eq!(unique_ids(ids.iter().copied()), expected, "{ids:?}");
        };
        check(&["call_0", "call_1"], &["call_0", "call_1"]);
        check(&["f:0", "f:0"], &["f:0", "f:0-1"]);
        check(&["a", "a", "a"], &["a", "a-1", "a-2"]);
        // A suffix never takes the id another call of the turn has.
        check(&["a", "a", "a-1"], &["a", "a-2", "a-1"]);
        // An id no decision could name is the call's place.
        check(&["", ""], &["call_0", "call_1"]);
        check(&["c\u{1b}[2J", "ok"], &["call_0", "ok"]);
        let long = "a".repeat(200);
        check(&[&long, &long], &[long.as_str(), "call_1-1"]);
        check(&[&"b".repeat(201)], &["call_0"]);
        check(&["call_1", ""], &["call_1", "call_1-1"]);
    }

    #[test]
    fn a_turn_with_two_calls_of_one_id_answers_each_under_its_own() {
        let mut conversation = Conversation::new("go");
        let calls = [
            ("f:0", "run_command", "{\"command\":\"echo A\"}"),
            ("f:0", "run_command", "{\"command\":\"echo B\"}"),
        ];
        conversation.add_turn(&turn("", &calls, Vec::new()));
        let pending: Vec<&str> = conversation.pending.iter().map(|call| call.id.as_str()).collect();
        assert_eq!(pending, ["f:0", "f:0-1"]);
        let Some(ChatMessage::Assistant { tool_calls, .. }) = conversation.messages.last() else {
            panic!("the turn is the last message");
        };
        let sent: Vec<&str> = tool_calls.iter().map(|call| call.id.as_str()).collect();
        assert_eq!(sent, pending, "the model is shown the ids its results answer");
    }

    fn turn(
        content: &str,
        calls: &[(&str, &str, &str)],
        diagnostics: Vec<Diagnostic>,
    ) -> ChatResponse {
        ChatResponse {
            message: Message {
                content: Some(content.to_owned()),
                reasoning: None,
                tool_calls: calls
                    .iter()
                    .map(|(id, name, arguments)| ToolCall {
                        id: (*id).to_owned(),
                        kind: "function".to_owned(),
                        function: FunctionCall {
                            name: (*name).to_owned(),
                            arguments: (*arguments).to_owned(),
                        },
                    })
                    .collect(),
                diagnostics,
            },
            ..ChatResponse::default()
        }
    }

    #[test]
    fn the_conversation_decides_what_comes_next() {
        let mut conversation = Conversation::new("list the files");
        assert_eq!(conversation.next(3), Next::Turn);
        let bad = Diagnostic {
            kind: DiagnosticKind::InvalidArguments,
            call_index: Some(1),
            offset: 0,
            message: "not JSON".into(),
            text: None,
        };
        conversation.add_turn(&turn(
            "Looking.",
            &[("a:0", "list_dir", "{}"), ("b:1", "read_file", "{x")],
            vec![bad],
        ));
        let Next::Tool(first) = conversation.next(3) else { panic!() };
        assert_eq!((first.id.as_str(), first.problem.as_deref()), ("a:0", None));
        conversation.add_result("a:0", "[]".into(), false);
        let Next::Tool(second) = conversation.next(3) else { panic!() };
        assert_eq!(second.problem.as_deref(), Some("invalid_arguments: not JSON"));
        conversation.add_result("b:1", "error".into(), true);
        assert_eq!(conversation.next(3), Next::Turn);
        assert_eq!(conversation.next(1), Next::OutOfTurns);
        conversation.add_turn(&turn("Done.", &[], vec![]));
        assert_eq!(conversation.next(2), Next::Answer("Done.".into()));
        assert_eq!(conversation.messages.len(), 5);
    }

    #[test]
    fn a_turn_whose_call_could_not_be_read_is_no_answer() {
        let mut conversation = Conversation::new("weather?");
        let unread = Diagnostic {
            kind: DiagnosticKind::UnresolvedName,
            call_index: None,
            offset: 0,
            message: "the id names no tool".into(),
            text: None,
        };
        conversation.add_turn(&turn("<|tool_call_begin|>0…", &[], vec![unread]));
        assert_eq!(conversation.next(3), Next::Turn);
        let Some(ChatMessage::User { content }) = conversation.messages.last() else { panic!() };
        assert!(content.contains("unresolved_name: the id names no tool"), "{content}");
        conversation.add_turn(&turn("Sunny.", &[], vec![]));
        assert_eq!(conversation.next(3), Next::Answer("Sunny.".into()));
    }
}
