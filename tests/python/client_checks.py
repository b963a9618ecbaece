"""Checks `clients/python/taskflow_client.py` against a real `taskflow serve` with tokens.

Run by tests/serve_python.rs as `client_checks.py URL ALICE_TOKEN BOB_TOKEN` (serve's tokens
give the owners alice and bob). Checks paging, every route, the exception each error answer
becomes, and an event stream that goes on across a restart of serve: when it prints `restart`,
the test kills serve, cancels the flow `watched` with the CLI while no serve runs, and starts
serve again at the same address; the stream must reconnect with `Last-Event-ID` and give the
cancel, then the rest, each event once and in order. Prints `ok` and a JSON summary last; a
failed check raises (exit status 1).
"""

import json
import os
import sys
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

from taskflow_client import (  # noqa: E402
    ApiError, BadRequest, Conflict, NotFound, Refused, TaskflowClient, Unauthorized)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def expect(kind, call):
    """The `kind` error `call` raises."""
    try:
        result = call()
    except ApiError as error:
        check(isinstance(error, kind), f"expected {kind.__name__}, got {error!r}")
        return error
    raise AssertionError(f"expected {kind.__name__}, got {result!r}")


def wait_for(what, ready, limit=30.0):
    deadline = time.monotonic() + limit
    while not ready():
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.05)


def errors(url, alice, bob):
    anonymous, stranger = TaskflowClient(url), TaskflowClient(url, token="not-a-token-of-it")
    check(anonymous.health()["ok"] is True, "healthz needs no token")
    for client in (anonymous, stranger):
        error = expect(Unauthorized, client.list_flows)
        check((error.status, error.code) == (401, "unauthorized"), error)
    expect(Unauthorized, lambda: next(iter(anonymous.events())))
    os.environ["TASKFLOW_TOKEN"] = alice.token
    check(TaskflowClient(url).list_flows().flows == [], "the token from $TASKFLOW_TOKEN")
    expect(Unauthorized, TaskflowClient(url, token="").list_flows)
    del os.environ["TASKFLOW_TOKEN"]
    check("/v1/flows/{id}/report" in alice.openapi()["paths"], "the document")
    expect(NotFound, lambda: alice.get("nobody"))
    expect(BadRequest, lambda: alice.create_mirrored("x", id="bad id"))
    expect(BadRequest, lambda: alice.list_flows(limit=0))
    expect(BadRequest, lambda: alice.list_flows(status="sleeping"))
    expect(BadRequest, lambda: alice.list_flows(cursor="not-a-cursor"))
    alice.create_mirrored("secret", id="alices")
    expect(NotFound, lambda: bob.get("alices"))
    expect(NotFound, lambda: bob.report("alices", status="running"))
    check(list(bob.iter_flows()) == [], "bob sees none of alice's flows")


def paging(alice):
    ids = [alice.create_mirrored("page", id=f"page-{n}").flow["id"] for n in range(7)]
    first = alice.list_flows(name="page", limit=3)
    second = alice.list_flows(name="page", limit=3, cursor=first.next_cursor)
    third = alice.list_flows(name="page", limit=3, cursor=second.next_cursor)
    check([len(first.flows), len(second.flows), len(third.flows)] == [3, 3, 1], "page sizes")
    check(third.next_cursor is None, "the last page has no next cursor")
    paged = [flow["id"] for flow in first.flows + second.flows + third.flows]
    check(paged == ids[::-1], f"newest first, each once: {paged}")
    check([flow["id"] for flow in alice.iter_flows(name="page", page_size=2)] == paged, "iter")
    alice.report("page-0", status="running")
    check([flow["id"] for flow in alice.iter_flows(status="running")] == ["page-0"], "status")
    again = alice.create_mirrored("page", id="page-1")
    check(not again.created and again.flow["id"] == "page-1", "the same id and body finds it")
    conflict = expect(Conflict, lambda: alice.create_mirrored("other", id="page-1"))
    check(conflict.current_revision is None, "an id taken is no stale revision")
    return len(paged)


