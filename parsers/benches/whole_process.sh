#!/usr/bin/env bash
# The whole-process figure of the Kimi parser: wall time of `taskflow parse --format kimi` on a
# generated ~10 MB tool-dense Kimi K2 reply (prose, then a section of three calls, over and over;
# one call in three has an angle bracket inside a JSON string), output to /dev/null, against the
# Python reference kimi_reference.py (regular expressions and json.loads, as the common Python
# servers parse it) run by the system python3 on the same file. The bench of the parser alone is
# `cargo bench -p taskflow-parsers --bench parsers`; this one counts what a user waits for:
# process start, reading, parsing and writing the JSON.
#
#   cargo build --release -p taskflow-cli
#   parsers/benches/whole_process.sh [TASKFLOW_BINARY...]
#
# The binary defaults to $TASKFLOW_BIN, else target/release/taskflow (under $CARGO_TARGET_DIR
# when set). With several binaries (say a build of an older commit, then this one) each is timed
# in the same rounds. Runs are interleaved, the order turning each round, so that a busy machine
# slows every side alike; medians are printed with their ratios. Before timing, every output is
# checked to describe the same message as the reference's. ROUNDS (default 5), SIZE_MB (default
# 10) and PYTHON (default python3) can be set in the environment. Nothing goes over the network;
# the input and outputs live in a temporary directory removed at the end.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/../.." && pwd)
reference="$root/parsers/benches/kimi_reference.py"
# The interpreter itself, not a wrapper such as a pyenv shim, whose start would be counted.
python=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
rounds=${ROUNDS:-5}
size_mb=${SIZE_MB:-10}
if [ "$#" -gt 0 ]; then
    binaries=("$@")
else
    binaries=("${TASKFLOW_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/taskflow}")
fi
for binary in "${binaries[@]}"; do
    if [ ! -x "$binary" ]; then
        echo "whole_process: no executable $binary (build it: cargo build --release -p taskflow-cli)" >&2
        exit 2
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
input="$work/reply.txt"

# The input: the tool-dense turn of the parsers bench, without markers inside strings (which
# the reference's regular expressions would cut at).
"$python" - "$input" "$size_mb" <<'EOF'
import sys

path, size = sys.argv[1], int(float(sys.argv[2]) * 1024 * 1024)
parts, length, n = [], 0, 0
while length < size:
    calls = "".join(
        "<|tool_call_begin|>functions.search_%d:%d<|tool_call_argument_begin|>"
        '{"query": "durable agent run %d", "limit": %d, "filters": {"lang": "en", "note": "%s"}}'
        "<|tool_call_end|>" % (k, n, n, k, "a <b> tag inside a string" if k == 2 else "plain")
        for k in range(3)
    )
    turn = ("Let me look that up. <|tool_calls_section_begin|>%s<|tool_calls_section_end|>\n"
            % calls)
    parts.append(turn)
    length += len(turn.encode())
    n += 1
with open(path, "w", encoding="utf-8") as file:
    file.write("".join(parts))
EOF
bytes=$(wc -c < "$input")

# Each output must be the reference's message: same content, same calls, same arguments.
"$python" "$reference" "$input" > "$work/reference.json"
for i in "${!binaries[@]}"; do
    "${binaries[$i]}" parse --format kimi "$input" > "$work/taskflow-$i.json"
    "$python" - "$work/reference.json" "$work/taskflow-$i.json" "${binaries[$i]}" <<'EOF'
import json, sys

with open(sys.argv[1]) as file:
    expected = json.load(file)
with open(sys.argv[2]) as file:
    actual = json.load(file)

def calls(message):
    return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message["tool_calls"]]

problems = []
if actual.get("diagnostics"):
    problems.append("diagnostics: %s" % actual["diagnostics"][:1])
if actual["content"] != expected["content"]:
    problems.append("the content differs")
if calls(actual) != calls(expected):
    problems.append("the calls differ")
if problems:
    sys.exit("whole_process: %s does not give the reference's message: %s"
             % (sys.argv[3], "; ".join(problems)))
print("check: %s gives the reference's message (%d calls)"
      % (sys.argv[3], len(expected["tool_calls"])))
EOF
done

# Seconds taken by one run of the command, its output to /dev/null.
seconds() {
    local start=$EPOCHREALTIME
    "$@" > /dev/null
    local end=$EPOCHREALTIME
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }'
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Side 0 is the reference, side i + 1 the binary i.
sides=$((${#binaries[@]} + 1))
declare -a times
run_side() {
    if [ "$1" -eq 0 ]; then
        seconds "$python" "$reference" "$input"
    else
        seconds "${binaries[$1 - 1]}" parse --format kimi "$input"
    fi
}

printf 'input: %s bytes, %s rounds; python: %s (%s)\n' "$bytes" "$rounds" "$python" \
    "$("$python" -c 'import platform; print(platform.python_version())')"
for ((round = 0; round < rounds; round++)); do
    line="round $((round + 1)):"
    declare -a this_round=()
    for ((step = 0; step < sides; step++)); do
        side=$(((round + step) % sides))
        this_round[side]=$(run_side "$side")
        times[side]="${times[side]:-} ${this_round[side]}"
    done
    line+=" python ${this_round[0]} s"
    for ((side = 1; side < sides; side++)); do
        ratio=$(awk -v p="${this_round[0]}" -v t="${this_round[side]}" 'BEGIN { printf "%.1f", p / t }')
        line+=", taskflow[$side] ${this_round[side]} s (${ratio}x)"
    done
    echo "$line"
done

# shellcheck disable=SC2086 # the times are a space-separated list of numbers
python_median=$(median ${times[0]})
echo "python/median: $python_median s"
for ((side = 1; side < sides; side++)); do
    # shellcheck disable=SC2086
    taskflow_median=$(median ${times[side]})
    awk -v name="taskflow[$side] ${binaries[side - 1]}" -v p="$python_median" \
        -v t="$taskflow_median" -v bytes="$bytes" 'BEGIN {
        printf "%s/median: %s s, %.0f MB/s, python/taskflow: %.1fx\n", name, t, bytes / t / 1e6, p / t
    }'
done
