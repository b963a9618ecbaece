//! How an engine's runs reach the store. Checkpoints and lease requests go to the store's
//! writer (`FlowStore::submit`), which commits whatever is waiting together (group commit),
//! whichever owner or engine handed it in; each run is answered only once its writes are
//! durable. The engine's only run under way (on a multi-threaded runtime) commits its own
//! checkpoints inline, in `block_in_place`, sparing the hand-over: there is nothing to group
//! them with. Reads and the rare one-off writes run on blocking threads.
//!
//! A thread of the engine polls the flows it runs for cancel requests made by other
//! processes, every `poll` interval, and fires their cancellation tokens. The flow a run's
//! checkpoint ended is kept as that checkpoint answered it, so the run need not read it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use taskflow_store::error::{Error, Result};
use taskflow_store::handle::OwnerHandle;
use taskflow_store::lease::Lease;
use taskflow_store::model::{CheckpointDone, CheckpointOp, Flow, FlowId};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

type Answers = Result<Vec<Result<CheckpointDone>>>;

/// What the runs of one engine share, whichever owner each runs for.
struct Shared {
    /// Flows being run, by id.
    watched: Mutex<HashMap<FlowId, Watched>>,
    /// Checkpoints being committed inline now.
    committing: AtomicUsize,
    /// Runs under way in the engine.
    runs: AtomicUsize,
    /// Leases runs that stopped could not give back (the store refused the write): given back
    /// later ([`StoreAccess::give_back_leases`]), so that a process that lives on does not sit
    /// on flows it no longer runs until their leases expire.
    kept: Mutex<Vec<(OwnerHandle, Lease)>>,
}

/// A flow being run.
struct Watched {
    /// Its owner's handle.
    handle: OwnerHandle,
    /// Fired when the flow gets a cancel request.
    token: CancellationToken,
    /// The flow as the checkpoint that ended it answered, once one has.
    ended: Option<Flow>,
}

/// One owner's access to the store for an engine's runs; cheap to clone.
#[derive(Clone)]
pub(crate) struct StoreAccess {
    handle: OwnerHandle,
    shared: Arc<Shared>,
}

/// Counts a run as under way until dropped.
pub(crate) struct RunUnderWay(Arc<Shared>);

