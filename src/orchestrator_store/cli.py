"""See what the agents did: inspect and maintain the orchestrator store.

The ``orchestrator-store`` command, installed with the store's ``cli`` extra
(``pip install 'orchestrator-store[cli]'``); ``python -m orchestrator_store.cli``
runs the same::

    orchestrator-store --help
    orchestrator-store stats
    orchestrator-store --db other.db logs --level ERROR --follow
    orchestrator-store workflows --status failed
    orchestrator-store chat --agent 3f9c2a1b
    orchestrator-store copy-to-postgres orchestrator.db postgresql://...

Every command reads through ``DatabaseManager``'s public methods, so it works
on any backend the store supports. Commands other than ``prune --yes`` and
``adopt`` (which migrates a file of the original adw_database module, after
writing a backup copy) only read, and none of them creates a database file
that does not exist. Errors are
one line on stderr and exit status 1 (no traceback, whatever fails); Ctrl-C is
exit status 130, except for ``logs --follow``, which it ends normally. What the
store holds is shown as inert text: see ``cli_render``.

What the store accepts is defined once, in ``models``: ``--level`` offers the
levels of ``LogLevel`` (``LOG_LEVELS``), an agent id's part is checked by
``AgentIdPrefix`` and ``AgentIdSuffix``, and ``--status`` and ``--type`` go to
the store as given, which names the allowed values when it refuses one.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import stat
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

try:
    import typer
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table
    from rich.text import Text
except ImportError as missing:  # the store installed without its `cli` extra
    raise SystemExit(
        f"orchestrator-store: the command line needs {missing.name}, which is not installed: "
        "pip install 'orchestrator-store[cli]' (or `uv add 'orchestrator-store[cli]'`)"
    ) from None

from .adoption import AdoptionReport, adopt_database
from .atomic_file import new_file_mode, replacing
from .cli_otel import OtlpOptions, otlp_work
from .cli_render import (
    STATUS_STYLES,
    bytes_text,
    chat_table,
    duration_text,
    field,
    json_text,
    log_line,
    money,
    money_amount,
    new_console,
    plain,
    plain_lines,
    seconds_text,
    short_id,
    styled,
    table,
    time_text,
)
from .dialect import COLUMNS
from .errors import ReceiverError, ValidationError
from .location import redact_url, resolve_database, store_file_named_by
from .manager import JSON_COLUMNS, DatabaseError, DatabaseManager
from .models import (
    LOG_LEVELS,
    WORKFLOW_END_STATUSES,
    WORKFLOW_STATUSES,
    AgentIdPrefix,
    AgentIdSuffix,
    RetentionPolicy,
    canonical_uuid,
    parse_input,
)
from .retention import PruneReport, parse_size
from .schema import TABLES
from .sqlite_backend import READER_MMAP_BYTES

__all__ = ["app", "main"]

# Exports of at least this many rows to a file show a progress bar.
PROGRESS_MIN_ROWS = 10_000
EXPORT_BATCH = 1_000
# --older-than's upper bound: a century is older than any store.
MAX_DAYS = 36_500
# Spreadsheets run a cell starting with one of these as a formula (OWASP's "CSV
# injection"): text cells that do are exported with a leading "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C

app = typer.Typer(
    help="Inspect and maintain the orchestrator store "
    "(agents, prompts, costs, logs, workflows, chat).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DB_HELP = (
    "Database file or postgresql:// URL (default: $ORCHESTRATOR_DATABASE_URL, "
    "else $ORCHESTRATOR_DB_PATH, else orchestrator.db in the project root)."
)
DbOption = Annotated[
    str | None,
    typer.Option("--db", metavar="PATH|URL", help=DB_HELP + " Also accepted before the command."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Show at most this many rows.")]


class CliError(Exception):
    """A problem with what the user asked for, shown as one line."""


# --level's choices: the store's log levels (models.LOG_LEVELS), in their order
# and case. An Enum, because every Typer the `cli` extra allows takes one
# (Literal choices need Typer 0.19); mypy cannot see members made from a tuple.
Level = StrEnum("Level", [(name, name) for name in LOG_LEVELS])  # type: ignore[misc]


class CostGroup(StrEnum):
    """``costs --by``: the store's groupings, spelt with dashes on the command line."""

    session = "session"
    model = "model"
    agent_type = "agent-type"
    day = "day"


class ExportFormat(StrEnum):
    """``export --format``: rows (jsonl, csv) or OpenTelemetry spans (otlp, otlp-json)."""

    jsonl = "jsonl"
    csv = "csv"
    otlp = "otlp"
    otlp_json = "otlp-json"


# --- running a command against the store -----------------------------------------


@app.callback()
def _options(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option("--db", metavar="PATH|URL", help=DB_HELP)] = None,
) -> None:
    """Options before the command: ``--db`` is kept for the command to use."""
    ctx.obj = db
    _keep_library_logs_quiet()


def _keep_library_logs_quiet() -> None:
    """The store raises what goes wrong, and the command line prints that once.
    Unconfigured, Python would print the records the store still logs (a failed
    ROLLBACK while closing, say) on stderr, tracebacks included."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def _run(
    ctx: typer.Context,
    database: str | None,
    work: Callable[[DatabaseManager], Awaitable[None]],
    *,
    ctrl_c_ends: bool = False,
    read_mmap_bytes: int = READER_MMAP_BYTES,
) -> None:
    """Open the existing store, run ``work``, close; errors become one line."""
    with _one_line_errors(ctrl_c_ends=ctrl_c_ends):
        location = resolve_database(_db_option(ctx, database))
        if isinstance(location, Path) and not location.is_file():
            # Checked first: opening the store would create the file.
            raise CliError(
                f"no database at {location} (give --db PATH or set ORCHESTRATOR_DB_PATH)"
            )
        asyncio.run(_with_store(location, work, read_mmap_bytes))


def _db_option(ctx: typer.Context, after: str | None) -> str | None:
    """``--db`` given before the command (kept in ``ctx.obj``) or after it."""
    before = ctx.obj
    if before is not None and after is not None and before != after:
        raise CliError(f"--db is given twice ({before!r} and {after!r}): give it once")
    return after if after is not None else before


@contextmanager
def _one_line_errors(*, ctrl_c_ends: bool = False) -> Iterator[None]:
    """Whatever fails ends as one line on stderr and exit status 1, never a
    traceback; Ctrl-C is exit status 130, or a normal end with ``ctrl_c_ends``."""
    try:
        yield
    except (typer.Exit, typer.Abort, BrokenPipeError):  # Typer ends a closed pipe quietly
        raise
    except KeyboardInterrupt:
        if ctrl_c_ends:  # how --follow stops: nothing to report
            raise typer.Exit(0) from None
        typer.echo("interrupted", err=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except (CliError, DatabaseError, ReceiverError, OSError) as exc:
        _fail(str(exc))
    except Exception as exc:  # a bug: still one line, with what it was
        _fail(f"unexpected {type(exc).__name__}: {exc}")


async def _with_store(
    database: Path | str,
    work: Callable[[DatabaseManager], Awaitable[None]],
    read_mmap_bytes: int = READER_MMAP_BYTES,
) -> None:
    async with DatabaseManager(database, read_mmap_bytes=read_mmap_bytes) as db:
        await work(db)


def _since(text: str | None) -> datetime | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (UTC unless it says)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"--since: {text!r} is not a date (use YYYY-MM-DD or an ISO 8601 time)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _id_part(part: str) -> str:
    """``part`` as the store looks it up (``AgentIdPrefix``: stripped, lowercase),
    if the store takes it as an id's start and as its end."""
    try:
        parse_input(AgentIdSuffix, "agents", {"suffix": part})
        return parse_input(AgentIdPrefix, "agents", {"prefix": part}).prefix
    except ValidationError:
        raise CliError(
            f"{part.strip().lower()!r} is not an agent id or part of one (hex digits and dashes)"
        ) from None


