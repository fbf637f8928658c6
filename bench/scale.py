"""Scale: every report the command line shows, timed on a long history, on both backends.

The stores (``scale_build``, rows from ``scale_data``): 10,000 sessions (1,000,000
prompts) and, with --full, 100,000 sessions (10,000,000 prompts); 1,000 sessions
(100,000 prompts) with --quick. The reports, through ``DatabaseManager``'s public API
as the CLI calls them: ``sessions`` (``session_summaries(limit=50)``), ``costs``
(``cost_totals`` by nothing, session, model, agent type and day, each without and with
``since`` = the start of the UTC day 7 days before the history's end), ``stats``
(``storage``, ``log_bounds``, ``schema_version``, ``count_rows``, and the four in a row
as the command runs them), and one session's and one agent's totals (``session_summary``,
``cost_totals(..., session_id=...)``, ``session_tree``, ``agent_totals``; "n/a" when
this build lacks them) for a random session or agent each call.

Each backend and size is measured in a process of its own: per report ``WARMUP_CALLS``
untimed calls (fewer when they take over ``WARMUP_SECONDS``), then ``CALLS`` timed ones
(p50, p99), cut short after ``BUDGET_SECONDS`` (a report that scans the history takes
seconds a call at 10M: the count of calls says so), then the same calls again, on the
same sessions and agents. The first pass reads pages that may have left the machine's
page cache (this machine's kernel reclaims pages idle for seconds: a 7 GB store is
mostly on disk by the time it is read), so its tail is the disk's; the second reads what
the first has just read, so it is the store's own work. Both are kept; the targets are
judged on the second. The target: p99 < 20 ms at every size, and flat: p99 at the
largest size at most ``FLAT_RATIO`` times the smallest's, or at most ``FLAT_NOISE_MS``
above it (a tenth of a millisecond moving to two tenths is this shared machine's
scheduling, not the history's size).
Then the commands ``stats``, ``sessions`` and ``costs --by model`` run once each end to
end in a subprocess, with ``--help``'s time beside them: the interpreter's and the
imports' share.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pg_server
import scale_build
import scale_data

from orchestrator_store.manager import DatabaseManager

SIZES = {"quick": (1_000,), "normal": (10_000,), "full": (10_000, 100_000)}  # sessions
CALLS = 1_000  # p99 is the 10th slowest: of 200, the 2nd slowest moved with single hiccups
WARMUP_CALLS = 50
WARMUP_SECONDS = 10.0
BUDGET_SECONDS = 30.0
P99_TARGET_MS = 20.0
FLAT_RATIO = 1.5
FLAT_NOISE_MS = 0.5
SINCE_DAYS = 7
SAMPLE = 1_000  # random agents to pick from
PICKS_SEED, WARMUP_SEED = 14, 0  # the timed passes' sessions and agents, the warm-up's
CLI_COMMANDS = {
    "--help (startup)": ["--help"],
    "stats": ["stats"],
    "sessions": ["sessions"],
    "costs --by model": ["costs", "--by", "model"],
}
clock = time.perf_counter


# --- the reports ---------------------------------------------------------------------


class Picks:
    """Random sessions and agents of the store, the same sequence for a seed."""

    def __init__(self, sessions: int, agent_ids: list[str], seed: int = 14) -> None:
        self._rng = random.Random(seed)
        self._sessions = sessions
        self._agent_ids = agent_ids

    def session(self) -> str:
        return scale_data.session_id(self._rng.randrange(self._sessions))

    def agent(self) -> str:
        return self._rng.choice(self._agent_ids)


Call = Callable[[DatabaseManager, Picks, datetime], Awaitable[Any]]


@dataclass(frozen=True)
class Report:
    name: str
    call: Call
    needs: str = ""  # the method (or ``cost_totals``' keyword) a build may lack


def _api(db: DatabaseManager, method: str) -> Callable[..., Awaitable[Any]]:
    """A method of the per-session API, which older builds do not have."""
    found: Callable[..., Awaitable[Any]] = getattr(db, method)
    return found


async def _stats(db: DatabaseManager) -> None:
    """What ``stats`` asks, in its order."""
    await db.storage()
    await db.log_bounds()
    await db.schema_version()
    await db.count_rows()


async def _agents_with_totals(db: DatabaseManager) -> None:
    """What `agents` reads: the newest 50 agents with their prompts' sums."""
    await _api(db, "agents_with_totals")(await db.list_agents(limit=50))


