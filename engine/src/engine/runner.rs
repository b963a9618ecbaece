//! One run of one managed flow: from its journal to its end.
//!
//! The runner rebuilds where the flow is from the journal (succeeded steps keep their output
//! and are never run again; a step left `running` by a runner that died starts its next attempt
//! with the same idempotency key; a failed one is tried again as a new journal row with the
//! same key), then schedules every step whose dependencies have succeeded, up to the flow's
//! concurrency. A step's outcome and the steps it unblocks are written in the same checkpoint,
//! so its output is committed before any dependant starts; the flow's final status goes with
//! the last outcome.
//!
//! A step that waits (a timer, a signal: [`Ended::Waiting`]) is parked: it stays running in
//! the journal, takes no place in the concurrency limit, and runs again when its timer is due
//! while the rest of the flow runs on. Once nothing else runs, the flow becomes `waiting`
//! (its lease given up in the same commit) and the run returns; the next run of the flow runs
//! its parked steps again first, in the same attempt.
//!
//! A step that is a model call (`llm`) checkpoints the model's response, usage included, and
//! its dependants read the reply's text. Under a budget (the pipeline's `[budget]`, spent by
//! the whole tree: `tree_budget`), no model call begins once it is spent: the run starts
//! nothing new, an `agent` step whose child stopped for the budget ends with the reason, and
//! once nothing runs the flow is `blocked` with it; a resume runs the stopped steps again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::attempts::{self, Attempts, Ended, LeaseWatch, Renewals};
use super::progress::{Progress, ProgressSink};
use super::signals::RunSignals;
use super::store_access::StoreAccess;
use super::tree_budget::TreeBudget;
use super::{EngineError, EngineOptions};
use crate::pipeline::spec::Plan;
use crate::pipeline::template;
use taskflow_store::error::Error;
use taskflow_store::lease::Lease;
use taskflow_store::model::{
    CheckpointDone, CheckpointOp, FlowId, NewStep, Step, StepKind, StepOutcome, WaitingStep,
};
use taskflow_store::status::{FlowStatus, StepStatus};
use taskflow_store::time::Timestamp;
use taskflow_tools::actions::reply_text;
use taskflow_tools::budget::BUDGET_STATE_KEY;
use taskflow_tools::{Action, ChildFlows, StepContext, Wait};

/// Where one step of the plan stands during the run.
#[derive(Debug, Clone)]
enum Slot {
    /// Not started in this run; `retry_of` is an earlier failed or cancelled journal row.
    Waiting {
        retry_of: Option<u32>,
    },
    /// Left running by a runner that stopped: its next attempt starts first.
    InFlight(Box<Step>),
    /// A begin or restart is being committed, or an attempt is running.
    Running,
    /// Waits for its timer or its signal: runs again when the timer is due, or in the next run
    /// of the flow.
    Parked(Wait),
    Done(Value),
    /// Ended without output in this run (failed or cancelled).
    Stopped,
}

/// Why the runner stopped scheduling.
enum Stop {
    Cancel,
    /// The run's caller asked it to start nothing new and return.
    Drain,
    Failure(String),
    /// The budget is spent: the flow is blocked for this reason.
    Blocked(String),
    Abort(Error),
}

/// What each op of a checkpoint means to the runner.
enum Meaning {
    Begin(usize),
    /// The step at `at` starts its next attempt of journal row `seq`.
    Restart {
        at: usize,
        seq: u32,
    },
    Finish,
    Status,
    Renew,
    /// The flow waits for its parked steps.
    Wait,
}

/// What one of the run's tasks came back with.
enum TaskEnd {
    /// The attempts of the step at `at` (journal row `seq`) ended, or it waits.
    Step(usize, u32, Ended),
    /// The timer of the parked step at `at` is due.
    Due(usize),
}

