#!/usr/bin/env -S uv run --script
# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "aiosqlite>=0.20",
#     "pydantic>=2.7",
#     "rich>=13.7",
#     "typer>=0.12",
#     "asyncpg>=0.30",
# ]
# ///
"""See what the agents did: inspect and maintain the orchestrator store.

Run it with uv from the project root (the PEP 723 header above brings its
dependencies)::

    uv run adws/adw_modules/adw_store_cli.py --help
    uv run adws/adw_modules/adw_store_cli.py stats
    uv run adws/adw_modules/adw_store_cli.py --db other.db logs --level ERROR --follow
    uv run adws/adw_modules/adw_store_cli.py copy-to-postgres orchestrator.db postgresql://...

Every command reads through ``DatabaseManager``'s public methods, so it works
on any backend the store supports. Commands other than ``prune --yes`` only
read, and none of them creates a database file that does not exist. Errors are
one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer
from adw_database import JSON_COLUMNS, DatabaseError, DatabaseManager, resolve_database
from adw_db_schema import TABLES
from adw_db_sql import COLUMNS
from adw_store_cli_render import (
    STATUS_STYLES,
    bytes_text,
    duration_text,
    json_text,
    log_line,
    money,
    new_console,
    short_id,
    styled,
    table,
    time_text,
)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["app", "main"]

# Exports of at least this many rows to a file show a progress bar.
PROGRESS_MIN_ROWS = 10_000
EXPORT_BATCH = 1_000

app = typer.Typer(
    help="Inspect and maintain the orchestrator store (agents, prompts, costs, logs).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Show at most this many rows.")]


class CliError(Exception):
    """A problem with what the user asked for, shown as one line."""


class Level(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class CostGroup(StrEnum):
    session = "session"
    model = "model"
    agent_type = "agent-type"
    day = "day"


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


# --- running a command against the store -----------------------------------------


@app.callback()
def main(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH|URL",
            help="Database file or postgresql:// URL (default: $ORCHESTRATOR_DATABASE_URL, "
            "else $ORCHESTRATOR_DB_PATH, else orchestrator.db in the project root).",
        ),
    ] = None,
) -> None:
    ctx.obj = db


def _run(ctx: typer.Context, work: Callable[[DatabaseManager], Awaitable[None]]) -> None:
    """Open the existing store, run ``work``, close; errors become one line."""
    try:
        database = resolve_database(ctx.obj)
        if isinstance(database, Path) and not database.is_file():
            # Checked first: opening the store would create the file.
            raise CliError(
                f"no database at {database} (give --db PATH or set ORCHESTRATOR_DB_PATH)"
            )
        asyncio.run(_with_store(database, work))
    except (CliError, DatabaseError) as exc:
        message = " ".join(str(exc).split())
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:  # Ctrl-C ends --follow; nothing to report
        raise typer.Exit(0) from None


async def _with_store(
    database: Path | str, work: Callable[[DatabaseManager], Awaitable[None]]
) -> None:
    async with DatabaseManager(database) as db:
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


async def _agent_by_id_part(db: DatabaseManager, part: str) -> dict[str, Any]:
    """The one agent whose id starts or ends with ``part`` (lists show an id's
    last characters: time-ordered ids share their first ones)."""
    part = part.strip().lower()
    if not 0 < len(part) <= 36 or any(char not in "0123456789abcdef-" for char in part):
        raise CliError(f"{part!r} is not an agent id or part of one (hex digits and dashes)")
    matches = {row["id"]: row for row in await db.find_agents_by_prefix(part, limit=2)}
    for row in await db.find_agents_by_suffix(part, limit=2):
        matches.setdefault(row["id"], row)
    if not matches:
        raise CliError(f"no agent id starts or ends with {part!r}")
    if len(matches) > 1:
        shown = ", ".join(short_id(agent_id) for agent_id in list(matches)[:2])
        raise CliError(f"{part!r} matches several agents ({shown}, ...): give more characters")
    return next(iter(matches.values()))


def _echo_json(value: Any) -> None:
    typer.echo(json_text(value, indent=2))


# --- stats -------------------------------------------------------------------------


@app.command()
def stats(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """File and WAL size, schema version, rows per table, time span of the logs."""

    async def work(db: DatabaseManager) -> None:
        storage = await db.storage()
        bounds = await db.log_bounds()
        report = {
            "database": db.location,
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
        console = new_console()
        console.print(f"database        {report['database']}")
        console.print(f"file size       {bytes_text(storage['file_bytes'])}")
        console.print(f"WAL size        {bytes_text(storage['wal_bytes'])}")
        free = storage["freelist_count"] * storage["page_size"]
        console.print(f"free pages      {storage['freelist_count']} ({bytes_text(free)})")
        console.print(f"schema version  {report['schema_version']}")
        console.print(
            f"logs span       {time_text(bounds['first'])} .. {time_text(bounds['last'])}"
        )
        console.print(table(None, ["Table", "Rows"], report["rows"].items()))

    _run(ctx, work)


# --- agents --------------------------------------------------------------------------


@app.command()
def agents(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Option(help="Only this session.")] = None,
    status: Annotated[str | None, typer.Option(help="Only agents with this status.")] = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Agents, newest first: short id, definition, session, status, started, duration, cost."""

    async def work(db: DatabaseManager) -> None:
        rows = await db.list_agents(session, status=status, limit=limit)
        names = {row["id"]: row["name"] for row in await db.list_orchestrator_agents()}
        for row in rows:
            row["definition"] = names.get(row["orchestrator_agent_id"])
        if as_json:
            _echo_json(rows)
            return
        new_console().print(
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
                        money(row["cost_usd"]),
                    )
                    for row in rows
                ),
            )
        )

    _run(ctx, work)


