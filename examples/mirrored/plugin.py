"""A plugin that owns a mirrored flow: it does its own work and reports every move to serve.

It makes a small digest of headlines in three steps, fetch -> transform -> publish, and tells
`taskflow serve` as it goes: each step as it begins and as it ends (with its output), the flow's
`state`, a `waiting` phase before publishing (with a `wait` object saying what for), and its
end. Every report carries the revision the plugin last saw (`expected_revision`). When someone
else changed the flow in between (serve answers 409 Conflict), the plugin reads the flow again,
keeps what the other writer did to its state, and reports again at the current revision. A
cancel request, seen in any answer, ends the flow `cancelled`.

    python examples/mirrored/plugin.py --server http://127.0.0.1:7878 [--token-env VAR]
        [--id ID] [--approve-file PATH | --wait-seconds S] [--output PATH] [--json]

Prints one line per step, and one for the wait, each conflict and the end (`--json`: one JSON
object per line). Exits 0 when the flow succeeded, 1 otherwise (a serve it cannot reach
included). Run again with the same `--id` after it stopped half-way, it picks the flow up: the
steps that succeeded are not done again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

from taskflow_client import ApiError, Conflict, TaskflowClient, TaskflowError  # noqa: E402

HEADLINES = [
    "Durable flows survive a crash of the machine they run on",
    "Mirrored flows let any program report its own work",
    "Expected revisions keep two writers from overwriting each other",
    "Server-sent events tell watchers every change once",
    "A local gateway listens on loopback unless tokens are set",
]

# A flow another writer keeps changing gets this many tries per report.
ATTEMPTS = 8


class Cancelled(Exception):
    """The flow has a cancel request: the plugin stops and reports it cancelled."""


class StepFailed(Exception):
    """A step's work failed; the flow was reported `failed`."""


class Output:
    """Where the plugin says what it did: plain lines, or one JSON object per line."""

    def __init__(self, as_json: bool):
        self.as_json = as_json

    def line(self, event: str, text: str, **fields: Any) -> None:
        if self.as_json:
            print(json.dumps({"event": event, **fields}), flush=True)
        else:
            print(text, flush=True)


class Reporter:
    """Reports one mirrored flow, always at the revision it last saw.

    `mine` is the part of the flow's state this plugin keeps; each report sends the state it
    last read with `mine` over it, so what another writer added to the state stays.
    """

    def __init__(self, client: TaskflowClient, flow: Dict[str, Any], out: Output):
        self.client = client
        self.flow = flow
        self.out = out
        self.mine: Dict[str, Any] = {}
        # The step reported running and not yet ended.
        self.running: Optional[str] = None
        self.conflicts = 0
        # The outputs of the steps that succeeded, by name, when the flow was found unfinished.
        self.done: Dict[str, Dict[str, Any]] = {}

    def pick_up(self, steps: List[Dict[str, Any]]) -> None:
        """Takes on a flow an earlier run left unfinished: its state, and the outputs of the
        steps that succeeded, which are not done again."""
        state = self.flow.get("state")
        if isinstance(state, dict):
            self.mine = {key: state[key] for key in ("phase", "done") if key in state}
        for step in steps:
            if step["status"] == "succeeded" and isinstance(step.get("output"), dict):
                self.done[step["name"]] = step["output"]

    @property
    def revision(self) -> int:
        return self.flow["revision"]

    def report(self, update_state: bool = True, **fields: Any) -> Dict[str, Any]:
        """One report at the revision last seen; on a conflict, reads the flow and reports
        again at its current revision."""
        for _ in range(ATTEMPTS):
            body = dict(fields)
            if update_state:
                current = self.flow.get("state")
                body["state"] = {**(current if isinstance(current, dict) else {}), **self.mine}
            try:
                self.flow = self.client.report(self.flow["id"], expected_revision=self.revision,
                                               **body)
            except Conflict as conflict:
                self.conflicts += 1
                stale = self.revision
                self.flow = self.client.flow(self.flow["id"])
                self.out.line(
                    "conflict",
                    f"conflict: the flow moved from revision {stale} to {self.revision} "
                    f"({conflict.message}); read it again",
                    expected=stale, current=conflict.current_revision, read=self.revision)
                self.check_cancel()
                continue
            for step in fields.get("steps", []):
                self.running = step["name"] if step["status"] == "running" else None
            self.check_cancel()
            return self.flow
        raise TaskflowError(f"flow {self.flow['id']} kept changing: {ATTEMPTS} reports refused")

    def check_cancel(self) -> None:
        if self.flow.get("cancel_requested_at"):
            raise Cancelled()


def fetch(source: Optional[str]) -> Dict[str, Any]:
    headlines = json.loads(Path(source).read_text()) if source else HEADLINES
    return {"headlines": headlines, "items": len(headlines)}


def transform(fetched: Dict[str, Any]) -> Dict[str, Any]:
    words = Counter(word.lower().strip(".,") for line in fetched["headlines"]
                    for word in line.split() if len(word) > 4)
    return {"words": sum(words.values()), "top": [word for word, _ in words.most_common(3)]}


def publish(fetched: Dict[str, Any], transformed: Dict[str, Any],
            output: Optional[str]) -> Dict[str, Any]:
    digest = {"headlines": fetched["headlines"], "top": transformed["top"]}
    if output is None:
        return digest
    text = json.dumps(digest, indent=2) + "\n"
    Path(output).write_text(text)
    return {"path": output, "bytes": len(text.encode())}


