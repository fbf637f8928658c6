"""Benchmark: this store against raw sqlite3 and the common aiosqlite approach,
and on PostgreSQL (when a server answers, see ``pg_server.py``) against raw asyncpg.

    uv run python bench/run.py            # W1-W5, about two minutes
    uv run python bench/run.py --quick    # a smoke run with small counts
    uv run python bench/run.py --full     # also W2's peak RSS at 1,000,000 writes
    uv run python bench/run.py --only otel [--quick|--full]  # the OTel export alone
    uv run python bench/run.py --only scale [--quick|--full]  # the reports at scale, see scale.py
    uv run python bench/run.py --only pages [--quick]  # the dashboard's pages at 1M prompts
    uv run --group bench python bench/run.py --only competitors [--quick]  # see competitors.py

Prints a table and writes ``bench/out/results.json`` (ops/s, p50/p99 latency
per operation, each ratio to its limit and whether the issue's target is met).
Then the OpenTelemetry export's spans/s and peak RSS (``otel_export.py``; 1,000,000
prompts with --full), under ``otel_export`` in results.json (``--only otel`` writes
``otel_results.json`` instead, leaving the full run's results in place).
Then, when the bench group is installed, the store against what users would pick
instead (``competitors.py``), under ``competitors`` (``--only competitors``:
``competitors_results.json``).
With --full, last, every report at 1M and 10M prompts on both backends (``scale.py``),
under ``scale`` (``--only scale``: ``scale_results.json``).
The W4 database is built once and cached in ``bench/out/`` (gitignored). Without
a PostgreSQL server the SQLite parts run alone and the output says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]  # the store itself is the installed orchestrator_store

import competitors  # noqa: E402
import implementations as impl  # noqa: E402
import otel_export  # noqa: E402
import pages  # noqa: E402
import pg_server  # noqa: E402
import pg_workloads  # noqa: E402
import scale  # noqa: E402
import w4_data  # noqa: E402
import workloads  # noqa: E402
from workloads import Result  # noqa: E402

W1_FULL_APPENDS = {"quick": 600, "normal": 6_000}  # log rows per implementation
SIZES = {  # (W1 sessions, W2 sessions, W3 sessions per process, W4 calls, W4 logs, W5 repeats)
    "quick": (100, 640, 20, 300, (100_000, 10_000), 3),
    "normal": (600, 3_840, 120, 3_000, (1_000_000, 100_000), 7),
}


def machine() -> dict[str, Any]:
    model = "unknown"
    with Path("/proc/cpuinfo").open() as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "synchronous": "NORMAL",
    }


def set_ratios(results: list[Result]) -> None:
    """Each result's throughput as a fraction of its limit's, in the same
    workload on the same backend (``implementations.LIMITS``)."""
    for result in results:
        limit = impl.limit_of(result.workload, result.implementation)
        if limit is None or limit == result.implementation:
            continue
        raw = next(
            (r for r in results if r.workload == result.workload and r.implementation == limit),
            None,
        )
        if raw is not None and raw.ops_per_second:
            result.extra["ratio_to_limit"] = round(result.ops_per_second / raw.ops_per_second, 3)


def _find(results: list[Result], workload: str, name: str) -> Result:
    return next(r for r in results if r.workload == workload and r.implementation == name)


def _ratio(results: list[Result], workload: str, name: str) -> tuple[float, str]:
    """``name``'s throughput over its limit's in ``workload`` (unrounded); the limit."""
    limit = impl.limit_of(workload, name)
    assert limit is not None
    store, raw = _find(results, workload, name), _find(results, workload, limit)
    return store.ops_per_second / raw.ops_per_second, limit


def targets(results: list[Result]) -> list[dict[str, Any]]:
    """Each target of the issue, read from this run."""
    set_ratios(results)

    def find(workload: str, name: str) -> Result:
        return _find(results, workload, name)

    rows: list[dict[str, Any]] = []

    def ratio(workload: str, wanted: float, name: str = "store (SQLite)", label: str = "") -> None:
        value, limit = _ratio(results, workload, name)
        rows.append(
            {
                "target": f"{label}{workload} >= {wanted:.2f} of {limit}",
                "measured": f"{value:.2f}",
                "met": value >= wanted,
            }
        )

    ratio("W1", 0.70)
    ratio("W1 FULL", 0.70)
    ratio("W2", 0.60)
    w3 = find("W3", "store (SQLite)")
    lost = sum(v for k, v in w3.extra.items() if k.startswith("lost_"))
    w1 = find("W1", "store (SQLite)").ops_per_second
    rows.append(
        {
            "target": "W3 8 processes: no errors, nothing lost, aggregate >= W1",
            "measured": f"errors={w3.extra['errors']} lost={lost} "
            f"{w3.ops_per_second:,.0f} vs {w1:,.0f} ops/s; "
            f"max WAL {w3.extra['max_wal_bytes'] / 2**20:.1f} MiB",
            "met": w3.extra["errors"] == 0 and lost == 0 and w3.ops_per_second >= w1,
        }
    )
    for read in (r for r in results if r.workload == "W4"):
        p99 = read.percentile_ms(0.99) or 0.0
        rows.append(
            {
                "target": f"W4 {read.extra['query']} p99 < 2 ms",
                "measured": f"{p99:.3f} ms",
                "met": p99 < 2.0,
            }
        )
    ratio("W5", 0.70)
    for memory in (r for r in results if r.workload == "W2 memory"):
        rows.append(
            {
                "target": f"W2 peak RSS at {memory.operations:,} writes < 200 MB",
                "measured": f"{memory.extra['peak_rss_mb']:.0f} MB",
                "met": memory.extra["peak_rss_mb"] < 200 and memory.extra["errors"] == 0,
            }
        )
    if any(r.implementation == pg_workloads.STORE for r in results):
        ratio("W1", 0.80, pg_workloads.STORE, label="PostgreSQL ")
    return rows


def reported(results: list[Result]) -> list[dict[str, Any]]:
    """Ratios shown without a target: the store's W2 and W5 on PostgreSQL."""
    rows = []
    for workload in ("W2", "W5"):
        if any(r.workload == workload and r.implementation == pg_workloads.STORE for r in results):
            value, limit = _ratio(results, workload, pg_workloads.STORE)
            rows.append({"ratio": f"PostgreSQL {workload} of {limit}", "measured": f"{value:.2f}"})
    return rows


