"""taskflow's MCP server driven by a real MCP client: the official Python SDK (`mcp` on PyPI).

    mcp_checks.py stdio TASKFLOW DB FIXTURES APPROVAL_FLOW
    mcp_checks.py http URL ALICE_TOKEN BOB_TOKEN FIXTURES APPROVAL_FLOW

`stdio` starts `TASKFLOW --db DB --owner alice mcp serve` (and one as bob) the way an agent
does, and at the end leaves the flow `left-behind` running when alice's last session ends; `http` talks to the `/mcp` endpoint of a running `taskflow serve` with alice's and bob's
bearer tokens. Both run the same checks as alice: the tool list, a pipeline run to its end and
found again by its id, the flow listed, inspected and its history read, a running flow
cancelled, a waiting flow signalled, the agent run APPROVAL_FLOW's tool call approved, and bad
input answered as tool errors; then bob sees none of alice's flows. Prints `ok SUMMARY` (JSON)
at the end; a failed check raises (exit code 1, the reason on stderr).
"""

import asyncio
import json
import os
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

TOOLS = {
    "list_flows",
    "inspect_flow",
    "flow_history",
    "run_pipeline",
    "resume_flow",
    "cancel_flow",
    "signal_flow",
    "decide_approval",
}
LIMIT = 30.0


class Tools:
    """One owner's session, with the calls the checks make."""

    def __init__(self, session: ClientSession, pipeline_arguments):
        self.session = session
        # How a pipeline fixture is handed over: its path (stdio) or its text (HTTP).
        self.pipeline_arguments = pipeline_arguments

    async def call(self, name: str, arguments: dict) -> dict:
        """The tool's document; a tool error fails the check."""
        result = await self.session.call_tool(name, arguments)
        assert not result.is_error, f"{name} {arguments}: {result.content[0].text}"
        return result.structured_content

    async def error(self, name: str, arguments: dict) -> dict:
        """The tool error `{"code", "message", "hint"?}`; a success fails the check."""
        result = await self.session.call_tool(name, arguments)
        assert result.is_error, f"{name} {arguments} succeeded: {result.structured_content}"
        error = result.structured_content["error"]
        assert error["message"] in result.content[0].text, result.content[0].text
        return error

    async def run(self, fixture: str, flow_id: str) -> dict:
        return await self.call("run_pipeline", {**self.pipeline_arguments(fixture), "id": flow_id})

    async def inspect(self, flow_id: str) -> dict:
        return await self.call("inspect_flow", {"id": flow_id})

    async def until(self, flow_id: str, ready) -> dict:
        """Inspects the flow until `ready(inspection)`."""
        started = time.monotonic()
        while True:
            inspection = await self.inspect(flow_id)
            if ready(inspection):
                return inspection
            assert time.monotonic() - started < LIMIT, f"{flow_id}: {inspection['flow']}"
            await asyncio.sleep(0.05)

    async def until_status(self, flow_id: str, status: str) -> dict:
        return await self.until(flow_id, lambda seen: seen["flow"]["status"] == status)


def outputs(inspection: dict) -> dict:
    return {step["name"]: step["output"] for step in inspection["steps"]}


