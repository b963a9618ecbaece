//! The kit's tests of claims, how workers sharing a database pick up work: a claim takes the
//! leases of the flows no live runner holds (queued, under an expired lease, under a dead holder
//! of this host, waiting and due) in one transaction, and claimers at once get disjoint sets
//! whose union is every flow there was to take.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::waits::{timer, wait};
use super::{Harness, MIN_TTL, TTL, begin, dead_runner, held_by, revisions, running};
use serde_json::json;

use crate::{
    Claim, Error, FlowId, FlowStatus, LeaseHolder, NewFlow, OwnerHandle, Takeover, TaskFlow,
    Timestamp,
};

/// A flow of `handle` waiting for a timer at `until`, its lease given up.
fn waiting_until(handle: &OwnerHandle, name: &str, until: Timestamp) -> FlowId {
    let (flow, lease) = running(handle, name);
    let seq =
        super::answered_step(&handle.checkpoint(vec![begin(&lease, "pause")]).unwrap()[0]).seq;
    handle
        .checkpoint(vec![wait(&lease, vec![timer(seq, "pause", until)])])
        .unwrap()
        .remove(0)
        .unwrap();
    flow.id
}

/// What a claim took, as (flow, owner, why a previous lease was replaced).
fn taken(claims: &[Claim]) -> Vec<(FlowId, &str, Option<Takeover>)> {
    claims
        .iter()
        .map(|claim| (claim.lease.flow_id.clone(), claim.owner.as_str(), claim.lease.took_over))
        .collect()
}

pub fn a_claim_takes_what_no_live_runner_holds_and_a_dead_holder_only_on_its_own_host(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let bob = fx.taskflow.bind("bob").unwrap();
    let remote = |pid| LeaseHolder { host: "elsewhere.invalid".into(), pid, process_start: None };
    let queued = alice.create(NewFlow::managed("queued")).unwrap();
    let expired = alice.create(NewFlow::managed("expired")).unwrap();
    alice.acquire_lease_as(&expired.id, remote(1), MIN_TTL).unwrap();
    let (live, _) = held_by(&alice, "live", LeaseHolder::current(), TTL);
    let (dead_here, _) = held_by(&alice, "dead here", dead_runner(), TTL);
    let (dead_elsewhere, _) = held_by(&alice, "dead elsewhere", remote(4_194_399), TTL);
    let due = waiting_until(&alice, "due", Timestamp::now().minus(Duration::from_secs(1)));
    let later = waiting_until(&alice, "later", Timestamp::now().plus(Duration::from_secs(3600)));
    let theirs = bob.create(NewFlow::managed("bob's")).unwrap();
    let (ended, _) = running(&alice, "ended");
    alice.request_cancel(&ended.id, None).unwrap();
    alice.create(NewFlow::mirrored("mirrored", "ci")).unwrap();
    std::thread::sleep(MIN_TTL + Duration::from_millis(50));

    let worker = LeaseHolder::current();
    let first = fx.taskflow.claim_as(&worker, TTL, 1, &[]).unwrap();
    assert_eq!(taken(&first), [(queued.id.clone(), "alice", None)], "at most the limit");
    let skip = [expired.id.clone(), due.clone()];
    let unskipped = fx.taskflow.claim_as(&worker, TTL, 100, &skip).unwrap();
    assert_eq!(
        taken(&unskipped),
        [
            (theirs.id.clone(), "bob", None),
            (dead_here.id.clone(), "alice", Some(Takeover::HolderGone)),
        ],
        "no live lease first, then the oldest, none of those skipped; a live holder ({}), a \
         holder on another host before its expiry ({}), a flow not due ({later}), an ended and \
         a mirrored flow stay",
        live.id,
        dead_elsewhere.id,
    );
    assert_eq!(revisions(&alice, &expired.id), [1, 2], "a skipped flow is not written");
    let rest = fx.taskflow.claim_as(&worker, TTL, 100, &[]).unwrap();
    assert_eq!(
        taken(&rest),
        [(expired.id.clone(), "alice", Some(Takeover::Expired)), (due.clone(), "alice", None)],
        "those skipped, once not skipped"
    );
    for claim in first.iter().chain(&unskipped).chain(&rest) {
        let owner = fx.taskflow.bind(claim.owner.as_str()).unwrap();
        let flow = owner.flow(&claim.lease.flow_id).unwrap();
        let stored = flow.lease.unwrap();
        assert_eq!((stored.holder, stored.expires_at), (worker.clone(), claim.lease.expires_at));
        let history = owner.history(&flow.id).unwrap();
        assert_eq!(history.last().unwrap().actor, claim.owner, "taken as its owner would");
        // The lease is the runner's: it writes with it.
        owner.renew_lease(&claim.lease, TTL).unwrap();
    }
    assert!(fx.taskflow.claim_as(&worker, TTL, 100, &[]).unwrap().is_empty(), "all held now");
    assert!(fx.taskflow.claim_as(&worker, Duration::from_millis(1), 1, &[]).is_err(), "too short");
}

