"""How the store's command line shows things: Rich tables, coloured log lines,
sizes, money, durations, and JSON for machines. No store access here.

Everything the store holds is untrusted text (much of it is model output): it
is shown as plain text, never as Rich markup, and control characters are
written as escapes (``\\x1b``) so that none of them reaches the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .models import (
    AGENT_STATUSES,
    PROMPT_STATUSES,
    WORKFLOW_STATUSES,
    AgentStatus,
    ChatParty,
    LogLevel,
    PromptStatus,
    WorkflowStatus,
)

__all__ = [
    "LEVEL_STYLES",
    "PARTY_STYLES",
    "STATUS_STYLES",
    "bytes_text",
    "chat_table",
    "duration_text",
    "field",
    "json_text",
    "log_line",
    "money",
    "money_amount",
    "plain",
    "plain_lines",
    "seconds_text",
    "short_id",
    "table",
    "time_text",
]

# Keyed by the store's own values (models), so that mypy refuses a key that
# models does not define. A level without a style is shown plain.
LEVEL_STYLES: dict[LogLevel, str] = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}
# Agents', prompts' and workflows' statuses: those that are settled (or not
# begun) have a style of their own; every other one, whatever models adds, is
# work under way.
_SETTLED_STYLES: dict[AgentStatus | PromptStatus | WorkflowStatus, str] = {
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "pending": "dim",
}
STATUS_STYLES: dict[str, str] = {
    status: _SETTLED_STYLES.get(status, "cyan")
    for status in (*AGENT_STATUSES, *PROMPT_STATUSES, *WORKFLOW_STATUSES)
}
# Who speaks in a chat: each party in a colour of its own, so that turns stand out.
PARTY_STYLES: dict[ChatParty, str] = {"user": "bold", "orchestrator": "magenta", "agent": "cyan"}
NUMERIC_COLUMNS = ("agents", "active", "prompts", "rows")
NUMERIC_WORDS = ("cost", "tokens", "latency", "duration")
# Short ids, statuses and times never wrap (cut, they would mislead); other text
# (sessions, names, messages) folds, down to MIN_TEXT_WIDTH, only when a table
# is still too wide once its optional columns are gone.
WHOLE_COLUMNS = ("id", "status", "started", "first", "last", "created", "day")
MIN_TEXT_WIDTH = 16
# An id's last characters: its random part (time-ordered ids share their first
# ones). Enough to tell agents apart at a glance; `agent ID` takes them.
SHORT_ID = 8
# Money is shown, and summed, in steps of $0.0001 (rounded half up).
MONEY_STEP = Decimal("0.0001")

# Characters a terminal acts on instead of showing: C0 controls (ESC starts
# colour, cursor and title sequences), DEL, C1 controls (0x9b is a one-byte
# CSI) and the bidirectional overrides that reorder what is shown.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS = (*range(0x20), *range(0x7F, 0xA0), *_BIDI)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(code: int) -> str:
    return _NAMED.get(chr(code)) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_ESCAPES = {code: _escape(code) for code in _CONTROLS}
_LINE_ESCAPES = {code: text for code, text in _ESCAPES.items() if chr(code) not in "\n\t"}
# JSON already escapes C0 controls; these others are valid raw in a JSON string.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), *_BIDI)}


def plain(value: object) -> str:
    """``value`` as one line of inert text: every control character, newlines
    and tabs too, written as an escape such as ``\\x1b``."""
    return str(value).translate(_ESCAPES)


def plain_lines(value: object, indent: str) -> str:
    """Free text (a log message, an error) as inert text that keeps its lines
    and tabs; continuation lines are indented so none passes for a row."""
    return str(value).translate(_LINE_ESCAPES).replace("\n", "\n" + indent)


def short_id(value: str | None) -> str:
    """An id's last ``SHORT_ID`` characters (``-`` for none), as inert text."""
    return plain(value[-SHORT_ID:]) if value else "-"


def money_amount(value: float | Decimal) -> Decimal:
    """Dollars rounded half up to the shown step: the same figure everywhere."""
    amount = Decimal(str(value)).quantize(MONEY_STEP, rounding=ROUND_HALF_UP)
    return amount + 0  # no "-0.0000"


def money(value: float | Decimal) -> str:
    """Dollars as shown: ``$1,234.5678`` (see ``money_amount``)."""
    return f"${money_amount(value):,}"


def bytes_text(size: int) -> str:
    """A size: whole bytes below 1 KiB, else KiB, MiB or GiB to one decimal."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def time_text(stamp: str | None) -> str:
    """The store's timestamps, to the second, without the constant offset."""
    return plain(stamp[:19].replace("T", " ")) if stamp else "-"


def duration_text(start: str, end: str | None) -> str:
    """``end - start``; a running agent's duration counts up to now."""
    finish = datetime.fromisoformat(end) if end else datetime.now(UTC)
    text = seconds_text((finish - datetime.fromisoformat(start)).total_seconds())
    return text if end else f"{text}+"


