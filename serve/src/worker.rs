//! A worker: serve's runs without its HTTP API, for `taskflow worker` on a database shared by
//! many hosts. It adopts what no live runner holds (queued flows, flows whose lease expired or
//! whose holder on this host is gone, waiting flows that are due) on a sweep every
//! `sweep_every`, at once when a wake-up arrives (a flow queued, signalled or cancelled
//! elsewhere: LISTEN/NOTIFY on PostgreSQL), and when a waiting flow falls due. Leases decide
//! who runs a flow, so two workers never run one flow at once, and across hosts only a lease's
//! expiry moves a flow.

use std::future::Future;
use std::time::Duration;

use taskflow_engine::Engine;
use taskflow_store::TaskFlow;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::wakes;
use taskflow_engine::Runs;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// At most this many flows run at once.
    pub concurrency: usize,
    /// How often it looks for flows without a wake-up (the fallback when none arrives).
    pub sweep_every: Duration,
    /// On shutdown, how long running steps get to reach their checkpoint.
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 16,
            sweep_every: Duration::from_secs(1),
            grace: Duration::from_secs(10),
        }
    }
}

/// Runs flows until `shutdown` completes, sweeping at once for each message of `wake_ups`;
/// then drains its runs and gives their flows back.
pub async fn work(
    taskflow: TaskFlow,
    engine: Engine,
    options: WorkerOptions,
    mut wake_ups: UnboundedReceiver<()>,
    shutdown: impl Future<Output = ()>,
) {
    let runs = Runs::new(taskflow.clone(), engine, options.concurrency);
    runs.warn_on_failure();
    let sweep = tokio::spawn({
        let runs = runs.clone();
        async move { runs.sweep(options.sweep_every).await }
    });
    let due = tokio::spawn(wakes::wake(taskflow, runs.clone()));
    let nudged = tokio::spawn({
        let runs = runs.clone();
        async move {
            while wake_ups.recv().await.is_some() {
                runs.sweep_now();
            }
        }
    });
    shutdown.await;
    runs.shut_down(options.grace).await;
    for task in [sweep, due, nudged] {
        task.abort();
    }
}
