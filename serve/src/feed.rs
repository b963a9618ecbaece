//! The change feed, live. One task reads the events every runner of the database committed (this
//! process's, a CLI's, another serve's) and hands each to every watcher; a watcher keeps what
//! its owner may see. A watcher that starts after an id, or falls behind, first reads what it
//! missed from the store itself, so it gets every event after the one it saw, in order, once.

use std::sync::Arc;
use std::time::Duration;

use taskflow_store::{Event, EventQuery, FlowId, OwnerHandle, TaskFlow, Timestamp};
use tokio::sync::{broadcast, mpsc};

/// How many events a slow watcher may be behind before it reads from the store again.
const BUFFER: usize = 4096;
/// Most events one read of the store returns.
const PAGE: u32 = 1000;

#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Feed {
    pub fn new() -> Self {
        Feed { sender: broadcast::channel(BUFFER).0 }
    }

    /// Reads new events every `every` and hands them out, from the newest event there is now.
    pub async fn poll(&self, taskflow: TaskFlow, every: Duration) {
        let mut after = tail(&taskflow).await;
        loop {
            if let Ok(events) = read(&taskflow, after).await {
                let full = events.len() == PAGE as usize;
                for event in events {
                    after = event.id;
                    let _ = self.sender.send(Arc::new(event));
                }
                if full {
                    continue;
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Sends `handle`'s owner's events after `after` (only flow `flow`'s, if given) into
    /// `out`, oldest first, until `out` is closed.
    pub async fn watch(
        &self,
        handle: OwnerHandle,
        after: u64,
        flow: Option<FlowId>,
        out: mpsc::Sender<Arc<Event>>,
    ) {
        let mut live = self.sender.subscribe();
        let mut last = after;
        loop {
            // What the store has after `last` (what was missed before subscribing, or while
            // behind), then the live events.
            loop {
                let query = EventQuery { after: last, flow: flow.clone(), limit: PAGE };
                let handle = handle.clone();
                let page = tokio::task::spawn_blocking(move || handle.events(&query)).await;
                let Ok(Ok(page)) = page else { return };
                let full = page.len() == PAGE as usize;
                for event in page {
                    last = event.id;
                    if out.send(Arc::new(event)).await.is_err() {
                        return;
                    }
                }
                if !full {
                    break;
                }
            }
            loop {
                match live.recv().await {
                    Ok(event) => {
                        let mine = event.owner == handle.owner()
                            && flow.as_ref().is_none_or(|flow| *flow == event.flow_id);
                        if event.id > last && mine {
                            last = event.id;
                            if out.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

/// Deletes events older than `keep` now and then every `every`, so that a serve left running
/// does not grow its database without end. Watchers further behind than that start from the
/// oldest event kept.
pub async fn retain(taskflow: TaskFlow, keep: Duration, every: Duration) {
    loop {
        let taskflow = taskflow.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            taskflow.prune_events(Timestamp::now().minus(keep))
        })
        .await;
        if let Ok(Err(error)) = pruned {
            eprintln!("warning: deleting old events failed: {error}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The id of the newest event there is (0 when it cannot be read).
pub async fn tail(taskflow: &TaskFlow) -> u64 {
    let taskflow = taskflow.clone();
    tokio::task::spawn_blocking(move || taskflow.last_event_id())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0)
}

async fn read(taskflow: &TaskFlow, after: u64) -> Result<Vec<Event>, taskflow_store::Error> {
    let taskflow = taskflow.clone();
    let query = EventQuery { after, flow: None, limit: PAGE };
    tokio::task::spawn_blocking(move || taskflow.all_events(&query))
        .await
        .unwrap_or_else(|_| Ok(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_store::{Durability, NewFlow};

    #[tokio::test]
    async fn retention_deletes_events_past_their_age_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let taskflow = taskflow_api::database::open_for_running(&path, Durability::Normal).unwrap();
        let alice = taskflow.bind("alice").unwrap();
        for name in ["one", "two", "three"] {
            alice.create(NewFlow::managed(name)).unwrap();
        }
        let newest = taskflow.last_event_id().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let kept_for = Duration::from_millis(10);
        let retention = tokio::spawn(retain(taskflow.clone(), kept_for, Duration::from_secs(3600)));
        let all = EventQuery { after: 0, flow: None, limit: 100 };
        let started = std::time::Instant::now();
        while taskflow.all_events(&all).unwrap().len() > 1 {
            assert!(started.elapsed() < Duration::from_secs(10), "old events were not deleted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        retention.abort();
        let left: Vec<u64> = taskflow.all_events(&all).unwrap().iter().map(|e| e.id).collect();
        assert_eq!(left, [newest]);
    }
}
