"""Workloads W1-W5 and the W2 memory run, each returning a ``Result`` per implementation.

W1 one coroutine running sessions; W1 FULL one coroutine appending agent logs at
synchronous=FULL; W2 64 coroutines on one manager (or one connection); W3 8
processes on one file; W4 reads on a large database; W5 the batch methods with
10,000 rows. Every measurement starts from a fresh file with the store's schema
(W4 reads its cached large file). In W1, W1 FULL and W2 the implementations take
turns over ``TURNS`` rounds and their totals are compared, so a change in the
machine's load during the run weighs on all of them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import implementations as impl
import sessions

from orchestrator_store.manager import DatabaseManager

clock = time.perf_counter
W2_COROUTINES = 64
W3_PROCESSES = 8
W3_COROUTINES_PER_PROCESS = 8
W5_ROWS = 10_000
TURNS = 6  # rounds of W1, W1 FULL and W2


@dataclass
class Result:
    workload: str
    implementation: str
    operations: int
    seconds: float
    latencies: list[float] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ops_per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "implementation": self.implementation,
            "operations": self.operations,
            "seconds": round(self.seconds, 4),
            "ops_per_s": round(self.ops_per_second, 1),
            "p50_ms": _rounded(self.percentile_ms(0.50)),
            "p99_ms": _rounded(self.percentile_ms(0.99)),
            **self.extra,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def fresh_store(path: Path) -> str:
    """A new file with the store's schema and one agent definition; its id."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    async with DatabaseManager(path) as db:
        return await db.create_orchestrator_agent("bench", "benchmark", "builder")


# --- W1 and W2: sessions from one or many coroutines ---------------------------


def raw_sessions(path: Path, definition_id: str, count: int, *, one_transaction: bool) -> Result:
    connection = impl.raw_connect(path)
    latencies: list[float] = []
    start = clock()
    if one_transaction:
        connection.execute("BEGIN")
    for number in range(count):
        impl.raw_session(
            connection,
            definition_id,
            f"session-{number}",
            one_transaction=one_transaction,
            latencies=latencies,
            clock=clock,
        )
    if one_transaction:
        connection.execute("COMMIT")
    seconds = clock() - start
    connection.close()
    name = "raw-sqlite3 one txn" if one_transaction else "raw-sqlite3 commit/op"
    return Result("", name, len(latencies), seconds, latencies)


async def concurrent_sessions(
    writer: sessions.SessionWriter,
    definition_id: str,
    count: int,
    coroutines: int,
    *,
    with_costs: bool = False,
    record: bool = True,
) -> tuple[int, float, list[float], int]:
    """``count`` sessions spread over ``coroutines``; (operations, seconds,
    latencies, errors). Errors are counted, not raised, so a run always ends."""
    latencies: list[float] = []
    errors = 0
    per_session = sessions.writes_per_session(with_costs)
    done = 0

    async def worker(first: int) -> None:
        nonlocal errors, done
        for number in range(first, count, coroutines):
            try:
                await sessions.run_session(
                    writer,
                    definition_id,
                    f"session-{number}",
                    with_costs=with_costs,
                    latencies=latencies if record else None,
                    clock=clock,
                )
                done += per_session
            except Exception as exc:
                errors += 1
                print(f"  error: {type(exc).__name__}: {exc}", file=sys.stderr)

    start = clock()
    await asyncio.gather(*(worker(first) for first in range(coroutines)))
    return done, clock() - start, latencies, errors


async def naive_sessions(path: Path, definition_id: str, count: int, coroutines: int) -> Result:
    naive = impl.NaiveAiosqlite(path)
    await naive.open()
    try:
        ops, seconds, latencies, errors = await concurrent_sessions(
            naive, definition_id, count, coroutines
        )
    finally:
        await naive.close()
    return Result("", "naive aiosqlite", ops, seconds, latencies, {"errors": errors})


async def store_sessions(path: Path, definition_id: str, count: int, coroutines: int) -> Result:
    async with DatabaseManager(path) as db:
        ops, seconds, latencies, errors = await concurrent_sessions(
            impl.StoreSession(db), definition_id, count, coroutines
        )
    return Result("", "store (SQLite)", ops, seconds, latencies, {"errors": errors})


