//! The scheduler loop: serve is what fires schedules (DESIGN §9). Every time a slot comes due,
//! and at least every [`LOOK_EVERY`] (a schedule added, resumed or changed by the CLI, a gated
//! slot whose gate may have opened, a run past its timeout), one pass of the engine's
//! [`Scheduler`] decides every owner's due and waiting slots on a blocking thread; the flows it
//! fired are started here like any submitted flow (the sweep adopts them if no worker is free).
//! Two serve processes on one database never fire a slot twice: a slot fires only by the
//! creation of its flow, and a pass whose schedule another moved meanwhile writes nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskflow_engine::schedule::Scheduler;
use taskflow_store::{TaskFlow, Timestamp};

use taskflow_engine::Runs;

/// The longest the loop sleeps before it looks again.
pub const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Fires slots until the process stops (the task is aborted).
pub async fn fire(taskflow: TaskFlow, runs: Runs) {
    let scheduler = Arc::new(Mutex::new(Scheduler::new()));
    loop {
        let (reading, passing) = (taskflow.clone(), Arc::clone(&scheduler));
        let pass = tokio::task::spawn_blocking(move || {
            let now = Timestamp::now();
            let mut scheduler = passing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let outcome = scheduler.pass(&reading, now);
            (outcome, reading.next_fire())
        })
        .await;
        let next = match pass {
            Ok((outcome, next)) => {
                match outcome {
                    Ok(outcome) => {
                        for (owner, flow) in &outcome.fired {
                            runs.start(owner, flow);
                        }
                        for (what, error) in &outcome.errors {
                            eprintln!("warning: the scheduler could not decide {what}: {error}");
                        }
                    }
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
