"""What users would pick instead: the store against the OpenAI Agents SDK's
``SQLiteSession.add_items`` and LangGraph's ``AsyncSqliteSaver.aput``, with raw sqlite3
(the same one-row INSERT + commit on the store's schema) as the limit.

Each appends one small record (``appenders.py``), every record awaited (durable)
before its coroutine writes the next, from 1 coroutine and from 64, at three settings:
each library's ``default`` and ``FULL`` / ``NORMAL`` set on every one. A measurement
starts from a fresh file; every writer first appends one untimed record (connections
opened, tables warm). The implementations take turns within each round, in an order
that rotates between rounds (the machine is noisy), and the table shows medians over
the rounds: ops/s, p50 and p99 latency, and the store's ops/s over each other's, the
median of the rounds' ratios. The records are counted in each file afterwards.

    uv run --group bench python bench/run.py --only competitors [--quick]
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import appenders

clock = time.perf_counter
SETTINGS: dict[str, str | None] = {"default": None, "FULL": "FULL", "NORMAL": "NORMAL"}
WRITERS = (1, 64)
SIZES = {  # records per writer when 1 writes, per writer of 64, rounds
    "quick": (200, 4, 2),
    "normal": (2_000, 50, 5),
    "full": (4_000, 100, 7),
}
PACKAGES = ("openai-agents", "langgraph-checkpoint-sqlite")
INSTALL = "uv sync --group bench"


def versions() -> dict[str, str]:
    """The competitors' installed versions; raises ``PackageNotFoundError`` naming a
    missing one."""
    return {package: importlib.metadata.version(package) for package in PACKAGES}


def missing() -> str | None:
    """Why the competitors cannot run here, or ``None``."""
    absent = []
    for package in PACKAGES:
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            absent.append(package)
    if not absent:
        return None
    return f"{', '.join(absent)} not installed; install with `{INSTALL}`"


def _fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _count(path: Path, table: str) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


async def measure(
    appender: appenders.Appender,
    folder: Path,
    writers: int,
    per_writer: int,
    synchronous: str | None,
) -> dict[str, Any]:
    """One measurement on a fresh file: ops/s, p50/p99 ms, the level in effect."""
    path = folder / f"competitors_{appender.name.replace(' ', '_')}.db"
    _fresh(path)
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for number in range(1, per_writer + 1):
            start = clock()
            await appender.append(w, number)
            latencies.append(clock() - start)

    await appender.open(path, writers, synchronous)
    try:
        for w in range(writers):  # warm-up, untimed
            await appender.append(w, 0)
        started = clock()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        seconds = clock() - started
        level = await appender.synchronous()
    finally:
        await appender.close()
    written, expected = _count(path, appender.table), writers * (per_writer + 1)
    _fresh(path)
    if written != expected:
        raise RuntimeError(f"{appender.name}: {written} records in the file, {expected} appended")
    latencies.sort()
    return {
        "ops_per_s": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "synchronous": appenders.SYNCHRONOUS_LEVELS.get(level, str(level)),
    }


async def run(size: str, folder: Path) -> dict[str, Any]:
    """Every implementation, setting and writer count, in rounds; medians."""
    one, per_of_many, rounds = SIZES[size]
    implementations = appenders.all_appenders()
    names = [a.name for a in implementations]
    rounds_seen: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for round_number in range(rounds):
        print(f"competitors: round {round_number + 1} of {rounds} ...", flush=True)
        shift = round_number % len(implementations)
        order = implementations[shift:] + implementations[:shift]
        for setting, synchronous in SETTINGS.items():
            for writers in WRITERS:
                per_writer = one if writers == 1 else per_of_many
                for appender in order:
                    result = await measure(appender, folder, writers, per_writer, synchronous)
                    rounds_seen.setdefault((setting, writers, appender.name), []).append(result)
    rows = [
        _median_row(setting, writers, name, rounds_seen[(setting, writers, name)])
        for setting in SETTINGS
        for writers in WRITERS
        for name in names
    ]
    return {
        "size": size,
        "versions": versions(),
        "rounds": rounds,
        "records_per_measurement": {"1": one, "64": 64 * per_of_many},
        "results": rows,
        "ratios": _ratios(rounds_seen, names[0], names[1:]),
    }


def _median_row(
    setting: str, writers: int, name: str, seen: list[dict[str, Any]]
) -> dict[str, Any]:
    def median(key: str) -> float:
        return round(float(statistics.median(r[key] for r in seen)), 4)

    return {
        "setting": setting,
        "coroutines": writers,
        "implementation": name,
        "synchronous": "/".join(sorted({r["synchronous"] for r in seen})),
        "ops_per_s": round(median("ops_per_s"), 1),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "ops_per_s_rounds": [round(r["ops_per_s"], 1) for r in seen],
    }


def _ratios(
    seen: dict[tuple[str, int, str], list[dict[str, Any]]], store: str, others: list[str]
) -> list[dict[str, Any]]:
    """The store's ops/s over each other's, round by round (the pairs ran minutes
    apart at most); their median and range."""
    rows = []
    for setting in SETTINGS:
        for writers in WRITERS:
            ours = seen[(setting, writers, store)]
            for other in others:
                theirs = seen[(setting, writers, other)]
                ratios = [
                    a["ops_per_s"] / b["ops_per_s"] for a, b in zip(ours, theirs, strict=True)
                ]
                rows.append(
                    {
                        "setting": setting,
                        "coroutines": writers,
                        "over": other,
                        "median": round(statistics.median(ratios), 3),
                        "min": round(min(ratios), 3),
                        "max": round(max(ratios), 3),
                    }
                )
    return rows


def print_table(report: dict[str, Any]) -> None:
    about = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    records = report["records_per_measurement"]
    print(
        f"\nWhat users would pick instead ({about}): one small record per call, each durable "
        f"before the next;\n{records['1']:,} records from 1 coroutine, {records['64']:,} from 64; "
        f"medians of {report['rounds']} rounds"
    )
    header = (
        f"{'setting':<8} {'coros':>5} {'implementation':<17} {'sync':<7} "
        f"{'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'store/it':>9}"
    )
    print(header)
    print("-" * len(header))
    ratios = {(r["setting"], r["coroutines"], r["over"]): r for r in report["ratios"]}
    for row in report["results"]:
        ratio = ratios.get((row["setting"], row["coroutines"], row["implementation"]))
        shown = "" if ratio is None else f"{ratio['median']:.2f}"
        print(
            f"{row['setting']:<8} {row['coroutines']:>5} {row['implementation']:<17} "
            f"{row['synchronous']:<7} {row['ops_per_s']:>9,.0f} {row['p50_ms']:>8.3f} "
            f"{row['p99_ms']:>8.3f} {shown:>9}"
        )
    print(
        "(default: each library as it comes: the store NORMAL, the others SQLite's FULL;\n"
        " store/it: the store's ops/s over that row's, median of the rounds' ratios)"
    )


def run_or_skip(size: str, folder: Path) -> dict[str, Any]:
    """The comparison when the bench group is installed, else why it was skipped."""
    reason = missing()
    if reason is not None:
        print(f"\ncompetitors: skipped ({reason})")
        return {"skipped": reason}
    report = asyncio.run(run(size, folder))
    print_table(report)
    return report


def only(size: str, folder: Path, machine: dict[str, Any]) -> int:
    """``--only competitors``: the comparison alone, into ``competitors_results.json``
    (the full run's ``results.json`` stays). 1 when it could not run."""
    report = run_or_skip(size, folder)
    if "skipped" in report:
        return 1
    output = folder / "competitors_results.json"
    output.write_text(json.dumps({"machine": machine, "competitors": report}, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0
