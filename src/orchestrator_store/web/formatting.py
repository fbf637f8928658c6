"""How the dashboard shows values: the Jinja2 filters every page uses.

They return plain strings; escaping is the templates' (autoescape), never theirs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "FILTERS",
    "duration",
    "moment",
    "money",
    "parse_moment",
    "tokens",
    "visible",
]


def money(value: Any) -> str:
    """Dollars to $0.0001, the store's rounding of summed costs."""
    if value is None:
        return "-"
    return f"${float(value):,.4f}"


def tokens(value: Any) -> str:
    """An integer count with thousands separators."""
    if value is None:
        return "-"
    return f"{int(value):,}"


def parse_moment(value: Any) -> datetime | None:
    """A stored time (ISO 8601 text, or a datetime from PostgreSQL) as an aware datetime."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def moment(value: Any) -> str:
    """A time in UTC to the second: ``2026-11-30 07:39:00``."""
    parsed = parse_moment(value)
    return "-" if parsed is None else parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: Any) -> str:
    """Seconds as ``850 ms``, ``12.3 s``, ``4m05s`` or ``2h07m``."""
    if seconds is None:
        return "-"
    value = float(seconds)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _stand_in(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ESC shows as ␛
    if code == 0x7F:
        return "\u2421"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with its invisible characters (controls, bidirectional overrides)
    as visible stand-ins: a stored terminal escape shows as ``␛]0;...``, and no
    stored text can reorder what is shown around it. Every template output passes
    here (the environment's ``finalize``), after which autoescape escapes markup."""
    return _INVISIBLE.sub(_stand_in, text) if _INVISIBLE.search(text) else text


FILTERS = {"money": money, "tokens": tokens, "moment": moment, "duration": duration}