async def _agent_by_id_part(db: DatabaseManager, part: str) -> dict[str, Any]:
    """The one agent whose id starts or ends with ``part``."""
    part = _id_part(part)
    found = [*await db.find_agents_by_prefix(part), *await db.find_agents_by_suffix(part)]
    return _one_with_id_part(part, found, "agents", f"no agent id starts or ends with {part!r}")


def _one_with_id_part(
    part: str, rows: Iterable[dict[str, Any]], kind: str, missing: str
) -> dict[str, Any]:
    """The one row of ``rows`` whose id starts or ends with ``part`` (an id part
    from ``_id_part``; lists show an id's last characters: time-ordered ids share
    their first ones). ``rows`` are what the store found by the id's start and by
    its end (an id may be found by both), or every row where rows are few. None
    is the error ``missing``; several ask for more characters."""
    matches = {
        row["id"]: row for row in rows if row["id"].startswith(part) or row["id"].endswith(part)
    }
    if not matches:
        raise CliError(missing)
    if len(matches) > 1:
        shown = ", ".join(short_id(row_id) for row_id in list(matches)[:2])
        raise CliError(f"{part!r} matches several {kind} ({shown}, ...): give more characters")
    return next(iter(matches.values()))


def _echo_json(value: Any) -> None:
    typer.echo(json_text(value, indent=2))


# --- stats -------------------------------------------------------------------------


@app.command()
def stats(ctx: typer.Context, database: DbOption = None, as_json: JsonOption = False) -> None:
    """File and WAL size, schema version, rows per table, time span of the logs."""

    async def work(db: DatabaseManager) -> None:
        storage = await db.storage()
        bounds = await db.log_bounds()
        report = {
            "database": db.location,
            "backend": db.backend_name,
            "file_bytes": storage["file_bytes"],
            "wal_bytes": storage["wal_bytes"],
            "free_pages": storage["freelist_count"],
            "page_size": storage["page_size"],
            "schema_version": await db.schema_version(),
            "rows": await db.count_rows(),
            "logs_first": bounds["first"],
            "logs_last": bounds["last"],
        }
        if as_json:
            _echo_json(report)
            return
        lines = [("database", db.location), *_storage_lines(db.backend_name, storage)]
        lines += [
            ("schema version", report["schema_version"]),
            ("logs span", f"{time_text(bounds['first'])} .. {time_text(bounds['last'])}"),
        ]
        console = new_console()
        for label, value in lines:
            console.print(field(label, value, width=16))
        console.print(table(None, ["Table", "Rows"], report["rows"].items()))

    _run(ctx, database, work)


def _storage_lines(backend: str, storage: dict[str, int]) -> list[tuple[str, str]]:
    """What the store takes on disk, in the backend's own terms."""
    if backend != "sqlite":  # the server's WAL and free space belong to every database
        return [("table size", bytes_text(storage["file_bytes"]) + " (with indexes)")]
    free = storage["freelist_count"] * storage["page_size"]
    return [
        ("file size", bytes_text(storage["file_bytes"])),
        ("WAL size", bytes_text(storage["wal_bytes"])),
        ("free pages", f"{storage['freelist_count']} ({bytes_text(free)})"),
    ]


# --- agents --------------------------------------------------------------------------


