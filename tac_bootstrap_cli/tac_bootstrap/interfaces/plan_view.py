"""Show a plan the way a user reads it: one line per file, the action first."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from tac_bootstrap.domain.plan import Action, Plan

__all__ = ["show_plan"]

_STYLES = {
    Action.CREATE: "green",
    Action.UPDATE: "cyan",
    Action.IDENTICAL: "dim",
    Action.CONFLICT: "bold red",
    Action.OVERWRITE: "yellow",
    Action.SKIP: "dim",
}


def show_plan(console: Console, plan: Plan, *, dry_run: bool) -> None:
    heading = "would render into" if dry_run else "rendering into"
    console.print(f"{heading} {escape(str(plan.output_dir))}")
    width = max(len(action.value) for action in Action)
    for planned in plan.files:
        style = _STYLES[planned.action]
        label = planned.action.value.ljust(width)
        console.print(f"  [{style}]{label}[/{style}]  {escape(str(planned.target))}")
