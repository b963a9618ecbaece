//! The change feed, live. One task reads the events every runner of the database committed (this
//! process's, a CLI's, another serve's) and hands each read, as one batch, to every watcher; a
//! watcher keeps what its owner may see. A watcher that starts after an id, or falls behind,
//! first reads what it missed from the store itself, so it gets every event after the one it
//! saw, in order, once.
//!
//! Each event is rendered once, when it is read (a flow's event with the steps that came with
//! it as one server-sent event, see `event_data::units`), into one buffer for the whole read,
//! and a watcher passes on its part of a batch in one piece: where it wants a run of the
//! batch's events one after another (a watcher of all its owner's flows, when one owner
//! writes), that piece is a view of the shared buffer, not a copy. A hundred watchers cost a
//! hundred writes per read of the feed, not a hundred encodings and copies of each event.
//!
//! The feed closes when serve stops: every watch ends, so its stream ends and its connection
//! can close (a client resumes after its last event from the next serve).

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use taskflow_store::{Event, EventQuery, FlowId, OwnerHandle, TaskFlow, Timestamp};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::blocking::blocking;
use crate::error::HttpError;
use crate::event_data::{EventData, units};

/// How many batches a slow watcher may be behind before it reads from the store again.
const BUFFER: usize = 256;
/// Most events one read of the store returns.
const PAGE: u32 = 1000;

/// The events of one read of the store, oldest first, and their text on the wire, one after
/// another in one buffer.
struct Batch {
    events: Vec<Event>,
    /// The server-sent events they make (see [`units`]): which events each holds, and where
    /// its text ends in `text`.
    units: Vec<(Range<usize>, usize)>,
    /// For each unit: `id: …` (its last event's), `event: flow|step`, `data: {json}` (its
    /// [`EventData`]) and the blank line that ends it.
    text: Bytes,
}

impl Batch {
    fn new(events: Vec<Event>) -> Batch {
        let mut text = Vec::new();
        let units = units(&events)
            .into_iter()
            .map(|unit| (unit.clone(), render(&events[unit], &mut text)))
            .collect();
        Batch { events, units, text: Bytes::from(text) }
    }
}

/// Appends the server-sent event of `unit` (a flow's event and the steps that came with it, or
/// one event) to `text`; returns where it ends.
fn render(unit: &[Event], text: &mut Vec<u8>) -> usize {
    let Some((event, steps)) = unit.split_last() else { return text.len() };
    // serde_json writes no line breaks, so the data fits one `data:` line.
    let _ = write!(text, "id: {}\nevent: {}\ndata: ", event.id, event.change.kind());
    let _ = serde_json::to_writer(&mut *text, &EventData::packed(steps, event));
    text.extend_from_slice(b"\n\n");
    text.len()
}

/// A run of the text a watcher takes from a batch.
enum Run {
    /// A range of the batch's text.
    Shared(Range<usize>),
    /// The rest of a unit the watcher had seen the start of (it resumed after one of the
    /// unit's steps, or a read of the store ended inside it), rendered for it alone.
    Own(Vec<u8>),
}

/// What a watcher wants: one owner's events after an id, of one flow or all.
struct Interest<'a> {
    owner: &'a str,
    flow: Option<&'a FlowId>,
    last: u64,
}

impl Interest<'_> {
    /// The text of the events of `batch` it wants, in one piece (empty if none), and the id of
    /// the last of them.
    fn take(&mut self, batch: &Batch) -> Bytes {
        let mut runs: Vec<Run> = Vec::new();
        let mut start = 0;
        for (unit, end) in &batch.units {
            let events = &batch.events[unit.clone()];
            let (first, last) = (&events[0], &events[events.len() - 1]);
            if last.id > self.last
                && last.owner == self.owner
                && self.flow.is_none_or(|flow| *flow == last.flow_id)
            {
                if first.id > self.last {
                    match runs.last_mut() {
                        Some(Run::Shared(run)) if run.end == start => run.end = *end,
                        _ => runs.push(Run::Shared(start..*end)),
                    }
                } else {
                    let unseen = events.iter().position(|event| event.id > self.last).unwrap_or(0);
                    let mut own = Vec::new();
                    render(&events[unseen..], &mut own);
                    runs.push(Run::Own(own));
                }
                self.last = last.id;
            }
            start = *end;
        }
        match runs.as_slice() {
            [] => Bytes::new(),
            [Run::Shared(run)] => batch.text.slice(run.clone()),
            runs => {
                let mut text = BytesMut::new();
                for run in runs {
                    match run {
                        Run::Shared(run) => text.extend_from_slice(&batch.text[run.clone()]),
                        Run::Own(own) => text.extend_from_slice(own),
                    }
                }
                text.freeze()
            }
        }
    }
}