@app.command()
def agents(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    status: Annotated[str | None, typer.Option(help="Only agents with this status.")] = None,
    limit: LimitOption = 50,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Agents, newest first: short id, definition, session, status, started, duration, cost.

    An agent's cost is its prompts' costs plus its own (tools and other non-model spend).
    """

    async def work(db: DatabaseManager) -> None:
        rows = await db.agents_with_totals(
            await db.list_agents(session, status=status, limit=limit)
        )
        names = {row["id"]: row["name"] for row in await db.list_orchestrator_agents()}
        for row in rows:
            row["definition"] = names.get(row["orchestrator_agent_id"])
        if as_json:
            _echo_json(rows)
            return
        console = new_console()
        console.print(
            table(
                f"{len(rows)} agents",
                ["ID", "Definition", "Session", "Status", "Started", "Duration", "Cost"],
                (
                    (
                        short_id(row["id"]),
                        row["definition"],
                        row["session_id"],
                        styled(row["status"], STATUS_STYLES),
                        time_text(row["started_at"]),
                        duration_text(row["started_at"], row["completed_at"]),
                        money(row["total_cost_usd"]),
                    )
                    for row in rows
                ),
                console=console,
                optional=["Started", "Duration", "Definition"],
            )
        )

    _run(ctx, database, work)


@app.command("agent")
def agent_detail(
    ctx: typer.Context,
    agent_id: Annotated[
        str, typer.Argument(metavar="ID", help="An agent id, or its first or last characters.")
    ],
    log_lines: Annotated[
        int, typer.Option("--logs", min=0, help="How many of its last log lines to show.")
    ] = 10,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One agent: its prompts (tokens, cost, latency, status) and last log lines."""

    async def work(db: DatabaseManager) -> None:
        (agent,) = await db.agents_with_totals([await _agent_by_id_part(db, agent_id)])
        definition = await db.get_orchestrator_agent(agent["orchestrator_agent_id"])
        prompts = await db.list_prompts(agent["id"])
        logs = await db.list_logs(agent_id=agent["id"], limit=log_lines) if log_lines else []
        if as_json:
            _echo_json({"agent": agent, "definition": definition, "prompts": prompts, "logs": logs})
            return
        console = new_console()
        for line in _agent_lines(agent, definition):
            console.print(line)
        console.print(_prompts_table(prompts, console))
        if logs:
            console.print(f"last {len(logs)} log lines")
            for row in logs:
                console.print(log_line(row))

    _run(ctx, database, work)


def _agent_lines(agent: dict[str, Any], definition: dict[str, Any] | None) -> list[Text]:
    name = f"{definition['name']} ({definition['agent_type']})" if definition else "-"
    span = duration_text(agent["started_at"], agent["completed_at"])
    lines = [
        field("agent", agent["id"], width=12),
        field("definition", name, width=12),
        field("session", agent["session_id"], width=12),
        field("status", styled(agent["status"], STATUS_STYLES), width=12),
        field("parent", agent["parent_agent_id"] or "-", width=12),
        field("started", f"{time_text(agent['started_at'])} ({span})", width=12),
        field("cost", _cost_breakdown(agent), width=12),
    ]
    if agent["error_message"]:
        error = plain_lines(agent["error_message"], " " * 12)
        lines.append(field("error", Text(error, style="red"), width=12))
    return lines


def _cost_breakdown(agent: dict[str, Any]) -> str:
    """The cost rule, shown: the total, then what it adds up."""
    return (
        f"{money(agent['total_cost_usd'])} (prompts {money(agent['prompts_cost_usd'])}"
        f" + own {money(agent['cost_usd'])})"
    )


def _prompts_table(prompts: list[dict[str, Any]], console: Console) -> Table:
    return table(
        f"{len(prompts)} prompts",
        ["Created", "Type", "Prompt", "Model", "Status", "Tokens in/out", "Cost", "Latency"],
        (
            (
                time_text(p["created_at"]),
                p["prompt_type"],
                p["prompt_name"] or _first_line(p["prompt_text"]),
                p["model_used"] or "-",
                styled(p["status"], STATUS_STYLES),
                f"{p['tokens_input']}/{p['tokens_output']}",
                money(p["cost_usd"]),
                f"{p['latency_ms']} ms" if p["latency_ms"] is not None else "-",
            )
            for p in prompts
        ),
        console=console,
        optional=["Created", "Latency", "Type", "Model"],
    )


def _first_line(text: str, width: int = 40) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


# --- sessions and costs ---------------------------------------------------------------


@app.command()
def sessions(
    ctx: typer.Context,
    limit: LimitOption = 50,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One row per session: agents, failures, tokens, cost, first and last activity."""

    async def work(db: DatabaseManager) -> None:
        rows = await db.session_summaries(limit=limit)
        for row in rows:
            row["cost_usd"] = money_amount(row["cost_usd"])  # a sum: no float noise
        if as_json:
            _echo_json(rows)
            return
        console = new_console()
        console.print(
            table(
                f"{len(rows)} sessions (most recently active first)",
                [
                    "Session",
                    "Agents",
                    "Active",
                    "Failed",
                    "Prompts",
                    "Tokens",
                    "Cost",
                    "First",
                    "Last",
                ],
                (
                    (
                        row["session_id"],
                        row["agents"],
                        row["active_agents"],
                        _failures(row["failed_agents"], row["failed_prompts"]),
                        row["prompts"],
                        f"{row['tokens_input'] + row['tokens_output']:,}",
                        money(row["cost_usd"]),
                        time_text(row["first_activity"]),
                        time_text(row["last_activity"]),
                    )
                    for row in rows
                ),
                console=console,
                optional=["First", "Active", "Prompts", "Tokens", "Last"],
            )
        )

    _run(ctx, database, work)


def _failures(agents: int, prompts: int) -> Any:
    text = f"{agents} agents, {prompts} prompts" if agents or prompts else "0"
    return styled(text, {text: "bold red"} if agents or prompts else {})


@app.command("session")
def session_detail(
    ctx: typer.Context,
    session_id: Annotated[
        str, typer.Argument(metavar="ID", help="A session id, as `sessions` shows it.")
    ],
    prompt_lines: Annotated[
        int, typer.Option("--prompts", min=0, help="How many of its last prompts to show.")
    ] = 10,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One session: its totals, its cost by model, its agents as a tree, its last prompts."""

    async def work(db: DatabaseManager) -> None:
        summary = await db.session_summary(session_id)
        if summary is None:
            raise CliError(f"no session '{plain(session_id)}' (`sessions` lists them)")
        by_model = await db.cost_totals("model", session_id=session_id)
        tree = await db.session_tree(session_id)
        skip = max(summary["prompts"] - prompt_lines, 0)
        prompts = (
            await db.list_prompts(session_id=session_id, limit=prompt_lines, offset=skip)
            if prompt_lines
            else []
        )
        if as_json:
            _echo_json(
                {"session": summary, "costs_by_model": by_model, "agents": tree, "prompts": prompts}
            )
            return
        console = new_console()
        for line in _session_lines(summary):
            console.print(line)
        console.print(
            table(
                "cost by model",
                ["Model", "Prompts", "Tokens in", "Tokens out", "Cost"],
                (_cost_cells(row["key"] or "(none)", row) for row in by_model),
                console=console,
            )
        )
        console.print(_tree_table(tree, console))
        if prompts:
            console.print(_prompts_table(prompts, console))

    _run(ctx, database, work)


def _session_lines(summary: dict[str, Any]) -> list[Text]:
    span = duration_text(summary["first_activity"], summary["last_activity"])
    tokens = summary["tokens_input"] + summary["tokens_output"]
    return [
        field("session", summary["session_id"], width=12),
        field(
            "agents",
            f"{summary['agents']} ({summary['active_agents']} active,"
            f" {summary['failed_agents']} failed)",
            width=12,
        ),
        field("prompts", f"{summary['prompts']} ({summary['failed_prompts']} failed)", width=12),
        field("tokens", f"{tokens:,} ({summary['tokens_input']:,} in)", width=12),
        field("cost", money(summary["cost_usd"]), width=12),
        field(
            "active",
            f"{time_text(summary['first_activity'])} .. {time_text(summary['last_activity'])}"
            f" ({span})",
            width=12,
        ),
    ]


def _tree_rows(nodes: list[dict[str, Any]], depth: int = 0) -> Iterator[tuple[Any, ...]]:
    """Each agent under its parent, indented by its depth."""
    for node in nodes:
        yield (
            short_id(node["id"]),
            Text("  " * depth + ("└ " if depth else "")) + Text(plain(node["definition"])),
            styled(node["status"], STATUS_STYLES),
            str(node["prompts"]),
            f"{node['tokens_input'] + node['tokens_output']:,}",
            money(node["total_cost_usd"]),
            duration_text(node["started_at"], node["completed_at"]),
        )
        yield from _tree_rows(node["children"], depth + 1)


def _tree_table(tree: list[dict[str, Any]], console: Console) -> Table:
    return table(
        "agents",
        ["ID", "Agent", "Status", "Prompts", "Tokens", "Cost", "Duration"],
        _tree_rows(tree),
        console=console,
        optional=["Duration", "Tokens"],
    )


@app.command()
def costs(
    ctx: typer.Context,
    by: Annotated[CostGroup, typer.Option(help="How to group the totals.")] = CostGroup.session,
    since: Annotated[
        str | None, typer.Option(help="Only prompts from this date (YYYY-MM-DD, UTC) on.")
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=1,
            help="By session: the costliest sessions; by day: the latest days; at most this many.",
        ),
    ] = 50,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens and cost per session, model, agent type or day, with a grand total.

    Cost is prompts' costs plus agents' own costs (tools, other non-model spend),
    which count under no model, on the day their agent started. Each group's cost
    is rounded to $0.0001, and the total is the sum of the rows shown (sessions or
    days beyond --limit are one "other sessions" or "earlier days" row), in JSON too.
    """

    async def work(db: DatabaseManager) -> None:
        start = _since(since)
        group = by.value.replace("-", "_")
        limited = group in ("session", "day")
        rows = await db.cost_totals(group, since=start, limit=limit if limited else None)
        if limited and len(rows) == limit:  # there may be more
            rest = _rest(rows, (await db.cost_totals(since=start))[0])
            rows = rows + rest if group == "session" else rest + rows
        for row in rows:
            row["cost_usd"] = money_amount(row["cost_usd"])
        total = _cost_total(rows)
        if as_json:
            _echo_json({"by": by.value, "since": since, "groups": rows, "total": total})
            return
        grid = table(
            f"costs by {by.value}" + (f" since {since}" if since else ""),
            [by.value, "Prompts", "Tokens in", "Tokens out", "Cost"],
            (_cost_cells(_group_label(row, group), row) for row in rows),
        )
        grid.add_section()
        grid.add_row(*_cost_cells(styled("total", {"total": "bold"}), total))
        new_console().print(grid)

    _run(ctx, database, work)


def _rest(shown: list[dict[str, Any]], grand: dict[str, Any]) -> list[dict[str, Any]]:
    """The groups not shown, as one row (``rest``): the grand total less the rows
    shown (costs taken as the whole nano-dollars the store adds them in)."""
    names = ("prompts", "tokens_input", "tokens_output")
    rest: dict[str, Any] = {name: grand[name] - sum(row[name] for row in shown) for name in names}
    nano = round(grand["cost_usd"] * 1e9) - sum(round(row["cost_usd"] * 1e9) for row in shown)
    if not any(rest.values()) and not nano:
        return []
    return [{"key": None, "rest": True, **rest, "cost_usd": nano / 1e9}]


def _group_label(row: dict[str, Any], by: str) -> Any:
    if row.get("rest"):
        label = "(other sessions)" if by == "session" else "(earlier days)"
        return styled(label, {label: "dim"})
    return row["key"] or "(none)"


def _cost_total(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The groups' sums: every prompt is in exactly one group."""
    total: dict[str, Any] = {
        name: sum(row[name] for row in groups)
        for name in ("prompts", "tokens_input", "tokens_output")
    }
    total["cost_usd"] = sum((row["cost_usd"] for row in groups), Decimal(0))
    return total


def _cost_cells(key: Any, row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        key,
        str(row["prompts"]),
        f"{row['tokens_input']:,}",
        f"{row['tokens_output']:,}",
        money(row["cost_usd"]),
    )


# --- logs -----------------------------------------------------------------------------


def _finite_seconds(value: float) -> float:
    if not value >= 0.01 or value == float("inf"):  # `not >=` also refuses NaN
        raise typer.BadParameter(f"{value!r} is not a number of seconds of at least 0.01")
    return value


@app.command()
def logs(
    ctx: typer.Context,
    agent: Annotated[
        str | None,
        typer.Option(help="Only this agent's logs (id, or its first or last characters)."),
    ] = None,
    level: Annotated[Level | None, typer.Option(help="This level and above.")] = None,
    log_type: Annotated[str | None, typer.Option("--type", help="Only this log type.")] = None,
    component: Annotated[str | None, typer.Option(help="Only this system component.")] = None,
    since: Annotated[str | None, typer.Option(help="From this date (YYYY-MM-DD, UTC) on.")] = None,
    limit: LimitOption = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new rows until Ctrl-C.")
    ] = False,
    interval: Annotated[
        float,
        typer.Option(callback=_finite_seconds, help="Seconds between polls with --follow."),
    ] = 1.0,
    max_polls: Annotated[int | None, typer.Option(hidden=True, min=0)] = None,
    database: DbOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line.")
    ] = False,
) -> None:
    """Agent and system logs in one time line (the latest --limit rows), coloured by level.

    --follow then polls each log table in commit order: every row committed later
    is printed once, none is skipped (on SQLite by id, as one writer commits at a
    time; on PostgreSQL once its transaction, and every older one still running on
    the server, has ended). Ctrl-C ends it with exit status 0.
    """
    console = new_console()

    def show(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if as_json:
                print(json_text(row), flush=True)
            else:
                console.print(log_line(row))
        sys.stdout.flush()

    async def work(db: DatabaseManager) -> None:
        start = _since(since)
        agent_id = (await _agent_by_id_part(db, agent))["id"] if agent else None
        filters: dict[str, Any] = {
            "agent_id": agent_id,
            "min_level": level.value if level else None,
            "log_type": log_type,
            "component": component,
        }
        cursor = (await db.log_bounds())["cursor"]
        show(await db.list_logs(**filters, since=start, limit=limit, up_to=cursor))
        polls = 0
        while follow and (max_polls is None or polls < max_polls):
            await asyncio.sleep(interval)
            rows, cursor = await db.logs_after(cursor, **filters)
            show(rows)
            polls += 1

    _run(ctx, database, work, ctrl_c_ends=follow)


# --- the dashboard -----------------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    database: DbOption = None,
    url: Annotated[
        str | None,
        typer.Option("--url", metavar="URL", help="A postgresql:// URL (the same as --db URL)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ORCHESTRATOR_DASHBOARD_TOKEN",
            help="Require this token on every request (made and printed when binding "
            "other than loopback without one).",
        ),
    ] = None,
) -> None:
    """A live web dashboard over the store, read-only, until Ctrl-C (the `web` extra).

    Overview, sessions, each session's agents and timeline, prompts, logs,
    definitions and workflows, kept current while agents write. It binds
    127.0.0.1 unless told otherwise and prints the URL to open.
    """
    with _one_line_errors(ctrl_c_ends=True):
        if database is not None and url is not None:
            raise CliError("give --db or --url, not both")
        location = resolve_database(_db_option(ctx, url if url is not None else database))
        if isinstance(location, Path) and not location.is_file():
            raise CliError(
                f"no database at {location} (give --db PATH or set ORCHESTRATOR_DB_PATH)"
            )
        try:
            from .web.serve import serve as serve_dashboard
        except ImportError as missing:
            raise CliError(
                f"the dashboard needs {missing.name}, which is not installed: "
                "pip install 'orchestrator-store[web]' (or `uv add 'orchestrator-store[web]'`)"
            ) from None
        try:
            serve_dashboard(location, host=host, port=port, token=token, echo=typer.echo)
        except ValueError as exc:
            raise CliError(str(exc)) from None


