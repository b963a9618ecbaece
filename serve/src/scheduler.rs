//! The scheduler loop: serve is what fires schedules (DESIGN §9). Every time a slot comes due,
//! and at least every [`LOOK_EVERY`] (a schedule added, resumed or changed by the CLI, a gated
//! slot whose gate may have opened, a run past its timeout), one pass of the engine's
//! [`Scheduler`] decides every owner's due and waiting slots on a blocking thread; the flows it
//! fired are started here like any submitted flow (the sweep adopts them if no worker is free).
//! Two serve processes on one database never fire a slot twice: a slot fires only by the
//! creation of its flow, and a pass whose schedule another moved meanwhile writes nothing.
//! Besides, only one of them schedules at a time: the loop passes only while it holds the
//! store's [`ROLE`] (PostgreSQL: an advisory lock on a connection of its own; SQLite: always
//! granted); the others ask again every [`LOOK_EVERY`] and take over once its holder dies.
//! While the database cannot be reached, the asking goes on, and [`Outage`] says so once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskflow_engine::schedule::Scheduler;
use taskflow_store::{Leadership, TaskFlow, Timestamp};

use taskflow_engine::Runs;

use crate::outage::Outage;

/// The longest the loop sleeps before it looks again.
pub const LOOK_EVERY: Duration = Duration::from_millis(200);

/// The role of the one process that schedules.
pub const ROLE: &str = "scheduler";

/// The scheduler's state, and the role while this process holds it.
struct Scheduling {
    scheduler: Scheduler,
    leadership: Option<Leadership>,
}

impl Scheduling {
    /// Whether this process schedules now: it holds the role still, or took it just now (and
    /// then starts from what the database says, not from what it knew when it last held it).
    fn leads(&mut self, taskflow: &TaskFlow, outage: &Outage) -> bool {
        if self.leadership.as_mut().is_some_and(Leadership::still_held) {
            return true;
        }
        self.leadership = match taskflow.lead(ROLE) {
            Ok(leadership) => {
                outage.reached();
                leadership
            }
            Err(error) => {
                if !outage.failed(&error) {
                    eprintln!("warning: could not ask to be the scheduler: {error}");
                }
                None
            }
        };
        if self.leadership.is_some() {
            self.scheduler = Scheduler::new();
        }
        self.leadership.is_some()
    }
}

/// Fires slots until the process stops (the task is aborted).
pub async fn fire(taskflow: TaskFlow, runs: Runs, outage: Arc<Outage>) {
    let scheduling =
        Arc::new(Mutex::new(Scheduling { scheduler: Scheduler::new(), leadership: None }));
    loop {
        let (reading, passing, asking) =
            (taskflow.clone(), Arc::clone(&scheduling), Arc::clone(&outage));
        let pass = tokio::task::spawn_blocking(move || {
            let now = Timestamp::now();
            let mut scheduling = passing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !scheduling.leads(&reading, &asking) {
                return None;
            }
            let outcome = scheduling.scheduler.pass(&reading, now);
            Some((outcome, reading.next_fire()))
        })
        .await;
        let next = match pass {
            Ok(None) => {
                tokio::time::sleep(LOOK_EVERY).await;
                continue;
            }
            Ok(Some((outcome, next))) => {
                match outcome {
                    Ok(outcome) => {
                        for (owner, flow) in &outcome.fired {
                            runs.start(owner, flow);
                        }
                        for (what, error) in &outcome.errors {
                            eprintln!("warning: the scheduler could not decide {what}: {error}");
                        }
                    }
                    Err(error) if outage.failed(&error) => {}
                    Err(error) => eprintln!("warning: a scheduler pass failed: {error}"),
                }
                next.ok().flatten()
            }
            Err(_) => None,
        };
        let now = Timestamp::now();
        let pause = match next {
            Some(at) if at > now => {
                Duration::from_millis(u64::try_from(at.as_millis() - now.as_millis()).unwrap_or(0))
                    .min(LOOK_EVERY)
            }
            Some(_) => Duration::ZERO,
            None => LOOK_EVERY,
        };
        tokio::time::sleep(pause).await;
    }
}
