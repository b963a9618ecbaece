//! Taking and giving back the lease on a managed flow. Renewing one is a checkpoint op
//! ([`super::checkpoint`]), since runners renew between their steps.

use std::time::Duration;

use serde_json::{Value, json};

use super::{commit, load_flow};
use crate::error::{Error, Result};
use crate::lease::{self, CurrentLease, Decision, Lease, LeaseHolder, Takeover};
use crate::model::{Adoptable, Claim, FieldChange, Flow, FlowId, LeaseInfo};
use crate::rules;
use crate::store::Caller;
use crate::time::Timestamp;
use crate::tx::StoreTx;

/// A lease shorter than [`lease::MIN_TTL`] would expire between renewals.
pub fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl < lease::MIN_TTL {
        return Err(Error::InvalidInput(format!(
            "a lease must last at least {} ms",
            lease::MIN_TTL.as_millis()
        )));
    }
    Ok(())
}

/// Takes the lease on flow `id` for `holder`; every check comes before the one write, so a
/// refusal writes nothing. `host` is this machine's, to tell whether the current holder's
/// process is gone.
pub fn acquire_lease<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    id: &FlowId,
    holder: LeaseHolder,
    ttl: Duration,
    now: Timestamp,
    host: &str,
) -> Result<Lease> {
    let (before, stored_token) = load_flow(tx, Some(caller.owner), id, false)?;
    rules::check_managed(&before, "run")?;
    rules::check_not_ended(&before)?;
    let current = before
        .lease
        .as_ref()
        .map(|lease| CurrentLease { holder: lease.holder.clone(), expires_at: lease.expires_at });
    let holder_gone = current.as_ref().is_some_and(|lease| lease.holder.is_gone(host));
    let took_over = match lease::decide(current.as_ref(), now, holder_gone) {
        Decision::Grant => None,
        Decision::TakeOver(reason) => Some(reason),
        Decision::Refuse => {
            let current = before.lease.expect("a refused lease exists");
            return Err(Error::LeaseHeld {
                id: id.to_string(),
                holder: current.holder.to_string(),
                expires_at: current.expires_at,
            });
        }
    };
    let token = ulid::Ulid::new().to_string();
    let expires_at = now.plus(ttl);
    let mut after = before.clone();
    after.lease = Some(LeaseInfo { holder: holder.clone(), expires_at });
    let note = took_over.map(|reason| match reason {
        Takeover::Expired => "took over an expired lease",
        Takeover::HolderGone => "took over from a holder that no longer exists",
    });
    let extra = note
        .map(|note| FieldChange {
            field: "lease_takeover".into(),
            before: Value::Null,
            after: json!(note),
        })
        .into_iter()
        .collect();
    commit(tx, &before, after, extra, caller.actor, now, Some(&token))?;
    let replaced = took_over.and(stored_token);
    Ok(Lease { flow_id: before.id, token, holder, expires_at, took_over, replaced })
}

/// Several [`acquire_lease`]s in one transaction, each refused on its own; the outer error is a
/// failure of the storage itself.
pub fn acquire_leases<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    requests: Vec<(FlowId, LeaseHolder, Duration)>,
    now: Timestamp,
    host: &str,
) -> Result<Vec<Result<Lease>>> {
    let mut answers = Vec::with_capacity(requests.len());
    for (id, holder, ttl) in requests {
        let answer =
            check_ttl(ttl).and_then(|()| acquire_lease(tx, caller, &id, holder, ttl, now, host));
        match answer {
            Err(error @ Error::Storage(_)) => return Err(error),
            answer => answers.push(answer),
        }
    }
    Ok(answers)
}

/// Takes the leases on up to `limit` flows that no live runner holds, for `holder`, in one
/// transaction, none of `skip`: the candidates of [`StoreTx::claim_candidates`] (whose trees
/// this transaction now holds, so no other claimer saw them), each taken by [`acquire_lease`]
/// as its owner would take it. A candidate whose holder on this host is alive is left as it is.
pub fn claim<T: StoreTx + ?Sized>(
    tx: &T,
    holder: &LeaseHolder,
    ttl: Duration,
    limit: u32,
    skip: &[FlowId],
    now: Timestamp,
    host: &str,
) -> Result<Vec<Claim>> {
    check_ttl(ttl)?;
    let mut claims = Vec::new();
    for (id, owner) in tx.claim_candidates(now, host, limit, skip)? {
        let caller = Caller { owner: &owner, actor: &owner };
        match acquire_lease(tx, caller, &id, holder.clone(), ttl, now, host) {
            Ok(lease) => claims.push(Claim { owner, lease }),
            Err(error @ Error::Storage(_)) => return Err(error),
            Err(_) => {}
        }
    }
    Ok(claims)
}

/// Which of `flows` (managed, queued or running) no live runner holds: never leased, a lease
/// that expired, or one whose holder is a process of this host (`host`) that is gone.
pub fn adoptable(flows: Vec<Flow>, now: Timestamp, host: &str) -> Vec<Adoptable> {
    flows
        .into_iter()
        .filter(|flow| {
            flow.lease.as_ref().is_none_or(|lease| {
                let current =
                    CurrentLease { holder: lease.holder.clone(), expires_at: lease.expires_at };
                let gone = lease.holder.is_gone(host);
                lease::decide(Some(&current), now, gone) != Decision::Refuse
            })
        })
        .map(|flow| Adoptable { id: flow.id, owner: flow.owner, status: flow.status })
        .collect()
}

/// Gives a held lease up.
pub fn release_lease<T: StoreTx + ?Sized>(
    tx: &T,
    caller: Caller<'_>,
    lease: &Lease,
    now: Timestamp,
) -> Result<Flow> {
    let (before, token) = load_flow(tx, Some(caller.owner), &lease.flow_id, true)?;
    rules::check_lease(&before, token.as_deref(), lease)?;
    let mut after = before.clone();
    after.lease = None;
    commit(tx, &before, after, Vec::new(), caller.actor, now, None)
}
