//! The one writer of a database file for the whole process (group commit). Whoever holds the
//! store (runners of any owner, in one engine or several) hands it writes through
//! `FlowStore::submit`; the writer thread puts every write waiting when it is free into one
//! transaction, so many flows share one fsync, and answers each only after that transaction
//! committed, so a step is reported done only once it is durable. Lease requests of runs that
//! start together are granted or refused the same way, in one transaction.
//!
//! The thread starts with the first submission and ends when the store is dropped.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use taskflow_store::{
    Answer, Caller, CheckpointDone, CheckpointOp, Error, ExpectedRevision, Flow, FlowId, Lease,
    LeaseHolder, Result, StateReport, Submission,
};

use crate::Inner;

/// The most ops one transaction carries.
const MAX_BATCH_OPS: usize = 4096;

/// On whose behalf a submission was made.
pub(crate) struct Who {
    pub owner: String,
    pub actor: String,
}

impl Who {
    fn caller(&self) -> Caller<'_> {
        Caller { owner: &self.owner, actor: &self.actor }
    }
}

/// The sending side of the writer thread.
pub(crate) struct Writer {
    jobs: Sender<(Who, Submission)>,
}

impl Writer {
    pub(crate) fn start(inner: Arc<Inner>) -> Writer {
        let (jobs, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("taskflow-writer".to_owned())
            .spawn(move || serve(&inner, &receiver))
            .expect("the writer thread starts");
        Writer { jobs }
    }

    /// Queues a submission; if the thread is gone, it is committed on this thread instead.
    pub(crate) fn send(&self, who: Who, work: Submission, inner: &Inner) {
        if let Err(mpsc::SendError((who, work))) = self.jobs.send((who, work)) {
            alone(inner, &who, work);
        }
    }
}

/// A lease request: the flow, its holder to be, how long.
pub(crate) type LeaseRequest = (FlowId, LeaseHolder, Duration);

/// A mirrored flow's report: the flow, the report, the revision it expects.
pub(crate) type ReportRequest = (FlowId, StateReport, ExpectedRevision);

/// A runner's ops and where their answers go.
type Checkpoint = (Who, Vec<CheckpointOp>, Answer<Vec<Result<CheckpointDone>>>);

fn serve(inner: &Inner, receiver: &Receiver<(Who, Submission)>) {
    while let Ok(first) = receiver.recv() {
        let mut checkpoints = Vec::new();
        let mut leases = Vec::new();
        let mut reports = Vec::new();
        let mut ops_in_batch = 0;
        let mut next = Some(first);
        while let Some((who, work)) = next.take() {
            match work {
                Submission::Checkpoint { ops, answer } => {
                    ops_in_batch += ops.len();
                    checkpoints.push((who, ops, answer));
                }
                Submission::Lease { id, holder, ttl, answer } => {
                    ops_in_batch += 1;
                    leases.push((who, (id, holder, ttl), answer));
                }
                Submission::Report { id, report, expected, answer } => {
                    ops_in_batch += 1 + report.steps.len();
                    reports.push((who, (id, report, expected), answer));
                }
            }
            if ops_in_batch < MAX_BATCH_OPS {
                next = receiver.try_recv().ok();
            }
        }
        grant(inner, leases);
        record(inner, reports);
        commit(inner, checkpoints);
    }
}

/// Commits one submission in a transaction of its own.
fn alone(inner: &Inner, who: &Who, work: Submission) {
    match work {
        Submission::Checkpoint { ops, answer } => answer(
            inner
                .checkpoint(vec![(who.caller(), ops)])
                .map(|answers| first(answers).unwrap_or_default()),
        ),
        Submission::Lease { id, holder, ttl, answer } => answer(
            inner
                .acquire(vec![(who.caller(), vec![(id, holder, ttl)])])
                .and_then(|answers| lease_answer(first(answers).unwrap_or_default())),
        ),
        Submission::Report { id, report, expected, answer } => {
            answer(inner.report(vec![(who.caller(), (id, report, expected))]).and_then(|answers| {
                first(answers).unwrap_or_else(|| Err(Error::InvalidInput("no answer".into())))
            }))
        }
    }
}

/// The first of a transaction's answers (one per submission it held).
fn first<T>(answers: Vec<T>) -> Option<T> {
    answers.into_iter().next()
}

/// The answer to one lease request, from the answers to a submission of one.
fn lease_answer(answers: Vec<Result<Lease>>) -> Result<Lease> {
    first(answers).unwrap_or_else(|| Err(Error::InvalidInput("no answer".to_owned())))
}

/// Commits the ops of every waiting runner together and answers each. If the transaction
/// itself fails, each runner's ops are tried alone so that each gets its own answer.
fn commit(inner: &Inner, batch: Vec<Checkpoint>) {
    if batch.is_empty() {
        return;
    }
    let groups = batch.iter().map(|(who, ops, _)| (who.caller(), ops.clone())).collect();
    match inner.checkpoint(groups) {
        Ok(answers) => {
            for ((_, _, answer), answers) in batch.into_iter().zip(answers) {
                answer(Ok(answers));
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some((_, _, answer)) = batch.into_iter().next() {
                answer(Err(error));
            }
        }
        Err(_) => {
            for (who, ops, answer) in batch {
                alone(inner, &who, Submission::Checkpoint { ops, answer });
            }
        }
    }
}

/// Grants or refuses every waiting lease request in one transaction and answers each. If the
/// transaction itself fails, each request is tried alone.
fn grant(inner: &Inner, batch: Vec<(Who, LeaseRequest, Answer<Lease>)>) {
    if batch.is_empty() {
        return;
    }
    let requests =
        batch.iter().map(|(who, request, _)| (who.caller(), vec![request.clone()])).collect();
    match inner.acquire(requests) {
        Ok(answers) => {
            for ((_, _, answer), answers) in batch.into_iter().zip(answers) {
                answer(lease_answer(answers));
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some((_, _, answer)) = batch.into_iter().next() {
                answer(Err(error));
            }
        }
        Err(_) => {
            for (who, (id, holder, ttl), answer) in batch {
                alone(inner, &who, Submission::Lease { id, holder, ttl, answer });
            }
        }
    }
}

/// Records every waiting report in one transaction and answers each; a report refused by the
/// rules is refused alone. If the transaction itself fails, each report is tried alone.
fn record(inner: &Inner, batch: Vec<(Who, ReportRequest, Answer<Flow>)>) {
    if batch.is_empty() {
        return;
    }
    let requests = batch.iter().map(|(who, request, _)| (who.caller(), request.clone())).collect();
    match inner.report(requests) {
        Ok(answers) => {
            for ((_, _, answer), flow) in batch.into_iter().zip(answers) {
                answer(flow);
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some((_, _, answer)) = batch.into_iter().next() {
                answer(Err(error));
            }
        }
        Err(_) => {
            for (who, (id, report, expected), answer) in batch {
                alone(inner, &who, Submission::Report { id, report, expected, answer });
            }
        }
    }
}