pub(crate) struct Runner {
    pub(crate) store: StoreAccess,
    /// Fired, nothing new starts and the run returns once its running steps have ended.
    pub(crate) drain: CancellationToken,
    pub(crate) plan: Plan,
    pub(crate) actions: Vec<Arc<dyn Action>>,
    /// What the steps run child flows through.
    pub(crate) children: Arc<dyn ChildFlows>,
    /// The pipeline's budget, when it has one.
    pub(crate) tree: Option<Arc<TreeBudget>>,
    pub(crate) lease: Lease,
    pub(crate) flow_id: FlowId,
    /// The flow's status when the run took it.
    pub(crate) status: FlowStatus,
    pub(crate) journal: Vec<Step>,
    /// The steps that were waiting when the flow's last run gave it up (its `wait`): they run
    /// again in the same attempt, not as a restart.
    pub(crate) waiting: Vec<u32>,
    pub(crate) options: EngineOptions,
    pub(crate) token: CancellationToken,
    pub(crate) progress: ProgressSink,
}

impl Runner {
    pub(crate) async fn run(self) -> Result<(), EngineError> {
        let Runner {
            store,
            drain,
            plan,
            actions,
            children,
            tree,
            lease,
            flow_id,
            status,
            journal,
            waiting,
            options,
            token,
            progress,
        } = self;
        let steps = &plan.spec.steps;
        let total = steps.len();
        let mut slots = vec![Slot::Waiting { retry_of: None }; total];
        // A `child` row is a child flow's record, ended by the store; its step is the action's.
        for row in journal.into_iter().filter(|row| row.kind != StepKind::Child) {
            let Some(at) = plan.position(&row.name) else { continue };
            slots[at] = match row.status {
                StepStatus::Succeeded => {
                    Slot::Done(seen_output(&*actions[at], row.output.unwrap_or(Value::Null)))
                }
                StepStatus::Running => Slot::InFlight(Box::new(row)),
                StepStatus::Failed | StepStatus::Cancelled => {
                    Slot::Waiting { retry_of: Some(row.seq) }
                }
            };
        }
        let mut done = slots.iter().filter(|slot| matches!(slot, Slot::Done(_))).count();
        // Steps wait for their dependencies by count; a step whose count reaches zero is ready.
        let mut dependants = vec![Vec::new(); total];
        let mut waiting_for = vec![0usize; total];
        for (at, deps) in plan.deps.iter().enumerate() {
            for &dep in deps {
                dependants[dep].push(at);
                if !matches!(slots[dep], Slot::Done(_)) {
                    waiting_for[at] += 1;
                }
            }
        }
        let mut ready: BTreeSet<usize> = (0..total)
            .filter(|&at| waiting_for[at] == 0 && matches!(slots[at], Slot::Waiting { .. }))
            .collect();
        progress(&Progress::Started { flow: flow_id.clone(), done, total });

        let mut ops = Vec::new();
        let mut meanings = Vec::new();
        if status != FlowStatus::Running {
            ops.push(CheckpointOp::Status {
                lease: lease.clone(),
                to: FlowStatus::Running,
                error: None,
                state: None,
            });
            meanings.push(Meaning::Status);
        }
        let mut running = 0;
        // Steps that were waiting run again first, in the same attempt, once the flow runs.
        let mut rerun = Vec::new();
        for (at, slot) in slots.iter_mut().enumerate() {
            if let Slot::InFlight(step) = slot {
                if waiting.contains(&step.seq) {
                    rerun.push((at, (**step).clone()));
                } else {
                    ops.push(attempts::restart(&lease, step));
                    meanings.push(Meaning::Restart { at, seq: step.seq });
                }
                *slot = Slot::Running;
                running += 1;
            }
        }
        // The journal rows of the steps begun, kept for a parked step to run again.
        let mut begun: HashMap<usize, Step> = HashMap::new();
        let signals = Arc::new(RunSignals { store: store.clone(), lease: lease.clone() });

        // The steps' executions are polled by this task itself: a step that finishes at once
        // (an `echo`) costs no hand-over between threads. Actions must not block (the contract
        // of any async handler); blocking work goes to `spawn_blocking`.
        let mut tasks: FuturesUnordered<BoxFuture<'static, TaskEnd>> = FuturesUnordered::new();
        let mut stop: Option<Stop> = None;
        let mut final_sent = false;
        let renewals = Renewals::new(options.lease_ttl);
        let renew = tokio::time::sleep_until(renewals.due());
        tokio::pin!(renew);
        let watch = LeaseWatch::start(&lease, options.lease_ttl);
        let lapsed = || Stop::Abort(Error::LeaseLost { id: flow_id.to_string() });
        let limit = plan.concurrency();
        let spawn =
            |tasks: &mut FuturesUnordered<BoxFuture<'static, TaskEnd>>, at: usize, step: Step| {
                watch.began(&step.idempotency_key);
                let spec = &steps[at];
                let execution = Execution {
                    attempts: Attempts {
                        store: store.clone(),
                        lease: lease.clone(),
                        retry: spec.retry.unwrap_or_default(),
                        timeout: spec.timeout,
                        flow_token: token.clone(),
                        lapsed: watch.token(),
                        progress: Arc::clone(&progress),
                    },
                    action: Arc::clone(&actions[at]),
                    base: StepContext {
                        flow_id: flow_id.clone(),
                        step: spec.id.clone(),
                        seq: step.seq,
                        attempt: step.attempt,
                        idempotency_key: step.idempotency_key,
                        run_token: lease.token.clone(),
                        started_at: step.started_at,
                        cancel: token.clone(),
                        kill_grace: options.kill_grace,
                        base_dir: plan.spec.base_dir.clone(),
                        output_dir: plan.spec.output_dir.clone(),
                        children: Some(Arc::clone(&children)),
                        signals: Some(Arc::clone(&signals) as Arc<dyn taskflow_tools::Signals>),
                    },
                    input: step.input.unwrap_or(Value::Null),
                };
                let seq = step.seq;
                tasks.push(Box::pin(async move {
                    let ended = std::panic::AssertUnwindSafe(execution.run()).catch_unwind().await;
                    let ended = ended.unwrap_or_else(|panic| Ended::Failed {
                        error: format!("the step's handler panicked: {}", panic_text(&*panic)),
                        attempt: 0,
                    });
                    TaskEnd::Step(at, seq, ended)
                }));
            };
        for (at, step) in rerun {
            begun.insert(at, step.clone());
            spawn(&mut tasks, at, step);
        }
        // Parked steps, by place in the plan.
        let mut parked: BTreeMap<usize, Step> = BTreeMap::new();

