//! What pipeline steps and an agent's tool calls share: the attempts of one journal step, and
//! how a run treats the store's answers.
//!
//! A step's attempts run until one succeeds, one fails permanently, the retry policy is spent
//! or the flow is cancelled. Each attempt gets its own cancellation token (a child of the
//! flow's) and, with a timeout, is stopped when it runs out; between attempts the runner records
//! the failed attempt's end and the next attempt in the journal (same row, same idempotency
//! key), then waits the policy's backoff and starts it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use taskflow_store::error::Error;
use taskflow_store::lease::Lease;
use taskflow_store::model::{CheckpointDone, CheckpointOp, Step};
use taskflow_store::time::Timestamp;
use taskflow_tools::{ActionError, ActionFuture, StepContext, Wait};
use tokio_util::sync::CancellationToken;

use super::progress::{Progress, ProgressSink};
use super::store_access::StoreAccess;
use crate::pipeline::RetryPolicy;
use crate::pipeline::spec::duration_text;

/// How a step's attempts ended.
pub(crate) enum Ended {
    Succeeded(Value),
    /// The last attempt, `attempt`, failed with `error` and no other follows.
    Failed {
        error: String,
        attempt: u32,
    },
    Cancelled,
    /// The store refused the runner (its lease was taken over, the database failed).
    Aborted(Error),
    /// The step cannot end before its wait is over (a timer, a signal): no attempt was spent.
    Waiting(Wait),
    /// The flow may spend no more ([`ActionError::Blocked`]): the flow is blocked for this
    /// reason.
    Blocked(String),
}

/// How one step's attempts are run.
pub(crate) struct Attempts {
    pub store: StoreAccess,
    pub lease: Lease,
    pub retry: RetryPolicy,
    /// How long one attempt may take; one that takes longer is stopped and counts as failed.
    pub timeout: Option<Duration>,
    pub flow_token: CancellationToken,
    /// Cancelled when the run's lease lapsed unrenewed ([`LeaseWatch`]): an attempt that ends
    /// then (its process killed) is neither a failure nor tried again.
    pub lapsed: CancellationToken,
    pub progress: ProgressSink,
}

impl Attempts {
    /// Runs `call` from `base.attempt` on, each attempt with `base` as its context but for the
    /// attempt number and a cancellation token of its own.
    pub(crate) async fn run(
        &self,
        base: StepContext,
        call: impl Fn(StepContext) -> ActionFuture,
    ) -> Ended {
        let mut attempt = base.attempt;
        let mut tried = 0;
        loop {
            tried += 1;
            let cancel = self.flow_token.child_token();
            let context = StepContext { attempt, cancel: cancel.clone(), ..base.clone() };
            let attempt_future = call(context);
            let outcome = match self.timeout {
                None => attempt_future.await,
                Some(limit) => {
                    tokio::pin!(attempt_future);
                    tokio::select! {
                        outcome = &mut attempt_future => outcome,
                        () = tokio::time::sleep(limit) => {
                            cancel.cancel();
                            let _ = attempt_future.await;
                            Err(ActionError::failed(format!(
                                "timed out after {}",
                                duration_text::format(limit)
                            )))
                        }
                    }
                }
            };
            if self.lapsed.is_cancelled() {
                return Ended::Aborted(Error::LeaseLost { id: base.flow_id.to_string() });
            }
            let error = match outcome {
                Ok(output) => return Ended::Succeeded(output),
                Err(_) if self.flow_token.is_cancelled() => return Ended::Cancelled,
                Err(ActionError::Waiting(wait)) => return Ended::Waiting(wait),
                Err(ActionError::Blocked(reason)) => return Ended::Blocked(reason),
                Err(ActionError::Permanent(error)) => return Ended::Failed { error, attempt },
                Err(ActionError::Cancelled) => "the action stopped as if cancelled".to_owned(),
                Err(ActionError::Failed(error)) => error,
            };
            if tried >= self.retry.max_attempts {
                return Ended::Failed { error, attempt };
            }
            let delay = self.retry.backoff(tried, fastrand::f64());
            (self.progress)(&Progress::StepRetrying {
                step: base.step.clone(),
                attempt,
                error: error.clone(),
                delay,
            });
            // The failed attempt's end is recorded before the wait, so that neither a reader
            // during the wait nor a run that takes over after a crash in it misses its error.
            let next = CheckpointOp::NextAttempt {
                lease: self.lease.clone(),
                seq: base.seq,
                reason: error,
            };
            let step = match self.store.apply(next).await {
                Ok(CheckpointDone::Step(step)) => step,
                Ok(_) => return Ended::Aborted(Error::InvalidInput("unexpected answer".into())),
                Err(error) if stops_the_run(&error) => return Ended::Cancelled,
                Err(error) => return Ended::Aborted(error),
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.flow_token.cancelled() => return Ended::Cancelled,
            }
            attempt = step.attempt;
            (self.progress)(&Progress::StepStarted { step: step.name, seq: step.seq, attempt });
        }
    }
}

