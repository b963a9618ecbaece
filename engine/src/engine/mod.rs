//! The engine: runs managed flows as checkpointed steps (DESIGN §5 "Checkpoints").
//!
//! An [`Engine`] acts for one owner's handle and runs one set of [`Actions`]. It creates flows
//! from a [`FlowSpec`] (stored on the flow, so a resume runs what was started), runs or resumes
//! them, cancels and forks them. Many flows, of one owner or several ([`Engine::for_owner`]),
//! run at once in one engine; their checkpoints go to the store's writer, which commits them
//! together (`store_access`). One run of one flow
//! is a `runner::Runner`. A pipeline step may run child flows (the `agent` action) through
//! `children::ChildRuns`, which spawns them under the step's flow and runs them in this same
//! engine.

mod agent_runner;
pub(crate) mod attempts;
mod children;
mod progress;
mod runner;
mod signals;
pub(crate) mod store_access;
mod tree_budget;
mod turn_input;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use agent_runner::AgentEvent;
pub use progress::{Progress, ProgressSink, quiet};

use taskflow_providers::Provider;

use crate::pipeline::{FlowSpec, Plan, SpecError};
use agent_runner::AgentRunner;
use children::ChildRuns;
use runner::Runner;
use store_access::StoreAccess;
use taskflow_providers::{ProviderFactory, preset_providers};
use taskflow_store::error::Error;
use taskflow_store::handle::OwnerHandle;
use taskflow_store::lease::Lease;
use taskflow_store::model::{
    CancelOutcome, CheckpointOp, Flow, FlowId, NewFlow, ResumePlan, StepKind, StepOutcome,
};
use taskflow_store::rules;
use taskflow_store::status::{FlowStatus, StepStatus};
use taskflow_store::time::Timestamp;
use taskflow_store::wait;
use taskflow_tools::actions::Llm;
use taskflow_tools::budget::{BUDGET_STATE_KEY, MAX_TURNS_STATE_KEY, turns_in_force};
use taskflow_tools::mcp::{McpServer, McpSettings};
use taskflow_tools::{Action, Actions, AgentToolSettings, Tools, Workspace, register_agent_tools};
use taskflow_tools::{AgentSpec, Budget, Spent};
use tree_budget::TreeBudget;

/// The model an agent spec names, as a price table is keyed.
fn model_name(spec: &AgentSpec) -> String {
    spec.provider.model.clone().unwrap_or_else(|| "the provider's default model".to_owned())
}

/// What a flow runs.
enum FlowKind {
    Pipeline(Plan),
    Agent { spec: Box<AgentSpec>, parts: AgentParts },
}

/// What an agent spec asks for, ready to run: its provider, its built-in tools, and the MCP
/// servers to connect for the run (whose tools are added then).
struct AgentParts {
    provider: Arc<dyn Provider>,
    tools: Tools,
    mcp: Vec<(String, McpServer)>,
}

/// How an engine runs flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// How long a lease lasts; the runner renews it every third of that.
    pub lease_ttl: Duration,
    /// How often flows being run are checked for cancel requests from other processes.
    pub cancel_poll: Duration,
    /// How long a stopped child process gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lease_ttl: Duration::from_secs(30),
            cancel_poll: Duration::from_millis(200),
            kill_grace: Duration::from_secs(5),
        }
    }
}

/// How the caller of a run can end it early without cancelling the flow.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Fired, the run starts nothing new and returns once its running steps have ended, the
    /// flow left as it is (not ended) and its lease given back.
    pub drain: CancellationToken,
    /// Fired, the run stops its running steps too (they end `cancelled`, and run again when
    /// the flow is resumed).
    pub stop: CancellationToken,
}

/// Why the engine could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] Error),

    /// Each problem after its place in the spec (`steps[0].with: …`).
    #[error("{}", .0.iter().map(|error| format!("{}: {error}", error.path())).collect::<Vec<_>>().join("; "))]
    Spec(Vec<SpecError>),

    #[error("flow {id} has no pipeline to run (it was not created by the engine)")]
    NoSpec { id: String },

    #[error("flow {id} has a stored pipeline this taskflow cannot read: {detail}")]
    BadSpec { id: String, detail: String },

    #[error("flow {id} is an agent run: {detail}")]
    Agent { id: String, detail: String },

    #[error("the agent cannot start: {0}")]
    AgentSetup(String),

    #[error("flow {id}'s budget cannot be changed: {detail}")]
    Budget { id: String, detail: String },

    #[error("flow {id}'s turn limit cannot be changed: {detail}")]
    Turns { id: String, detail: String },
}

