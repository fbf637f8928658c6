"""The OpenTelemetry export's speed (spans/s) and memory (peak RSS) on a large store.

The store: sessions of 10 agents (one lead, nine under it) with 10 prompts and 2 logs
each, and a system log per session. ``normal`` has 1,000 sessions (100,000 prompts),
``full`` 10,000 (1,000,000 prompts), ``quick`` 50 (5,000). It is built once with raw
``executemany`` and cached in the output folder while its row counts match.

Every measurement exports the whole store in a child process of its own, so the peak
it reports is the export's: the child's ``VmHWM`` (high-water RSS of its own address
space). ``ru_maxrss`` is recorded too, but on Linux it keeps the peak of the address
space the child was started from (the parent's, as ``subprocess`` uses vfork), so it
can report the benchmark's own size rather than the export's. The targets:

* ``json``: ``write_otlp_json`` into a file in the output folder (deleted afterwards);
* ``http``: ``export_history`` into an ``OtlpHttpSink`` whose receiver, a thread of
  the parent, answers every ``POST /v1/traces`` with 200 and discards the payload.

When a PostgreSQL server answers (``pg_server``), the same rows are copied into a
database of the benchmark's own (``copy_sqlite_to_postgres``; dropped afterwards) and
``json`` is measured there too (with --full: about 1.5 minutes of copying, 8 of export),
after an ANALYZE: the copier leaves no statistics, and without them each session's
prompts query scans every prompt.

On SQLite, VmHWM includes the store file's pages that the store's readers map
(``mmap_size``, up to 256 MB per reader connection): page cache the kernel can take
back, growing with the file up to that cap. The largest ``RssAnon`` (the heap) is
reported beside it, and the file's mapped pages at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pg_server

from orchestrator_store.copy_to_postgres import copy_sqlite_to_postgres
from orchestrator_store.ids import new_id
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.models import format_timestamp
from orchestrator_store.otel_export import (
    ExportReport,
    OtlpHttpSink,
    export_history,
    write_otlp_json,
)

SESSIONS = {"quick": 50, "normal": 1_000, "full": 10_000}
AGENTS_PER_SESSION = 10
PROMPTS_PER_AGENT = 10
LOGS_PER_AGENT = 2
COMPONENTS = 5
SESSIONS_PER_CHUNK = 200  # rows inserted per executemany: bounded memory while building
RSS_LIMIT_MB = 200
MODELS = ("claude-sonnet-4-5", "gpt-4o", "gemini-2.5-pro", "local-model")
DEFINITIONS = (  # name, type, default model
    ("lead", "orchestrator", "claude-opus-4-1"),
    ("builder", "builder", "claude-sonnet-4-5"),
    ("reviewer", "reviewer", "gpt-4o"),
)
clock = time.perf_counter


# --- the store ---------------------------------------------------------------------


def expected_counts(sessions: int) -> dict[str, int]:
    agents = sessions * AGENTS_PER_SESSION
    return {
        "sessions": sessions,
        "agents": agents,
        "prompts": agents * PROMPTS_PER_AGENT,
        "agent_logs": agents * LOGS_PER_AGENT,
        "system_logs": sessions,
    }


def store_counts(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    connection = sqlite3.connect(path)
    try:

        def count(sql: str) -> int:
            return int(connection.execute(sql).fetchone()[0])

        return {
            "sessions": count("SELECT count(DISTINCT session_id) FROM agents"),
            "agents": count("SELECT count(*) FROM agents"),
            "prompts": count("SELECT count(*) FROM prompts"),
            "agent_logs": count("SELECT count(*) FROM agent_logs"),
            "system_logs": count("SELECT count(*) FROM system_logs"),
        }
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def component_days(path: Path) -> int:
    """How many (component, UTC day) spans the export adds above the system logs."""
    connection = sqlite3.connect(path)
    try:
        sql = (
            "SELECT count(*) FROM"
            " (SELECT DISTINCT component, substr(created_at, 1, 10) FROM system_logs)"
        )
        return int(connection.execute(sql).fetchone()[0])
    finally:
        connection.close()


async def ensure_store(path: Path, sessions: int) -> float | None:
    """Build the store unless a cached one has the right counts; the build's seconds."""
    if store_counts(path) == expected_counts(sessions):
        return None
    started = clock()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    async with DatabaseManager(path) as db:  # the store's own schema
        definition_ids = [
            await db.create_orchestrator_agent(name, f"the {name}", kind, default_model=model)
            for name, kind, model in DEFINITIONS
        ]
    _build(path, definition_ids, sessions)
    return clock() - started