def run_step(reporter: Reporter, name: str, work: Callable[[], Dict[str, Any]],
             last: bool = False) -> Dict[str, Any]:
    """Reports `name` running, does `work`, reports it ended with its output (the flow
    `succeeded` with it when it is the `last` step), or failed with the flow. A step an
    earlier run of the plugin finished is not done again: its reported output is used."""
    if name in reporter.done:
        output = reporter.done[name]
        summary = {key: value for key, value in output.items() if key != "headlines"}
        reporter.out.line("step", f"step {name:<9} done before, not run again "
                          f"{json.dumps(summary)}", step=name, status="succeeded",
                          output=summary, revision=reporter.revision, again=False)
        return output
    reporter.mine["phase"] = name
    reporter.report(status="running", steps=[{"name": name, "status": "running"}])
    try:
        output = work()
    except Exception as error:
        reporter.report(status="failed", error=f"{name}: {error}",
                        steps=[{"name": name, "status": "failed", "error": str(error)}])
        raise StepFailed(f"step {name} failed: {error}") from error
    reporter.mine.setdefault("done", []).append(name)
    end = {"status": "succeeded"} if last else {}
    flow = reporter.report(steps=[{"name": name, "status": "succeeded", "output": output}], **end)
    summary = {key: value for key, value in output.items() if key != "headlines"}
    reporter.out.line("step", f"step {name:<9} succeeded  revision {flow['revision']:<3} "
                      f"{json.dumps(summary)}", step=name, status="succeeded", output=summary,
                      revision=flow["revision"])
    return output


def wait_phase(reporter: Reporter, args: argparse.Namespace) -> None:
    """Waits before publishing (for an approval file, or for a publish window), with the flow
    `waiting` and its `wait` saying what for; then back to `running`."""
    if args.approve_file:
        wait = {"for": "approval", "file": args.approve_file, "timeout_s": args.wait_timeout}
    else:
        wait = {"for": "publish window", "seconds": args.wait_seconds}
    reporter.mine["phase"] = "waiting"
    flow = reporter.report(status="waiting", wait=wait)
    reporter.out.line("wait", f"waiting for {wait['for']}  revision {flow['revision']}",
                      wait=wait, revision=flow["revision"])
    if args.approve_file:
        deadline = time.monotonic() + args.wait_timeout
        while not os.path.exists(args.approve_file):
            if time.monotonic() > deadline:
                reporter.report(status="failed", wait=None,
                                error=f"no approval within {args.wait_timeout} s")
                raise StepFailed(f"no approval within {args.wait_timeout} s")
            time.sleep(0.05)
    else:
        time.sleep(args.wait_seconds)
    reporter.report(status="running", wait=None)


def finish_cancelled(reporter: Reporter) -> None:
    """Reports the step in flight cancelled and the flow `cancelled`."""
    steps = [{"name": reporter.running, "status": "cancelled"}] if reporter.running else []
    for _ in range(ATTEMPTS):
        try:
            reporter.flow = reporter.client.report(
                reporter.flow["id"], expected_revision=reporter.revision, status="cancelled",
                wait=None, steps=steps)
            break
        except Conflict:
            reporter.flow = reporter.client.flow(reporter.flow["id"])
    flow = reporter.flow
    reporter.out.line("end", f"flow {flow['id']} {flow['status']} at revision {flow['revision']} "
                      f"(cancel requested)", id=flow["id"], status=flow["status"],
                      revision=flow["revision"], conflicts=reporter.conflicts)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="serve's URL, as it printed it")
    parser.add_argument("--token-env", metavar="VAR", default=TaskflowClient.TOKEN_ENV,
                        help="the environment variable holding serve's token, when it has "
                             "tokens [default: %(default)s]")
    parser.add_argument("--id", help="the flow's id: run again, it finds the same flow")
    parser.add_argument("--input", help="a JSON list of headlines [default: built-in ones]")
    parser.add_argument("--output", help="where to publish the digest [default: the publish "
                                         "step's output]")
    parser.add_argument("--approve-file", metavar="PATH",
                        help="wait before publishing until PATH exists (an approval)")
    parser.add_argument("--wait-seconds", type=float, default=1.0,
                        help="without --approve-file, wait this long before publishing")
    parser.add_argument("--wait-timeout", type=float, default=600.0,
                        help="fail when the approval has not come after this many seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)

    # Unset, no token is sent: a serve without tokens (on loopback) needs none.
    token = os.environ.get(args.token_env, "")
    out = Output(args.json)
    client = TaskflowClient(args.server, token=token)
    try:
        submitted = client.create_mirrored("digest", id=args.id, goal="publish today's digest")
        flow = submitted.flow
        verb = "created" if submitted.created else "found"
        out.line("flow", f"flow {flow['id']} {verb} (revision {flow['revision']}, "
                 f"{flow['status']})", id=flow["id"], created=submitted.created,
                 revision=flow["revision"])
        if flow["ended_at"]:
            return 0 if flow["status"] == "succeeded" else 1
        reporter = Reporter(client, flow, out)
        if not submitted.created:
            found = client.get(flow["id"])
            reporter.flow = found["flow"]
            reporter.pick_up(found["steps"])
    except TaskflowError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    try:
        fetched = run_step(reporter, "fetch", lambda: fetch(args.input))
        transformed = run_step(reporter, "transform", lambda: transform(fetched))
        wait_phase(reporter, args)
        run_step(reporter, "publish", lambda: publish(fetched, transformed, args.output),
                 last=True)
    except Cancelled:
        finish_cancelled(reporter)
        return 1
    except (StepFailed, TaskflowError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    flow = reporter.flow
    out.line("end", f"flow {flow['id']} {flow['status']} at revision {flow['revision']} "
             f"({reporter.conflicts} conflicts)", id=flow["id"], status=flow["status"],
             revision=flow["revision"], conflicts=reporter.conflicts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
