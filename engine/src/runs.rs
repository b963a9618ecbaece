//! The flows one process runs in the background, and recovery. A front end (serve, the MCP
//! server) starts a managed flow here when it is submitted, resumed or made due, and a
//! process that recovers (serve, a worker) has [`Runs::sweep`] claim, at start and then every
//! sweep interval (or as soon as a worker frees up, or a waiting flow is due), as many flows as
//! it has free workers, of any owner, among those no live runner holds: queued, running under a
//! lease whose holder is gone or that expired, or waiting and due. A claim takes their leases in
//! one transaction ([`TaskFlow::claim`]), so processes sweeping one database at once get
//! disjoint sets, and each run starts under the lease claimed for it. Leases decide who runs a
//! flow, so a CLI run beside serve, or a second serve, is never run twice.
//!
//! A run that fails (the store refused a checkpoint, the flow's pipeline cannot be read) would
//! be claimed again at once and fail again, doing its step again each time: its flow rests
//! here instead, a second after its first failure, doubling up to a minute after each next one,
//! and the front end is told each time ([`Runs::on_failure`]). A lease such a run could not
//! give back (the store refused that write too) is given back by a later sweep, once the store
//! takes writes again: this process lives on, so its lease would otherwise hold the flow until
//! it expired.
//!
//! On shutdown the runs are drained (they start nothing new and give their flow back once their
//! running steps have reached a checkpoint), then, after the grace period, stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskflow_store::{Claim, Error, FlowId, Lease, TaskFlow};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::engine::{Engine, EngineError, RunControl, quiet};

/// Most flows one sweep claims.
const SWEEP_LIMIT: u32 = 500;
/// How long a flow rests after its run's first failure; doubled after each next one.
const FIRST_REST: Duration = Duration::from_secs(1);
const LONGEST_REST: Duration = Duration::from_secs(60);

/// What a front end is told of a run that failed: the flow, why, and how long it rests.
pub type FailureReport = Arc<dyn Fn(&FlowId, &EngineError, Duration) + Send + Sync>;

/// A flow whose last run here failed: not started again before `until`.
#[derive(Debug, Clone, Copy)]
struct Rest {
    until: Instant,
    pause: Duration,
}

/// The flows this process runs.
#[derive(Clone)]
pub struct Runs(Arc<Inner>);

struct Inner {
    taskflow: TaskFlow,
    /// The one engine of the process; each run acts for its flow's owner.
    engine: Engine,
    running: Mutex<HashMap<FlowId, RunControl>>,
    tasks: Mutex<JoinSet<()>>,
    workers: Arc<Semaphore>,
    /// A sweep now: a worker freed up.
    wake: Notify,
    stopping: AtomicBool,
    resting: Mutex<HashMap<FlowId, Rest>>,
    report: Mutex<Option<FailureReport>>,
}

impl Runs {
    pub fn new(taskflow: TaskFlow, engine: Engine, workers: usize) -> Self {
        Runs(Arc::new(Inner {
            taskflow,
            engine,
            running: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
            workers: Arc::new(Semaphore::new(workers.max(1))),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            resting: Mutex::new(HashMap::new()),
            report: Mutex::new(None),
        }))
    }

    /// Has `report` told of every run that fails, and how long its flow then rests.
    pub fn on_failure(
        &self,
        report: impl Fn(&FlowId, &EngineError, Duration) + Send + Sync + 'static,
    ) {
        *lock(&self.0.report) = Some(Arc::new(report));
    }

    /// [`Self::on_failure`] as a `warning:` line on stderr, what a server's operator reads.
    pub fn warn_on_failure(&self) {
        self.on_failure(|id, error, pause| {
            eprintln!(
                "warning: flow {id} could not run: {error}; this process tries it again in {} s \
                 at the earliest",
                pause.as_secs()
            );
        });
    }

    /// Whether flow `id` rests after a failed run.
    fn rests(&self, id: &FlowId) -> bool {
        lock(&self.0.resting).get(id).is_some_and(|rest| rest.until > Instant::now())
    }

