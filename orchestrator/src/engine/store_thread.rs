//! The engine's writer. One thread serves the engine's use of the store: runners send it their
//! checkpoints, and every checkpoint waiting when it is free goes into the same transaction
//! (group commit), so many flows share one fsync. Each runner is answered only after that
//! transaction committed, so a step is reported done only once it is durable. A runner that is
//! the engine's only one (one flow running alone) commits its checkpoints itself, without the
//! round trip to the thread: there is nothing to group them with.
//!
//! Runs that start together take their leases the same way: every lease request waiting is
//! granted or refused in one transaction.
//!
//! The same thread polls the flows it runs for cancel requests made by other processes, every
//! `poll` interval, and fires their cancellation tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::RuntimeFlavor;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use taskflow_store::error::{Error, Result};
use taskflow_store::handle::OwnerHandle;
use taskflow_store::lease::Lease;
use taskflow_store::model::{CheckpointDone, CheckpointOp, FlowId};

/// The most ops one transaction carries.
const MAX_BATCH_OPS: usize = 4096;

type Answers = Result<Vec<Result<CheckpointDone>>>;

enum Job {
    Checkpoint { ops: Vec<CheckpointOp>, reply: oneshot::Sender<Answers> },
    Acquire { id: FlowId, ttl: Duration, reply: oneshot::Sender<Result<Lease>> },
    Call(Box<dyn FnOnce(&OwnerHandle) + Send>),
}

/// A handle to the writer thread; cheap to clone. The thread ends when the last clone is
/// dropped.
#[derive(Clone)]
pub(crate) struct StoreThread {
    jobs: mpsc::Sender<Job>,
    watched: Arc<Mutex<HashMap<FlowId, CancellationToken>>>,
    /// The handle the thread writes through, for a checkpoint committed by its own runner.
    handle: OwnerHandle,
    /// Checkpoints being committed now, by the thread or inline.
    committing: Arc<AtomicUsize>,
    /// Runs under way in the engine.
    runs: Arc<AtomicUsize>,
}

/// Counts a run as under way until dropped.
pub(crate) struct RunUnderWay(Arc<AtomicUsize>);

impl Drop for RunUnderWay {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StoreThread {
    pub(crate) fn start(handle: OwnerHandle, poll: Duration) -> StoreThread {
        let (jobs, receiver) = mpsc::channel();
        let watched = Arc::new(Mutex::new(HashMap::new()));
        let committing = Arc::new(AtomicUsize::new(0));
        let (thread_watched, thread_committing) = (Arc::clone(&watched), Arc::clone(&committing));
        let thread_handle = handle.clone();
        std::thread::Builder::new()
            .name("taskflow-store".to_owned())
            .spawn(move || {
                serve(&thread_handle, &receiver, &thread_watched, &thread_committing, poll)
            })
            .expect("the store thread starts");
        StoreThread { jobs, watched, handle, committing, runs: Arc::new(AtomicUsize::new(0)) }
    }

    /// Marks a run as under way: while more than one is, every checkpoint goes through the
    /// thread, to be grouped with the others.
    pub(crate) fn run_started(&self) -> RunUnderWay {
        self.runs.fetch_add(1, Ordering::AcqRel);
        RunUnderWay(Arc::clone(&self.runs))
    }

