"""The ``tac-bootstrap`` command: ``init``, ``render`` and ``demo``.

Exit codes: 0 done (or nothing to do), 1 conflicts left untouched, 2 bad usage, bad config
or an unsafe path. Nothing ever prompts: every value has an option and a default, so the
command behaves the same in a terminal, a script or CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pydantic
import typer
from rich.console import Console
from rich.markup import escape

from tac_bootstrap import __version__
from tac_bootstrap.application.scaffold_service import (
    PYPROJECT,
    VENDOR_DIR,
    apply_plan,
    build_plan,
)
from tac_bootstrap.domain.config import DatabaseConfig, ProjectConfig
from tac_bootstrap.domain.errors import ConfigError, TacBootstrapError
from tac_bootstrap.domain.plan import Plan
from tac_bootstrap.infrastructure.config_file import CONFIG_FILE_NAME, dump_config, load_config
from tac_bootstrap.interfaces.plan_view import show_plan

__all__ = ["app", "main"]

EXIT_CONFLICTS = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="tac-bootstrap",
    help="Put the orchestrator store into a project: its package vendored, seed modules rendered.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Print the plan (create/identical/conflict/...), write nothing."
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Overwrite files that differ (conflicts).")]


def _show_version(value: bool) -> None:
    if value:
        out.print(f"tac-bootstrap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Put the orchestrator store into a project: its package vendored, seed modules rendered."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder (created if missing).")] = Path(
        "."
    ),
    db_path: Annotated[
        str | None,
        typer.Option(
            "--db-path",
            help="Database file, relative to the project root.",
            show_default="orchestrator.db",
        ),
    ] = None,
    dry_run: DryRun = False,
    force: Force = False,
) -> None:
    """Write a default config.yml if the project has none, then render the store into it."""
    with _reported_errors():
        config, config_text = _init_config(directory, db_path)
        plan = build_plan(config, directory, force=force, config_file=config_text)
        _run(plan, dry_run=dry_run)


@app.command()
def render(
    config: Annotated[Path, typer.Argument(help="The project's config.yml.")] = Path(
        CONFIG_FILE_NAME
    ),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Project folder to render into.",
            show_default="the config's folder",
        ),
    ] = None,
    dry_run: DryRun = False,
    force: Force = False,
) -> None:
    """Render the store into a project as its config.yml says."""
    with _reported_errors():
        project = load_config(config)
        plan = build_plan(project, output or config.parent, force=force)
        _run(plan, dry_run=dry_run)


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Where to scaffold the demo project.",
            show_default="a temporary folder, removed afterwards",
        ),
    ] = None,
) -> None:
    """Scaffold a demo uv project, then run its store with uv: record a multi-agent session
    and show it, and run the rendered tests."""
    with _reported_errors():
        if directory is not None:
            raise typer.Exit(_demo_in(directory, kept=True))
        with tempfile.TemporaryDirectory(prefix="tac-bootstrap-demo-") as folder:
            raise typer.Exit(_demo_in(Path(folder) / "demo_project", kept=False))


def _demo_in(directory: Path, *, kept: bool) -> int:
    """What a user does, in ``directory``: a uv project, tac-bootstrap into it, then the
    store's demo and the rendered tests, each with ``uv run`` and no other step; last, how
    to look at the store the demo wrote in the dashboard."""
    uv = _uv()
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "pyproject.toml").exists():
        init = [uv, "init", "--bare", "--no-workspace", "--name", "demo-project"]
        if _step(init, directory, first=True) != 0:
            return 1
    config = ProjectConfig()
    plan = build_plan(config, directory, config_file=dump_config(config))
    _run(plan, dry_run=False)
    for command in (
        ["adws/adw_modules/adw_database.py", "--demo"],
        ["pytest", "-q", "-p", "no:cacheprovider", "adws/adw_tests"],
    ):
        if _step([uv, "run", *command], directory, output=True) != 0:
            return 1
    _tell_dashboard(directory.resolve(), config.database.path, kept=kept)
    return 0


def _tell_dashboard(directory: Path, database: str, *, kept: bool) -> None:
    """How to open the demo's store in ``orchestrator-store serve`` (the store's `web`
    extra; this repository's environment has it)."""
    out.print()
    if kept:
        out.print("see what the demo recorded in the live dashboard (read-only):")
        out.print(f"  uv run orchestrator-store serve --db {escape(str(directory / database))}")
        return
    out.print("the demo's folder is removed now; to see its store in the live dashboard:")
    out.print("  uv run tac-bootstrap demo DIR")
    out.print(f"  uv run orchestrator-store serve --db DIR/{escape(database)}")