/// Runs flows for one owner.
#[derive(Clone)]
pub struct Engine {
    handle: OwnerHandle,
    actions: Actions,
    options: EngineOptions,
    store: StoreAccess,
    /// Builds the providers of agent runs (and `llm` steps); the presets when not set.
    providers: ProviderFactory,
    /// The MCP servers agent runs may name, and where their logs go.
    mcp: McpSettings,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("owner", &self.handle.owner()).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `handle` that runs `actions`.
    /// `sleep` and `wait_signal` (durable timers and signals) are added to `actions` unless
    /// it names its own.
    pub fn new(handle: OwnerHandle, mut actions: Actions, options: EngineOptions) -> Engine {
        for (name, action) in crate::waits::actions() {
            if actions.get(name).is_none() {
                actions.register_shared(name, action);
            }
        }
        let store = StoreAccess::start(handle.clone(), options.cancel_poll);
        Engine {
            handle,
            actions,
            options,
            store,
            providers: preset_providers(),
            mcp: McpSettings::default(),
        }
    }

    /// The same engine acting for another owner: `handle`'s flows run beside this owner's,
    /// their writes committed together and their cancel requests polled by the same thread.
    /// The owner stays the handle's: a flow of another owner is not found.
    pub fn for_owner(&self, handle: OwnerHandle) -> Engine {
        Engine { store: self.store.for_owner(handle.clone()), handle, ..self.clone() }
    }

    /// Gives back the leases of runs that stopped while the store refused to take them back,
    /// now that it may: a process that runs flows for long (serve, a worker) calls it before it
    /// looks for flows to run, so that a flow whose run a refused write stopped is run again
    /// once the store takes writes, not once its lease expires.
    pub async fn give_back_leases(&self) {
        self.store.give_back_leases().await;
    }

    /// The same engine, building providers with `providers` (flags and a config file add to
    /// the presets there).
    pub fn with_providers(mut self, providers: ProviderFactory) -> Engine {
        self.actions.register("llm", Llm::new(providers.clone()));
        self.providers = providers;
        self
    }

    /// The same engine, with the MCP servers agent runs may name (`AgentSpec::mcp`): a run
    /// connects the servers its spec names when it starts, a resumed run too.
    pub fn with_mcp(mut self, mcp: McpSettings) -> Engine {
        self.mcp = mcp;
        self
    }

    /// Creates a queued agent run (checked first: its workspace, tools, MCP servers and
    /// provider; the servers are not started before the run).
    pub async fn create_agent(
        &self,
        spec: &AgentSpec,
        id: Option<FlowId>,
    ) -> Result<Flow, EngineError> {
        let new = self.agent_flow(spec, id)?;
        Ok(self.store.call(move |handle| handle.create(new)).await?)
    }

    /// [`create_agent`](Self::create_agent) for this process to run: the lease is taken with
    /// the creation ([`run_claimed`](Self::run_claimed) runs it), so no worker takes it first.
    pub async fn create_agent_held(
        &self,
        spec: &AgentSpec,
        id: Option<FlowId>,
    ) -> Result<(Flow, Lease), EngineError> {
        let new = self.agent_flow(spec, id)?;
        let ttl = self.options.lease_ttl;
        Ok(self.store.call(move |handle| handle.create_held(new, ttl)).await?)
    }

    fn agent_flow(&self, spec: &AgentSpec, id: Option<FlowId>) -> Result<NewFlow, EngineError> {
        self.agent_parts(spec).map_err(EngineError::AgentSetup)?;
        spec.budget.check_price(spec.price, &model_name(spec)).map_err(EngineError::AgentSetup)?;
        let mut new = NewFlow::managed(spec.name.clone()).with_spec(spec.to_value());
        new.controller = Some("taskflow agent".to_owned());
        new.id = id;
        Ok(new)
    }