    /// Applies `ops` (with whatever other runners sent meanwhile) in one transaction. The only
    /// run under way commits its own on its worker thread (a multi-threaded runtime moves the
    /// worker's other tasks elsewhere meanwhile), which spares a round trip to the writer
    /// thread; otherwise the writer thread batches it with the others that are waiting.
    pub(crate) async fn checkpoint(&self, ops: Vec<CheckpointOp>) -> Answers {
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
        if multi_threaded
            && self.runs.load(Ordering::Acquire) <= 1
            && self.committing.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            let answers = tokio::task::block_in_place(|| self.handle.checkpoint(ops));
            self.committing.fetch_sub(1, Ordering::AcqRel);
            return answers;
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Checkpoint { ops, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// One op on its own, its answer unwrapped.
    pub(crate) async fn apply(&self, op: CheckpointOp) -> Result<CheckpointDone> {
        self.checkpoint(vec![op]).await?.pop().unwrap_or_else(|| Err(stopped()))
    }

    /// Takes the lease on flow `id` for this process, in one transaction with the other
    /// requests waiting.
    pub(crate) async fn acquire_lease(&self, id: FlowId, ttl: Duration) -> Result<Lease> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Acquire { id, ttl, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work`, which only reads, on a blocking thread: the store reads through a
    /// connection of its own, so reads need not queue behind the writer thread's commits (nor
    /// make them wait).
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&OwnerHandle) -> Result<T> + Send + 'static,
    {
        let handle = self.handle.clone();
        tokio::task::spawn_blocking(move || work(&handle)).await.map_err(|_| stopped())?
    }

    /// Runs `work` on the store thread.
    pub(crate) async fn call<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&OwnerHandle) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job::Call(Box::new(move |handle| {
            let _ = reply.send(work(handle));
        }));
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Fires `token` when flow `id` gets a cancel request.
    pub(crate) fn watch(&self, id: FlowId, token: CancellationToken) {
        lock(&self.watched).insert(id, token);
    }

    pub(crate) fn unwatch(&self, id: &FlowId) {
        lock(&self.watched).remove(id);
    }
}

fn stopped() -> Error {
    Error::InvalidInput("the engine's store thread stopped".to_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn serve(
    handle: &OwnerHandle,
    receiver: &mpsc::Receiver<Job>,
    watched: &Mutex<HashMap<FlowId, CancellationToken>>,
    committing: &AtomicUsize,
    poll: Duration,
) {
    let mut last_poll = Instant::now();
    loop {
        let wait = poll.saturating_sub(last_poll.elapsed());
        match receiver.recv_timeout(wait) {
            Ok(first) => {
                let mut batch = Vec::new();
                let mut acquires = Vec::new();
                let mut ops_in_batch = 0;
                let mut next = Some(first);
                while let Some(job) = next.take() {
                    match job {
                        Job::Call(work) => work(handle),
                        Job::Checkpoint { ops, reply } => {
                            ops_in_batch += ops.len();
                            batch.push((ops, reply));
                        }
                        Job::Acquire { id, ttl, reply } => {
                            ops_in_batch += 1;
                            acquires.push((id, ttl, reply));
                        }
                    }
                    if ops_in_batch < MAX_BATCH_OPS {
                        next = receiver.try_recv().ok();
                    }
                }
                committing.fetch_add(1, Ordering::AcqRel);
                acquire(handle, acquires);
                commit(handle, batch);
                committing.fetch_sub(1, Ordering::AcqRel);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_poll.elapsed() >= poll {
            poll_cancels(handle, watched);
            last_poll = Instant::now();
        }
    }
}

/// Commits the ops of every waiting runner together and answers each. If the transaction
/// itself fails, each runner's ops are tried alone so that each gets its own answer.
fn commit(handle: &OwnerHandle, batch: Vec<(Vec<CheckpointOp>, oneshot::Sender<Answers>)>) {
    if batch.is_empty() {
        return;
    }
    let sizes: Vec<usize> = batch.iter().map(|(ops, _)| ops.len()).collect();
    let all: Vec<CheckpointOp> = batch.iter().flat_map(|(ops, _)| ops.iter().cloned()).collect();
    match handle.checkpoint(all) {
        Ok(answers) => {
            let mut answers = answers.into_iter();
            for ((_, reply), size) in batch.into_iter().zip(sizes) {
                let _ = reply.send(Ok(answers.by_ref().take(size).collect()));
            }
        }
        Err(_) if batch.len() > 1 => {
            for (ops, reply) in batch {
                let _ = reply.send(handle.checkpoint(ops));
            }
        }
        Err(error) => {
            if let Some((_, reply)) = batch.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Grants or refuses every waiting lease request in one transaction and answers each. If the
/// transaction itself fails, each request is tried alone so that each gets its own answer.
fn acquire(
    handle: &OwnerHandle,
    requests: Vec<(FlowId, Duration, oneshot::Sender<Result<Lease>>)>,
) {
    if requests.is_empty() {
        return;
    }
    let ids: Vec<(FlowId, Duration)> = requests.iter().map(|&(id, ttl, _)| (id, ttl)).collect();
    match handle.acquire_leases(&ids) {
        Ok(answers) => {
            for ((_, _, reply), answer) in requests.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(_) if requests.len() > 1 => {
            for (id, ttl, reply) in requests {
                let _ = reply.send(handle.acquire_lease(&id, ttl));
            }
        }
        Err(error) => {
            if let Some((_, _, reply)) = requests.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
    }
}

fn poll_cancels(handle: &OwnerHandle, watched: &Mutex<HashMap<FlowId, CancellationToken>>) {
    let ids: Vec<FlowId> = lock(watched).keys().copied().collect();
    if ids.is_empty() {
        return;
    }
    // A failed poll (a busy database) is simply tried again at the next interval.
    if let Ok(requested) = handle.cancel_requested(&ids) {
        let watched = lock(watched);
        for id in requested {
            if let Some(token) = watched.get(&id) {
                token.cancel();
            }
        }
    }
}