_AGENT_SQL = (
    "INSERT INTO agents (id, orchestrator_agent_id, session_id, parent_agent_id, status,"
    " started_at, completed_at, cost_usd, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PROMPT_SQL = (
    "INSERT INTO prompts (id, agent_id, prompt_type, prompt_name, prompt_text, response_text,"
    " status, model_used, tokens_input, tokens_output, cost_usd, latency_ms, created_at,"
    " completed_at, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LOG_SQL = (
    "INSERT INTO agent_logs (agent_id, log_level, log_type, message, details, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_SYSTEM_LOG_SQL = (
    "INSERT INTO system_logs (log_level, component, message, details, created_at)"
    " VALUES (?, ?, ?, ?, ?)"
)


def _session_rows(
    number: int, definition_ids: list[str], start: datetime
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], tuple[Any, ...]]:
    """One session's agents, prompts, agent logs and system log. Sessions start a
    minute apart (so they span days); one agent in 23 and one prompt in 37 failed."""

    def stamp(seconds: float) -> str:
        return format_timestamp(start + timedelta(seconds=seconds))

    session_id = f"otel-bench-{number:06d}"
    base = number * 60.0
    agents, prompts, logs = [], [], []
    lead_id = None
    for a in range(AGENTS_PER_SESSION):
        serial = number * AGENTS_PER_SESSION + a
        agent_id = new_id()
        lead_id = lead_id or agent_id
        failed = serial % 23 == 0
        begin = base + a * 0.5
        agents.append(
            (
                agent_id,
                definition_ids[0 if a == 0 else 1 + a % 2],
                session_id,
                None if a == 0 else lead_id,
                "failed" if failed else "completed",
                stamp(begin),
                stamp(begin + 40),
                0.02 * PROMPTS_PER_AGENT,
                "tool crashed" if failed else None,
            )
        )
        for p in range(PROMPTS_PER_AGENT):
            n = serial * PROMPTS_PER_AGENT + p
            prompt_failed = n % 37 == 0
            created = begin + 1 + p * 3.5
            prompts.append(
                (
                    new_id(),
                    agent_id,
                    ("command", "followup", "tool_call")[p % 3],
                    f"step-{p}",
                    f"Do step {p} of {session_id}",
                    None if prompt_failed else f"Step {p} done.",
                    "failed" if prompt_failed else "completed",
                    MODELS[n % len(MODELS)],
                    500 + n % 1000,
                    100 + n % 300,
                    0.02,
                    800 + n % 2000,
                    stamp(created),
                    stamp(created + 3),
                    "rate limited" if prompt_failed else None,
                )
            )
        logs.append(
            (agent_id, "INFO", "state_change", "started", '{"to":"executing"}', stamp(begin))
        )
        logs.append(
            (agent_id, "INFO", "milestone", "finished", '{"prompts":10}', stamp(begin + 40))
        )
    system_log = (
        "INFO",
        f"component-{number % COMPONENTS}",
        f"session {session_id} scheduled",
        None,
        stamp(base),
    )
    return agents, prompts, logs, system_log


def _build(path: Path, definition_ids: list[str], sessions: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("BEGIN")
    for first in range(0, sessions, SESSIONS_PER_CHUNK):
        agents, prompts, logs, system_logs = [], [], [], []
        for number in range(first, min(first + SESSIONS_PER_CHUNK, sessions)):
            session = _session_rows(number, definition_ids, start)
            agents += session[0]
            prompts += session[1]
            logs += session[2]
            system_logs.append(session[3])
        connection.executemany(_AGENT_SQL, agents)
        connection.executemany(_PROMPT_SQL, prompts)
        connection.executemany(_LOG_SQL, logs)
        connection.executemany(_SYSTEM_LOG_SQL, system_logs)
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


# --- the receiver ------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real collector offers

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:  # read and discard: the payload is not what is measured
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
        accepted = self.path == "/v1/traces"
        if accepted:
            self.server.count()  # type: ignore[attr-defined]
        self.send_response(200 if accepted else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per request would swamp the benchmark's output


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests = 0
        self._lock = threading.Lock()

    def count(self) -> None:
        with self._lock:
            self.requests += 1


@contextmanager
def otlp_receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the child: one export, measured -----------------------------------------------


def _status_kib(field: str) -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class _AnonSampler:
    """The largest ``RssAnon`` seen, sampled in a thread: the heap's share of RSS, which
    ``VmHWM`` mixes with the file pages SQLite's readers map (``mmap_size``)."""

    INTERVAL_S = 0.05

    def __init__(self) -> None:
        self.peak_kib = _status_kib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))

    def __enter__(self) -> _AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))


def _mapped_kib(path: str) -> int:
    """RSS of this process's mappings of ``path`` (SQLite's readers map the store)."""
    total, inside = 0, False
    with Path("/proc/self/smaps").open() as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
                inside = len(fields) >= 6 and fields[5] == path
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