/// The store's refusals that mean the flow is being cancelled (or already ended): the run
/// schedules nothing more and lets what runs settle, instead of failing.
pub(crate) fn stops_the_run(error: &Error) -> bool {
    matches!(error, Error::CancelRequested { .. } | Error::AlreadyEnded { .. })
}

/// The op that starts the next attempt of a step a runner left running when it stopped.
pub(crate) fn restart(lease: &Lease, step: &Step) -> CheckpointOp {
    CheckpointOp::NextAttempt {
        lease: lease.clone(),
        seq: step.seq,
        reason: format!("the runner stopped during attempt {}", step.attempt),
    }
}

/// When a run must give its flow up because its lease was not renewed in time (the database
/// cannot be reached, or answers too late): another runner may take the flow once the lease is
/// past its expiry, so the run's steps must be stopped before then. The expiry is in this
/// host's clock: the store computes it from the renewing runner's `now` (a host whose clock
/// runs ahead of this one's by more than the margin may take the flow sooner). The run lapses a
/// fifth of the lease (at most 5 s) before the expiry, and never sooner than four fifths of a
/// lease after the run began: renewals come every third of one, so two may be late or lost
/// before a lapse. The margin is for the kill, which is SIGKILL at once (no grace: the time
/// is up).
///
/// A task of its own keeps the time, because the run may be waiting on the database itself
/// (a checkpoint of the only run in the process commits on the run's own thread). At the lapse
/// it kills the processes of the steps in flight (on Linux: [`end_interrupted`], by the run's
/// token and their keys; what finished steps left on purpose stays); the run, once it can look,
/// stops as if aborted, its in-process actions having made no progress while it waited (nothing
/// polled them), and records nothing more.
///
/// [`end_interrupted`]: taskflow_tools::process::end_interrupted
pub(crate) struct LeaseWatch {
    /// When the run lapses, in milliseconds of this host's clock.
    deadline: Arc<AtomicI64>,
    early: Duration,
    lapsed: CancellationToken,
    /// The idempotency keys of the steps in flight.
    in_flight: Arc<Mutex<Vec<String>>>,
    keeper: tokio::task::JoinHandle<()>,
}

impl LeaseWatch {
    pub(crate) fn start(lease: &Lease, ttl: Duration) -> LeaseWatch {
        let early = (ttl / 5).min(Duration::from_secs(5));
        let not_before = Timestamp::now().plus(ttl - early);
        let first = lease.expires_at.minus(early).max(not_before);
        let deadline = Arc::new(AtomicI64::new(first.as_millis()));
        let lapsed = CancellationToken::new();
        let in_flight: Arc<Mutex<Vec<String>>> = Arc::default();
        let keeper = tokio::spawn({
            let (deadline, lapsed) = (deadline.clone(), lapsed.clone());
            let (in_flight, token) = (in_flight.clone(), lease.token.clone());
            async move {
                loop {
                    let left = deadline.load(Ordering::Acquire) - Timestamp::now().as_millis();
                    if left <= 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(left.unsigned_abs())).await;
                }
                // Said before the kill: a step that sees its process die knows why.
                lapsed.cancel();
                let keys =
                    in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                taskflow_tools::process::end_interrupted(&token, &keys).await;
            }
        });
        LeaseWatch { deadline, early, lapsed, in_flight, keeper }
    }

    /// The lease as a renewal left it.
    pub(crate) fn renewed(&self, lease: &Lease) {
        self.deadline.fetch_max(lease.expires_at.minus(self.early).as_millis(), Ordering::AcqRel);
    }

    /// A step whose processes a lapse must end is in flight (again).
    pub(crate) fn began(&self, key: &str) {
        let mut keys = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !keys.iter().any(|known| known == key) {
            keys.push(key.to_owned());
        }
    }

    /// A step is no longer in flight.
    pub(crate) fn ended(&self, key: &str) {
        let mut keys = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.retain(|known| known != key);
    }

    /// Whether the run lapsed.
    pub(crate) fn is_lapsed(&self) -> bool {
        self.lapsed.is_cancelled()
    }

    /// Ends when the run lapses.
    pub(crate) async fn lapsed(&self) {
        self.lapsed.cancelled().await;
    }

    /// What a step sees of the lapse: cancelled when it happens.
    pub(crate) fn token(&self) -> CancellationToken {
        self.lapsed.clone()
    }
}

impl Drop for LeaseWatch {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// When a run renews a lease that lasts `ttl`: a third of it after the last renewal began (the
/// first a third after the run began), however the run's work is cut up: an agent's turns and
/// tool calls each wait for the same renewal, not a timer of their own that starts again.
pub(crate) struct Renewals {
    every: Duration,
    next: Mutex<tokio::time::Instant>,
}

impl Renewals {
    pub(crate) fn new(ttl: Duration) -> Renewals {
        let every = ttl / 3;
        Renewals { every, next: Mutex::new(tokio::time::Instant::now() + every) }
    }

    /// When the next renewal is due.
    pub(crate) fn due(&self) -> tokio::time::Instant {
        *self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A renewal begins now; returns when the one after it is due.
    pub(crate) fn begun(&self) -> tokio::time::Instant {
        let next = tokio::time::Instant::now() + self.every;
        *self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
        next
    }
}
