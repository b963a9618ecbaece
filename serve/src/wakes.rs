//! Waking waiting flows. A flow that waits (a timer, a signal) holds no lease and no process;
//! the store keeps when it is due (`wake_at`: its earliest timer, or the moment a signal it waits
//! for arrived). This task looks at the earliest one often (a cheap read of one index entry),
//! sleeps until it, and then has the recovery sweep adopt what is due, so a timer fires within
//! a fraction of a second and a signal sent by any process is noticed as quickly. It looks at
//! the flows nobody runs as well (a cheap read of the oldest active ones): a flow another
//! process queued (`run --queue`, a CLI resume) is adopted as soon as it is seen, not at the
//! next periodic sweep.

use std::collections::HashSet;
use std::time::Duration;

use taskflow_store::{FlowId, TaskFlow, Timestamp};

use taskflow_engine::Runs;

/// The longest the task sleeps before it looks again: a signal sent by another process (the
/// CLI, another serve) makes a flow due without telling this one.
const LOOK_EVERY: Duration = Duration::from_millis(200);
/// How many of the oldest active flows each look reads.
const LOOK_AT: u32 = 64;

/// Wakes due flows until the process stops (the task is aborted).
pub async fn wake(taskflow: TaskFlow, runs: Runs) {
    // The due instant last handed to the sweep: a flow that stays due (it cannot run, or no
    // worker is free) is left to the periodic sweep instead of being asked for again and again.
    let mut handed: Option<Timestamp> = None;
    // The flows nobody ran at the last look: one seen again is left to the periodic sweep (it
    // cannot run now, or no worker is free), one not seen before has the sweep look now.
    let mut unheld: HashSet<FlowId> = HashSet::new();
    loop {
        let reading = taskflow.clone();
        let adoptable = tokio::task::spawn_blocking(move || reading.adoptable(LOOK_AT)).await;
        if let Ok(Ok(flows)) = adoptable {
            let now_unheld: HashSet<FlowId> =
                flows.into_iter().map(|flow| flow.id).filter(|id| !runs.is_running(id)).collect();
            if now_unheld.iter().any(|id| !unheld.contains(id)) {
                runs.sweep_now();
            }
            unheld = now_unheld;
        }
        let reading = taskflow.clone();
        let next = tokio::task::spawn_blocking(move || reading.next_wake()).await;
        let now = Timestamp::now();
        let pause = match next {
            Ok(Ok(Some(at))) if at <= now => {
                if handed != Some(at) {
                    handed = Some(at);
                    runs.sweep_now();
                }
                LOOK_EVERY
            }
            Ok(Ok(Some(at))) => {
                Duration::from_millis(u64::try_from(at.as_millis() - now.as_millis()).unwrap_or(0))
                    .min(LOOK_EVERY)
            }
            _ => LOOK_EVERY,
        };
        tokio::time::sleep(pause).await;
    }
}