def _cost_report(by: str | None, with_since: bool) -> Report:
    """As `costs --by` asks: by session the 50 costliest, by day the latest 50
    (the rest is one row)."""
    limit = 50 if by in ("session", "day") else None
    shown = "" if by is None else repr(by)
    name = f"cost_totals({shown}{', since' if with_since else ''}"
    name = (name + (", limit=50" if limit else "") + ")").replace("(, ", "(")
    return Report(
        name,
        lambda db, _, since: db.cost_totals(by, since=since if with_since else None, limit=limit),
    )


REPORTS: tuple[Report, ...] = (
    Report("session_summaries(limit=50)", lambda db, _, __: db.session_summaries(limit=50)),
    *(
        _cost_report(by, s)
        for s in (False, True)
        for by in (None, "session", "model", "agent_type", "day")
    ),
    Report(
        "agents (list_agents(limit=50) with totals)",
        lambda db, _, __: _agents_with_totals(db),
        needs="agents_with_totals",
    ),
    Report("storage()", lambda db, _, __: db.storage()),
    Report("log_bounds()", lambda db, _, __: db.log_bounds()),
    Report("schema_version()", lambda db, _, __: db.schema_version()),
    Report("count_rows()", lambda db, _, __: db.count_rows()),
    Report("stats (the four, as the command)", lambda db, _, __: _stats(db)),
    Report(
        "session_summary(id)",
        lambda db, picks, _: _api(db, "session_summary")(picks.session()),
        needs="session_summary",
    ),
    Report(
        "cost_totals(session_id=id)",
        lambda db, picks, _: _api(db, "cost_totals")(None, session_id=picks.session()),
        needs="cost_totals:session_id",
    ),
    Report(
        "cost_totals('model', session_id=id)",
        lambda db, picks, _: _api(db, "cost_totals")("model", session_id=picks.session()),
        needs="cost_totals:session_id",
    ),
    Report(
        "session_tree(id)",
        lambda db, picks, _: _api(db, "session_tree")(picks.session()),
        needs="session_tree",
    ),
    Report(
        "agent_totals(id)",
        lambda db, picks, _: _api(db, "agent_totals")(picks.agent()),
        needs="agent_totals",
    ),
)


def available(report: Report) -> bool:
    if not report.needs:
        return True
    method, _, keyword = report.needs.partition(":")
    found = getattr(DatabaseManager, method, None)
    if found is None:
        return False
    return not keyword or keyword in inspect.signature(found).parameters


def _percentile_ms(ordered: list[float], fraction: float) -> float:
    return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _timed_calls(
    report: Report, db: DatabaseManager, picks: Picks, since: datetime
) -> tuple[list[float], Any]:
    """Up to ``CALLS`` calls, ``BUDGET_SECONDS`` at most: their latencies, the last answer."""
    latencies: list[float] = []
    started = clock()
    answer: Any = None
    while len(latencies) < CALLS and clock() - started < BUDGET_SECONDS:
        before = clock()
        answer = await report.call(db, picks, since)
        latencies.append(clock() - before)
    return latencies, answer