async def alice_checks(tools: Tools, approval_flow: str) -> dict:
    listed = await tools.session.list_tools()
    assert {tool.name for tool in listed.tools} == TOOLS, [tool.name for tool in listed.tools]
    for tool in listed.tools:
        assert tool.input_schema["type"] == "object", tool
    run = next(tool for tool in listed.tools if tool.name == "run_pipeline")
    assert set(run.input_schema["properties"]) == {"file", "pipeline", "id"}, run.input_schema

    # A pipeline runs to its end; the same id again finds it.
    submitted = await tools.run("greeting.toml", "greeting-1")
    assert submitted["created"] is True and submitted["flow"]["id"] == "greeting-1", submitted
    assert submitted["flow"]["owner"] == "alice", submitted
    done = await tools.until_status("greeting-1", "succeeded")
    assert outputs(done) == {"hello": "hello", "greet": "hello, world"}, done["steps"]
    assert set(done) == {"flow", "steps", "usage", "children"}, done.keys()
    again = await tools.run("greeting.toml", "greeting-1")
    assert again["created"] is False and again["flow"]["status"] == "succeeded", again

    listed = await tools.call("list_flows", {"status": "succeeded"})
    assert [flow["id"] for flow in listed["flows"]] == ["greeting-1"], listed
    row = listed["flows"][0]
    assert (row["steps_done"], row["steps_total"], row["owner"]) == (2, 2, "alice"), row
    history = await tools.call("flow_history", {"id": "greeting-1"})
    numbers = [revision["revision"] for revision in history["revisions"]]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert history["revisions"][-1]["change"]["status"]["after"] == "succeeded", history

    # A running flow is cancelled: its running step stops, the next never starts.
    await tools.run("long_sleep.toml", "sleepy")
    await tools.until(
        "sleepy", lambda seen: [s["status"] for s in seen["steps"]] == ["running"]
    )
    cancel = await tools.call("cancel_flow", {"id": "sleepy"})
    assert cancel["already_requested"] is False and cancel["flow"]["cancel_requested_at"], cancel
    cancelled = await tools.until_status("sleepy", "cancelled")
    assert [step["name"] for step in cancelled["steps"]] == ["sleep"], cancelled["steps"]
    refused = await tools.error("cancel_flow", {"id": "sleepy"})
    assert refused["code"] == "refused", refused

    # A flow waiting for a signal runs on when it arrives, with its payload.
    await tools.run("wait_for_go.toml", "waiter")
    waiting = await tools.until_status("waiter", "waiting")
    assert waiting["flow"]["wait"] is not None, waiting["flow"]
    sent = await tools.call("signal_flow", {"id": "waiter", "name": "go", "payload": {"by": "mcp"}})
    assert (sent["signal"]["name"], sent["signal"]["payload"]) == ("go", {"by": "mcp"}), sent
    published = await tools.until_status("waiter", "succeeded")
    assert outputs(published)["go"] == {"by": "mcp"}, published["steps"]

    # The agent run's tool call waits for a decision; approved, it runs and the run ends.
    asked = await tools.inspect(approval_flow)
    assert asked["flow"]["status"] == "waiting", asked["flow"]
    decided = await tools.call(
        "decide_approval", {"id": approval_flow, "approve": True, "reason": "fine"}
    )
    approval = decided["approval"]
    assert (approval["call_id"], approval["approved"]) == ("functions.write_file:0", True), decided
    ended = await tools.until_status(approval_flow, "succeeded")
    again = await tools.error(
        "decide_approval",
        {"id": approval_flow, "call_id": "functions.write_file:0", "approve": False},
    )
    assert again["code"] in ("conflict", "refused"), again

    # Bad input and unknown flows are tool errors that say so.
    errors = {
        "neither": await tools.error("run_pipeline", {}),
        "bad_pipeline": await tools.error(
            "run_pipeline",
            {"pipeline": 'name = "x"\n\n[[steps]]\nid = "a"\naction = "teleport"\n'},
        ),
        "bad_id": await tools.error("run_pipeline", {"pipeline": "name = 'x'", "id": "a b"}),
        "unknown_flow": await tools.error("inspect_flow", {"id": "no-such-flow"}),
        "bad_status": await tools.error("list_flows", {"status": "nope"}),
        "bad_type": await tools.error("list_flows", {"limit": "ten"}),
        "unknown_key": await tools.error("list_flows", {"owner": "bob"}),
        "missing_key": await tools.error("signal_flow", {"id": "waiter"}),
        "no_approval": await tools.error("decide_approval", {"id": "greeting-1", "approve": True}),
        "no_tokens": await tools.error("resume_flow", {"id": "greeting-1", "max_tokens": 0}),
    }
    codes = {name: error["code"] for name, error in errors.items()}
    assert codes == {
        "neither": "bad_request",
        "bad_pipeline": "bad_request",
        "bad_id": "bad_request",
        "unknown_flow": "not_found",
        "bad_status": "bad_request",
        "bad_type": "bad_request",
        "unknown_key": "bad_request",
        "missing_key": "bad_request",
        "no_approval": "refused",
        "no_tokens": "bad_request",
    }, errors
    assert "pipeline:5:10: unknown action `teleport`" in errors["bad_pipeline"]["message"], errors
    assert "`limit`" in errors["bad_type"]["message"], errors
    assert "unknown field `owner`" in errors["unknown_key"]["message"], errors
    assert errors["unknown_flow"]["hint"] == "list_flows shows your flows", errors
    try:
        await tools.session.call_tool("drop_flows", {})
        raise AssertionError("an unknown tool was called")
    except MCPError as error:
        assert "there is no tool `drop_flows`" in str(error), error

    everything = await tools.call("list_flows", {})
    return {
        "inspected": await tools.inspect("greeting-1"),
        "flows": {flow["id"]: flow["status"] for flow in everything["flows"]},
        "approval": ended["flow"]["status"],
        "errors": codes,
    }