    /// Sets limits of an agent run's or a pipeline's budget (a limit `raise` leaves out stays
    /// as it was): they are written to the flow's state under a lease, so the change is a
    /// revision and the next run of the flow reads it. An agent run's cost limit needs the
    /// price the run started with; a pipeline's, the prices of its steps' models it started
    /// with (`FlowSpec::prices`). A failed run is
    /// opened again (queued), as [`run`](Self::run) would.
    pub async fn raise_budget(&self, id: &FlowId, raise: Budget) -> Result<Flow, EngineError> {
        let lease = self.raise_budget_held(id, raise).await?;
        let mut flow = self.store.call(move |handle| handle.release_lease(&lease)).await?;
        flow.spec = None;
        Ok(flow)
    }

    /// [`raise_budget`](Self::raise_budget), the flow's lease kept for this process to run it
    /// on ([`run_claimed`](Self::run_claimed)), so no worker takes it between the two.
    pub async fn raise_budget_held(
        &self,
        id: &FlowId,
        raise: Budget,
    ) -> Result<Lease, EngineError> {
        let refused = |detail: String| EngineError::Budget { id: id.to_string(), detail };
        let stored = self.stored_value(id, refused).await?;
        match AgentSpec::from_flow_spec(&stored) {
            Some(Ok(spec)) => spec
                .budget
                .overlaid(raise)
                .check_price(spec.price, &model_name(&spec))
                .map_err(refused)?,
            Some(Err(detail)) => return Err(refused(format!("its spec cannot be read: {detail}"))),
            None => {
                let spec = FlowSpec::from_value(&stored)
                    .map_err(|error| refused(format!("its spec cannot be read: {error}")))?;
                let raised = FlowSpec { budget: spec.budget.overlaid(raise), ..spec };
                if let Err(errors) =
                    raised.check(&self.actions).and_then(|()| raised.check_prices())
                {
                    return Err(refused(
                        errors
                            .iter()
                            .map(|error| error.message.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    ));
                }
            }
        }
        self.write_limits(id, |state| {
            let before: Budget = state
                .get(BUDGET_STATE_KEY)
                .and_then(|value| serde_json::from_value(value.clone()).ok())
                .unwrap_or_default();
            let after = serde_json::to_value(before.overlaid(raise))
                .map_err(|error| refused(error.to_string()))?;
            state.insert(BUDGET_STATE_KEY.to_owned(), after);
            Ok(())
        })
        .await
    }

    /// Sets an agent run's turn limit from now on (`flows resume ID --max-turns N`), as
    /// [`raise_budget_held`](Self::raise_budget_held) sets a budget: in the flow's state, a
    /// failed run opened again, the flow's lease kept for this process. A run that used its
    /// turns goes on with the new limit.
    pub async fn raise_turns_held(
        &self,
        id: &FlowId,
        max_turns: u32,
    ) -> Result<Lease, EngineError> {
        let refused = |detail: String| EngineError::Turns { id: id.to_string(), detail };
        let stored = self.stored_value(id, refused).await?;
        if !matches!(AgentSpec::from_flow_spec(&stored), Some(Ok(_))) {
            return Err(refused(
                "a turn limit is an agent run's (a pipeline's agent step runs \
                                its own, a child flow)"
                    .to_owned(),
            ));
        }
        self.write_limits(id, |state| {
            state.insert(MAX_TURNS_STATE_KEY.to_owned(), max_turns.into());
            Ok(())
        })
        .await
    }

    /// Flow `id`'s stored spec as JSON; `refused` says that it cannot be read.
    async fn stored_value(
        &self,
        id: &FlowId,
        refused: impl Fn(String) -> EngineError,
    ) -> Result<serde_json::Value, EngineError> {
        let spec_json = self.spec_json(id).await?;
        serde_json::from_str(&spec_json)
            .map_err(|error| refused(format!("its spec cannot be read: {error}")))
    }

    /// Writes the limits `change` sets into flow `id`'s state under its lease (a revision), the
    /// flow opened again first if it failed, as a resume would; the lease is kept.
    async fn write_limits(
        &self,
        id: &FlowId,
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> Result<(), EngineError>,
    ) -> Result<Lease, EngineError> {
        let ttl = self.options.lease_ttl;
        let lease = if self.read_flow(id).await?.status == FlowStatus::Failed {
            let reopened = id.clone();
            self.store.call(move |handle| handle.reopen(&reopened, ttl)).await?.1
        } else {
            self.store.acquire_lease(id.clone(), ttl).await?
        };
        let written = async {
            let flow = self.read_flow(id).await?;
            let mut state = match flow.state {
                Some(serde_json::Value::Object(state)) => state,
                _ => serde_json::Map::new(),
            };
            change(&mut state)?;
            let op = CheckpointOp::Status {
                lease: lease.clone(),
                to: flow.status,
                error: None,
                state: Some(serde_json::Value::Object(state)),
            };
            self.store.apply(op).await?;
            Ok::<_, EngineError>(())
        }
        .await;
        match written {
            Ok(()) => Ok(lease),
            Err(error) => {
                self.store.give_back(lease).await;
                Err(error)
            }
        }
    }

    /// The provider, tools and MCP servers an agent spec asks for.
    fn agent_parts(&self, spec: &AgentSpec) -> Result<AgentParts, String> {
        let workspace = Workspace::new(&spec.workspace).map_err(|error| {
            format!("the workspace {} cannot be used: {error}", spec.workspace.display())
        })?;
        let mut all = Tools::default();
        register_agent_tools(
            &mut all,
            &AgentToolSettings { workspace, allowed_commands: spec.allowed_commands.clone() },
        );
        let mcp = self.mcp.servers.chosen(&spec.mcp)?;
        // An MCP tool is known only once its server runs: here its server's prefix is checked,
        // the tool itself when the run has the server's list (`run_with_servers`).
        let of_a_server =
            |name: &str| mcp.iter().any(|(server, _)| name.starts_with(&format!("{server}__")));
        if let Some(unknown) =
            spec.approvals.names().find(|name| all.get(name).is_none() && !of_a_server(name))
        {
            return Err(format!(
                "the approval policy names `{unknown}`, which is no agent tool (tools: {}) nor \
                 a tool of an MCP server of the run (SERVER__TOOL)",
                all.names().join(", ")
            ));
        }
        let tools = if spec.tools.is_empty() {
            all
        } else {
            let mut chosen = Tools::default();
            for name in &spec.tools {
                let tool = all.get(name).ok_or_else(|| {
                    format!("there is no agent tool `{name}` (tools: {})", all.names().join(", "))
                })?;
                chosen.register_shared(tool);
            }
            chosen
        };
        let provider = (self.providers)(&spec.provider)?;
        Ok(AgentParts { provider, tools, mcp })
    }

    pub fn handle(&self) -> &OwnerHandle {
        &self.handle
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    pub fn actions(&self) -> &Actions {
        &self.actions
    }

    /// Checks a spec against this engine's actions.
    pub fn plan(&self, spec: &FlowSpec) -> Result<Plan, EngineError> {
        spec.plan(&self.actions).map_err(EngineError::Spec)
    }

    /// Creates a queued flow that will run `spec` (checked first). With `id`, the flow gets
    /// that id.
    pub async fn create(&self, spec: &FlowSpec, id: Option<FlowId>) -> Result<Flow, EngineError> {
        self.create_with_goal(spec, id, None).await
    }

    /// [`create`](Self::create), the flow's `goal` (what it is for, in words) set.
    pub async fn create_with_goal(
        &self,
        spec: &FlowSpec,
        id: Option<FlowId>,
        goal: Option<String>,
    ) -> Result<Flow, EngineError> {
        let new = self.pipeline_flow(spec, id, goal)?;
        Ok(self.store.call(move |handle| handle.create(new)).await?)
    }

    /// [`create_with_goal`](Self::create_with_goal) for this process to run: the lease is
    /// taken with the creation ([`run_claimed`](Self::run_claimed) runs it), so no worker
    /// woken by the new flow takes it first.
    pub async fn create_held(
        &self,
        spec: &FlowSpec,
        id: Option<FlowId>,
        goal: Option<String>,
    ) -> Result<(Flow, Lease), EngineError> {
        let new = self.pipeline_flow(spec, id, goal)?;
        let ttl = self.options.lease_ttl;
        Ok(self.store.call(move |handle| handle.create_held(new, ttl)).await?)
    }

    fn pipeline_flow(
        &self,
        spec: &FlowSpec,
        id: Option<FlowId>,
        goal: Option<String>,
    ) -> Result<NewFlow, EngineError> {
        spec.check(&self.actions).map_err(EngineError::Spec)?;
        spec.check_prices().map_err(EngineError::Spec)?;
        let mut new = NewFlow::managed(spec.name.clone()).with_spec(spec.to_value());
        new.controller = Some("taskflow engine".to_owned());
        new.id = id;
        new.goal = goal;
        Ok(new)
    }

    /// Runs a flow until it ends: a new one from its first step, a stopped one from its last
    /// checkpoint, a failed one from the step that failed. Returns the flow as it ended, without
    /// its `spec` (which a run does not change; [`OwnerHandle::flow`] reads it). A flow another
    /// live runner holds is refused ([`Error::LeaseHeld`]).
    pub async fn run(&self, id: &FlowId) -> Result<Flow, EngineError> {
        self.run_with_progress(id, quiet()).await
    }

    /// [`run`](Self::run), reporting progress to `progress`.
    pub async fn run_with_progress(
        &self,
        id: &FlowId,
        progress: ProgressSink,
    ) -> Result<Flow, EngineError> {
        self.run_flow(id, progress, RunControl::default(), None, None).await
    }

    /// [`run_with_progress`](Self::run_with_progress) under `control`: a process that shuts
    /// down drains its runs first (they start nothing new and end without an end, their lease
    /// given back), then stops what is still running.
    pub async fn run_controlled(
        &self,
        id: &FlowId,
        progress: ProgressSink,
        control: RunControl,
    ) -> Result<Flow, EngineError> {
        self.run_flow(id, progress, control, None, None).await
    }

    /// [`run_controlled`](Self::run_controlled) of a flow whose lease this process holds
    /// already ([`TaskFlow::claim`](taskflow_store::TaskFlow::claim)): the run starts under it.
    /// A flow that cannot run gives the lease back.
    pub async fn run_claimed(
        &self,
        lease: Lease,
        progress: ProgressSink,
        control: RunControl,
    ) -> Result<Flow, EngineError> {
        let id = lease.flow_id.clone();
        self.run_flow(&id, progress, control, Some(lease), None).await
    }

    /// [`run_with_progress`](Self::run_with_progress), stopping when `control.stop` fires as
    /// well as on a cancel request (a child flow's run stops with the step that runs it). With
    /// `held`, the run's lease is taken already. A child agent run of a pipeline's step gets the
    /// pipeline's budget, `tree`.
    async fn run_flow(
        &self,
        id: &FlowId,
        progress: ProgressSink,
        control: RunControl,
        held: Option<Lease>,
        tree: Option<Arc<TreeBudget>>,
    ) -> Result<Flow, EngineError> {
        let RunControl { drain, stop: token } = control;
        let id = id.clone();
        let ttl = self.options.lease_ttl;
        let read = async {
            // A run that holds the lease already reads its journal at once: no other runner
            // writes it meanwhile. Another reads it once it holds the lease.
            let (mut flow, spec_json, journal) = if held.is_some() {
                let start_id = id.clone();
                let start = self.store.call(move |handle| handle.run_start(&start_id)).await?;
                (start.flow, stored_spec(&id, start.spec_json)?, Some(start.steps))
            } else {
                (self.read_flow(&id).await?, self.spec_json(&id).await?, None)
            };
            // A failed flow is opened again with its lease taken in the same transaction, so
            // that a worker woken by the change cannot claim it first; not when its spec cannot
            // run here (one stored before a rule it breaks): it stays failed, its error kept.
            let mut reopened = None;
            if held.is_none()
                && flow.status == FlowStatus::Failed
                && flow.sync_mode == crate::SyncMode::Managed
            {
                self.kind_from_json(&id, &spec_json)?;
                let reopening = id.clone();
                let (opened, lease) =
                    self.store.call(move |handle| handle.reopen(&reopening, ttl)).await?;
                flow = opened;
                reopened = Some(lease);
            }
            // A live lease of another runner is refused when the lease is taken, atomically.
            let resume = match rules::resume_plan(&flow, Timestamp::now()) {
                Ok(resume) => resume,
                Err(error) => {
                    if let Some(lease) = reopened {
                        self.store.give_back(lease).await;
                    }
                    return Err(error.into());
                }
            };
            Ok::<_, EngineError>((flow, resume, spec_json, journal, reopened))
        };
        let (flow, resume, spec_json, journal, reopened) = match (read.await, &held) {
            (Ok(read), _) => read,
            (Err(error), None) => return Err(error),
            (Err(error), Some(lease)) => {
                self.store.give_back(lease.clone()).await;
                return Err(error);
            }
        };
        // The spec is read into a plan (a long pipeline takes a while) while the lease is taken
        // and the journal read; a spec that cannot run gives the lease back.
        let (engine, reading_id) = (self.clone(), id.clone());
        let reading =
            tokio::task::spawn_blocking(move || engine.kind_from_json(&reading_id, &spec_json));
        let lease = match held.or(reopened) {
            Some(lease) => lease,
            None => self.store.acquire_lease(id.clone(), ttl).await?,
        };
        let journal = match journal {
            Some(journal) => Ok(journal),
            None => {
                let journal_id = id.clone();
                self.store.call(move |handle| handle.steps(&journal_id)).await
            }
        };
        let kind = reading.await.unwrap_or_else(|error| {
            let detail = format!("reading it stopped: {error}");
            Err(EngineError::BadSpec { id: id.to_string(), detail })
        });
        let kind = match kind {
            Ok(kind) => kind,
            Err(error) => {
                self.store.give_back(lease.clone()).await;
                return Err(error);
            }
        };
        // A run that died left its running steps' processes behind, those their commands
        // started themselves included: they end before those steps run again.
        if let (Some(dead_run), Ok(journal)) = (&lease.replaced, &journal) {
            let interrupted: Vec<&str> = journal
                .iter()
                .filter(|step| step.status == StepStatus::Running)
                .map(|step| step.idempotency_key.as_str())
                .collect();
            taskflow_tools::process::end_interrupted(dead_run, &interrupted).await;
        }
        let _under_way = self.store.run_started();
        self.store.watch(id.clone(), token.clone());
        let outcome = async {
            let journal = journal?;
            if resume == ResumePlan::FinishCancel {
                // Children first: each finishes its own cancel, and its end ends its step here.
                let running = journal.iter().filter(|step| step.status == StepStatus::Running);
                for step in running.clone().filter(|step| step.kind == StepKind::Child) {
                    if let Some(child) = &step.child_flow_id {
                        self.finish_child_cancel(child.clone()).await?;
                    }
                }
                for step in running.filter(|step| step.kind != StepKind::Child) {
                    let (lease, seq) = (lease.clone(), step.seq);
                    self.store
                        .call(move |handle| handle.finish_step(&lease, seq, StepOutcome::Cancelled))
                        .await?;
                }
                return Ok(());
            }
            match kind {
                FlowKind::Pipeline(plan) => {
                    let actions: Vec<Arc<dyn Action>> = plan
                        .spec
                        .steps
                        .iter()
                        .map(|step| {
                            self.actions
                                .get(&step.action)
                                .expect("a checked plan names known actions")
                        })
                        .collect();
                    let tree = self.tree_budget(&flow, &plan.spec, &journal).await?;
                    let children = Arc::new(ChildRuns {
                        engine: self.clone(),
                        parent: lease.clone(),
                        flow_token: token.clone(),
                        tree: tree.clone(),
                        prices: plan.spec.prices.clone(),
                    });
                    Runner {
                        store: self.store.clone(),
                        drain: drain.clone(),
                        plan,
                        actions,
                        children,
                        tree,
                        lease: lease.clone(),
                        flow_id: id.clone(),
                        status: flow.status,
                        journal,
                        waiting: if flow.status == FlowStatus::Waiting {
                            wait::waiting_seqs(flow.wait.as_ref())
                        } else {
                            Vec::new()
                        },
                        options: self.options.clone(),
                        token,
                        progress,
                    }
                    .run()
                    .await
                }
                FlowKind::Agent { spec, parts } => {
                    let AgentParts { provider, tools, mcp } = parts;
                    // An agent run of a pipeline's step, resumed on its own, spends the
                    // pipeline's budget all the same.
                    let tree = match tree {
                        Some(tree) => Some(tree),
                        None => self.ancestor_budget(&flow).await?,
                    };
                    AgentRunner {
                        store: self.store.clone(),
                        drain: drain.clone(),
                        lease: lease.clone(),
                        flow_id: id.clone(),
                        status: flow.status,
                        journal,
                        waiting: if flow.status == FlowStatus::Waiting {
                            wait::waiting_seqs(flow.wait.as_ref())
                        } else {
                            Vec::new()
                        },
                        budget: Budget::in_force(spec.budget, flow.state.as_ref()),
                        tree,
                        spec: AgentSpec {
                            max_turns: turns_in_force(spec.max_turns, flow.state.as_ref()),
                            ..*spec
                        },
                        provider,
                        tools,
                        lease_watch: attempts::LeaseWatch::start(&lease, self.options.lease_ttl),
                        renewals: attempts::Renewals::new(self.options.lease_ttl),
                        options: self.options.clone(),
                        token,
                        progress,
                    }
                    .run_with_servers(&mcp, &self.mcp.log_dir())
                    .await
                }
            }
        }
        .await;
        let ended = self.store.unwatch(&id);
        match &outcome {
            Err(EngineError::Store(Error::Storage(storage))) if storage.kind.is_fault() => {
                self.record_fault(&lease, storage.to_string()).await;
            }
            Err(_) => {
                // Whatever stopped the run, no live runner is left on the flow: say so at once.
                self.store.give_back(lease.clone()).await;
            }
            Ok(()) => {}
        }
        outcome?;
        let ended = match ended {
            Some(flow) => flow,
            None => self.read_flow(&id).await?,
        };
        if ended.status.is_terminal() || ended.lease.is_none() {
            return Ok(ended);
        }
        // Stopped without an end (a cancel still settling elsewhere): let the next runner in.
        let mut released = self.store.call(move |handle| handle.release_lease(&lease)).await?;
        released.spec = None;
        Ok(released)
    }

    /// The storage failed under a run (a full disk, an I/O error, a read-only file): the run has
    /// stopped scheduling; it tries once to leave the flow `blocked` with the cause as its error
    /// and to give its lease back, so that every view says what happened and a resume after the
    /// fix can start at once. Either write may fail the same way; then the flow stays as the
    /// last checkpoint left it: its holder, once dead, shows it stalled, and a holder that lives
    /// on (serve, a worker) gives the lease back when the store takes writes again
    /// ([`Engine::give_back_leases`]).
    async fn record_fault(&self, lease: &Lease, cause: String) {
        let (blocking, releasing) = (lease.clone(), lease.clone());
        let error = format!("stopped: {cause}");
        let _ = self
            .store
            .call(move |handle| handle.set_status(&blocking, FlowStatus::Blocked, Some(error)))
            .await;
        self.store.give_back(releasing).await;
    }

    /// Finishes the cancel of a child flow that a cancelled parent's step is waiting for. A
    /// child that has ended meanwhile is left as it is.
    fn finish_child_cancel(
        &self,
        child: FlowId,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), EngineError>> + Send + '_>> {
        Box::pin(async move {
            match self.run_flow(&child, quiet(), RunControl::default(), None, None).await {
                Ok(_) | Err(EngineError::Store(Error::AlreadyEnded { .. })) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }

    /// Sticky cancel; a run of the flow in this engine notices at once, one in another process
    /// within its poll interval.
    pub async fn cancel(&self, id: &FlowId) -> Result<CancelOutcome, EngineError> {
        let id = id.clone();
        Ok(self.store.call(move |handle| handle.request_cancel(&id, None)).await?)
    }

    /// The budget pipeline `flow` and its tree spend, as one run of it holds it: what its
    /// journal and its descendants' model calls used so far; `None` when it sets no limit.
    async fn tree_budget(
        &self,
        flow: &Flow,
        spec: &FlowSpec,
        journal: &[taskflow_store::model::Step],
    ) -> Result<Option<Arc<TreeBudget>>, EngineError> {
        let budget = Budget::in_force(spec.budget, flow.state.as_ref());
        if budget.is_empty() {
            return Ok(None);
        }
        let of = flow.id.clone();
        let (below, descendants) = self
            .store
            .call(move |handle| {
                Ok((handle.descendant_steps(&of, StepKind::Llm)?, handle.descendants(&of)?))
            })
            .await?;
        let spent = Spent::from_journal(journal.iter().chain(&below));
        let cost = crate::costs::tree_cost(
            &crate::costs::Prices::Pipeline(spec.prices.clone()),
            journal,
            crate::costs::specs(&descendants),
            &below,
        );
        Ok(TreeBudget::new(flow.id.clone(), budget, spent, cost))
    }

    /// The budget of the nearest pipeline above `flow` that sets one, as its run would hold
    /// it; `None` for a flow of no such pipeline.
    async fn ancestor_budget(&self, flow: &Flow) -> Result<Option<Arc<TreeBudget>>, EngineError> {
        let mut parent = flow.parent_flow_id.clone();
        while let Some(id) = parent {
            let above = self.read_flow(&id).await?;
            let spec_json = self.spec_json(&id).await?;
            let (engine, reading) = (self.clone(), id.clone());
            let kind =
                tokio::task::spawn_blocking(move || engine.kind_from_json(&reading, &spec_json))
                    .await;
            // Only a pipeline sets a tree's budget; an agent run above (whose provider this
            // process may not build) is looked through.
            if let Ok(Ok(FlowKind::Pipeline(plan))) = kind {
                let journal_of = id.clone();
                let journal = self.store.call(move |handle| handle.steps(&journal_of)).await?;
                if let Some(tree) = self.tree_budget(&above, &plan.spec, &journal).await? {
                    return Ok(Some(tree));
                }
            }
            parent = above.parent_flow_id;
        }
        Ok(None)
    }

    /// The flow without its spec, read on a blocking thread.
    async fn read_flow(&self, id: &FlowId) -> Result<Flow, EngineError> {
        let id = id.clone();
        Ok(self.store.call(move |handle| handle.flow_without_spec(&id)).await?)
    }

    /// The flow's stored spec as JSON text, read on a blocking thread.
    async fn spec_json(&self, id: &FlowId) -> Result<String, EngineError> {
        let read = id.clone();
        stored_spec(id, self.store.call(move |handle| handle.spec_json(&read)).await?)
    }

    /// A new queued flow with `id`'s steps before `from_seq` already done; run it with
    /// [`run`](Self::run).
    pub async fn fork(&self, id: &FlowId, from_seq: u32) -> Result<Flow, EngineError> {
        self.runnable(id).await?;
        let id = id.clone();
        Ok(self.store.call(move |handle| handle.fork(&id, from_seq)).await?)
    }

    /// [`fork`](Self::fork) for this process to run: the lease is taken with the new flow
    /// ([`run_claimed`](Self::run_claimed) runs it), so no worker takes it first.
    pub async fn fork_held(
        &self,
        id: &FlowId,
        from_seq: u32,
    ) -> Result<(Flow, Lease), EngineError> {
        self.runnable(id).await?;
        let (id, ttl) = (id.clone(), self.options.lease_ttl);
        Ok(self.store.call(move |handle| handle.fork_held(&id, from_seq, ttl)).await?)
    }

    /// Refuses a flow this engine could not run (its spec unknown to it).
    async fn runnable(&self, id: &FlowId) -> Result<(), EngineError> {
        let spec_json = self.spec_json(id).await?;
        self.kind_from_json(id, &spec_json).map(drop)
    }

    /// What a flow runs (the pipeline or the agent stored on it, ready to run), from its spec as
    /// stored, read straight into the spec's own types.
    fn kind_from_json(&self, id: &FlowId, json: &str) -> Result<FlowKind, EngineError> {
        /// Whether the spec is an agent run's.
        #[derive(serde::Deserialize)]
        struct Shape {
            #[serde(default)]
            agent: Option<serde::de::IgnoredAny>,
        }
        #[derive(serde::Deserialize)]
        struct Stored {
            agent: AgentSpec,
        }
        let unreadable = |error: serde_json::Error| EngineError::BadSpec {
            id: id.to_string(),
            detail: error.to_string(),
        };
        // A pipeline is read at once (the common case, and a long one takes a while); only when
        // that fails is the spec looked at again, to tell an agent run's from an unreadable one.
        match serde_json::from_str::<FlowSpec>(json) {
            Ok(spec) => {
                return spec
                    .into_plan(&self.actions)
                    .map(FlowKind::Pipeline)
                    .map_err(EngineError::Spec);
            }
            Err(pipeline_error) => {
                if serde_json::from_str::<Shape>(json).map_err(unreadable)?.agent.is_none() {
                    return Err(unreadable(pipeline_error));
                }
            }
        }
        let agent_error = |detail| EngineError::Agent { id: id.to_string(), detail };
        let Stored { agent: spec } = serde_json::from_str(json)
            .map_err(|error| agent_error(format!("its stored spec cannot be read: {error}")))?;
        let parts = self.agent_parts(&spec).map_err(agent_error)?;
        Ok(FlowKind::Agent { spec: Box::new(spec), parts })
    }
}

/// Flow `id`'s stored spec; a flow without one was not created by the engine.
fn stored_spec(id: &FlowId, spec_json: Option<String>) -> Result<String, EngineError> {
    spec_json.ok_or_else(|| EngineError::NoSpec { id: id.to_string() })
}
