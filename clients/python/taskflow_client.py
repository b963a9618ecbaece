"""A client of `taskflow serve`, the local gateway of taskflow, in one file of standard library.

Programs in any language submit managed flows (serve runs their pipeline) and own mirrored
flows (the program does the work and reports it) through serve's HTTP API. This module is that
API for Python, with nothing to install: copy the file next to your program, or put its folder
on `sys.path`.

    client = TaskflowClient("http://127.0.0.1:7878")  # the token from $TASKFLOW_TOKEN, if set
    flow = client.create_mirrored("deploy", id="deploy-7").flow
    flow = client.report(flow["id"], expected_revision=flow["revision"], status="running")
    for event in client.events(flow=flow["id"], after=0):
        ...

Answers are the API's JSON documents as dicts (`flow`, `steps`, `revisions`, events), the same
as `taskflow --json` prints. Every error answer raises a subclass of `ApiError` chosen by its
stable `code`: `Conflict` (with `current_revision` when the flow moved on), `NotFound`,
`Refused`, `BadRequest`, `Unauthorized`, `TooLarge`, `Unavailable`, `ServerError`. A server that
cannot be reached raises `ConnectionFailed`.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

__all__ = [
    "TaskflowClient",
    "Submitted",
    "Page",
    "EventStream",
    "UNSET",
    "TaskflowError",
    "ConnectionFailed",
    "ApiError",
    "BadRequest",
    "Unauthorized",
    "NotFound",
    "Conflict",
    "TooLarge",
    "Refused",
    "Unavailable",
    "ServerError",
]

Document = Dict[str, Any]


class _Unset:
    """The value of a report field left out (unchanged), as opposed to `None` (cleared)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class TaskflowError(Exception):
    """Anything this client raises."""


class ConnectionFailed(TaskflowError):
    """The server could not be reached, or the connection broke before an answer."""


class ApiError(TaskflowError):
    """An error answer: `{"error": {"code", "message", ...}}` with its HTTP status.

    `details` holds the error object's other keys (`current_revision`, `from`, `to`, ...).
    """

    def __init__(self, status: int, code: str, message: str, details: Optional[Document] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: Document = details or {}


class BadRequest(ApiError):
    """400: the request is malformed (unknown field, bad id, bad query)."""


class Unauthorized(ApiError):
    """401: no token, or not a token of this server."""


class NotFound(ApiError):
    """404: no such flow, or another owner's."""


class Conflict(ApiError):
    """409: the flow is not at `expected_revision`, or the id is taken by another body.

    `current_revision` is the flow's revision now, when the conflict is a stale revision.
    """

    @property
    def current_revision(self) -> Optional[int]:
        return self.details.get("current_revision")


class TooLarge(ApiError):
    """413: the request body is over serve's limit."""


class Refused(ApiError):
    """422: refused by the rules (an illegal transition, a mirrored flow resumed, ...)."""


class Unavailable(ApiError):
    """503: the store is busy or stopping; the same request may succeed later."""


class ServerError(ApiError):
    """500, or any status this client does not know."""


_BY_CODE = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "conflict": Conflict,
    "too_large": TooLarge,
    "refused": Refused,
    "unavailable": Unavailable,
    "internal": ServerError,
}
_BY_STATUS = {400: BadRequest, 401: Unauthorized, 404: NotFound, 409: Conflict, 413: TooLarge,
              422: Refused, 503: Unavailable}


def _error(status: int, body: bytes) -> ApiError:
    """The exception an error answer means."""
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = {key: value for key, value in error.items() if key not in ("code", "message")}
    except (ValueError, KeyError, TypeError):
        code = "http_" + str(status)
        message = body.decode("utf-8", "replace").strip() or http.client.responses.get(status, "")
        details = {}
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status, ServerError)
    return kind(status, code, message, details)


@dataclass
class Submitted:
    """What a submit found: the flow, and whether this call created it (201) or an earlier
    submit with the same id and body had (200)."""

    flow: Document
    created: bool


@dataclass
class Page:
    """One page of a flow list, newest first; `next_cursor` is None on the last page."""

    flows: List[Document]
    next_cursor: Optional[str]