def print_table(
    results: list[Result],
    checks: list[dict[str, Any]],
    about: dict[str, Any],
    postgres: dict[str, Any],
) -> None:
    print(
        f"\nmachine: {about['nproc']} cores, {about['cpu']}, SQLite {about['sqlite']}, "
        f"Python {about['python']}, synchronous={about['synchronous']}"
    )
    if "skipped" in postgres:
        print(f"PostgreSQL: skipped ({postgres['skipped']})\n")
    else:
        print(
            f"PostgreSQL {postgres['server_version']} at {postgres['server']} "
            "(a database of the benchmark's own, dropped afterwards)\n"
        )
    header = f"{'workload':<10} {'implementation':<22} {'ops':>9} {'ops/s':>10} "
    header += f"{'p50 ms':>8} {'p99 ms':>8} {'ratio':>6}  note"
    print(header)
    print("-" * len(header))
    for r in results:
        p50, p99 = r.percentile_ms(0.5), r.percentile_ms(0.99)
        ratio = r.extra.get("ratio_to_limit")
        note = r.extra.get("note", r.extra.get("query", ""))
        if r.workload == "W5":
            p50 = p99 = None  # one call per batch: its time is the throughput
            note = "rows/s, median of the repeats"
        print(
            f"{r.workload:<10} {r.implementation:<22} {r.operations:>9,} "
            f"{r.ops_per_second:>10,.0f} {_ms(p50):>8} {_ms(p99):>8} "
            f"{'' if ratio is None else f'{ratio:.2f}':>6}  {note}"
        )
    print("\ntargets:")
    for check in checks:
        print(f"  {'met   ' if check['met'] else 'MISSED'} {check['target']}: {check['measured']}")
    shown = reported(results)
    if shown:
        print("\nreported (no target):")
        for row in shown:
            print(f"         {row['ratio']}: {row['measured']}")


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


async def run(size: str, folder: Path, full: bool) -> tuple[list[Result], dict[str, Any]]:
    """Every workload; PostgreSQL's too when its server answers. Returns the
    results and what was used of PostgreSQL (or why it was skipped)."""
    reason = await pg_server.unusable(pg_server.SERVER_URL)
    if reason is not None:
        print(f"PostgreSQL: skipped ({reason})", flush=True)
        return await run_workloads(size, folder, full, None), {"skipped": reason}
    async with pg_server.bench_database(pg_server.SERVER_URL) as postgres:
        return await run_workloads(size, folder, full, postgres), postgres.about()