    /// The flows that rest now: a sweep leaves them to others (or to a later sweep) instead of
    /// claiming each and giving it back, which would write two revisions of it each time and,
    /// with as many resting as runs free, keep every other flow waiting.
    fn resting_now(&self) -> Vec<FlowId> {
        let now = Instant::now();
        lock(&self.0.resting)
            .iter()
            .filter(|(_, rest)| rest.until > now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Takes what the run of flow `id` ended with: a failure makes it rest, longer each time in
    /// a row; anything else ends its rest. A flow another runner holds, one that ended or went
    /// away, did not fail to run.
    fn ended(&self, id: &FlowId, outcome: Result<(), &EngineError>) {
        let failure = match outcome {
            Err(EngineError::Store(
                Error::LeaseHeld { .. } | Error::AlreadyEnded { .. } | Error::NotFound { .. },
            ))
            | Ok(()) => None,
            Err(error) => Some(error),
        };
        let mut resting = lock(&self.0.resting);
        let Some(error) = failure else {
            resting.remove(id);
            return;
        };
        let now = Instant::now();
        let previous = resting.get(id).map(|rest| rest.pause);
        // A rest long over is forgotten: the next failure of its flow is a first one again.
        resting.retain(|_, rest| rest.until + LONGEST_REST > now);
        let pause = previous.map_or(FIRST_REST, |pause| (pause * 2).min(LONGEST_REST));
        resting.insert(id.clone(), Rest { until: now + pause, pause });
        drop(resting);
        let report = lock(&self.0.report).clone();
        if let Some(report) = report {
            report(id, error, pause);
        }
    }

    /// Whether this process runs flow `id` now.
    pub fn is_running(&self, id: &FlowId) -> bool {
        lock(&self.0.running).contains_key(id)
    }

    /// Starts running flow `id` for `owner` if a worker is free and it does not run here
    /// already; otherwise it waits for a sweep. Whether another runner holds it is for its
    /// lease to decide: then this run ends at once.
    pub fn start(&self, owner: &str, id: &FlowId) {
        self.launch(owner, id, None);
    }

    /// Runs a flow this process claimed, under the claimed lease; one it cannot run now (no
    /// worker free, shutting down, running here already) gets its lease back at once.
    fn start_claimed(&self, claim: Claim) {
        let Claim { owner, lease } = claim;
        let id = lease.flow_id.clone();
        if let Some(lease) = self.launch(&owner, &id, Some(lease)) {
            let taskflow = self.0.taskflow.clone();
            tokio::task::spawn_blocking(move || {
                taskflow.bind(owner).and_then(|handle| handle.release_lease(&lease))
            });
        }
    }

    /// Starts the run of flow `id` for `owner`, under `held` when given; gives `held` back when
    /// the run does not start.
    fn launch(&self, owner: &str, id: &FlowId, held: Option<Lease>) -> Option<Lease> {
        if self.0.stopping.load(Ordering::Acquire) || self.is_running(id) || self.rests(id) {
            return held;
        }
        let Ok(handle) = self.0.taskflow.bind(owner) else { return held };
        let Ok(permit) = Arc::clone(&self.0.workers).try_acquire_owned() else { return held };
        let engine = self.0.engine.for_owner(handle);
        let control = RunControl::default();
        lock(&self.0.running).insert(id.clone(), control.clone());
        let (runs, id) = (self.clone(), id.clone());
        let mut tasks = lock(&self.0.tasks);
        // Forget the runs that ended.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            // A flow another runner holds, or one that cannot run, ends here; the store has
            // recorded why, and the next sweep will not find it claimable while it is held.
            let outcome = match held {
                Some(lease) => engine.run_claimed(lease, quiet(), control).await,
                None => engine.run_controlled(&id, quiet(), control).await,
            };
            runs.ended(&id, outcome.as_ref().map(drop));
            lock(&runs.0.running).remove(&id);
            drop(permit);
            runs.0.wake.notify_one();
        });
        None
    }

    /// Has the sweep look now (a waiting flow is due).
    pub fn sweep_now(&self) {
        self.0.wake.notify_one();
    }

    /// Adopts what no live runner holds, now and then every `every`, until shutdown.
    pub async fn sweep(&self, every: Duration) {
        while !self.0.stopping.load(Ordering::Acquire) {
            self.0.engine.give_back_leases().await;
            let free = self.0.workers.available_permits().min(SWEEP_LIMIT as usize) as u32;
            if free > 0 {
                let (taskflow, ttl) = (self.0.taskflow.clone(), self.0.engine.options().lease_ttl);
                let resting = self.resting_now();
                let claimed =
                    tokio::task::spawn_blocking(move || taskflow.claim(ttl, free, &resting)).await;
                if let Ok(Ok(claims)) = claimed {
                    for claim in claims {
                        self.start_claimed(claim);
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.0.wake.notified() => {}
            }
        }
    }

    /// Stops taking flows, drains every run, waits up to `grace` for them to give their flows
    /// back, then stops what still runs and waits for that.
    pub async fn shut_down(&self, grace: Duration) {
        self.0.stopping.store(true, Ordering::Release);
        self.0.wake.notify_one();
        for control in lock(&self.0.running).values() {
            control.drain.cancel();
        }
        let mut tasks = std::mem::take(&mut *lock(&self.0.tasks));
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            for control in lock(&self.0.running).values() {
                control.stop.cancel();
            }
            while tasks.join_next().await.is_some() {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