# --- workflows and chat -----------------------------------------------------------------

DETAIL_WIDTH = 13  # `workflow`'s labels, padded: "description" is the longest


@app.command()
def workflows(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(help=f"Only workflows with this status ({', '.join(WORKFLOW_STATUSES)})."),
    ] = None,
    workflow_type: Annotated[
        str | None, typer.Option("--type", help="Only workflows of this type.")
    ] = None,
    limit: LimitOption = 50,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Workflow runs, newest first: short id, ADW id, name, type, status, step, times, error."""

    async def work(db: DatabaseManager) -> None:
        rows = await db.list_workflows(status=status, workflow_type=workflow_type, limit=limit)
        if as_json:
            _echo_json(rows)
            return
        console = new_console()
        console.print(
            table(
                f"{len(rows)} workflows",
                [
                    "ID",
                    "ADW id",
                    "Name",
                    "Type",
                    "Status",
                    "Step",
                    "Started",
                    "Duration",
                    "Error",
                ],
                (
                    (
                        short_id(row["id"]),
                        row["adw_id"] or "-",
                        row["adw_name"],
                        row["workflow_type"],
                        styled(row["status"], STATUS_STYLES),
                        _workflow_step(row),
                        time_text(row["started_at"]),
                        _workflow_duration(row),
                        _error_line(row["error_message"]),
                    )
                    for row in rows
                ),
                console=console,
                optional=["Started", "Type", "Duration", "ADW id"],
            )
        )

    _run(ctx, database, work)


@app.command("workflow")
def workflow_detail(
    ctx: typer.Context,
    reference: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A workflow id, its first or last characters, or its ADW id.",
        ),
    ],
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """One workflow run: status, steps, times, error, and its input, output and metadata."""

    async def work(db: DatabaseManager) -> None:
        row = await _workflow_by_reference(db, reference)
        if as_json:
            _echo_json(row)
            return
        definition_id = row["orchestrator_agent_id"]
        definition = await db.get_orchestrator_agent(definition_id) if definition_id else None
        console = new_console()
        for line in _workflow_lines(row, definition):
            console.print(line)

    _run(ctx, database, work)


async def _workflow_by_reference(db: DatabaseManager, reference: str) -> dict[str, Any]:
    """The workflow whose id or ADW id is ``reference``, else the one whose
    id starts or ends with it (as ``agent ID`` finds agents)."""
    text = reference.strip()
    if not text:
        raise CliError("give a workflow id, its first or last characters, or its ADW id")
    if _is_uuid(text) and (row := await db.get_workflow(text)) is not None:
        return row
    if (row := await db.get_workflow_by_adw_id(text)) is not None:
        return row
    try:
        part = _id_part(text)
    except CliError:  # not hex: it could only have been an ADW id
        raise CliError(f"no workflow has the id or ADW id {text!r}") from None
    found = [*await db.find_workflows_by_prefix(part), *await db.find_workflows_by_suffix(part)]
    missing = f"no workflow has the ADW id {text!r} or an id that starts or ends with it"
    return _one_with_id_part(part, found, "workflows", missing)


def _is_uuid(text: str) -> bool:
    try:
        canonical_uuid(text)
    except ValueError:
        return False
    return True


def _error_line(error: str | None) -> str:
    return _first_line(error, 60) if error and error.strip() else "-"


def _workflow_step(row: dict[str, Any]) -> str:
    """``current step (completed/total)``; just the counts before any step."""
    counts = f"{row['completed_steps']}/{row['total_steps']}"
    return f"{row['current_step']} ({counts})" if row["current_step"] else counts


def _workflow_duration(row: dict[str, Any]) -> str:
    """The stored duration; a run still going counts up to now; else ``-``."""
    if row["duration_seconds"] is not None:
        return seconds_text(row["duration_seconds"])
    if row["started_at"] is None:
        return "-"
    if row["completed_at"] is None and row["status"] in WORKFLOW_END_STATUSES:
        return "-"  # ended without an end time: no figure to show
    return duration_text(row["started_at"], row["completed_at"])


def _workflow_lines(row: dict[str, Any], definition: dict[str, Any] | None) -> list[Text]:
    def line(label: str, value: object, style: str = "") -> Text:
        return field(label, value, width=DETAIL_WIDTH, style=style)

    def block(label: str, text: str, style: str = "") -> Text:
        """Free text (or JSON) as inert lines, its continuation lines under the first."""
        return line(label, Text(plain_lines(text, " " * DETAIL_WIDTH), style=style))

    name = f"{definition['name']} ({short_id(definition['id'])})" if definition else "-"
    lines = [
        line("workflow", row["id"]),
        line("adw id", row["adw_id"] or "-"),
        line("name", row["adw_name"]),
        line("type", row["workflow_type"]),
        line("definition", name),
        line("status", styled(row["status"], STATUS_STYLES)),
        line("step", _workflow_step(row)),
        line("started", time_text(row["started_at"])),
        line("completed", time_text(row["completed_at"])),
        line("duration", _workflow_duration(row)),
    ]
    if row["description"]:
        lines.append(block("description", row["description"]))
    lines += [
        block("error", row["error_message"] or "-", "red"),
        line("error step", row["error_step"] or "-"),
        line("error count", row["error_count"]),
    ]
    json_fields = {"input": "input_data", "output": "output_data", "metadata": "metadata"}
    for label, column in json_fields.items():
        value = row[column]
        lines.append(block(label, "-" if value is None else json_text(value, indent=2)))
    lines.append(line("created", time_text(row["created_at"])))
    lines.append(line("updated", time_text(row["updated_at"])))
    return lines


@app.command()
def chat(
    ctx: typer.Context,
    agent: Annotated[
        str | None,
        typer.Option(help="Only messages about this agent (id, or its first or last characters)."),
    ] = None,
    orchestrator: Annotated[
        str | None,
        typer.Option(
            help="Only this orchestrator's chat (its definition's id, first or last "
            "characters of it, or name)."
        ),
    ] = None,
    limit: LimitOption = 50,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The chat as a conversation: its latest --limit messages, oldest first (in JSON too).

    Each message: time, sender -> receiver, the agent it concerns (short id), the
    whole message, and its summary if it has one.
    """

    async def work(db: DatabaseManager) -> None:
        agent_id = (await _agent_by_id_part(db, agent))["id"] if agent else None
        definition = await _definition_by_reference(db, orchestrator) if orchestrator else None
        rows = await db.list_chat_messages(
            definition["id"] if definition else None, agent_id=agent_id, limit=limit
        )
        rows.reverse()  # the store lists the newest first; a conversation reads oldest first
        if as_json:
            _echo_json(rows)
            return
        title = f"{len(rows)} messages, oldest first"
        new_console().print(chat_table(title, rows) if rows else Text(title))

    _run(ctx, database, work)