async def run_workloads(
    size: str, folder: Path, full: bool, postgres: pg_server.BenchDatabase | None
) -> list[Result]:
    w1_sessions, w2_sessions, w3_sessions, w4_calls, (logs, system_logs), repeats = SIZES[size]
    results: list[Result] = []
    # SQLite first: after a write workload the PostgreSQL server keeps working
    # for a while (checkpoints, autovacuum), which would slow what runs next.
    print("W1 ...", flush=True)
    results += await workloads.w1(folder, w1_sessions)
    print("W1 FULL ...", flush=True)
    results += await workloads.w1_full(folder, W1_FULL_APPENDS[size])
    print("W2 ...", flush=True)
    results += await workloads.w2(folder, w2_sessions)
    print("W3 ...", flush=True)
    results += await workloads.w3(folder, w3_sessions)
    print(f"W4 ... (database with {logs:,} agent logs, {system_logs:,} system logs)", flush=True)
    w4_path = folder / f"w4_{logs}_{system_logs}.db"
    agent_ids, session_ids = await w4_data.ensure(w4_path, logs, system_logs)
    results += await workloads.w4(w4_path, w4_calls, agent_ids, session_ids)
    print("W5 ...", flush=True)
    results += await workloads.w5(folder, repeats)
    if postgres is not None:
        print("W1 on PostgreSQL ...", flush=True)
        results += await pg_workloads.w1(postgres, w1_sessions)
        print("W2 on PostgreSQL ...", flush=True)
        results += await pg_workloads.w2(postgres, w2_sessions)
        print("W5 on PostgreSQL ...", flush=True)
        results += await pg_workloads.w5(postgres, repeats)
    if full:
        print("W2 memory (1,000,000 writes) ...", flush=True)
        results.append(workloads.w2_memory(folder, 1_000_000))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--full",
        action="store_true",
        help="also W2's peak RSS at 1M writes; the OTel export at 1M prompts",
    )
    parser.add_argument("--out", type=Path, default=HERE / "out", help="output folder")
    parser.add_argument(
        "--only", choices=["otel", "competitors", "scale", "pages"], help="run only this part"
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        workloads.memory_child(os.environ["BENCH_MEMORY_DB"], args.memory_child)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    otel_size = "full" if args.full else "quick" if args.quick else "normal"
    if args.only == "scale":  # 100k prompts with --quick, 1M, and 1M and 10M with --full
        return scale.only(otel_size, args.out, machine())
    if args.only == "pages":  # the dashboard's views at 1M prompts (100k with --quick)
        pages_report = pages.run_and_print("quick" if args.quick else "normal", args.out)
        output = args.out / "pages_results.json"
        payload = {"machine": machine(), "pages": pages_report}
        output.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {output}")
        return 0 if not pages.problems(pages_report) else 1
    if args.only == "competitors":
        return competitors.only(otel_size, args.out, machine())
    if args.only == "otel":
        otel = asyncio.run(otel_export.run(otel_size, args.out))
        otel_export.print_table(otel)
        output = args.out / "otel_results.json"
        output.write_text(json.dumps({"machine": machine(), "otel_export": otel}, indent=2) + "\n")
        print(f"\nwrote {output}")
        return 0 if otel["rss_met"] and not otel_export.problems(otel) else 1
    results, postgres = asyncio.run(run("quick" if args.quick else "normal", args.out, args.full))
    checks = targets(results)
    about = machine()
    print_table(results, checks, about, postgres)
    otel = asyncio.run(otel_export.run(otel_size, args.out))
    otel_export.print_table(otel)
    rivals = competitors.run_or_skip(otel_size, args.out)  # when the bench group is installed
    report = {
        "machine": about,
        "postgresql": postgres,
        "size": "quick" if args.quick else "normal",
        "results": [r.as_json() for r in results],
        "targets": checks,
        "reported": reported(results),
        "otel_export": otel,
        "competitors": rivals,
    }
    scaled = scale.run_and_print("full", args.out) if args.full else None
    report["scale"] = scaled
    paged = pages.run_and_print("full", args.out) if args.full else None
    report["pages"] = paged
    output = args.out / "results.json"
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {output}")
    otel_ok = otel["rss_met"] and not otel_export.problems(otel)
    scale_ok = scaled is None or scale.all_met(scaled)
    pages_ok = paged is None or not pages.problems(paged)
    met = all(check["met"] for check in checks)
    return 0 if met and otel_ok and scale_ok and pages_ok else 1


if __name__ == "__main__":
    sys.exit(main())
