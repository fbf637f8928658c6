"""How the store's command line shows things: Rich tables, coloured log lines,
sizes, money, durations, and JSON for machines. No store access here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "LEVEL_STYLES",
    "STATUS_STYLES",
    "bytes_text",
    "duration_text",
    "json_text",
    "log_line",
    "money",
    "short_id",
    "table",
    "time_text",
]

LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}
STATUS_STYLES = {
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "executing": "cyan",
    "planning": "cyan",
    "reviewing": "cyan",
    "initializing": "cyan",
    "pending": "dim",
    "streaming": "cyan",
}
NUMERIC_COLUMNS = ("agents", "active", "prompts", "rows")
NUMERIC_WORDS = ("cost", "tokens", "latency", "duration")
# An id's last characters: its random part (time-ordered ids share their first
# ones). Enough to tell agents apart at a glance; `agent ID` takes them.
SHORT_ID = 8


def short_id(value: str | None) -> str:
    return value[-SHORT_ID:] if value else "-"


def money(value: float) -> str:
    return f"${value:,.4f}"


def bytes_text(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def time_text(stamp: str | None) -> str:
    """The store's timestamps, to the second, without the constant offset."""
    return stamp[:19].replace("T", " ") if stamp else "-"


def duration_text(start: str, end: str | None) -> str:
    """``end - start``; a running agent's duration counts up to now."""
    finish = datetime.fromisoformat(end) if end else datetime.now(UTC)
    seconds = max(0, int((finish - datetime.fromisoformat(start)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
    return text if end else f"{text}+"


def styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A table whose figures are right-aligned and whose ids, times and figures
    never wrap (other columns give way when the terminal is narrow)."""
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        name = column.lower()
        numeric = name in NUMERIC_COLUMNS or any(word in name for word in NUMERIC_WORDS)
        keep_whole = numeric or name in ("id", "started", "first", "last", "created", "status")
        grid.add_column(
            column,
            justify="right" if numeric else "left",
            no_wrap=keep_whole,
            min_width=len(column),
            overflow="fold",
        )
    for row in rows:
        grid.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return grid


def log_line(row: dict[str, Any]) -> Text:
    """One log row: time, level (coloured), where it came from, message."""
    if row["source"] == "agent":
        origin = f"agent {short_id(row['agent_id'])} {row['log_type']}"
    else:
        origin = f"system {row['component']}"
    line = Text(time_text(row["created_at"]) + "  ")
    line.append(f"{row['log_level']:<8}", style=LEVEL_STYLES.get(row["log_level"], ""))
    line.append(f"  {origin}  ", style="dim")
    line.append(row["message"])
    if row["details"] is not None:
        line.append(" " + json_text(row["details"]), style="dim")
    return line


def json_text(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def new_console(*, stderr: bool = False) -> Console:
    # highlight=False: Rich would otherwise colour numbers and ids in messages at random.
    return Console(stderr=stderr, highlight=False, soft_wrap=False)