        loop {
            // Begin ready steps, in the order of the spec, up to the concurrency limit.
            while stop.is_none() && running < limit {
                let Some(&at) = ready.first() else { break };
                let model_call = actions[at].model_call();
                if model_call && let Some(reason) = tree.as_ref().and_then(|tree| tree.exhausted())
                {
                    stop = Some(Stop::Blocked(reason));
                    break;
                }
                ready.remove(&at);
                let Slot::Waiting { retry_of } = slots[at] else { continue };
                let spec = &steps[at];
                let input = template::render(&spec.with, &|id| output_of(&plan, &slots, at, id));
                let kind = if model_call { StepKind::Llm } else { StepKind::Action };
                let mut new = NewStep::new(&spec.id, kind).with_input(input);
                new.retry_of = retry_of;
                ops.push(CheckpointOp::Begin { lease: lease.clone(), step: new });
                meanings.push(Meaning::Begin(at));
                slots[at] = Slot::Running;
                running += 1;
            }
            if running == 0 && !final_sent {
                let end = match &stop {
                    None if done == total => {
                        let mut state = result(&plan, &slots);
                        // A raised budget stays in the state, where `flows inspect` reads it.
                        if let Some(tree) = &tree
                            && tree.budget() != plan.spec.budget
                            && let Value::Object(state) = &mut state
                        {
                            state.insert(BUDGET_STATE_KEY.to_owned(), json!(tree.budget()));
                        }
                        Some((FlowStatus::Succeeded, None, Some(state)))
                    }
                    // Nothing runs but steps that wait: the flow waits for them (on a stop too,
                    // so that they are not restarted; a cancel request refuses it).
                    None | Some(Stop::Drain | Stop::Cancel) if !parked.is_empty() => {
                        let steps = parked
                            .iter()
                            .map(|(&at, step)| waiting_step(step, &slots[at]))
                            .collect();
                        ops.push(CheckpointOp::Wait { lease: lease.clone(), steps });
                        meanings.push(Meaning::Wait);
                        None
                    }
                    Some(Stop::Failure(error) | Stop::Blocked(error)) => {
                        // A flow ends or blocks with no step running: the waiting ones stop
                        // first (a resume runs them again).
                        for (_, step) in std::mem::take(&mut parked) {
                            ops.push(CheckpointOp::Finish {
                                lease: lease.clone(),
                                seq: step.seq,
                                outcome: StepOutcome::Cancelled,
                            });
                            meanings.push(Meaning::Finish);
                        }
                        let to = match stop {
                            Some(Stop::Blocked(_)) => FlowStatus::Blocked,
                            _ => FlowStatus::Failed,
                        };
                        Some((to, Some(error.clone()), None))
                    }
                    _ => None,
                };
                if let Some((to, error, state)) = end {
                    ops.push(CheckpointOp::Status { lease: lease.clone(), to, error, state });
                    meanings.push(Meaning::Status);
                }
                final_sent = true;
            }
            if !ops.is_empty() {
                // A checkpoint the database does not take before the lease lapses stops the
                // run (what it holds may still be written: whoever runs the flow next reads it).
                let answers = tokio::select! {
                    biased;
                    () = watch.lapsed() => {
                        meanings.clear();
                        Vec::new()
                    }
                    answers = store.checkpoint(std::mem::take(&mut ops)) => match answers {
                        Ok(answers) => answers,
                        Err(error) => {
                            stop = Some(Stop::Abort(error));
                            Vec::new()
                        }
                    },
                };
                for (meaning, answer) in std::mem::take(&mut meanings).into_iter().zip(answers) {
                    match (meaning, answer) {
                        // Nothing starts once the lease lapsed.
                        (Meaning::Begin(at) | Meaning::Restart { at, .. }, Ok(_))
                            if watch.is_lapsed() =>
                        {
                            slots[at] = Slot::Stopped;
                            running -= 1;
                        }
                        (
                            Meaning::Begin(at) | Meaning::Restart { at, .. },
                            Ok(CheckpointDone::Step(step)),
                        ) => {
                            progress(&Progress::StepStarted {
                                step: step.name.clone(),
                                seq: step.seq,
                                attempt: step.attempt,
                            });
                            begun.insert(at, step.clone());
                            spawn(&mut tasks, at, step);
                        }
                        (Meaning::Begin(at), Err(error)) if attempts::stops_the_run(&error) => {
                            slots[at] = Slot::Stopped;
                            running -= 1;
                            stop.get_or_insert(Stop::Cancel);
                        }
                        (Meaning::Restart { at, seq }, Err(Error::CancelRequested { .. })) => {
                            if let Slot::Running = slots[at] {
                                ops.push(CheckpointOp::Finish {
                                    lease: lease.clone(),
                                    seq,
                                    outcome: StepOutcome::Cancelled,
                                });
                                meanings.push(Meaning::Finish);
                            }
                            slots[at] = Slot::Stopped;
                            running -= 1;
                            stop.get_or_insert(Stop::Cancel);
                        }
                        (Meaning::Renew, Ok(CheckpointDone::Lease(renewed))) => {
                            watch.renewed(&renewed);
                        }
                        (Meaning::Status, Err(Error::AlreadyEnded { .. })) => {}
                        (Meaning::Wait, Ok(CheckpointDone::Flow(flow))) => {
                            progress(&Progress::Waiting {
                                until: flow.wake_at,
                                signals: waited_signals(&parked, &slots),
                            });
                        }
                        (Meaning::Wait, Err(error)) if attempts::stops_the_run(&error) => {
                            // A cancel request: the waiting steps end, and the flow with them.
                            for (_, step) in std::mem::take(&mut parked) {
                                ops.push(CheckpointOp::Finish {
                                    lease: lease.clone(),
                                    seq: step.seq,
                                    outcome: StepOutcome::Cancelled,
                                });
                                meanings.push(Meaning::Finish);
                            }
                            stop.get_or_insert(Stop::Cancel);
                        }
                        (_, Err(error)) => {
                            if !matches!(stop, Some(Stop::Abort(_))) {
                                stop = Some(Stop::Abort(error));
                            }
                        }
                        (_, Ok(_)) => {}
                    }
                }
                // A run that lapsed stops, unless what it just wrote ended it.
                if watch.is_lapsed() && !(final_sent && running == 0) {
                    stop = Some(lapsed());
                }
                if !ops.is_empty() && !matches!(stop, Some(Stop::Abort(_))) {
                    continue;
                }
            }
            if let Some(Stop::Abort(_)) = stop {
                token.cancel();
                // The steps stop within the kill grace; a parked step's timer is not waited for.
                let settled = async { while tasks.next().await.is_some() {} };
                let _ = tokio::time::timeout(
                    options.kill_grace + std::time::Duration::from_secs(1),
                    settled,
                )
                .await;
                break;
            }
            if final_sent && running == 0 {
                break;
            }
            tokio::select! {
                biased;
                () = watch.lapsed() => {
                    stop = Some(lapsed());
                }
                Some(first) = tasks.next(), if !tasks.is_empty() => {
                    let mut ended = vec![first];
                    while let Some(Some(more)) = tasks.next().now_or_never() {
                        ended.push(more);
                    }
                    for end in ended {
                        let (at, seq, outcome) = match end {
                            TaskEnd::Step(at, seq, outcome) => (at, seq, outcome),
                            TaskEnd::Due(at) => {
                                // Its timer is due: the parked step runs again, unless the run
                                // is stopping (then the flow waits for it, or it is ended).
                                if stop.is_none() && let Some(step) = parked.remove(&at) {
                                    slots[at] = Slot::Running;
                                    running += 1;
                                    spawn(&mut tasks, at, step);
                                }
                                continue;
                            }
                        };
                        running -= 1;
                        if let Some(step) = begun.get(&at) {
                            watch.ended(&step.idempotency_key);
                        }
                        let name = steps[at].id.clone();
                        let (outcome, status) = match outcome {
                            Ended::Succeeded(output) => {
                                if actions[at].model_call() && let Some(tree) = &tree {
                                    tree.add(&output, plan.spec.price_of(&steps[at].id));
                                }
                                slots[at] = Slot::Done(seen_output(&*actions[at], output.clone()));
                                done += 1;
                                for &next in &dependants[at] {
                                    waiting_for[next] -= 1;
                                    if waiting_for[next] == 0 {
                                        ready.insert(next);
                                    }
                                }
                                (StepOutcome::Succeeded(output), StepStatus::Succeeded)
                            }
                            Ended::Failed { error, attempt } => {
                                slots[at] = Slot::Stopped;
                                let tries = if attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                                if !matches!(stop, Some(Stop::Cancel | Stop::Abort(_))) {
                                    stop.get_or_insert(Stop::Failure(format!("step `{name}` failed{tries}: {error}")));
                                }
                                (StepOutcome::Failed(error), StepStatus::Failed)
                            }
                            Ended::Cancelled => {
                                slots[at] = Slot::Stopped;
                                stop.get_or_insert(Stop::Cancel);
                                (StepOutcome::Cancelled, StepStatus::Cancelled)
                            }
                            Ended::Blocked(reason) => {
                                slots[at] = Slot::Stopped;
                                if !matches!(stop, Some(Stop::Cancel | Stop::Abort(_))) {
                                    stop.get_or_insert(Stop::Blocked(reason.clone()));
                                }
                                (StepOutcome::Failed(reason), StepStatus::Failed)
                            }
                            Ended::Aborted(error) => {
                                slots[at] = Slot::Stopped;
                                stop = Some(Stop::Abort(error));
                                continue;
                            }
                            Ended::Waiting(wait) => {
                                if let Some(until) = wait.until {
                                    tasks.push(Box::pin(async move {
                                        sleep_until(until).await;
                                        TaskEnd::Due(at)
                                    }));
                                }
                                slots[at] = Slot::Parked(wait);
                                if let Some(step) = begun.get(&at) {
                                    parked.insert(at, step.clone());
                                }
                                continue;
                            }
                        };
                        ops.push(CheckpointOp::Finish { lease: lease.clone(), seq, outcome });
                        meanings.push(Meaning::Finish);
                        progress(&Progress::StepFinished { step: name, seq, status, done, total });
                    }
                }
                () = token.cancelled(), if !matches!(stop, Some(Stop::Cancel | Stop::Abort(_))) => {
                    progress(&Progress::Cancelling);
                    stop = Some(Stop::Cancel);
                }
                () = drain.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Drain);
                }
                () = &mut renew => {
                    renew.as_mut().reset(renewals.begun());
                    ops.push(CheckpointOp::Renew { lease: lease.clone(), ttl: options.lease_ttl });
                    meanings.push(Meaning::Renew);
                }
            }
        }
        match stop {
            Some(Stop::Abort(error)) => Err(EngineError::Store(error)),
            _ => Ok(()),
        }
    }
}