class TaskflowClient:
    """The HTTP API of one serve.

    `base_url` is what serve printed (`listening on http://ADDR`); `token` is sent as
    `Authorization: Bearer TOKEN` (serve with `[serve.tokens]` needs one, and the token decides
    whose flows the client sees). Left out, it is the environment's `TASKFLOW_TOKEN`, if set;
    `token=""` sends none. `timeout` bounds each request, in seconds. Requests go straight to
    the server, never through a proxy from the environment.
    """

    TOKEN_ENV = "TASKFLOW_TOKEN"

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token if token is not None else os.environ.get(self.TOKEN_ENV)
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # The server.

    def health(self) -> Document:
        """`GET /healthz`: `{"ok", "version"}`; needs no token."""
        return self._call("GET", "/healthz")

    def openapi(self) -> Document:
        """`GET /openapi.json`: the OpenAPI 3 document of the API."""
        return self._call("GET", "/openapi.json")

    # Submitting flows.

    def create_managed(self, name: str, spec: Document, id: Optional[str] = None,
                       goal: Optional[str] = None) -> Submitted:
        """Submits a managed flow: `spec` is its pipeline (`{"steps": [...]}`, the fields of a
        pipeline file), which serve runs. The same `id` and body again finds the flow; the same
        id with another body raises `Conflict`."""
        body = {"name": name, "sync_mode": "managed", "spec": spec}
        return self._submit("/v1/flows", body, id=id, goal=goal)

    def create_mirrored(self, name: str, id: Optional[str] = None, goal: Optional[str] = None,
                        controller: Optional[str] = None, state: Any = UNSET) -> Submitted:
        """Creates a mirrored flow, which the caller drives and reports (`report`). It starts
        `queued` at revision 1. Idempotent by `id` as `create_managed` is."""
        body: Document = {"name": name, "sync_mode": "mirrored"}
        if controller is not None:
            body["controller"] = controller
        if state is not UNSET:
            body["state"] = state
        return self._submit("/v1/flows", body, id=id, goal=goal)

    def create_child(self, parent: str, name: str, spec: Document, id: Optional[str] = None,
                     goal: Optional[str] = None) -> Submitted:
        """`POST /v1/flows/{parent}/children`: asks for a child flow under `parent`. Serve
        refuses what the store refuses (a managed parent's children are spawned by its own
        steps), so this raises `Refused` or `NotFound` for the flows there are today."""
        body = {"name": name, "sync_mode": "managed", "spec": spec}
        return self._submit(f"/v1/flows/{_quote(parent)}/children", body, id=id, goal=goal)

    def _submit(self, path: str, body: Document, id: Optional[str],
                goal: Optional[str]) -> Submitted:
        if id is not None:
            body["id"] = id
        if goal is not None:
            body["goal"] = goal
        status, document = self._request("POST", path, body)
        return Submitted(flow=document["flow"], created=status == 201)

    # Reading flows.

    def get(self, id: str) -> Document:
        """`GET /v1/flows/{id}`: `{"flow", "steps", "children"}`, the journal included."""
        return self._call("GET", f"/v1/flows/{_quote(id)}")

    def flow(self, id: str) -> Document:
        """The flow record alone (its `revision`, `status`, `state`, `wait`, ...)."""
        return self.get(id)["flow"]

    def list_flows(self, status: Optional[str] = None, name: Optional[str] = None,
                   limit: Optional[int] = None, cursor: Optional[str] = None) -> Page:
        """One page of the caller's flows, newest first. `limit` is 1 to 1000 (serve's default
        is 50); pass the page's `next_cursor` as `cursor` for the next one."""
        query = {"status": status, "name": name, "limit": limit, "cursor": cursor}
        document = self._call("GET", "/v1/flows", query=query)
        return Page(flows=document["flows"], next_cursor=document.get("next_cursor"))

    def iter_flows(self, status: Optional[str] = None, name: Optional[str] = None,
                   page_size: int = 100) -> Iterator[Document]:
        """Every flow of the caller that matches, newest first, a page at a time."""
        cursor = None
        while True:
            page = self.list_flows(status=status, name=name, limit=page_size, cursor=cursor)
            yield from page.flows
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def history(self, id: str) -> List[Document]:
        """The flow's revisions, oldest first: `{"revision", "at", "actor", "change"}`, where
        `change` is `{FIELD: {"before", "after"}}`."""
        return self._call("GET", f"/v1/flows/{_quote(id)}/history")["revisions"]

    # Driving flows.

    def report(self, id: str, expected_revision: Optional[int] = None,
               status: Optional[str] = None, current_step: Optional[str] = None,
               state: Any = UNSET, wait: Any = UNSET, error: Optional[str] = None,
               goal: Optional[str] = None,
               steps: Optional[List[Document]] = None) -> Document:
        """Reports a mirrored flow's progress as one revision and returns the flow after it.

        Fields left out stay as they are; `state=None` and `wait=None` clear the stored value.
        `steps` are `{"name", "status", "output"?, "error"?}` in the order they happened (a
        step reported `running` begins; reported ended, it ends). With `expected_revision`, a
        flow at another revision raises `Conflict` carrying `current_revision` and nothing is
        written; an illegal status change raises `Refused`.
        """
        body: Document = {}
        optional = {"expected_revision": expected_revision, "status": status,
                    "current_step": current_step, "error": error, "goal": goal, "steps": steps}
        body.update({key: value for key, value in optional.items() if value is not None})
        if state is not UNSET:
            body["state"] = state
        if wait is not UNSET:
            body["wait"] = wait
        return self._call("POST", f"/v1/flows/{_quote(id)}/report", body)["flow"]

    def cancel(self, id: str) -> Document:
        """Sticky cancel: `{"flow", "already_requested", "active_steps"}`. A managed flow becomes
        `cancelled` once its running steps settle; a mirrored one's owner reports it."""
        return self._call("POST", f"/v1/flows/{_quote(id)}/cancel")

    def resume(self, id: str) -> Document:
        """Runs a managed flow on from its last checkpoint (a failed one from the step that
        failed); returns the flow. A mirrored or ended flow raises `Refused`."""
        return self._call("POST", f"/v1/flows/{_quote(id)}/resume")["flow"]

    def fork(self, id: str, from_step: Union[int, str]) -> Document:
        """A new flow with an ended managed flow's steps before `from_step` (a seq or a step
        name) done; serve runs it from there. Returns the new flow."""
        return self._call("POST", f"/v1/flows/{_quote(id)}/fork", {"from_step": from_step})["flow"]

    def events(self, flow: Optional[str] = None, after: Optional[int] = None,
               last_event_id: Optional[int] = None, retry_delay: float = 0.5,
               max_retry_delay: float = 10.0, read_timeout: float = 45.0,
               max_reconnects: Optional[int] = None) -> "EventStream":
        """The caller's changes, live, as an iterator of dicts (see `EventStream`).

        `after` (or `last_event_id`, the same) starts after that event id; `after=0` from the
        first event there is; neither, from now on. `flow` keeps one flow's events.
        """
        start = last_event_id if last_event_id is not None else after
        return EventStream(self, flow, start, retry_delay, max_retry_delay, read_timeout,
                           max_reconnects)

    # Transport.

    def _headers(self) -> Dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _call(self, method: str, path: str, body: Optional[Document] = None,
              query: Optional[Document] = None) -> Document:
        return self._request(method, path, body, query)[1]

    def _request(self, method: str, path: str, body: Optional[Document] = None,
                 query: Optional[Document] = None) -> Tuple[int, Document]:
        url = self.base_url + path
        if query:
            pairs = {key: value for key, value in query.items() if value is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        headers = self._headers()
        data = None
        if body is not None or method == "POST":
            data = json.dumps(body if body is not None else {}).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as answer:
            with answer:
                raise _error(answer.code, answer.read()) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as failure:
            reason = getattr(failure, "reason", None) or failure
            raise ConnectionFailed(
                f"cannot reach serve at {self.base_url} ({method} {path}): {reason}") from failure


class EventStream:
    """`GET /v1/events` as an iterator of events, each a dict: `{"id", "kind": "flow",
    "flow_id", "at", "revision", "status", "current_step", "fields"}` or `{"id", "kind":
    "step", "flow_id", "at", "seq", "name", "status", "attempt"}` (`id` and `kind` are the
    server-sent event's `id` and `event`; every event is of the token's owner).

    Ids are durable places in serve's change feed. When the connection drops (serve restarted,
    the network broke, nothing heard for `read_timeout` seconds although serve pings every 15),
    the stream connects again with `Last-Event-ID`, waiting `retry_delay` seconds and doubling
    up to `max_retry_delay`, and goes on with the event after the last one it gave: none is
    missed, none comes twice. Until it gives an event, it goes on after the event serve began
    it from (its `Taskflow-After` header: the newest event for a stream from now, or for one
    asked to start past the newest, as after a feed begun again). `last_event_id` is that id;
    `reconnects` counts the reconnections.
    An error answer (a bad token, a bad flow id) ends it with the `ApiError`; so do more than
    `max_reconnects` failed attempts in a row, with `ConnectionFailed`.

    Use it in a `with` block, or call `close()`, to drop the connection before its end.
    """

    def __init__(self, client: TaskflowClient, flow: Optional[str], after: Optional[int],
                 retry_delay: float, max_retry_delay: float, read_timeout: float,
                 max_reconnects: Optional[int]):
        self._client = client
        self._flow = flow
        self.last_event_id: Optional[int] = after
        self.reconnects = 0
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._read_timeout = read_timeout
        self._max_reconnects = max_reconnects
        self._events = self._run()

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Document:
        return next(self._events)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        """Drops the connection; the iterator ends."""
        self._events.close()

    def _run(self) -> Iterator[Document]:
        delay, failures = self._retry_delay, 0
        while True:
            connection = None
            try:
                connection, response = self._connect()
                delay, failures = self._retry_delay, 0
                for id, event in _parse(response):
                    if id is not None:
                        self.last_event_id = id
                    yield event
            # A read that times out (socket.timeout) is an OSError too: a silent connection
            # counts as a dropped one.
            except (OSError, http.client.HTTPException) as failure:
                failures += 1
                if self._max_reconnects is not None and failures > self._max_reconnects:
                    raise ConnectionFailed(f"the event stream: {failure}") from failure
            finally:
                if connection is not None:
                    connection.close()
            self.reconnects += 1
            time.sleep(delay)
            delay = min(delay * 2, self._max_retry_delay)

    def _connect(self) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = urllib.parse.urlsplit(self._client.base_url)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = kind(url.hostname or "127.0.0.1", url.port, timeout=self._read_timeout)
        query = {"flow": self._flow} if self._flow is not None else {}
        headers = self._client._headers()
        headers["Accept"] = "text/event-stream"
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        path = url.path.rstrip("/") + "/v1/events"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        if response.status != 200:
            body = response.read()
            connection.close()
            error = _error(response.status, body)
            if isinstance(error, Unavailable):
                raise ConnectionError(str(error))
            raise error
        # Where serve began the stream: the id asked for, or the newest event when that was
        # none yet or past the newest (a feed begun again); resuming from there misses nothing.
        began = response.getheader("Taskflow-After", "")
        if began.isdigit():
            self.last_event_id = int(began)
        return connection, response


def _parse(response: http.client.HTTPResponse) -> Iterator[Tuple[Optional[int], Document]]:
    """The `(id, event)` of each event of a `text/event-stream` body, until it ends (then
    `ConnectionError`): the event is its data with its `id` and its kind (the `event` line)
    added. A flow's event carries the steps that came with its revision (`steps`, each with
    its own `id`): they are given first, each as a `step` event of that flow and time. Comment
    lines (serve's keep-alive pings) are skipped."""
    id: Optional[int] = None
    kind = "message"
    data: List[str] = []
    while True:
        raw = response.readline()
        if not raw:
            raise ConnectionError("the event stream ended")
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                change = json.loads("\n".join(data))
                for step in change.pop("steps", []):
                    shared = {"flow_id": change.get("flow_id"), "at": change.get("at")}
                    yield step["id"], {**step, "kind": "step", **shared}
                yield id, {"id": id, "kind": kind, **change}
            id, kind, data = None, "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                kind = value
            elif field == "id" and value.isdigit():
                id = int(value)


def _quote(id: str) -> str:
    return urllib.parse.quote(id, safe="")