impl Drop for RunUnderWay {
    fn drop(&mut self) {
        self.0.runs.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StoreAccess {
    /// Access for `handle`'s owner, with a cancel poll every `poll`.
    pub(crate) fn start(handle: OwnerHandle, poll: Duration) -> StoreAccess {
        let shared = Arc::new(Shared {
            watched: Mutex::new(HashMap::new()),
            committing: AtomicUsize::new(0),
            runs: AtomicUsize::new(0),
            kept: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("taskflow-cancel-poll".to_owned())
            .spawn(move || poll_cancels(&weak, poll))
            .expect("the cancel poll starts");
        StoreAccess { handle, shared }
    }

    /// The same engine's access, for another owner.
    pub(crate) fn for_owner(&self, handle: OwnerHandle) -> StoreAccess {
        StoreAccess { handle, shared: Arc::clone(&self.shared) }
    }

    /// Marks a run as under way: while more than one is, every checkpoint goes to the store's
    /// writer, to be grouped with the others.
    pub(crate) fn run_started(&self) -> RunUnderWay {
        self.shared.runs.fetch_add(1, Ordering::AcqRel);
        RunUnderWay(Arc::clone(&self.shared))
    }

    /// Applies `ops` in one transaction (with whatever other runs handed in meanwhile).
    pub(crate) async fn checkpoint(&self, ops: Vec<CheckpointOp>) -> Answers {
        let shared = &self.shared;
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread);
        if multi_threaded
            && shared.runs.load(Ordering::Acquire) <= 1
            && shared.committing.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            let answers = tokio::task::block_in_place(|| self.handle.checkpoint(ops));
            shared.committing.fetch_sub(1, Ordering::AcqRel);
            self.keep_ended(&answers);
            return answers;
        }
        let (reply, answer) = oneshot::channel();
        self.handle.submit_checkpoint(
            ops,
            Box::new(move |answers| {
                let _ = reply.send(answers);
            }),
        );
        let answers = answer.await.map_err(|_| stopped())?;
        self.keep_ended(&answers);
        answers
    }

    /// Keeps the flows that `answers` ended, of those being run.
    fn keep_ended(&self, answers: &Answers) {
        let Ok(answers) = answers else { return };
        let mut ended = answers
            .iter()
            .filter_map(|answer| match answer {
                Ok(CheckpointDone::Flow(flow)) if flow.status.is_terminal() => Some(flow),
                _ => None,
            })
            .peekable();
        if ended.peek().is_none() {
            return;
        }
        let mut watched = lock(&self.shared.watched);
        for flow in ended {
            if let Some(watched) = watched.get_mut(&flow.id) {
                watched.ended = Some(flow.clone());
            }
        }
    }

    /// One op on its own, its answer unwrapped.
    pub(crate) async fn apply(&self, op: CheckpointOp) -> Result<CheckpointDone> {
        self.checkpoint(vec![op]).await?.pop().unwrap_or_else(|| Err(stopped()))
    }

    /// Takes the lease on flow `id` for this process, in one transaction with the other
    /// requests waiting.
    pub(crate) async fn acquire_lease(&self, id: FlowId, ttl: Duration) -> Result<Lease> {
        let (reply, answer) = oneshot::channel();
        self.handle.submit_lease(
            &id,
            ttl,
            Box::new(move |lease| {
                let _ = reply.send(lease);
            }),
        );
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work` on a blocking thread: a read (the store reads through a connection of its
    /// own, so reads do not queue behind the writer's commits) or a one-off write.
    pub(crate) async fn call<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&OwnerHandle) -> Result<T> + Send + 'static,
    {
        let handle = self.handle.clone();
        tokio::task::spawn_blocking(move || work(&handle)).await.map_err(|_| stopped())?
    }

    /// Gives `lease` back, for a run that stopped: when the store refuses the write, the lease
    /// is kept to be given back later.
    pub(crate) async fn give_back(&self, lease: Lease) {
        let giving = lease.clone();
        if let Err(Error::Storage(_)) = self.call(move |handle| handle.release_lease(&giving)).await
        {
            lock(&self.shared.kept).push((self.handle.clone(), lease));
        }
    }

    /// Tries again to give back the leases stopped runs could not; keeps those the store still
    /// refuses (one taken over meanwhile is refused as another's, and forgotten).
    pub(crate) async fn give_back_leases(&self) {
        let kept = std::mem::take(&mut *lock(&self.shared.kept));
        if kept.is_empty() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let _ = tokio::task::spawn_blocking(move || {
            for (handle, lease) in kept {
                if let Err(Error::Storage(_)) = handle.release_lease(&lease) {
                    lock(&shared.kept).push((handle, lease));
                }
            }
        })
        .await;
    }

    /// Fires `token` when flow `id` gets a cancel request.
    pub(crate) fn watch(&self, id: FlowId, token: CancellationToken) {
        let watched = Watched { handle: self.handle.clone(), token, ended: None };
        lock(&self.shared.watched).insert(id, watched);
    }

    /// Stops watching flow `id`; returns the flow as the checkpoint that ended it answered, if
    /// one of its run's checkpoints did.
    pub(crate) fn unwatch(&self, id: &FlowId) -> Option<Flow> {
        lock(&self.shared.watched).remove(id).and_then(|watched| watched.ended)
    }
}

fn stopped() -> Error {
    Error::InvalidInput("the store's writer stopped".to_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every `poll`, asks the store which watched flows have a cancel request (one question per
/// owner) and fires their tokens; ends when the engine is gone.
fn poll_cancels(shared: &Weak<Shared>, poll: Duration) {
    loop {
        std::thread::sleep(poll);
        let Some(shared) = shared.upgrade() else { return };
        let mut by_owner: HashMap<String, (OwnerHandle, Vec<FlowId>)> = HashMap::new();
        for (id, Watched { handle, .. }) in lock(&shared.watched).iter() {
            let entry = by_owner
                .entry(handle.owner().to_owned())
                .or_insert_with(|| (handle.clone(), Vec::new()));
            entry.1.push(id.clone());
        }
        for (handle, ids) in by_owner.into_values() {
            // A failed poll (a busy database) is simply tried again at the next interval.
            let Ok(requested) = handle.cancel_requested(&ids) else { continue };
            let watched = lock(&shared.watched);
            for id in requested {
                if let Some(Watched { token, .. }) = watched.get(&id) {
                    token.cancel();
                }
            }
        }
    }
}
