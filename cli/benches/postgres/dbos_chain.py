"""DBOS's side of `cargo bench -p taskflow-cli --bench postgres`: a workflow of N sequential
steps, each step's output checkpointed by DBOS in its system tables, on the same PostgreSQL
server as taskflow's side.

Usage: dbos_chain.py URL SCHEMA STEPS
After a warm-up workflow it prints `ready`; then, for each line it reads, it runs one workflow
and prints its steps per second (from its start to its result), so that the bench can
interleave these rounds with its own.
"""

import sys
import time

from dbos import DBOS


def main() -> None:
    url, schema, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    DBOS(
        config={
            "name": "taskflow-bench",
            "system_database_url": url.replace("postgres://", "postgresql://", 1),
            "dbos_system_schema": schema,
            "log_level": "WARNING",
        }
    )

    @DBOS.step()
    def echo(value: int) -> int:
        return value

    @DBOS.workflow()
    def chain(count: int) -> int:
        total = 0
        for n in range(count):
            total += echo(n)
        return total

    DBOS.launch()
    chain(steps)
    print("ready", flush=True)
    for _ in sys.stdin:
        started = time.perf_counter()
        assert chain(steps) == steps * (steps - 1) // 2
        print(f"{steps / (time.perf_counter() - started):.3f}", flush=True)
    DBOS.destroy()


if __name__ == "__main__":
    main()