async def bob_checks(tools: Tools, approval_flow: str) -> dict:
    """Bob sees none of alice's flows, and cannot change them."""
    listed = await tools.call("list_flows", {})
    assert listed["flows"] == [], listed
    seen = {}
    for name, arguments in [
        ("inspect_flow", {"id": "greeting-1"}),
        ("flow_history", {"id": "greeting-1"}),
        ("cancel_flow", {"id": "waiter"}),
        ("resume_flow", {"id": "sleepy"}),
        ("signal_flow", {"id": "waiter", "name": "go"}),
        ("decide_approval", {"id": approval_flow, "approve": False}),
    ]:
        error = await tools.error(name, arguments)
        assert error["code"] == "not_found", (name, error)
        seen[name] = error["code"]
    missing = await tools.error("inspect_flow", {"id": "never-made"})
    other = await tools.error("inspect_flow", {"id": "greeting-1"})
    # An existing flow of another owner reads exactly as one that does not exist.
    assert other["message"].replace("greeting-1", "X") == missing["message"].replace(
        "never-made", "X"
    ), (other, missing)
    return seen


@asynccontextmanager
async def session(transport):
    async with transport as (read, write):
        async with ClientSession(read, write) as opened:
            await opened.initialize()
            yield opened


async def over_stdio(taskflow: str, db: str, fixtures: Path, approval_flow: str) -> dict:
    def server(owner: str):
        arguments = ["--db", db, "--owner", owner, "mcp", "serve"]
        # The client passes on only a few variables; the test's config file is one more.
        env = {key: os.environ[key] for key in ["TASKFLOW_CONFIG"] if key in os.environ}
        return stdio_client(StdioServerParameters(command=taskflow, args=arguments, env=env))

    def by_path(fixture: str) -> dict:
        return {"file": str(fixtures / fixture)}

    async with session(server("alice")) as alice:
        summary = await alice_checks(Tools(alice, by_path), approval_flow)
    async with session(server("bob")) as bob:
        summary["bob"] = await bob_checks(Tools(bob, by_path), approval_flow)
    # A session that ends while its flow runs: the flow is given back, not lost.
    async with session(server("alice")) as alice:
        tools = Tools(alice, by_path)
        await tools.run("pause_then_echo.toml", "left-behind")
        await tools.until(
            "left-behind", lambda seen: [s["status"] for s in seen["steps"]] == ["running"]
        )
    return summary


async def over_http(url: str, alice_token: str, bob_token: str, fixtures: Path, approval_flow: str) -> dict:
    endpoint = f"{url}/mcp"
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "checks", "version": "1"},
        },
    }
    headers = {"accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient() as plain:
        for presented in [{}, {"authorization": "Bearer not-a-token"}]:
            answer = await plain.post(endpoint, json=initialize, headers={**headers, **presented})
            assert answer.status_code == 401, (presented, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized", answer.text

    def client(token: str):
        http = create_mcp_http_client(headers={"authorization": f"Bearer {token}"})
        return streamable_http_client(endpoint, http_client=http)

    def by_text(fixture: str) -> dict:
        return {"pipeline": (fixtures / fixture).read_text()}

    async with session(client(alice_token)) as alice:
        tools = Tools(alice, by_text)
        # With tokens, serve reads no file for its callers.
        refused = await tools.error("run_pipeline", {"file": str(fixtures / "greeting.toml")})
        assert refused["code"] == "refused" and "`pipeline`" in refused["hint"], refused
        summary = await alice_checks(tools, approval_flow)
    async with session(client(bob_token)) as bob:
        tools = Tools(bob, by_text)
        summary["bob"] = await bob_checks(tools, approval_flow)
        # Bob's token is not trusted with serve's host (alice's is): no shell step of his runs.
        shell = await tools.error("run_pipeline", {**by_text("long_sleep.toml"), "id": "bobs"})
        assert shell["code"] == "refused" and "`shell`" in shell["message"], shell
        assert "host = true" in shell["hint"], shell
        assert (await tools.call("list_flows", {}))["flows"] == [], "nothing was made"
    return summary


def main() -> None:
    mode, *arguments = sys.argv[1:]
    if mode == "stdio":
        taskflow, db, fixtures, approval_flow = arguments
        summary = asyncio.run(over_stdio(taskflow, db, Path(fixtures), approval_flow))
    elif mode == "http":
        url, alice_token, bob_token, fixtures, approval_flow = arguments
        summary = asyncio.run(over_http(url, alice_token, bob_token, Path(fixtures), approval_flow))
    else:
        raise SystemExit(f"unknown mode {mode!r}: stdio or http")
    print("ok " + json.dumps(summary, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
