"""Drives chat requests through the real `openai` SDK and prints what the SDK made of them.

Reads a JSON document from stdin: {"base_url", "api_key", "cases": [{"name", "model",
"messages", "stream", "tools"?, "headers"?}]}. Streamed answers are assembled by the SDK's own
stream state (ChatCompletionStreamState), the way `client.chat.completions.stream` does it.
Prints one JSON document: {"results": [{"name", "message"} or {"name", "error"}]}, where a
message is {"content", "reasoning", "tool_calls": [{"id", "name", "arguments"}],
"finish_reason"}.
"""

import json
import sys

import openai
from openai.lib.streaming.chat import ChatCompletionStreamState


def normalized(choice):
    message = choice.message
    extra = message.model_extra or {}
    calls = [
        {"id": call.id, "name": call.function.name, "arguments": call.function.arguments}
        for call in (message.tool_calls or [])
    ]
    return {
        "content": message.content or None,
        "reasoning": extra.get("reasoning_content") or extra.get("reasoning") or None,
        "tool_calls": calls,
        "finish_reason": choice.finish_reason,
    }


def run(client, case):
    arguments = {"model": case["model"], "messages": case["messages"]}
    if case.get("tools"):
        arguments["tools"] = case["tools"]
    headers = case.get("headers") or {}
    if not case.get("stream"):
        completion = client.chat.completions.create(**arguments, extra_headers=headers)
        return normalized(completion.choices[0])
    state = ChatCompletionStreamState()
    stream = client.chat.completions.create(**arguments, stream=True, extra_headers=headers)
    for chunk in stream:
        state.handle_chunk(chunk)
    return normalized(state.get_final_completion().choices[0])


def main():
    spec = json.load(sys.stdin)
    client = openai.OpenAI(base_url=spec["base_url"], api_key=spec.get("api_key", "none"), max_retries=0)
    results = []
    for case in spec["cases"]:
        try:
            results.append({"name": case["name"], "message": run(client, case)})
        except openai.APIError as error:
            results.append({
                "name": case["name"],
                "error": {
                    "class": type(error).__name__,
                    "status": getattr(error, "status_code", None),
                    "message": str(error),
                },
            })
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