def seconds_text(seconds: float) -> str:
    """A duration in whole seconds: ``4m05s``, or ``2h07m`` from an hour on."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, whole = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{whole:02d}s"


def styled(value: str, styles: dict[str, str]) -> Text:
    """``value`` as inert text, in the style ``styles`` gives it (else plain)."""
    return Text(plain(value), style=styles.get(value, ""))


def field(label: str, value: object, *, width: int, style: str = "") -> Text:
    """``label`` padded to ``width``, then ``value`` as inert text (one line)."""
    shown = value if isinstance(value, Text) else Text(plain(value), style=style)
    return Text(label.ljust(width)) + shown


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    console: Console | None = None,
    optional: Sequence[str] = (),
) -> Table:
    """A table whose figures are right-aligned and whose ids, times and figures
    never wrap. On a ``console`` too narrow for it, ``optional`` columns are
    left out (the first listed first) until it fits, then those that still fit
    are put back (the last listed first): ids stay whole, rows keep to one line."""
    cells = [
        [cell if isinstance(cell, Text) else Text(plain(cell)) for cell in row] for row in rows
    ]

    def fits(shown: Sequence[str]) -> bool:
        grid = _grid(title, columns, shown, cells)
        return console is None or _natural_width(console, grid) <= console.width

    shown = list(columns)
    dropped = []
    for column in optional:
        if fits(shown):
            break
        shown.remove(column)
        dropped.append(column)
    for column in reversed(dropped):
        wider = [name for name in columns if name in shown or name == column]
        if fits(wider):
            shown = wider
    return _grid(title, columns, shown, cells)


def _grid(
    title: str | None, columns: Sequence[str], shown: Sequence[str], cells: list[list[Text]]
) -> Table:
    grid = Table(
        title=Text(plain(title)) if title is not None else None,
        title_justify="left",
        header_style="bold",
    )
    picked = [index for index, column in enumerate(columns) if column in shown]
    for index in picked:
        header = columns[index]
        name = header.lower()
        numeric = name in NUMERIC_COLUMNS or any(word in name for word in NUMERIC_WORDS)
        whole = numeric or name in WHOLE_COLUMNS
        longest = max((row[index].cell_len for row in cells), default=0)
        grid.add_column(
            Text(header),
            justify="right" if numeric else "left",
            no_wrap=whole,
            # Text folds when nothing else is left to give way, but never to nothing.
            min_width=len(header) if whole else max(len(header), min(longest, MIN_TEXT_WIDTH)),
            overflow="fold",
        )
    for row in cells:
        grid.add_row(*(row[index] for index in picked))
    return grid


def _natural_width(console: Console, grid: Table) -> int:
    """How wide ``grid`` is when nothing in it wraps."""
    return Measurement.get(console, console.options.update_width(1_000_000), grid).maximum


def log_line(row: dict[str, Any]) -> Text:
    """One log row: time, level (coloured), where it came from, message."""
    if row["source"] == "agent":
        origin = f"agent {short_id(row['agent_id'])} {plain(row['log_type'])}"
    else:
        origin = f"system {plain(row['component'])}"
    level = plain(row["log_level"])
    line = Text(time_text(row["created_at"]) + "  ")
    line.append(f"{level:<8}", style=LEVEL_STYLES.get(row["log_level"], ""))
    line.append(f"  {origin}  ", style="dim")
    line.append(plain_lines(row["message"], "    "))
    if row["details"] is not None:
        line.append(" " + json_text(row["details"]), style="dim")
    return line


def chat_table(title: str, rows: Iterable[dict[str, Any]]) -> Table:
    """Chat messages in the order given: time, sender -> receiver, the agent's
    short id, then the whole message, wrapped in a column of its own (its lines
    kept), with its summary, if any, on the lines below it."""
    grid = Table(
        title=Text(plain(title)),
        title_justify="left",
        header_style="bold",
        box=None,
        pad_edge=False,
    )
    for header in ("Time", "From -> to", "Agent"):
        grid.add_column(Text(header), no_wrap=True)
    grid.add_column(Text("Message"), overflow="fold")
    for row in rows:
        message = Text(plain_lines(row["message"], ""))
        if row["summary"]:
            message.append("\nsummary: " + plain_lines(row["summary"], "  "), style="dim")
        grid.add_row(
            Text(time_text(row["created_at"])),
            _party(row["sender_type"]) + Text(" -> ") + _party(row["receiver_type"]),
            Text(short_id(row["agent_id"])),
            message,
        )
    return grid


def _party(value: Any) -> Text:
    """A chat party (a store value: Any, as ``PARTY_STYLES`` is keyed by ``ChatParty``)."""
    return Text(plain(value), style=PARTY_STYLES.get(value, ""))


def json_text(value: Any, *, indent: int | None = None) -> str:
    """JSON whose strings cannot act on a terminal (still the same JSON values)."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, default=_json_default)
    return text.translate(_JSON_ESCAPES)


def _json_default(value: Any) -> Any:
    """Money rounded with ``money_amount``: its float prints the same digits."""
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def new_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that adds no colour of its own: Rich would
    otherwise highlight numbers and ids in messages at random."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)
