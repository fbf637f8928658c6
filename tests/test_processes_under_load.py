"""Several real processes on one file: exact counts, and a SIGKILL loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys

import pytest

from orchestrator_store.manager import DatabaseManager

PROCESS_HANG_GUARD = 180.0  # seconds; a guard against hanging, never a speed check
PROCESSES = 8
WRITES_PER_TASK = 15
TASKS_PER_PROCESS = 4
COST = 0.25  # exact in binary, so the total compares exactly

# Each child: several tasks, each writing a log and an increment per step,
# some steps in a transaction(); prints "ready", waits for "go", prints "done".
WRITER = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager

async def main() -> None:
    path, agent_id, worker = sys.argv[1], sys.argv[2], sys.argv[3]
    tasks, writes = int(sys.argv[4]), int(sys.argv[5])
    # A hang guard, not the 5 s default: on a loaded machine eight writers may wait longer.
    async with DatabaseManager(path, busy_timeout=60) as db:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def task(number: int) -> None:
            for step in range(writes):
                message = f"{worker}-{number}-{step}"
                if step % 5 == 0:
                    async with db.transaction():
                        await db.create_agent_log(agent_id, "INFO", "cost_update", message)
                        assert await db.add_agent_cost(agent_id, 0.25)
                else:
                    await db.create_agent_log(agent_id, "INFO", "cost_update", message)
                    assert await db.add_agent_cost(agent_id, 0.25)
                await db.create_system_log("INFO", f"worker-{worker}", message)

        await asyncio.gather(*(task(n) for n in range(tasks)))
    print("done", flush=True)

asyncio.run(main())
"""

# The child prints each id once its await returned (flushing), until it is killed.
ACKNOWLEDGING_WRITER = """
import asyncio, sys
from orchestrator_store.manager import DatabaseManager

async def main() -> None:
    path, agent_id = sys.argv[1], sys.argv[2]
    async with DatabaseManager(path) as db:
        async def task(number: int) -> None:
            step = 0
            while True:
                message = f"{number}-{step}"
                log_id = await db.create_agent_log(agent_id, "INFO", "milestone", message)
                await db.add_agent_cost(agent_id, 0.25)
                print(f"ack {log_id}", flush=True)
                step += 1

        await asyncio.gather(*(task(n) for n in range(8)))

asyncio.run(main())
"""


async def start_child(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), PROCESS_HANG_GUARD)
    return line.decode().strip()


@pytest.mark.backend("sqlite")  # processes share one file; PostgreSQL has test_postgres.py
async def test_eight_processes_write_logs_and_costs_with_exact_totals(
    db: DatabaseManager, agent_id: str
) -> None:
    args = (str(TASKS_PER_PROCESS), str(WRITES_PER_TASK))
    children = [
        await start_child(WRITER, str(db.db_path), agent_id, str(n), *args)
        for n in range(PROCESSES)
    ]
    for child in children:
        assert await read_line(child) == "ready"
    for child in children:  # start together
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    outputs = [
        await asyncio.wait_for(child.communicate(), PROCESS_HANG_GUARD) for child in children
    ]

    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr.decode()
        assert stdout.decode().split() == ["done"]
        assert stderr.decode() == ""  # no exception surfaced, not even a logged one
    per_process = TASKS_PER_PROCESS * WRITES_PER_TASK
    counts = await db.count_rows()
    assert counts["agent_logs"] == PROCESSES * per_process
    assert counts["system_logs"] == PROCESSES * per_process
    messages = {row["message"] for row in await db.get_agent_logs(agent_id)}
    assert len(messages) == PROCESSES * per_process  # each write exactly once
    agent = await db.get_agent(agent_id)
    assert agent is not None
    assert agent["cost_usd"] == PROCESSES * per_process * COST


@pytest.mark.backend("sqlite")  # the file must survive the kill
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
async def test_sigkill_mid_stream_keeps_the_file_sound_and_every_acknowledged_write(
    db: DatabaseManager, agent_id: str
) -> None:
    child = await start_child(ACKNOWLEDGING_WRITER, str(db.db_path), agent_id)
    acknowledged: list[int] = []
    while len(acknowledged) < 300:
        line = await read_line(child)
        assert line.startswith("ack "), line
        acknowledged.append(int(line.split()[1]))
    child.send_signal(signal.SIGKILL)  # mid-stream: other writes are in flight
    remaining, _ = await asyncio.wait_for(child.communicate(), PROCESS_HANG_GUARD)
    acknowledged += [int(line.split()[1]) for line in remaining.decode().splitlines()]
    assert child.returncode == -signal.SIGKILL

    raw = sqlite3.connect(db.db_path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in raw.execute("SELECT id FROM agent_logs")}
        (cost,) = raw.execute("SELECT cost_usd FROM agents WHERE id = ?", (agent_id,)).fetchone()
    finally:
        raw.close()
    assert set(acknowledged) <= stored
    # an "ack" follows both the log and its increment; at most one log per task
    # was in flight (committed or not) when the signal came
    assert cost >= len(acknowledged) * COST
    assert len(stored) - len(acknowledged) <= 8

    # and the store opens it and writes again
    await db.create_agent_log(agent_id, "INFO", "milestone", "after the kill")
