"""Show a plan the way a user reads it: one line per file, the action first.

A vendored folder whose files all share one action is one line (``create
adws/vendor/orchestrator-store/ (27 files)``); when its files differ (a conflict
among them), each is listed.
"""

from __future__ import annotations

from itertools import groupby

from rich.console import Console
from rich.markup import escape

from tac_bootstrap.domain.plan import Action, Plan, PlannedFile

__all__ = ["show_plan"]

_STYLES = {
    Action.CREATE: "green",
    Action.UPDATE: "cyan",
    Action.IDENTICAL: "dim",
    Action.CONFLICT: "bold red",
    Action.OVERWRITE: "yellow",
    Action.SKIP: "dim",
}
_WIDTH = max(len(action.value) for action in Action)


def show_plan(console: Console, plan: Plan, *, dry_run: bool) -> None:
    heading = "would render into" if dry_run else "rendering into"
    console.print(f"{heading} {escape(str(plan.output_dir))}")
    for group, members in groupby(plan.files, key=lambda planned: planned.group):
        files = list(members)
        actions = {planned.action for planned in files}
        if group is not None and len(actions) == 1:
            _line(console, files[0].action, f"{group}/ ({len(files)} files)")
            continue
        for planned in files:
            _show_file(console, planned)


def _show_file(console: Console, planned: PlannedFile) -> None:
    _line(console, planned.action, str(planned.target))
    for note in planned.notes:
        console.print(f"  {' ' * _WIDTH}    [dim]{escape(note)}[/dim]")


def _line(console: Console, action: Action, target: str) -> None:
    style = _STYLES[action]
    console.print(f"  [{style}]{action.value.ljust(_WIDTH)}[/{style}]  {escape(target)}")