def _uv() -> str:
    """The uv binary: the one running us (``uv run`` sets ``$UV``), else the PATH's."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        raise TacBootstrapError(
            "the demo runs the project with uv, which is not installed: pip install uv"
        )
    return found


def _step(command: list[str], directory: Path, *, output: bool = False, first: bool = False) -> int:
    """Run one of the demo's uv commands in the demo project, shown as it runs; print
    its output when ``output``, and uv's own messages only when it fails."""
    shown = " ".join(["uv", *command[1:]])  # command[0] is uv's full path
    blank = "" if first else "\n"
    out.print(f"{blank}$ {escape(shown)}   [dim](in {escape(str(directory))})[/dim]")
    done = subprocess.run(
        command,
        cwd=directory,
        env=_demo_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if output:
        out.print(escape(done.stdout), end="")
    if done.returncode != 0:
        err.print(escape(done.stderr), end="")
    return done.returncode


def _demo_env() -> dict[str, str]:
    """Our environment without what would point the demo elsewhere: a database the
    user chose, or the virtual environment tac-bootstrap itself runs in."""
    dropped = ("ORCHESTRATOR_DB_PATH", "ORCHESTRATOR_DATABASE_URL", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.setdefault("UV_PYTHON", sys.executable)  # the Python tac-bootstrap runs on
    return env


def _init_config(directory: Path, db_path: str | None) -> tuple[ProjectConfig, str]:
    """The configuration to render with, and the config.yml text to create if missing."""
    existing = directory / CONFIG_FILE_NAME
    if existing.exists():
        config = load_config(existing)
        if db_path is not None and db_path != config.database.path:
            raise ConfigError(
                str(existing),
                "database.path",
                f"is {config.database.path!r}, not {db_path!r}: edit the file and run "
                "`tac-bootstrap render`",
            )
        return config, dump_config(config)
    try:
        database = DatabaseConfig() if db_path is None else DatabaseConfig(path=db_path)
    except pydantic.ValidationError as exc:
        raise ConfigError("--db-path", None, exc.errors()[0]["msg"]) from exc
    config = ProjectConfig(database=database)
    return config, dump_config(config)


def _run(plan: Plan, *, dry_run: bool) -> None:
    show_plan(out, plan, dry_run=dry_run)
    conflicts = plan.conflicts
    if conflicts:
        err.print(
            f"{len(conflicts)} conflict(s): the files differ from what would be written and "
            "were left untouched; rerun with --force to overwrite them"
            + ("" if dry_run else ", nothing was written")
        )
        raise typer.Exit(EXIT_CONFLICTS)
    if dry_run:
        out.print("dry run: nothing written")
        return
    written = apply_plan(plan)
    out.print(f"{len(written)} file(s) written, {len(plan.files) - len(written)} unchanged")
    if not any(planned.target == PYPROJECT for planned in plan.files):
        out.print(
            "no pyproject.toml here: install the vendored store into your environment with\n"
            + escape(f'  pip install -e "./{VENDOR_DIR}[cli]" pytest')
        )


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Turn the scaffolder's errors into one line on stderr and an exit code: no traceback."""
    try:
        yield
    except TacBootstrapError as exc:
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from exc
    except OSError as exc:  # e.g. permission denied: the plan was fine, the disk said no
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(EXIT_CONFLICTS) from exc


def main() -> None:
    app()