async def _definition_by_reference(db: DatabaseManager, reference: str) -> dict[str, Any]:
    """The agent definition named ``reference``, or whose id is it or starts or
    ends with it. Definitions are few: they are all read and matched here."""
    definitions = await db.list_orchestrator_agents()
    by_name = [row for row in definitions if row["name"] == reference]
    if by_name:
        return by_name[0]  # names are unique
    missing = f"no agent definition is named {reference!r} or has an id that starts or ends with it"
    try:
        part = _id_part(reference)
    except CliError:  # not hex: it could only have been a name
        raise CliError(missing) from None
    return _one_with_id_part(part, definitions, "agent definitions", missing)


# --- prune ------------------------------------------------------------------------------

# How each table's rows are named in prune's sentences, in the order they are listed.
PRUNED_ROWS = {
    "agents": "agents",
    "prompts": "prompts",
    "orchestrator_chat": "chat messages",
    "agent_logs": "agent logs",
    "system_logs": "system logs",
}


def _days(value: float | None) -> float | None:
    if value is not None and not 0 <= value <= MAX_DAYS:  # also refuses NaN
        raise typer.BadParameter(f"{value:.10g} is not a number of days from 0 to {MAX_DAYS}")
    return value


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--max-size'") from None


def _pruned_text(report: PruneReport, policy: RetentionPolicy) -> str:
    """``19 sessions, 57 agents, 285 prompts, 8 agent logs and 3 system logs``:
    the log tables always, the others when rows of theirs go."""
    parts = [f"{report.sessions} sessions"] if report.sessions else []
    for name, label in PRUNED_ROWS.items():
        count = report.rows.get(name, 0)
        if count or name in ("agent_logs", "system_logs"):
            parts.append(f"{count} {label}")
    text = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    rules = []
    if policy.agent_log_days is not None:
        rules.append(f"older than {policy.agent_log_days:g} days")
    if policy.session_days is not None:
        rules.append(f"sessions older than {policy.session_days:g} days")
    if policy.keep_sessions is not None:
        rules.append(f"sessions beyond the newest {policy.keep_sessions}")
    if policy.max_bytes is not None:
        rules.append(f"to keep the file under {bytes_text(policy.max_bytes)}")
    if not rules:
        return text
    if len(rules) == 1 and policy.agent_log_days is not None:
        return f"{text} {rules[0]}"
    return f"{text}; rules: " + ", ".join(
        f"logs {rule}" if rule.startswith("older") else rule for rule in rules
    )