def reports(alice):
    revision = alice.flow("page-2")["revision"]
    flow = alice.report("page-2", expected_revision=revision, status="running", state={"n": 1},
                        steps=[{"name": "s1", "status": "running"}])
    check((flow["revision"], flow["current_step"]) == (revision + 1, "s1"), flow)
    stale = expect(Conflict, lambda: alice.report("page-2", expected_revision=revision,
                                                  status="waiting"))
    check((stale.status, stale.current_revision) == (409, revision + 1), stale.details)
    refused = expect(Refused, lambda: alice.report("page-2", status="queued"))
    check((refused.details["from"], refused.details["to"]) == ("running", "queued"), refused)
    flow = alice.report("page-2", wait={"for": "a review"})
    check((flow["state"], flow["wait"]) == ({"n": 1}, {"for": "a review"}), "left out: kept")
    flow = alice.report("page-2", state=None, wait=None,
                        steps=[{"name": "s1", "status": "succeeded", "output": [1, 2]}])
    check((flow["state"], flow["wait"]) == (None, None), "None clears")
    check(alice.get("page-2")["steps"][0]["output"] == [1, 2], "a step's output is any JSON")
    history = alice.history("page-2")
    check([entry["revision"] for entry in history] == list(range(1, flow["revision"] + 1)),
          "one revision per accepted report")
    expect(Refused, lambda: alice.resume("page-3"))
    cancelled = alice.cancel("page-3")
    check(cancelled["flow"]["cancel_requested_at"] and not cancelled["already_requested"], "")
    check(alice.cancel("page-3")["already_requested"] is True, "a cancel is sticky")


def managed(alice):
    spec = {"steps": [{"id": "a", "action": "echo", "with": {"value": "x"}},
                      {"id": "b", "action": "echo", "needs": ["a"],
                       "with": {"value": "{{steps.a.output}}!"}}]}
    check(alice.create_managed("echo", spec, id="echo-1").created, "a managed flow")
    wait_for("echo-1", lambda: alice.flow("echo-1")["status"] == "succeeded")
    forked = alice.fork("echo-1", "b")
    wait_for("the fork", lambda: alice.flow(forked["id"])["status"] == "succeeded")
    steps = alice.get(forked["id"])["steps"]
    check([step["name"] for step in steps] == ["a", "b"], steps)
    # Digits in a string are a seq, as the CLI's `--from-step 2` reads them.
    by_seq = alice.fork("echo-1", "2")
    wait_for("the fork by seq", lambda: alice.flow(by_seq["id"])["status"] == "succeeded")
    steps = alice.get(by_seq["id"])["steps"]
    check([step["name"] for step in steps] == ["a", "b"], steps)
    expect(Refused, lambda: alice.resume("echo-1"))
    expect(Refused, lambda: alice.create_child("echo-1", "child", spec))
    return forked["id"]


def take_until(stream, seen, done):
    for event in stream:
        seen.append(event)
        if done(seen):
            return


def events_across_a_restart(alice):
    alice.create_mirrored("watched", id="watched")
    # A stream from now knows, once connected, where it would resume before any event came.
    fresh = alice.events(flow="watched")
    connection, _ = fresh._connect()
    connection.close()
    check(isinstance(fresh.last_event_id, int) and fresh.last_event_id >= 1, fresh.last_event_id)
    # So does one asked to start past the newest event (a feed begun again): from the newest.
    beyond = alice.events(flow="watched", after=10**9)
    connection, _ = beyond._connect()
    connection.close()
    check(beyond.last_event_id == fresh.last_event_id, f"began at the newest: {beyond.last_event_id}")
    stream = alice.events(flow="watched", after=0, retry_delay=0.1, max_retry_delay=0.5)
    seen = []
    take_until(stream, seen, lambda seen: True)
    check((seen[0]["kind"], seen[0]["revision"]) == ("flow", 1), seen)
    alice.report("watched", status="running", steps=[{"name": "one", "status": "running"}])
    take_until(stream, seen, lambda seen: any(e.get("revision") == 2 for e in seen)
               and any(e["kind"] == "step" for e in seen))
    print("restart", flush=True)
    take_until(stream, seen, lambda seen: seen[-1]["kind"] == "flow")
    cancel = seen[-1]
    check("cancel_requested_at" in cancel["fields"], f"the cancel made while serve was down: {cancel}")
    check(stream.reconnects >= 1, "the stream reconnected")
    alice.report("watched", status="cancelled", steps=[{"name": "one", "status": "cancelled"}])
    take_until(stream, seen, lambda seen: seen[-1].get("status") == "cancelled"
               and seen[-1]["kind"] == "flow")
    stream.close()
    ids = [event["id"] for event in seen]
    check(ids == sorted(set(ids)), f"in order, each once: {ids}")
    check(stream.last_event_id == ids[-1], "last_event_id")
    replayed = alice.events(flow="watched", last_event_id=ids[1])
    again = [event["id"] for event in islice(replayed, len(ids) - 2)]
    replayed.close()
    check(again == ids[2:], f"from Last-Event-ID: {again} != {ids[2:]}")
    return {"events": len(ids), "reconnects": stream.reconnects}


def main():
    url, alice_token, bob_token = sys.argv[1:4]
    alice = TaskflowClient(url, token=alice_token, timeout=10)
    bob = TaskflowClient(url, token=bob_token, timeout=10)
    errors(url, alice, bob)
    listed = paging(alice)
    reports(alice)
    forked = managed(alice)
    summary = {"paged": listed, "forked": forked, **events_across_a_restart(alice)}
    print("ok " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
