"""Regenerate the templates from the BASE, so the two can never drift apart.

Every file under ``BASE_DIRS`` becomes ``templates/<same path>.j2``: its text wrapped in
``{% raw %}`` so that ``{{``, ``{%`` and ``{#`` in the code survive rendering, except the
lines listed in ``VARIABLE_LINES``, which take their value from ``config.yml``. The list of
BASE templates in ``scaffold_service.py`` is rewritten to match, so a new BASE module needs
no hand edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tac_bootstrap.application.scaffold_service import BASE_DIRS, BASE_ONLY
from tac_bootstrap.infrastructure.template_repository import TEMPLATE_SUFFIX

__all__ = [
    "VARIABLE_LINES",
    "SyncResult",
    "base_files",
    "sync_templates",
    "templatize",
    "update_registry_source",
]


@dataclass(frozen=True)
class VariableLine:
    pattern: re.Pattern[str]  # must match exactly one whole line of the BASE file
    template_line: str


VARIABLE_LINES = {
    "adws/adw_modules/adw_database.py": (
        VariableLine(
            re.compile(r"^DEFAULT_DB_PATH = .*$", re.MULTILINE),
            "DEFAULT_DB_PATH = {{ config.database.path | python_string }}",
        ),
        VariableLine(
            re.compile(r"^DEFAULT_DATABASE_URL: .*$", re.MULTILINE),
            "DEFAULT_DATABASE_URL: str | None = {{ config.database.url | python_optional_string }}",
        ),
    ),
}

_END_RAW = re.compile(r"\{%-?\s*endraw\s*-?%\}")
_REGISTRY_BLOCK = re.compile(
    r"(# BEGIN BASE templates[^\n]*\n)BASE_TEMPLATES = \(\n.*?\)\n(# END BASE templates)",
    re.DOTALL,
)


@dataclass(frozen=True)
class SyncResult:
    written: list[str]
    removed: list[str]
    registry_changed: bool


def base_files(project_root: Path) -> list[str]:
    """Every BASE file projects receive, as POSIX paths relative to the project root."""
    found = []
    for folder in BASE_DIRS:
        for path in sorted((project_root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found.append(path.relative_to(project_root).as_posix())
    return [name for name in found if name not in BASE_ONLY]


def templatize(text: str, relative: str) -> str:
    """The template whose rendering with the default config is ``text`` again."""
    spans = []
    for variable in VARIABLE_LINES.get(relative, ()):
        matches = list(variable.pattern.finditer(text))
        if len(matches) != 1:
            raise ValueError(
                f"{relative}: expected one line matching {variable.pattern.pattern!r}, "
                f"found {len(matches)}"
            )
        spans.append((*matches[0].span(), variable.template_line))
    pieces, done = [], 0
    for start, end, template_line in sorted(spans):
        pieces += [_raw(text[done:start]), template_line]
        done = end
    return "".join(pieces) + _raw(text[done:])


def update_registry_source(source: str, paths: list[str]) -> str:
    """``scaffold_service.py``'s text with its BASE template list set to ``paths``."""
    entries = "".join(f'    "{path}",\n' for path in paths)
    updated, count = _REGISTRY_BLOCK.subn(
        lambda m: f"{m.group(1)}BASE_TEMPLATES = (\n{entries})\n{m.group(2)}", source
    )
    if count != 1:
        raise ValueError("scaffold_service.py: the BASE templates block is missing")
    return updated


def sync_templates(project_root: Path, templates_root: Path, registry_file: Path) -> SyncResult:
    wanted = base_files(project_root)
    written = []
    for relative in wanted:
        text = (project_root / relative).read_text(encoding="utf-8")
        template = templates_root / (relative + TEMPLATE_SUFFIX)
        content = templatize(text, relative)
        if not template.exists() or template.read_text(encoding="utf-8") != content:
            template.parent.mkdir(parents=True, exist_ok=True)
            template.write_text(content, encoding="utf-8")
            written.append(relative)
    removed = []
    for folder in BASE_DIRS:
        for template in sorted((templates_root / folder).rglob("*" + TEMPLATE_SUFFIX)):
            relative = template.relative_to(templates_root).as_posix()[: -len(TEMPLATE_SUFFIX)]
            if relative not in wanted:
                template.unlink()
                removed.append(relative)
    source = registry_file.read_text(encoding="utf-8")
    updated = update_registry_source(source, wanted)
    if updated != source:
        registry_file.write_text(updated, encoding="utf-8")
    return SyncResult(written, removed, updated != source)


def _raw(text: str) -> str:
    """``text`` as a Jinja2 raw block; a literal ``{% endraw %}`` inside is emitted as an
    expression, since nothing can escape it inside the block."""
    if not text:
        return ""
    parts = []
    position = 0
    for match in _END_RAW.finditer(text):
        parts.append(_raw_block(text[position : match.start()]))
        parts.append("{{ " + _jinja_string(match.group(0)) + " }}")
        position = match.end()
    parts.append(_raw_block(text[position:]))
    return "".join(parts)


def _raw_block(text: str) -> str:
    return "{% raw %}" + text + "{% endraw %}" if text else ""


def _jinja_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