@app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            callback=_days,
            help=f"Agent and system logs older than DAYS days (0 to {MAX_DAYS}).",
        ),
    ] = None,
    sessions_older_than: Annotated[
        float | None,
        typer.Option(
            "--sessions-older-than",
            metavar="DAYS",
            callback=_days,
            help="Sessions whose last agent started or finished more than DAYS days ago.",
        ),
    ] = None,
    keep_sessions: Annotated[
        int | None,
        typer.Option(
            "--keep-sessions",
            metavar="N",
            min=0,
            help="Keep the newest N sessions, delete the older ones.",
        ),
    ] = None,
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            metavar="SIZE",
            help="SQLite: delete the oldest logs and sessions until the file's data fits "
            "SIZE (500MB, 2GB, 1.5GiB).",
        ),
    ] = None,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum",
            help="SQLite: rewrite the file once (VACUUM) so that it shrinks and later prunes "
            "shrink it too; needs free disk space about its size, and other processes' "
            "writes wait while it runs.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would go (the default).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete (default: dry run).")] = False,
    database: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old history: logs by age, sessions by age or beyond the newest N, the
    oldest of both above a size; a dry run unless --yes.

    A session is its agents with their prompts, logs and chat messages; one with an
    agent still running is never deleted. Deletes go in small batches, so agents
    keep writing meanwhile. Then the space comes back: SQLite hands free pages back
    and checkpoints the WAL, so the file shrinks (a file made before the store
    turned auto-vacuum on needs --vacuum once); PostgreSQL vacuums the tables so
    that new rows reuse it.
    """
    if dry_run and yes:
        ctx.fail("--dry-run and --yes contradict each other: give one of them")
    max_bytes = _size(max_size)
    if (older_than, sessions_older_than, keep_sessions, max_bytes) == (None,) * 4 and not vacuum:
        ctx.fail(
            "nothing to prune: give --older-than, --sessions-older-than, --keep-sessions, "
            "--max-size or --vacuum"
        )

    async def work(db: DatabaseManager) -> None:
        policy = RetentionPolicy(
            agent_log_days=older_than,
            system_log_days=older_than,
            session_days=sessions_older_than,
            keep_sessions=keep_sessions,
            max_bytes=max_bytes,
        )
        pruned = await db.prune(policy, dry_run=not yes, vacuum=vacuum and yes)
        report: dict[str, Any] = {
            "older_than_days": older_than,
            "sessions_older_than_days": sessions_older_than,
            "keep_sessions": keep_sessions,
            "vacuum": vacuum,
            **{name: pruned.rows.get(name, 0) for name in ("agent_logs", "system_logs")},
            **pruned.as_dict(),
        }
        if as_json:
            _echo_json(report)
            return
        console = new_console()
        what = _pruned_text(pruned, policy)
        if not yes:
            console.print(f"would delete {what}")
            if vacuum:
                console.print("would then rewrite the file (VACUUM)")
            for note in pruned.notes:
                console.print(f"note: {note}")
            console.print("dry run: nothing was deleted; run again with --yes to delete")
            return
        console.print(f"deleted {pruned.deleted} rows ({what})")
        if db.backend_name == "sqlite":
            done = "WAL checkpointed and truncated" + (
                ", partly: a reader was busy" if pruned.checkpoint_busy else ""
            )
            if vacuum:
                done = f"file rewritten (VACUUM), {done}"
        else:
            done = "tables vacuumed" if pruned.deleted or vacuum else "nothing to vacuum"
        console.print(
            f"on disk: {bytes_text(pruned.bytes_before)} -> {bytes_text(pruned.bytes_after)} "
            f"({done})"
        )
        if db.backend_name == "sqlite":
            console.print(f"free inside the file for new rows: {bytes_text(pruned.free_bytes)}")
        for note in pruned.notes:
            console.print(f"note: {note}")

    _run(ctx, database, work)


# --- export -----------------------------------------------------------------------------


@app.command()
def export(
    ctx: typer.Context,
    table_name: Annotated[
        str | None,
        typer.Option("--table", help=f"One of {', '.join(TABLES)} (default: every table)."),
    ] = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="jsonl or csv (rows); otlp or otlp-json (spans)."),
    ] = ExportFormat.jsonl,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (default: stdout); it is replaced only once complete.",
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="URL",
            help="otlp: the receiver's OTLP/HTTP URL (/v1/traces is added to a bare host).",
        ),
    ] = None,
    headers: Annotated[
        list[str] | None,
        typer.Option("--headers", metavar="K=V,...", help="otlp: request headers (repeatable)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="TIME", help="otlp: only sessions active since (YYYY-MM-DD, ISO)."
        ),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", metavar="ID", help="otlp: one session only.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", help="otlp: keep sending new and changed rows (Ctrl-C stops)."),
    ] = False,
    cursor: Annotated[
        Path | None,
        typer.Option(
            "--cursor",
            help="--follow: the file that remembers what was sent "
            "(default: beside the store, DB.otlp-cursor.json).",
        ),
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", help="--follow: seconds between looks (1).")
    ] = None,
    with_content: Annotated[
        bool,
        typer.Option(
            "--with-content", help="otlp: include prompt and response text (off: may be sensitive)."
        ),
    ] = False,
    database: DbOption = None,
) -> None:
    """Stream rows as JSON lines or CSV, or the agents' history as OpenTelemetry spans.

    JSON lines of one table are its rows; of every table, {"table": ..., "row": ...}.
    CSV holds one table (pass --table): JSON columns as JSON text, NULL as an empty
    cell, and a text cell that starts with =, +, -, @, a tab or a carriage return
    gets a leading ' so that spreadsheets do not run it as a formula (numbers stay
    numbers). --output is written beside the target and renamed over it when
    complete: an error or Ctrl-C leaves the previous file as it was.

    --format otlp sends each session as a trace (agents, prompts, logs; the README
    has the mapping) to an OTLP/HTTP receiver such as Phoenix, Jaeger or an
    OpenTelemetry Collector; otlp-json writes the same spans as OTLP JSON lines.
    They need the otel extra. --follow keeps sending finished rows as they finish.
    """
    if fmt in (ExportFormat.otlp, ExportFormat.otlp_json):
        if table_name is not None:
            _fail(f"--table goes with --format jsonl or csv: {fmt.value} exports every session")
        with _one_line_errors():
            options = OtlpOptions(
                json_lines=fmt is ExportFormat.otlp_json,
                endpoint=endpoint,
                headers=headers or [],
                output=output,
                since=_since(since),
                session=session,
                follow=follow,
                cursor=cursor,
                with_content=with_content,
                interval=interval,
            )
            send_spans = otlp_work(options)
        # Read once, front to back: mapping the file would only add it to the RSS.
        _run(ctx, database, send_spans, ctrl_c_ends=follow, read_mmap_bytes=0)
        return
    otlp_only = {
        "--endpoint": endpoint,
        "--headers": headers,
        "--since": since,
        "--session": session,
        "--follow": follow or None,
        "--cursor": cursor,
        "--interval": interval,
        "--with-content": with_content or None,
    }
    for option, value in otlp_only.items():
        if value is not None:
            _fail(f"{option} goes with --format otlp or otlp-json, not {fmt.value}")
    if table_name is not None and table_name not in TABLES:
        _fail(f"--table: no table {table_name!r} (tables: {', '.join(TABLES)})")
    if fmt is ExportFormat.csv and table_name is None:
        _fail("CSV holds one table: pass --table")
    tables = [table_name] if table_name is not None else list(TABLES)
    new_mode = new_file_mode()  # read now: the store's threads are not started yet

    async def work(db: DatabaseManager) -> None:
        counts = await db.count_rows()
        total = sum(counts[name] for name in tables)
        if output is None:
            await _write_rows(db, sys.stdout, tables, fmt, tagged=table_name is None)
            return
        _refuse_store_files(output, db.db_path)
        with (
            _output_file(output, new_mode) as handle,
            _progress_bar(f"export to {plain(output)}", total) as advance,
        ):
            await _write_rows(db, handle, tables, fmt, tagged=table_name is None, advance=advance)
        typer.echo(f"exported {total} rows to {plain(output)}", err=True)

    _run(ctx, database, work)


async def _write_rows(
    db: DatabaseManager,
    handle: IO[str],
    tables: list[str],
    fmt: ExportFormat,
    *,
    tagged: bool,
    advance: Callable[[], None] = lambda: None,
) -> None:
    for name in tables:
        write = _row_writer(handle, name, fmt, tagged=tagged)
        async for row in db.iter_rows(name, batch_size=EXPORT_BATCH):
            write(row)
            advance()


def _refuse_store_files(output: Path, database: Path | None) -> None:
    """Writing over the database, its WAL or its journal would destroy the store."""
    if database is None:  # PostgreSQL: no local files
        return
    store_file = store_file_named_by(output, database)
    if store_file is not None:
        raise CliError(f"--output {output} is the store's own file {store_file}")


@contextmanager
def _output_file(output: Path, new_mode: int) -> Iterator[IO[str]]:
    """Where export writes: a regular file is replaced only once complete; a
    device or pipe (/dev/null, a FIFO) has nothing to replace and is written."""
    target = output.resolve()  # through a symlink: replace what it points at
    if target.is_dir():
        raise CliError(f"--output {output} is a folder")
    if not target.parent.is_dir():
        raise CliError(f"--output {output}: no folder {output.parent}")
    if target.exists() and not target.is_file():
        with target.open("w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else new_mode
    with replacing(target, mode) as handle:
        yield handle


@contextmanager
def _progress_bar(description: str, total: int) -> Iterator[Callable[[], None]]:
    """``advance()`` moves a progress bar on stderr; below PROGRESS_MIN_ROWS, no bar."""
    if total < PROGRESS_MIN_ROWS:
        yield lambda: None
        return
    progress = _progress()
    task = progress.add_task(description, total=total)
    with progress:
        yield lambda: progress.advance(task)


@app.command("copy-to-postgres")
def copy_to_postgres(
    source: Annotated[Path, typer.Argument(metavar="SOURCE_DB", help="The SQLite store file.")],
    url: Annotated[str, typer.Argument(metavar="URL", help="postgresql://user@host:5432/db")],
    append: Annotated[
        bool, typer.Option("--append", help="Add to a PostgreSQL store that already holds rows.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Copy a SQLite store into PostgreSQL: ids, timestamps, JSON and log ids kept.

    The target must be empty unless --append; the copy is one transaction, so a
    failed copy leaves the target as it was. Prints the rows copied per table.
    """
    with _one_line_errors():
        if not url.lower().startswith(("postgresql://", "postgres://")):
            raise CliError(f"URL must start with postgresql:// or postgres://, got {url!r}")
        if not source.is_file():
            raise CliError(f"no database at {source}")
        copied = asyncio.run(_copy(source, url, append))
        if as_json:
            _echo_json(copied)
            return
        console = new_console()
        rows = [[name, f"{count:,}"] for name, count in copied.items()]
        console.print(table(None, ["Table", "Rows"], rows))
        console.print(Text(f"copied {sum(copied.values()):,} rows from {plain(source)}"))