/// What a step's dependants and the flow's result read of its output: a model call's reply
/// text, any other step's output as it is.
fn seen_output(action: &dyn Action, output: Value) -> Value {
    if action.model_call() { reply_text(&output) } else { output }
}

/// A parked step as its flow's `wait` lists it.
fn waiting_step(step: &Step, slot: &Slot) -> WaitingStep {
    let (until, signal, child) = match slot {
        Slot::Parked(wait) => (wait.until, wait.signal.clone(), wait.child.clone()),
        _ => (None, None, None),
    };
    let child = child.and_then(|id| id.parse::<FlowId>().ok());
    WaitingStep { seq: step.seq, step: step.name.clone(), until, signal, approval: None, child }
}

/// The signals the parked steps wait for.
fn waited_signals(parked: &BTreeMap<usize, Step>, slots: &[Slot]) -> Vec<String> {
    parked
        .keys()
        .filter_map(|&at| match &slots[at] {
            Slot::Parked(wait) => wait.signal.clone(),
            _ => None,
        })
        .collect()
}

/// Sleeps until the wall-clock instant `until`.
async fn sleep_until(until: Timestamp) {
    let left = until.as_millis().saturating_sub(Timestamp::now().as_millis());
    tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0))).await;
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// The output of step `id` as step `at`'s templates may read it: only the steps it waits for
/// have one (a template makes its step wait for the step it reads).
fn output_of<'s>(plan: &Plan, slots: &'s [Slot], at: usize, id: &str) -> Option<&'s Value> {
    plan.deps[at].iter().find(|&&dep| plan.spec.steps[dep].id == id).and_then(|&dep| {
        match &slots[dep] {
            Slot::Done(output) => Some(output),
            _ => None,
        }
    })
}

/// A succeeded flow's result: the outputs of the steps nothing else needs.
fn result(plan: &Plan, slots: &[Slot]) -> Value {
    let mut result = Map::new();
    for at in plan.sinks() {
        if let Slot::Done(output) = &slots[at] {
            result.insert(plan.spec.steps[at].id.clone(), output.clone());
        }
    }
    Value::Object(result)
}

/// One step's attempts, from its first in this run to success, exhaustion or cancel.
struct Execution {
    attempts: Attempts,
    action: Arc<dyn Action>,
    base: StepContext,
    input: Value,
}

impl Execution {
    async fn run(self) -> Ended {
        let Execution { attempts, action, base, input } = self;
        attempts.run(base, |context| action.run(input.clone(), context)).await
    }
}
