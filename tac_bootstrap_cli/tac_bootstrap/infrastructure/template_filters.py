"""Jinja2 filters that put a config value safely into a given kind of file."""

from __future__ import annotations

import json
import re

__all__ = [
    "FILTERS",
    "gitignore_path",
    "python_optional_string",
    "python_string",
    "toml_string",
]


def python_string(value: str) -> str:
    """A double-quoted Python string literal for ``value``.

    A JSON string is a valid Python literal (same escapes for quotes, backslashes and
    control characters); ``ensure_ascii=False`` keeps non-ASCII characters whole instead of
    splitting them into surrogate escapes. ``orchestrator.db`` renders as
    ``"orchestrator.db"``, exactly as the BASE spells it.
    """
    return json.dumps(value, ensure_ascii=False)


def python_optional_string(value: str | None) -> str:
    """``None``, or a string literal as ``python_string`` writes it."""
    return "None" if value is None else python_string(value)


def toml_string(value: str) -> str:
    """A TOML basic string for ``value``: JSON's string escapes are TOML's too."""
    return json.dumps(value, ensure_ascii=False)


# Characters that git's wildmatch reads as patterns (\ * ? [ ]), or as negation / comment
# (! #, at the start of a pattern); each gets a backslash, which git reads as "this one as is".
_GITIGNORE_SPECIAL = re.compile(r"([\\*?\[\]!#])")


def gitignore_path(value: str) -> str:
    """A ``.gitignore`` pattern matching exactly this file, anchored at the project root.

    ``value`` is relative to the project root with ``/`` between folders; ``.`` and empty
    parts are dropped as the file system does. A backslash is a character of the name (as
    on Linux and macOS), so it is escaped like the wildcards.
    """
    parts = [part for part in value.split("/") if part not in ("", ".")]
    escaped = _GITIGNORE_SPECIAL.sub(r"\\\1", "/".join(parts))
    if escaped.endswith(" "):  # git drops unescaped trailing spaces
        escaped = escaped[:-1] + "\\ "
    return "/" + escaped


FILTERS = {
    "python_string": python_string,
    "python_optional_string": python_optional_string,
    "gitignore_path": gitignore_path,
    "toml_string": toml_string,
}