async def _copy(source: Path, url: str, append: bool) -> dict[str, int]:
    from .copy_to_postgres import copy_sqlite_to_postgres  # needs asyncpg: only imported here

    if not append:
        await _require_empty(url)
    async with DatabaseManager(source) as db:
        total = sum((await db.count_rows()).values())
    progress = _progress() if total >= PROGRESS_MIN_ROWS else None
    task = progress.add_task(f"copy to {url.split('@')[-1]}", total=total) if progress else None
    done: dict[str, int] = {}

    def advance(table_name: str, copied: int) -> None:
        done[table_name] = copied
        if progress and task is not None:
            progress.update(task, completed=sum(done.values()))

    if progress:
        progress.start()
    try:
        return await copy_sqlite_to_postgres(source, url, append=append, on_progress=advance)
    finally:
        if progress:
            progress.stop()


async def _require_empty(url: str) -> None:
    """Refuse a target that holds rows, naming the flag that allows it (the
    copy refuses too, but in the library's words)."""
    async with DatabaseManager(url) as target:
        held = {name: count for name, count in (await target.count_rows()).items() if count}
        location = target.location
    if held:
        listed = ", ".join(f"{name} {count}" for name, count in held.items())
        raise CliError(
            f"{location} already holds rows ({listed}): copy into an empty store, "
            "or pass --append to add to it"
        )


