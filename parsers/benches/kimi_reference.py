#!/usr/bin/env python3
"""The Python reference of the whole-process figure (whole_process.sh): a Kimi K2 reply parsed
the way the common Python inference servers parse it, with regular expressions over the tool-call
sections and the calls in them, `json.loads` of each call's arguments, the text outside the
sections as content, and the message written as JSON to standard output.

It exists so that `taskflow parse --format kimi` has a baseline to be measured against as a whole
process (interpreter start, reading, parsing, writing). It is a baseline, not a second parser:
markers inside JSON strings, streaming and bare-index ids are out of its scope.

    python3 parsers/benches/kimi_reference.py REPLY.txt > message.json
"""

import json
import re
import sys

SECTION = re.compile(
    r"<\|tool_calls_section_begin\|>(.*?)<\|tool_calls_section_end\|>", re.DOTALL
)
CALL = re.compile(
    r"<\|tool_call_begin\|>\s*(?P<id>[^<]+?:\d+)\s*"
    r"<\|tool_call_argument_begin\|>\s*(?P<arguments>.*?)\s*<\|tool_call_end\|>",
    re.DOTALL,
)


def call_name(call_id):
    """`functions.NAME:IDX` (or `NAME:IDX`) to NAME."""
    head = call_id.rsplit(":", 1)[0]
    return head[len("functions."):] if head.startswith("functions.") else head


def parse(text):
    content = []
    calls = []
    end = 0
    for section in SECTION.finditer(text):
        content.append(text[end:section.start()])
        end = section.end()
        for call in CALL.finditer(section.group(1)):
            raw = call.group("arguments")
            try:
                arguments = json.dumps(json.loads(raw), ensure_ascii=False)
            except json.JSONDecodeError:
                arguments = raw
            calls.append(
                {
                    "id": call.group("id"),
                    "type": "function",
                    "function": {"name": call_name(call.group("id")), "arguments": arguments},
                }
            )
    content.append(text[end:])
    return {"content": "".join(content), "reasoning": None, "tool_calls": calls}


def main():
    if len(sys.argv) > 1 and sys.argv[1] != "-":
        with open(sys.argv[1], encoding="utf-8") as file:
            text = file.read()
    else:
        text = sys.stdin.read()
    json.dump(parse(text), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