@app.command("agent")
def agent_detail(
    ctx: typer.Context,
    agent_id: Annotated[
        str, typer.Argument(metavar="ID", help="An agent id, or its first or last characters.")
    ],
    log_lines: Annotated[
        int, typer.Option("--logs", min=0, help="How many of its last log lines to show.")
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """One agent: its prompts (tokens, cost, latency, status) and last log lines."""

    async def work(db: DatabaseManager) -> None:
        agent = await _agent_by_id_part(db, agent_id)
        definition = await db.get_orchestrator_agent(agent["orchestrator_agent_id"])
        prompts = await db.list_prompts(agent["id"])
        logs = await db.list_logs(agent_id=agent["id"], limit=log_lines) if log_lines else []
        if as_json:
            _echo_json({"agent": agent, "definition": definition, "prompts": prompts, "logs": logs})
            return
        console = new_console()
        console.print(f"agent       {agent['id']}")
        name = f"{definition['name']} ({definition['agent_type']})" if definition else "-"
        console.print(f"definition  {name}")
        console.print(f"session     {agent['session_id']}")
        console.print("status      ", styled(agent["status"], STATUS_STYLES), sep="")
        console.print(f"parent      {agent['parent_agent_id'] or '-'}")
        span = duration_text(agent["started_at"], agent["completed_at"])
        console.print(f"started     {time_text(agent['started_at'])} ({span})")
        console.print(f"cost        {money(agent['cost_usd'])}")
        if agent["error_message"]:
            console.print("error       ", styled(agent["error_message"], {}), style="red", sep="")
        console.print(
            table(
                f"{len(prompts)} prompts",
                [
                    "Created",
                    "Type",
                    "Prompt",
                    "Model",
                    "Status",
                    "Tokens in/out",
                    "Cost",
                    "Latency",
                ],
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
            )
        )
        if logs:
            console.print(f"last {len(logs)} log lines")
            for row in logs:
                console.print(log_line(row))

    _run(ctx, work)


def _first_line(text: str, width: int = 40) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


# --- sessions and costs ---------------------------------------------------------------


@app.command()
def sessions(ctx: typer.Context, limit: LimitOption = 50, as_json: JsonOption = False) -> None:
    """One row per session: agents, failures, tokens, cost, first and last activity."""

    async def work(db: DatabaseManager) -> None:
        rows = await db.session_summaries(limit=limit)
        if as_json:
            _echo_json(rows)
            return
        new_console().print(
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
            )
        )

    _run(ctx, work)


def _failures(agents: int, prompts: int) -> Any:
    text = f"{agents} agents, {prompts} prompts" if agents or prompts else "0"
    return styled(text, {text: "bold red"} if agents or prompts else {})


@app.command()
def costs(
    ctx: typer.Context,
    by: Annotated[CostGroup, typer.Option(help="How to group the totals.")] = CostGroup.session,
    since: Annotated[
        str | None, typer.Option(help="Only prompts from this date (YYYY-MM-DD, UTC) on.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Prompts' tokens and cost per session, model, agent type or day, with a grand total."""

    async def work(db: DatabaseManager) -> None:
        start = _since(since)
        group = by.value.replace("-", "_")
        rows = await db.cost_totals(group, since=start)
        (total,) = await db.cost_totals(since=start)
        if as_json:
            total.pop("key")
            _echo_json({"by": by.value, "since": since, "groups": rows, "total": total})
            return
        grid = table(
            f"costs by {by.value}" + (f" since {since}" if since else ""),
            [by.value, "Prompts", "Tokens in", "Tokens out", "Cost"],
            (_cost_cells(row["key"] or "(none)", row) for row in rows),
        )
        grid.add_section()
        grid.add_row(*_cost_cells(styled("total", {"total": "bold"}), total))
        new_console().print(grid)

    _run(ctx, work)


def _cost_cells(key: Any, row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        key,
        str(row["prompts"]),
        f"{row['tokens_input']:,}",
        f"{row['tokens_output']:,}",
        money(row["cost_usd"]),
    )


# --- logs -----------------------------------------------------------------------------


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
        float, typer.Option(min=0.01, help="Seconds between polls with --follow.")
    ] = 1.0,
    max_polls: Annotated[int | None, typer.Option(hidden=True, min=0)] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line.")
    ] = False,
) -> None:
    """Agent and system logs in one time line (the latest --limit rows), coloured by level.

    --follow then polls each log table on its increasing id: every row committed
    later is printed once, none is skipped (SQLite commits one writer at a time,
    so ids become visible in increasing order).
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

    _run(ctx, work)


# --- prune ------------------------------------------------------------------------------


@app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        float, typer.Option("--older-than", metavar="DAYS", min=0, help="Age in days.")
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Really delete (default: dry run).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete agent and system logs older than DAYS days; a dry run unless --yes.

    After deleting, checkpoints the WAL into the database file and truncates it.
    """

    async def work(db: DatabaseManager) -> None:
        counts = await db.count_old_logs(older_than)
        before = await db.storage()
        report: dict[str, Any] = {"older_than_days": older_than, "dry_run": not yes, **counts}
        if yes:
            report["deleted"] = await db.cleanup_old_logs(older_than)
            report["checkpoint_busy"] = bool((await db.checkpoint())["busy"])
            after = await db.storage()
            report["bytes_before"] = before["file_bytes"] + before["wal_bytes"]
            report["bytes_after"] = after["file_bytes"] + after["wal_bytes"]
            report["free_bytes"] = after["freelist_count"] * after["page_size"]
        if as_json:
            _echo_json(report)
            return
        console = new_console()
        what = f"{counts['agent_logs']} agent logs and {counts['system_logs']} system logs"
        if not yes:
            console.print(f"would delete {what} older than {older_than:g} days")
            console.print("dry run: nothing was deleted; run again with --yes to delete")
            return
        console.print(f"deleted {report['deleted']} rows ({what} older than {older_than:g} days)")
        console.print(
            f"on disk: {bytes_text(report['bytes_before'])} -> {bytes_text(report['bytes_after'])} "
            "(WAL checkpointed and truncated"
            + (", partly: a reader was busy" if report["checkpoint_busy"] else "")
            + ")"
        )
        console.print(f"free inside the file for new rows: {bytes_text(report['free_bytes'])}")

    _run(ctx, work)


# --- export -----------------------------------------------------------------------------


@app.command()
def export(
    ctx: typer.Context,
    table_name: Annotated[
        str | None,
        typer.Option("--table", help=f"One of {', '.join(TABLES)} (default: every table)."),
    ] = None,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl or csv.")
    ] = ExportFormat.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Stream rows as JSON lines or CSV, a batch at a time, never the whole table.

    JSON lines of one table are its rows; of every table, {"table": ..., "row": ...}.
    CSV holds one table (pass --table): JSON columns as JSON text, NULL as an empty cell.
    """
    if table_name is not None and table_name not in TABLES:
        _fail(f"--table: no table {table_name!r} (tables: {', '.join(TABLES)})")
    if fmt is ExportFormat.csv and table_name is None:
        _fail("CSV holds one table: pass --table")
    tables = [table_name] if table_name is not None else list(TABLES)

    async def work(db: DatabaseManager) -> None:
        counts = await db.count_rows()
        handle: IO[str] = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            total = sum(counts[name] for name in tables)
            progress = _progress() if output and total >= PROGRESS_MIN_ROWS else None
            task = progress.add_task(f"export to {output}", total=total) if progress else None
            if progress:
                progress.start()
            try:
                for name in tables:
                    write = _row_writer(handle, name, fmt, tagged=table_name is None)
                    async for row in db.iter_rows(name, batch_size=EXPORT_BATCH):
                        write(row)
                        if progress and task is not None:
                            progress.advance(task)
            finally:
                if progress:
                    progress.stop()
        finally:
            if output:
                handle.close()
        if output:
            typer.echo(f"exported {total} rows to {output}", err=True)

    _run(ctx, work)


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
    if not url.lower().startswith(("postgresql://", "postgres://")):
        _fail(f"URL must start with postgresql:// or postgres://, got {url!r}")
    if not source.is_file():
        _fail(f"no database at {source}")
    try:
        copied = asyncio.run(_copy(source, url, append))
    except DatabaseError as exc:
        _fail(" ".join(str(exc).split()))
    if as_json:
        _echo_json(copied)
        return
    console = new_console()
    rows = [[name, f"{count:,}"] for name, count in copied.items()]
    console.print(table(None, ["Table", "Rows"], rows))
    console.print(f"copied {sum(copied.values()):,} rows from {source}")


async def _copy(source: Path, url: str, append: bool) -> dict[str, int]:
    from adw_db_copy import copy_sqlite_to_postgres  # needs asyncpg: only imported here

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


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
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
    """NULL is an empty cell; JSON columns hold the JSON text the store keeps."""
    if value is None:
        return ""
    if is_json:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


if __name__ == "__main__":
    app()