#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<Arc<Batch>>,
    closed: CancellationToken,
}

impl Feed {
    pub fn new() -> Self {
        Feed { sender: broadcast::channel(BUFFER).0, closed: CancellationToken::new() }
    }

    /// Ends every watch, now and from now on.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Reads new events every `every` and hands them out, from the newest event there is now.
    pub async fn poll(&self, taskflow: TaskFlow, every: Duration) {
        let mut after = loop {
            match tail(&taskflow).await {
                Ok(newest) => break newest,
                Err(_) => tokio::time::sleep(every).await,
            }
        };
        loop {
            if self.sender.receiver_count() == 0 {
                // Nobody watches: skip to the newest event instead of reading and rendering
                // every one. The newest id is read before the count is checked, so a watcher
                // that subscribes after the check reads what it missed from the store itself.
                let newest = tail(&taskflow).await;
                if self.sender.receiver_count() == 0 {
                    after = after.max(newest.unwrap_or(after));
                    tokio::time::sleep(every).await;
                    continue;
                }
            }
            if let Ok(events) = read(&taskflow, after).await {
                let full = events.len() == PAGE as usize;
                if let Some(last) = events.last() {
                    after = last.id;
                    let _ = self.sender.send(Arc::new(Batch::new(events)));
                }
                if full {
                    continue;
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Sends the text of `handle`'s owner's events after `after` (only flow `flow`'s, if
    /// given) into `out`, oldest first, until `out` is closed or the feed is. A client that
    /// goes away ends its watch at once, not at the next event it would have been sent (which
    /// may never come).
    pub async fn watch(
        &self,
        handle: OwnerHandle,
        after: u64,
        flow: Option<FlowId>,
        out: mpsc::Sender<Bytes>,
    ) {
        let gone = out.clone();
        tokio::select! {
            () = self.closed.cancelled() => {}
            () = gone.closed() => {}
            () = self.follow(handle, after, flow, out) => {}
        }
    }

    async fn follow(
        &self,
        handle: OwnerHandle,
        after: u64,
        flow: Option<FlowId>,
        out: mpsc::Sender<Bytes>,
    ) {
        let mut live = self.sender.subscribe();
        let owner = handle.owner().to_owned();
        let mut interest = Interest { owner: &owner, flow: flow.as_ref(), last: after };
        loop {
            // What the store has after the last event sent (what was missed before subscribing,
            // or while behind), then the live events.
            loop {
                let query = EventQuery { after: interest.last, flow: flow.clone(), limit: PAGE };
                let handle = handle.clone();
                let page = tokio::task::spawn_blocking(move || handle.events(&query)).await;
                let Ok(Ok(page)) = page else { return };
                let full = page.len() == PAGE as usize;
                let text = interest.take(&Batch::new(page));
                if !text.is_empty() && out.send(text).await.is_err() {
                    return;
                }
                if !full {
                    break;
                }
            }
            loop {
                match live.recv().await {
                    Ok(batch) => {
                        let text = interest.take(&batch);
                        if !text.is_empty() && out.send(text).await.is_err() {
                            return;
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

/// The id of the newest event there is: where a watcher that asked for no earlier event
/// starts. An error, never 0, when it cannot be read: from 0 a watcher would get every event
/// its owner ever had.
pub async fn tail(taskflow: &TaskFlow) -> Result<u64, HttpError> {
    let taskflow = taskflow.clone();
    blocking(move || taskflow.last_event_id()).await
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

    /// A step event of `owner`'s flow `flow`, with id `id`.
    fn event(id: u64, owner: &str, flow: &str) -> Event {
        Event {
            id,
            flow_id: flow.parse().unwrap(),
            owner: owner.to_owned(),
            at: Timestamp::now(),
            change: taskflow_store::Change::Step {
                seq: 1,
                name: "fetch".to_owned(),
                status: taskflow_store::StepStatus::Succeeded,
                attempt: 1,
            },
        }
    }

    /// What a watcher of `owner` (and `flow`) after `last` takes from `batch`: the ids of the
    /// events whose text it passes on, in order, and its last id after.
    fn check(batch: &[(u64, &str, &str)], owner: &str, flow: Option<&str>, last: u64, ids: &[u64]) {
        let events: Vec<Event> =
            batch.iter().map(|&(id, owner, flow)| event(id, owner, flow)).collect();
        let batch = Batch::new(events);
        let flow: Option<FlowId> = flow.map(|flow| flow.parse().unwrap());
        let mut interest = Interest { owner, flow: flow.as_ref(), last };
        let text = interest.take(&batch);
        let mut expected = String::new();
        for event in batch.events.iter().filter(|event| ids.contains(&event.id)) {
            let kind = "step";
            let data = serde_json::to_string(&EventData::of(event)).unwrap();
            expected += &format!("id: {}\nevent: {kind}\ndata: {data}\n\n", event.id);
        }
        assert_eq!(std::str::from_utf8(&text).unwrap(), expected, "{owner} {flow:?} after {last}");
        assert_eq!(interest.last, ids.last().copied().unwrap_or(last));
    }

    #[test]
    fn a_watcher_takes_its_owners_events_after_its_last_one_in_order() {
        let batch = [(1, "alice", "a"), (2, "alice", "b"), (3, "bob", "c"), (4, "alice", "a")];
        check(&batch, "alice", None, 0, &[1, 2, 4]);
        check(&batch, "alice", Some("a"), 0, &[1, 4]);
        check(&batch, "alice", None, 1, &[2, 4]);
        check(&batch, "alice", None, 4, &[]);
        check(&batch, "bob", None, 0, &[3]);
        check(&batch, "carol", None, 0, &[]);
        check(&batch[..2], "alice", None, 0, &[1, 2]);
    }

    #[test]
    fn a_watcher_gets_a_flows_event_with_its_steps_or_what_it_has_not_seen_of_them() {
        let at = Timestamp::now();
        let mut events =
            vec![event(1, "alice", "a"), event(2, "alice", "a"), event(3, "alice", "a")];
        events[2].change = taskflow_store::Change::Flow {
            revision: 2,
            status: taskflow_store::FlowStatus::Running,
            current_step: None,
            fields: vec!["steps".to_owned()],
        };
        for event in &mut events {
            event.at = at;
        }
        let text = |events: &[Event]| {
            let mut text = Vec::new();
            render(events, &mut text);
            String::from_utf8(text).unwrap()
        };
        let batch = Batch::new(events.clone());
        assert_eq!(batch.units.len(), 1, "one server-sent event");
        let whole = text(&events);
        assert!(whole.starts_with("id: 3\nevent: flow\ndata: "), "{whole}");
        assert!(whole.contains(r#""steps":[{"id":1,"#), "{whole}");
        for (last, expected) in
            [(0, whole.clone()), (1, text(&events[1..])), (2, text(&events[2..]))]
        {
            let mut interest = Interest { owner: "alice", flow: None, last };
            let taken = interest.take(&batch);
            assert_eq!(std::str::from_utf8(&taken).unwrap(), expected, "after {last}");
            assert_eq!(interest.last, 3);
        }
        let mut interest = Interest { owner: "alice", flow: None, last: 3 };
        assert!(interest.take(&batch).is_empty());
    }

    #[tokio::test]
    async fn a_watch_ends_when_its_client_goes_away_though_no_event_comes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        let taskflow = taskflow_api::database::open_for_running(&path, Durability::Normal).unwrap();
        let feed = Feed::new();
        let (out, client) = mpsc::channel(16);
        let handle = taskflow.bind("alice").unwrap();
        let watching = tokio::spawn({
            let feed = feed.clone();
            async move { feed.watch(handle, 0, None, out).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watching.is_finished(), "it watches while the client is there");
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the watch ended when its client went away")
            .unwrap();
    }

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