# --- adopt -------------------------------------------------------------------------------


@app.command()
def adopt(
    ctx: typer.Context,
    database: DbOption = None,
    backup: Annotated[
        Path | None,
        typer.Option(
            "--backup",
            metavar="PATH",
            help="Where the backup copy goes (default: <file>.before-adopt-<UTC time> beside it; "
            "never over an existing file).",
        ),
    ] = None,
) -> None:
    """Migrate a file the original adw_database module wrote into the store's schema, in place.

    Writes a backup copy of the file first, then converts every row in one
    transaction: naive timestamps are read as UTC, ids that are not UUIDs get
    fixed UUIDs (references follow), text that is not JSON becomes a JSON
    string. Rows that cannot be converted are left out and listed; they stay in
    the backup. Exit status 0 once the migration committed, also when rows were
    left out (a WARNING on stderr counts them). SQLite files only.
    """
    with _one_line_errors():
        location = resolve_database(_db_option(ctx, database))
        if not isinstance(location, Path):
            raise CliError(
                f"adopt migrates SQLite files only, and {redact_url(location)} is a PostgreSQL "
                "URL (the original module wrote SQLite files): give --db PATH"
            )
        report = adopt_database(location, backup_path=backup)
        _print_adoption(report)
    if report.left_out:
        # Exit status 0 all the same: the migration committed, the file is in the
        # store's schema and opens, and every row left out is still in the backup.
        # A failure status would tell scripts to retry or restore, and both are
        # wrong now (a second adopt is refused: the file is already adopted).
        typer.echo(
            f"WARNING: {len(report.left_out)} rows could not be converted and were left out; "
            f"they remain in the backup {plain(report.backup_path)}",
            err=True,
        )


def _print_adoption(report: AdoptionReport) -> None:
    """The report, every value from the file shown as inert text."""
    console = new_console()
    console.print(
        field("adopted", f"{report.path} (schema version {report.schema_version})", width=10)
    )
    console.print(field("backup", report.backup_path, width=10))
    left_out = {name: 0 for name in report.rows_copied}
    for row in report.left_out:
        left_out[row.table] = left_out.get(row.table, 0) + 1
    rows = [
        [name, f"{count:,}", f"{left_out[name]:,}"] for name, count in report.rows_copied.items()
    ]
    console.print(table(None, ["Table", "Rows", "Left out"], rows))
    console.print(Text(f"converted {report.values_converted:,} values"))
    if report.converted:
        conversions = [
            [f"{name}.{column}", f"{count:,}", what]
            for (name, column, what), count in report.converted.items()
        ]
        console.print(table(None, ["Column", "Values", "Conversion"], conversions))
    console.print(Text(f"remapped {len(report.remapped_ids):,} ids that were not UUIDs"))
    if report.remapped_ids:
        remapped = [[item.table, item.original_id, item.new_id] for item in report.remapped_ids]
        console.print(table(None, ["Table", "Old id", "New id"], remapped))
    if report.left_out:
        console.print(Text(f"left out {len(report.left_out):,} rows (kept in the backup)"))
        listed = [
            [row.table, "-" if row.original_id is None else row.original_id, row.reason]
            for row in report.left_out
        ]
        console.print(table(None, ["Table", "Original id", "Reason"], listed))


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {plain(' '.join(message.split()))}", err=True)
    raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=new_console(stderr=True),
    )


def _row_writer(
    handle: IO[str], table_name: str, fmt: ExportFormat, *, tagged: bool
) -> Callable[[dict[str, Any]], None]:
    if fmt is ExportFormat.jsonl:

        def write_json(row: dict[str, Any]) -> None:
            handle.write(json_text({"table": table_name, "row": row} if tagged else row) + "\n")

        return write_json
    writer = csv.writer(handle)
    writer.writerow(COLUMNS[table_name])
    json_columns = JSON_COLUMNS.get(table_name, ())

    def write_csv(row: dict[str, Any]) -> None:
        writer.writerow(
            [_csv_cell(row[column], column in json_columns) for column in COLUMNS[table_name]]
        )

    return write_csv


def _csv_cell(value: Any, is_json: bool) -> Any:
    """NULL is an empty cell; JSON columns hold the JSON text the store keeps
    (it starts with a minus only for a number, which no spreadsheet runs); text
    that a spreadsheet would run as a formula gets a leading ' (OWASP)."""
    if value is None:
        return ""
    if is_json:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def main() -> None:
    """The ``orchestrator-store`` console script."""
    app()


if __name__ == "__main__":
    main()