async def w1(folder: Path, sessions_count: int) -> list[Result]:
    path = folder / "w1.db"
    count = max(1, sessions_count // TURNS)

    async def raw() -> Result:
        return raw_sessions(path, await fresh_store(path), count, one_transaction=False)

    async def naive() -> Result:
        return await naive_sessions(path, await fresh_store(path), count, 1)

    async def store() -> Result:
        return await store_sessions(path, await fresh_store(path), count, 1)

    return await _taking_turns("W1", [raw, naive, store])


async def w2(folder: Path, sessions_count: int) -> list[Result]:
    path = folder / "w2.db"
    count = max(W2_COROUTINES, sessions_count // TURNS)

    async def raw() -> Result:
        return raw_sessions(path, await fresh_store(path), count, one_transaction=True)

    async def naive() -> Result:
        return await naive_sessions(path, await fresh_store(path), count, W2_COROUTINES)

    async def store() -> Result:
        return await store_sessions(path, await fresh_store(path), count, W2_COROUTINES)

    return await _taking_turns("W2", [raw, naive, store])


async def _taking_turns(
    workload: str, measurements: list[Callable[[], Awaitable[Result]]]
) -> list[Result]:
    """Each measurement once per round, ``TURNS`` rounds; one total per implementation."""
    totals: dict[str, Result] = {}
    for _ in range(TURNS):
        for measure in measurements:
            part = await measure()
            total = totals.setdefault(part.implementation, Result("", part.implementation, 0, 0))
            total.operations += part.operations
            total.seconds += part.seconds
            total.latencies += part.latencies
            if "errors" in part.extra:
                total.extra["errors"] = total.extra.get("errors", 0) + part.extra["errors"]
    return _named(workload, list(totals.values()))


def _named(workload: str, results: list[Result]) -> list[Result]:
    for result in results:
        result.workload = workload
    return results


# --- W1 FULL: one coroutine appending logs, each synced before the next ---------

FULL = "FULL"


def _log_record(number: int) -> tuple[str, dict[str, int]]:
    """W1 FULL's record: one small log row (the shape ``competitors.py`` appends)."""
    return f"record {number}", {"n": number}


async def raw_appends(path: Path, appends: int) -> Result:
    definition_id = await fresh_store(path)
    connection = impl.raw_connect(path, FULL)
    try:
        agent_id, params = sessions.agent_params(definition_id, "appends")
        connection.execute(sessions.AGENT_SQL, params)
        latencies: list[float] = []
        start = clock()
        for number in range(appends):
            begin = clock()
            message, details = _log_record(number)
            connection.execute(sessions.LOG_SQL, sessions.log_params(agent_id, message, details))
            latencies.append(clock() - begin)
        seconds = clock() - start
    finally:
        connection.close()
    return Result("", "raw-sqlite3 commit/op", appends, seconds, latencies)


async def store_appends(path: Path, appends: int) -> Result:
    definition_id = await fresh_store(path)
    async with DatabaseManager(path, synchronous=FULL) as db:
        agent_id = await db.create_agent(definition_id, "appends", status="executing")
        latencies: list[float] = []
        start = clock()
        for number in range(appends):
            begin = clock()
            message, details = _log_record(number)
            await db.create_agent_log(agent_id, "INFO", "milestone", message, details)
            latencies.append(clock() - begin)
        seconds = clock() - start
    return Result("", "store (SQLite)", appends, seconds, latencies)


async def w1_full(folder: Path, appends: int) -> list[Result]:
    path = folder / "w1_full.db"
    count = max(1, appends // TURNS)

    async def raw() -> Result:
        return await raw_appends(path, count)

    async def store() -> Result:
        return await store_appends(path, count)

    results = await _taking_turns("W1 FULL", [raw, store])
    for result in results:
        result.extra["note"] = "synchronous=FULL, one log row per append"
    return results


# --- W3: processes on one file -------------------------------------------------


def _w3_process(path: str, definition_id: str, count: int, barrier: Any) -> dict[str, Any]:
    """One W3 process: its own manager, several coroutines, sessions with costs.
    Every process connects first, then all start together (``barrier``)."""
    sys.path[:0] = [str(Path(__file__).parent)]

    async def main() -> dict[str, Any]:
        async with DatabaseManager(path) as db:
            await asyncio.to_thread(barrier.wait)
            started = time.time()
            ops, _seconds, _latencies, errors = await concurrent_sessions(
                impl.StoreSession(db),
                definition_id,
                count,
                W3_COROUTINES_PER_PROCESS,
                with_costs=True,
                record=False,
            )
            return {"ops": ops, "errors": errors, "start": started, "end": time.time()}

    return asyncio.run(main())


class _WalWatcher:
    """Polls the WAL file's size in a thread and keeps the largest seen."""

    def __init__(self, path: Path) -> None:
        self.wal = Path(f"{path}-wal")
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _WalWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(FileNotFoundError):
                self.largest = max(self.largest, self.wal.stat().st_size)


async def w3(folder: Path, sessions_per_process: int) -> list[Result]:
    path = folder / "w3.db"
    definition_id = await fresh_store(path)
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        _WalWatcher(path) as watcher,
        ProcessPoolExecutor(W3_PROCESSES, mp_context=context) as pool,
    ):
        barrier = manager.Barrier(W3_PROCESSES)
        runs = [
            pool.submit(_w3_process, str(path), definition_id, sessions_per_process, barrier)
            for _ in range(W3_PROCESSES)
        ]
        reports = [run.result() for run in runs]
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    sessions_total = W3_PROCESSES * sessions_per_process
    async with DatabaseManager(path) as db:
        counts = await db.count_rows()
        totals = await db.cost_totals()
        cost = sum(agent["cost_usd"] for agent in await db.list_agents())
    expected_logs = sessions_total * sessions.PROMPTS_PER_SESSION * sessions.LOGS_PER_PROMPT
    expected_cost = sessions_total * sessions.PROMPTS_PER_SESSION * sessions.COST_PER_PROMPT
    extra = {
        "processes": W3_PROCESSES,
        "errors": sum(r["errors"] for r in reports),
        "lost_agents": sessions_total - counts["agents"],
        "lost_prompts": sessions_total * sessions.PROMPTS_PER_SESSION - counts["prompts"],
        "lost_logs": expected_logs - counts["agent_logs"],
        "lost_cost_increments": round((expected_cost - cost) / sessions.COST_PER_PROMPT),
        "prompt_cost_total": totals[0]["cost_usd"],
        "max_wal_bytes": watcher.largest,
    }
    ops = sum(r["ops"] for r in reports)
    return [Result("W3", "store (SQLite)", ops, seconds, [], extra)]


# --- W4: reads on a large database ---------------------------------------------


async def w4(path: Path, calls: int, agent_ids: list[str], session_ids: list[str]) -> list[Result]:
    results = []
    async with DatabaseManager(path) as db:
        queries: dict[str, Callable[[int], Any]] = {
            "get_agent_logs(agent, limit=100)": lambda n: db.get_agent_logs(
                agent_ids[n % len(agent_ids)], limit=100
            ),
            "list_recent_system_logs(100)": lambda _n: db.list_recent_system_logs(100),
            "list_agents(session_id=...)": lambda n: db.list_agents(
                session_id=session_ids[n % len(session_ids)]
            ),
        }
        for name, query in queries.items():
            # A tenth as many untimed calls first: the target is the steady
            # state of the indexes, not the first read of a page from disk.
            for number in range(calls // 10):
                await query(number * 104729 + 1)
            latencies = []
            start = clock()
            for number in range(calls):
                begin = clock()
                rows = await query(number * 7919)
                latencies.append(clock() - begin)
                assert rows, name
            results.append(Result("W4", "store (SQLite)", calls, clock() - start, latencies))
            results[-1].extra["query"] = name
    return results


# --- W5: batch inserts ---------------------------------------------------------


def _raw_batch(connection: Any, rows: list[dict[str, Any]]) -> float:
    """The limit: plain ``executemany`` in one transaction; its seconds."""
    start = clock()
    created = sessions.utc_now()
    params = [
        (row["agent_id"], row["message"], sessions.json.dumps(row["details"]), created)
        for row in rows
    ]
    connection.execute("BEGIN")
    connection.executemany(sessions.BATCH_LOG_SQL, params)
    connection.execute("COMMIT")
    return clock() - start


async def w5(folder: Path, repeats: int) -> list[Result]:
    path = folder / "w5.db"
    definition_id = await fresh_store(path)
    async with DatabaseManager(path) as db:
        agent_id = await db.create_agent(definition_id, "batch")
    rows = sessions.batch_rows(agent_id, W5_ROWS)

    raw_times: list[float] = []
    store_times: list[float] = []
    connection = impl.raw_connect(path)
    try:
        async with DatabaseManager(path) as db:
            # Taking turns, so that both write into a table of the same size.
            for _ in range(repeats):
                raw_times.append(_raw_batch(connection, rows))
                start = clock()
                ids = await db.create_agent_logs(rows)
                store_times.append(clock() - start)
                assert len(ids) == W5_ROWS
    finally:
        connection.close()
    return [
        Result("W5", "raw-sqlite3 one txn", W5_ROWS, statistics.median(raw_times), raw_times),
        Result("W5", "store (SQLite)", W5_ROWS, statistics.median(store_times), store_times),
    ]


# --- memory: W2 at a million operations ------------------------------------------


def memory_child(path: str, operations: int) -> None:
    """Run W2 on the store for ``operations`` writes and print peak RSS (MB)."""

    async def main() -> None:
        definition_id = await fresh_store(Path(path))
        count = -(-operations // sessions.writes_per_session(False))
        async with DatabaseManager(path) as db:
            ops, seconds, _latencies, errors = await concurrent_sessions(
                impl.StoreSession(db), definition_id, count, W2_COROUTINES, record=False
            )
        print(f"{ops} {seconds:.3f} {errors} {_peak_rss_mb():.1f}")

    asyncio.run(main())


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Not ``ru_maxrss``: Linux carries that over
    from the parent across the fork and exec that started this process, so it
    would report the benchmark's own peak (the parent's) when that is larger."""
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def w2_memory(folder: Path, operations: int) -> Result:
    import subprocess

    run = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "run.py"), "--memory-child", str(operations)],
        check=True,
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "BENCH_MEMORY_DB": str(folder / "w2_memory.db")},
    )
    ops, seconds, errors, peak_mb = run.stdout.split()
    extra = {"errors": int(errors), "peak_rss_mb": float(peak_mb)}
    return Result("W2 memory", "store (SQLite)", int(ops), float(seconds), [], extra)