async def _export(target: str, store: str, output: str, endpoint: str) -> dict[str, Any]:
    # As `export --format otlp` opens it: a SQLite store read without mapping the file,
    # which would otherwise count (up to 256 MiB per reader) in the RSS measured here.
    async with DatabaseManager(store, read_mmap_bytes=0) as db:
        baseline_kib, baseline_hwm_kib = _status_kib("VmRSS"), _status_kib("VmHWM")
        sampler = _AnonSampler()
        started = clock()
        report: ExportReport
        with sampler:
            if target == "json":
                report = await write_otlp_json(db, Path(output))
            else:
                sink = OtlpHttpSink(endpoint)
                try:
                    report = await export_history(db, sink)
                finally:
                    sink.close()
        seconds = clock() - started
        file_kib = _status_kib("RssFile")  # still mapped: the connections are open
        store_kib = _mapped_kib(str(Path(store).resolve())) if "://" not in store else 0
    return {
        "seconds": seconds,
        "spans": report.spans,
        "requests": report.requests,
        "sessions": report.sessions,
        "system_logs": report.system_logs,
        "baseline_rss_mb": baseline_kib / 1024,
        "baseline_hwm_mb": baseline_hwm_kib / 1024,
        "peak_rss_mb": _status_kib("VmHWM") / 1024,
        "peak_anon_mb": sampler.peak_kib / 1024,
        "end_file_rss_mb": file_kib / 1024,
        "end_store_mapped_mb": store_kib / 1024,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_main() -> None:
    """The child's entry: its store, target, output and endpoint come in the
    environment; one JSON line goes out."""
    env = os.environ
    result = asyncio.run(
        _export(
            env["BENCH_OTEL_TARGET"],
            env["BENCH_OTEL_STORE"],
            env.get("BENCH_OTEL_OUTPUT", ""),
            env.get("BENCH_OTEL_ENDPOINT", ""),
        )
    )
    print(json.dumps(result))


# --- the parent --------------------------------------------------------------------


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


async def measure(
    backend: str, target: str, store: str, folder: Path, receiver: _Receiver | None = None
) -> dict[str, Any]:
    """Export the whole ``store`` to ``target`` in a child process; its numbers."""
    output = folder / "otel_export.jsonl"
    env = {**os.environ, "BENCH_OTEL_TARGET": target, "BENCH_OTEL_STORE": store}
    env["BENCH_OTEL_OUTPUT"] = str(output)
    if receiver is not None:
        env["BENCH_OTEL_ENDPOINT"] = f"http://127.0.0.1:{receiver.server_port}/v1/traces"
    received_before = receiver.requests if receiver is not None else 0
    print(f"OTel export: {backend} -> {target} ...", flush=True)
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, __file__],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
    )
    result: dict[str, Any] = {"backend": backend, "target": target}
    result.update(json.loads(run.stdout.strip().splitlines()[-1]))
    result["spans_per_s"] = result["spans"] / result["seconds"] if result["seconds"] else 0.0
    if target == "json":
        result["output_mb"] = output.stat().st_size / 2**20
        result["output_lines"] = _count_lines(output)  # one request per line
        output.unlink()
    elif receiver is not None:
        result["received_requests"] = receiver.requests - received_before
    print(  # as it comes: a long run's numbers survive its interruption
        f"  {result['spans']:,} spans in {result['seconds']:.1f} s "
        f"({result['spans_per_s']:,.0f} spans/s), RSS {result['baseline_rss_mb']:.0f} MB "
        f"before, peak {result['peak_rss_mb']:.0f} MB (heap {result['peak_anon_mb']:.0f} MB)",
        flush=True,
    )
    return result


