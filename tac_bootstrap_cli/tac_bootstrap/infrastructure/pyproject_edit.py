"""The entries tac-bootstrap manages in a project's own ``pyproject.toml``.

The file is the user's: like ``.gitignore``, it is never replaced. tac-bootstrap
adds what the vendored store needs (a dependency on it, where uv finds it, and
pytest for the rendered smoke suite) and leaves every other line, comment and
format as it is (tomlkit edits in place). An entry of ours that is there with
another value is a conflict, never silently changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import tomlkit
import tomlkit.items
from tomlkit.exceptions import TOMLKitError

from tac_bootstrap.domain.errors import TacBootstrapError

__all__ = ["PyprojectMerge", "StoreRequirements", "merge_pyproject"]


@dataclass(frozen=True)
class StoreRequirements:
    """What the project needs to use its vendored store."""

    distribution: str  # orchestrator-store
    requirement: str  # orchestrator-store[cli]
    vendored_at: str  # the vendored folder, relative to the project root
    dev_requirements: tuple[str, ...]  # for the rendered tests: pytest


@dataclass(frozen=True)
class PyprojectMerge:
    text: str  # the whole file with our entries in place
    state: str  # "absent" (added), "same" or "different" (replaced in ``text``)
    differences: tuple[str, ...]  # what differs, for the conflict message


def merge_pyproject(existing: str, needs: StoreRequirements) -> PyprojectMerge:
    """``existing`` with the store's entries added; what was there is kept."""
    try:
        document = tomlkit.parse(existing)
    except TOMLKitError as exc:
        raise TacBootstrapError(f"pyproject.toml: not valid TOML ({exc})") from exc
    project = document.get("project")
    if not isinstance(project, dict):
        raise TacBootstrapError("pyproject.toml: no [project] table to add the store to")

    added: list[str] = []
    differences: list[str] = []
    _require(project, "dependencies", needs.distribution, needs.requirement, added, differences)
    groups = _table(document, "dependency-groups")
    for requirement in needs.dev_requirements:
        name = _name(requirement)
        _require(groups, "dev", name, requirement, added, differences, exact=False)
    sources = _table(_table(_table(document, "tool"), "uv"), "sources")
    wanted_source = {"path": needs.vendored_at, "editable": True}
    current = sources.get(needs.distribution)
    if current is None:
        sources[needs.distribution] = _inline(wanted_source)
        added.append("tool.uv.sources")
    elif dict(current) != wanted_source:
        sources[needs.distribution] = _inline(wanted_source)
        differences.append(f"tool.uv.sources.{needs.distribution} is {dict(current)}")

    state = "different" if differences else "absent" if added else "same"
    return PyprojectMerge(tomlkit.dumps(document), state, tuple(differences))


def _require(
    table: Any,
    key: str,
    name: str,
    requirement: str,
    added: list[str],
    differences: list[str],
    *,
    exact: bool = True,
) -> None:
    """Make ``table[key]`` (a list of requirements) hold ``requirement``. A requirement
    on the same distribution that differs is a difference when ``exact`` (ours), and
    the user's choice otherwise (a pinned pytest is fine)."""
    if key not in table:
        table[key] = tomlkit.array()
    entries = table[key]
    if not isinstance(entries, list):
        raise TacBootstrapError(f"pyproject.toml: {key} is not a list")
    for position, entry in enumerate(entries):
        if isinstance(entry, str) and _name(entry) == name:
            if exact and entry != requirement:
                differences.append(f"{key} has {entry!r}, not {requirement!r}")
                entries[position] = requirement
            return
    entries.append(requirement)
    if isinstance(entries, tomlkit.items.Array):  # one entry per line once there are several
        entries.multiline(len(entries) > 1)
    added.append(key)


def _table(parent: Any, key: str) -> Any:
    if key not in parent:
        parent[key] = tomlkit.table(is_super_table=key in ("tool", "uv"))
    table = parent[key]
    if not isinstance(table, dict):
        raise TacBootstrapError(f"pyproject.toml: {key} is not a table")
    return table


def _inline(values: dict[str, Any]) -> Any:
    table = tomlkit.inline_table()
    table.update(values)
    return table


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalised (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    name = match.group(1) if match else requirement
    return re.sub(r"[-_.]+", "-", name).lower()