pub fn a_flow_made_or_forked_to_run_is_held_by_its_maker_from_the_transaction_that_makes_it(
    harness: &dyn Harness,
) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let worker = LeaseHolder { pid: std::process::id() + 1, ..LeaseHolder::current() };
    let (made, lease) = alice.create_held(NewFlow::managed("made"), TTL).unwrap();
    let source = super::ended(&alice, "source", FlowStatus::Succeeded);
    let (forked, fork_lease) = alice.fork_held(&source, 1, TTL).unwrap();
    for (flow, lease) in [(&made, &lease), (&forked, &fork_lease)] {
        assert_eq!(flow.status, FlowStatus::Queued);
        let stored = alice.flow(&flow.id).unwrap().lease.unwrap();
        assert_eq!((stored.holder, stored.expires_at), (LeaseHolder::current(), lease.expires_at));
    }
    assert!(fx.taskflow.claim_as(&worker, TTL, 10, &[]).unwrap().is_empty(), "none to claim");
    // The leases are the maker's: it writes with them, and a release hands the flow on.
    alice.renew_lease(&lease, TTL).unwrap();
    alice.release_lease(&fork_lease).unwrap();
    let claimed = fx.taskflow.claim_as(&worker, TTL, 10, &[]).unwrap();
    assert_eq!(taken(&claimed), [(forked.id.clone(), "alice", None)]);
    // A slot's id stays the scheduler's, as for a plain creation.
    let mut slot = NewFlow::managed("slot");
    slot.id = Some(FlowId::parse("digest@2026-12-07T09:17:00Z").unwrap());
    assert!(matches!(alice.create_held(slot, TTL), Err(Error::InvalidInput(_))));
}

pub fn a_claimed_run_starts_from_its_flow_spec_and_journal_read_at_once(harness: &dyn Harness) {
    let fx = harness.fresh();
    let alice = fx.alice();
    let spec = json!({"name": "claimed", "steps": [{"id": "first", "action": "echo"}]});
    let flow = alice.create(NewFlow::managed("claimed").with_spec(spec)).unwrap();
    let claims = fx.taskflow.claim_as(&LeaseHolder::current(), TTL, 10, &[]).unwrap();
    assert_eq!(taken(&claims), [(flow.id.clone(), "alice", None)]);
    let lease = &claims[0].lease;
    alice.set_status(lease, FlowStatus::Running, None).unwrap();
    alice.checkpoint(vec![begin(lease, "first")]).unwrap().remove(0).unwrap();

    let start = alice.run_start(&flow.id).unwrap();
    assert_eq!(start.flow, alice.flow_without_spec(&flow.id).unwrap());
    assert_eq!(start.spec_json, alice.spec_json(&flow.id).unwrap());
    assert!(start.spec_json.is_some());
    assert_eq!(start.steps, alice.steps(&flow.id).unwrap());
    assert_eq!(start.steps.len(), 1);
    let bob = fx.taskflow.bind("bob").unwrap();
    assert!(matches!(bob.run_start(&flow.id), Err(Error::NotFound { .. })), "another owner's");
}

pub fn eight_claimers_at_once_get_disjoint_sets_that_cover_every_queued_flow(
    harness: &dyn Harness,
) {
    const FLOWS: usize = 200;
    const CLAIMERS: usize = 8;
    let fx = harness.fresh();
    let (alice, bob) = (fx.alice(), fx.taskflow.bind("bob").unwrap());
    let queued: HashSet<FlowId> = (0..FLOWS)
        .map(|i| {
            let owner = if i % 2 == 0 { &alice } else { &bob };
            owner.create(NewFlow::managed(format!("f{i}"))).unwrap().id
        })
        .collect();

    let start = Arc::new(Barrier::new(CLAIMERS));
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|_| {
            let (store, start): (TaskFlow, _) = (fx.reopen(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                loop {
                    let claims = store.claim_as(&LeaseHolder::current(), TTL, 7, &[]).unwrap();
                    if claims.is_empty() {
                        return mine;
                    }
                    mine.extend(claims.into_iter().map(|claim| claim.lease.flow_id));
                }
            })
        })
        .collect();
    let sets: Vec<Vec<FlowId>> =
        claimers.into_iter().map(|claimer| claimer.join().unwrap()).collect();

    let all: Vec<&FlowId> = sets.iter().flatten().collect();
    let union: HashSet<FlowId> = all.iter().map(|&id| id.clone()).collect();
    assert_eq!(all.len(), union.len(), "no flow claimed twice");
    assert_eq!(union, queued, "every queued flow claimed");
    for id in &queued {
        let owner = if alice.flow(id).is_ok() { &alice } else { &bob };
        assert_eq!(revisions(owner, id), [1, 2], "one lease taken, once");
    }
}