async def _time(
    report: Report, db: DatabaseManager, picks: Callable[[int], Picks], since: datetime
) -> dict[str, Any]:
    """Warm-up calls (other sessions), a timed pass, and the same pass again:
    see the module docstring."""
    warm_up = picks(WARMUP_SEED)
    started = clock()
    for _ in range(WARMUP_CALLS):
        await report.call(db, warm_up, since)
        if clock() - started > WARMUP_SECONDS:  # a report taking seconds is warm by now
            break
    first, _ = await _timed_calls(report, db, picks(PICKS_SEED), since)
    again, answer = await _timed_calls(report, db, picks(PICKS_SEED), since)
    ordered, first = sorted(again), sorted(first)
    return {
        "calls": len(ordered),
        "p50_ms": round(_percentile_ms(ordered, 0.50), 3),
        "p99_ms": round(_percentile_ms(ordered, 0.99), 3),
        "max_ms": round(1000 * ordered[-1], 3),
        "first_pass": {
            "calls": len(first),
            "p50_ms": round(_percentile_ms(first, 0.50), 3),
            "p99_ms": round(_percentile_ms(first, 0.99), 3),
        },
        "rows": len(answer) if isinstance(answer, list) else None,
    }


async def measure(target: str, sessions: int, since: datetime) -> dict[str, dict[str, Any]]:
    """Every report on the store at ``target``: name -> its figures (or why none)."""
    results: dict[str, dict[str, Any]] = {}
    async with DatabaseManager(target) as db:
        sample = await db.query(f"SELECT id FROM agents ORDER BY random() LIMIT {SAMPLE}")
        agent_ids = [str(row["id"]) for row in sample]

        def picks(seed: int) -> Picks:
            return Picks(sessions, agent_ids, seed)

        for report in REPORTS:
            if not available(report):
                results[report.name] = {"available": False}
                continue
            print(f"    {report.name} ...", file=sys.stderr, flush=True)
            try:
                results[report.name] = await _time(report, db, picks, since)
            except Exception as exc:  # a report that fails is a result, not the end
                results[report.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def child_main(spec: str) -> None:
    """The measuring process: its store in ``spec`` (JSON), one JSON line out."""
    given = json.loads(spec)
    since = datetime.fromisoformat(given["since"])
    results = asyncio.run(measure(given["target"], given["sessions"], since))
    print(json.dumps(results))


# --- the parent ----------------------------------------------------------------------


def since_for(built: scale_build.Built) -> datetime:
    """The start of the UTC day ``SINCE_DAYS`` before the history's end (now, when the
    store was just built; a cached file's history ends when it was built)."""
    end = min(datetime.now(UTC), scale_build.data_end(built))
    day = (end - timedelta(days=SINCE_DAYS)).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("orchestrator-store")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from orchestrator_store.cli import main; main()"]


def cli_times(target: str) -> dict[str, dict[str, Any]]:
    """Each command once, end to end (startup included): seconds, or its error."""
    times: dict[str, dict[str, Any]] = {}
    for name, arguments in CLI_COMMANDS.items():
        database = [] if arguments == ["--help"] else ["--db", target]
        started = clock()
        done = subprocess.run(
            [*_cli(), *arguments, *database], capture_output=True, text=True, check=False
        )
        seconds = clock() - started
        times[name] = {"seconds": round(seconds, 3)}
        if done.returncode != 0:
            times[name]["error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
    return times


async def _measure_store(built: scale_build.Built) -> dict[str, Any]:
    since = since_for(built)
    label = f"{built.backend} at {built.prompts:,} prompts"
    print(f"  measuring {label} (since {since:%Y-%m-%d}) ...", flush=True)
    spec = json.dumps({"target": built.target, "sessions": built.sessions, "since": str(since)})
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, __file__, spec],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    reports = json.loads(done.stdout.strip().splitlines()[-1])
    cli = await asyncio.to_thread(cli_times, built.target)
    build = {k: v for k, v in built.as_json().items() if k != "target"}
    return {
        "backend": built.backend,
        "prompts": built.prompts,
        "since": str(since),
        "build": build,
        "reports": reports,
        "cli": cli,
    }


async def run(size: str, folder: Path) -> dict[str, Any]:
    """Build (or reuse) and measure every store of ``size``; SQLite first, then
    PostgreSQL when a server answers."""
    runs: list[dict[str, Any]] = []
    for sessions in SIZES[size]:
        prompts = sessions * scale_data.PROMPTS_PER_SESSION
        print(f"Scale: SQLite store of {prompts:,} prompts ...", flush=True)
        built = await scale_build.sqlite_store(folder, sessions)
        runs.append(await _measure_store(built))
    reason = await pg_server.unusable(pg_server.SERVER_URL)
    postgres: dict[str, Any] = {"skipped": reason} if reason else {}
    if reason is None:
        async with pg_server.bench_database(pg_server.SERVER_URL) as database:
            postgres = database.about()
            for sessions in SIZES[size]:
                prompts = sessions * scale_data.PROMPTS_PER_SESSION
                print(f"Scale: PostgreSQL store of {prompts:,} prompts ...", flush=True)
                built = await scale_build.postgres_store(database, sessions)
                try:
                    runs.append(await _measure_store(built))
                finally:
                    await scale_build.drop_postgres_store(database, built)
    return {"size": size, "postgresql": postgres, "runs": runs, "targets": targets(runs)}


# --- targets and the table -----------------------------------------------------------


def _p99s(runs: list[dict[str, Any]], backend: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    return [(r["prompts"], r["reports"][name]) for r in runs if r["backend"] == backend]


def targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backend and report: p99 < 20 ms at every size, flat between the sizes."""
    rows = []
    for backend in dict.fromkeys(r["backend"] for r in runs):
        for report in REPORTS:
            figures = _p99s(runs, backend, report.name)
            row: dict[str, Any] = {"backend": backend, "report": report.name}
            if any("p99_ms" not in f for _, f in figures):
                problem = next(f for _, f in figures if "p99_ms" not in f)
                row["met"] = None
                row["measured"] = problem.get("error", "n/a (not in this build)")
                rows.append(row)
                continue
            p99 = [f["p99_ms"] for _, f in figures]
            row["p99_ms"] = {str(prompts): f["p99_ms"] for prompts, f in figures}
            met = all(v < P99_TARGET_MS for v in p99) and all(
                f["calls"] >= CALLS for _, f in figures
            )
            if len(p99) > 1:
                row["ratio"] = round(p99[-1] / p99[0], 2) if p99[0] else None
                flat = p99[-1] <= max(FLAT_RATIO * p99[0], p99[0] + FLAT_NOISE_MS)
                met = met and flat
            row["met"] = met
            rows.append(row)
    return rows


def problems(report: dict[str, Any]) -> list[str]:
    """What went wrong beyond the targets: reports that failed, commands that did."""
    found = [
        f"{t['backend']} {t['report']}: {t['measured']}"
        for t in report["targets"]
        if t["met"] is None and not t["measured"].startswith("n/a")
    ]
    for r in report["runs"]:
        for name, figures in r["cli"].items():
            if "error" in figures:
                found.append(f"{r['backend']} {r['prompts']:,} CLI {name}: {figures['error']}")
    return found


def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def _cell(figures: dict[str, Any]) -> str:
    if "p99_ms" not in figures:
        return "n/a" if figures.get("available") is False else "error"
    cut = "" if figures["calls"] >= CALLS else f" ({figures['calls']})"
    return f"{figures['p50_ms']:.2f} / {figures['p99_ms']:.2f}{cut}"


def _print_builds(report: dict[str, Any]) -> None:
    if "skipped" in report["postgresql"]:
        print(f"PostgreSQL: skipped ({report['postgresql']['skipped']})")
    for r in report["runs"]:
        b = r["build"]
        how = f"built in {b['build_seconds']} s"
        how = f"cached, {how}" if b["cached"] else how
        if b.get("vacuum_analyze_seconds") is not None:
            how += f", then VACUUM (ANALYZE) {b['vacuum_analyze_seconds']} s"
        print(
            f"  {r['backend']:<10} {r['prompts']:>11,} prompts: {_mib(b['bytes'])} ({how});"
            f" history ends {b['end'][:16]}, since = {r['since'][:10]}"
        )


def _print_backend(report: dict[str, Any], backend: str) -> None:
    """p50 / p99 per report and size, the ratio of the p99s, the rows answered."""
    mine = [r for r in report["runs"] if r["backend"] == backend]
    ratios = {t["report"]: t.get("ratio") for t in report["targets"] if t["backend"] == backend}
    header = f"{backend + ': p50 / p99 ms, second pass':<40}"
    header += "".join(f"{r['prompts']:>22,}" for r in mine)
    header += "   ratio" if len(mine) > 1 else ""
    print(f"\n{header}     rows\n{'-' * (len(header) + 9)}")
    for item in REPORTS:
        line = f"{item.name:<40}"
        line += "".join(f"{_cell(r['reports'][item.name]):>22}" for r in mine)
        if len(mine) > 1:
            ratio = ratios.get(item.name)
            line += f"{'' if ratio is None else f'{ratio:.2f}':>8}"
        rows = mine[-1]["reports"][item.name].get("rows")
        print(line + f"{'' if rows is None else f'{rows:,}':>9}")
    print(f"(in brackets: calls made when {CALLS} took over {BUDGET_SECONDS:.0f} s;")
    print(" rows: what the last call answered at the largest size)")
    print("first pass, p50 / p99 ms (pages read for the first time: from disk when cold)")
    for item in REPORTS:
        cells = [r["reports"][item.name].get("first_pass") for r in mine]
        if all(cells):
            print(f"{item.name:<40}" + "".join(f"{_cell(c):>22}" for c in cells))
    for r in mine:
        times = ", ".join(f"{name} {f['seconds']:.2f} s" for name, f in r["cli"].items())
        print(f"CLI at {r['prompts']:,} prompts, one run each, startup included: {times}")


def _print_targets(report: dict[str, Any]) -> None:
    sizes = sorted({r["prompts"] for r in report["runs"]})
    flat = (
        f", p99 at {sizes[-1]:,} <= {FLAT_RATIO} x at {sizes[0]:,} or <= {FLAT_NOISE_MS} ms more"
        if len(sizes) > 1
        else ""
    )
    print(
        f"\ntargets (second pass: p99 < {P99_TARGET_MS:.0f} ms over >= {CALLS} calls"
        f" at each size{flat}):"
    )
    for t in report["targets"]:
        if t["met"] is None:
            print(f"  n/a    {t['backend']} {t['report']}: {t['measured']}")
            continue
        figures = " / ".join(f"{v:.2f}" for v in t["p99_ms"].values())
        ratio = f" (x{t['ratio']})" if "ratio" in t else ""
        state = "met   " if t["met"] else "MISSED"
        print(f"  {state} {t['backend']} {t['report']}: {figures} ms{ratio}")
    for problem in problems(report):
        print(f"  PROBLEM {problem}")


def print_table(report: dict[str, Any]) -> None:
    print(f"\nScale ({report['size']}): the CLI's reports on a long history")
    _print_builds(report)
    for backend in dict.fromkeys(r["backend"] for r in report["runs"]):
        _print_backend(report, backend)
    _print_targets(report)


def all_met(report: dict[str, Any]) -> bool:
    return all(t["met"] is not False for t in report["targets"]) and not problems(report)


def run_and_print(size: str, folder: Path) -> dict[str, Any]:
    report = asyncio.run(run(size, folder))
    print_table(report)
    return report


def only(size: str, folder: Path, machine: dict[str, Any]) -> int:
    """``run.py --only scale``: this part alone, into ``scale_results.json``."""
    report = run_and_print(size, folder)
    output = folder / "scale_results.json"
    output.write_text(json.dumps({"machine": machine, "scale": report}, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0 if all_met(report) else 1


if __name__ == "__main__":
    child_main(sys.argv[1])