async def _postgres(
    sqlite_path: Path, folder: Path, prompts: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``json`` measurement on the same rows in PostgreSQL, when a server answers."""
    reason = await pg_server.unusable(pg_server.SERVER_URL)
    if reason is not None:
        return {"skipped": reason}, []
    async with pg_server.bench_database(pg_server.SERVER_URL) as database:
        print(f"OTel export: copying {prompts:,} prompts into PostgreSQL ...", flush=True)
        started = clock()
        copied = await copy_sqlite_to_postgres(sqlite_path, database.url)
        about = {**database.about(), "copy_seconds": round(clock() - started, 2), "copied": copied}
        print(f"  copied in {about['copy_seconds']} s", flush=True)
        # The copier leaves the tables without statistics; until (auto)ANALYZE runs, the
        # planner reads all prompts for every session. A server's autovacuum would
        # analyze them soon (the tests' server runs without it): do it now.
        started = clock()
        connection = await asyncpg.connect(database.url, timeout=pg_server.CONNECT_TIMEOUT)
        try:
            await connection.execute("ANALYZE")
        finally:
            await connection.close()
        about["analyze_seconds"] = round(clock() - started, 2)
        results = [await measure("postgresql", "json", database.url, folder)]
    return about, results


async def run(size: str, folder: Path) -> dict[str, Any]:
    """Build (or reuse) the store of ``size`` and measure every export of it."""
    sessions = SESSIONS[size]
    counts = expected_counts(sessions)
    path = folder / f"otel_{sessions}.db"
    print(f"OTel export: store of {counts['prompts']:,} prompts ...", flush=True)
    build_seconds = await ensure_store(path, sessions)
    counts = store_counts(path) or {}
    spans_expected = (
        counts["sessions"] + counts["agents"] + counts["prompts"] + counts["system_logs"]
    ) + component_days(path)
    results = [await measure("sqlite", "json", str(path), folder)]
    with otlp_receiver() as receiver:
        results.append(await measure("sqlite", "http", str(path), folder, receiver))
    postgres, pg_results = await _postgres(path, folder, counts["prompts"])
    results += pg_results
    for result in results:
        result["prompts"] = counts["prompts"]
    peak = max(result["peak_rss_mb"] for result in results)
    return {
        "size": size,
        "store": {
            **counts,
            "spans_expected": spans_expected,
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "build_seconds": None if build_seconds is None else round(build_seconds, 1),
        },
        "postgresql": postgres,
        "results": [_rounded(result) for result in results],
        "rss_limit_mb": RSS_LIMIT_MB,
        "peak_rss_mb": round(peak, 1),
        "rss_met": peak < RSS_LIMIT_MB,
        "peak_heap_mb": round(max(result["peak_anon_mb"] for result in results), 1),
        "store_mapped_mb": round(max(result["end_store_mapped_mb"] for result in results), 1),
        "spans_match": all(r["spans"] == spans_expected for r in results),
    }


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def problems(report: dict[str, Any]) -> list[str]:
    """What looks wrong beyond memory: spans or requests that do not add up."""
    found = []
    expected = report["store"]["spans_expected"]
    for r in report["results"]:
        name = f"{r['backend']} -> {r['target']}"
        if r["spans"] != expected:
            found.append(f"{name}: {r['spans']:,} spans, expected {expected:,}")
        delivered = r.get("output_lines", r.get("received_requests"))
        if delivered != r["requests"]:
            found.append(f"{name}: {r['requests']} requests reported, {delivered} arrived")
    return found


def print_table(report: dict[str, Any]) -> None:
    store = report["store"]
    built = "cached" if store["build_seconds"] is None else f"built in {store['build_seconds']} s"
    print(
        f"\nOpenTelemetry export ({report['size']}): {store['sessions']:,} sessions, "
        f"{store['agents']:,} agents, {store['prompts']:,} prompts, {store['agent_logs']:,} "
        f"agent logs, {store['system_logs']:,} system logs; {store['file_mb']} MB ({built})"
    )
    postgres = report["postgresql"]
    if "skipped" in postgres:
        print(f"PostgreSQL: skipped ({postgres['skipped']})")
    else:
        print(
            f"PostgreSQL {postgres['server_version']}: copied in {postgres['copy_seconds']} s "
            f"(then ANALYZE, {postgres['analyze_seconds']} s) into a database of its own, "
            "dropped afterwards"
        )
    header = (
        f"{'backend':<11} {'target':<6} {'prompts':>9} {'spans':>10} {'seconds':>8} "
        f"{'spans/s':>8} {'base MB':>8} {'peak RSS MB':>11} {'heap MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        print(
            f"{r['backend']:<11} {r['target']:<6} {r['prompts']:>9,} {r['spans']:>10,} "
            f"{r['seconds']:>8.1f} {r['spans_per_s']:>8,.0f} {r['baseline_rss_mb']:>8.0f} "
            f"{r['peak_rss_mb']:>11.0f} {r['peak_anon_mb']:>8.0f}"
        )
    print(
        "(base: the child's RSS after imports and connecting, before the export; peak RSS:\n"
        " its VmHWM at the end, file pages SQLite maps included; heap: largest RssAnon seen)"
    )
    print(f"peak RSS < {report['rss_limit_mb']} MB: {'yes' if report['rss_met'] else 'no'}")
    print(
        f"  largest heap (RssAnon) {report['peak_heap_mb']:.0f} MB; the SQLite store file's "
        f"pages mapped at the end (mmap_size): up to {report['store_mapped_mb']:.0f} MB"
    )
    for problem in problems(report):
        print(f"  PROBLEM {problem}")


if __name__ == "__main__":
    child_main()
