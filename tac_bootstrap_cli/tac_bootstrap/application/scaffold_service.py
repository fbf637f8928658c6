"""The registry of what is rendered where, building a plan, and applying it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from tac_bootstrap.domain.config import SIDE_FILE_SUFFIXES, ProjectConfig, project_relative
from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.domain.plan import Action, Plan, PlannedFile
from tac_bootstrap.infrastructure.atomic_write import write_atomic
from tac_bootstrap.infrastructure.config_file import CONFIG_FILE_NAME
from tac_bootstrap.infrastructure.managed_block import merge_block
from tac_bootstrap.infrastructure.safe_paths import resolve_inside
from tac_bootstrap.infrastructure.template_repository import TEMPLATE_SUFFIX, TemplateRepository

__all__ = [
    "BASE_DIRS",
    "BASE_ONLY",
    "REGISTRY",
    "TemplateEntry",
    "WriteMode",
    "apply_plan",
    "build_plan",
    "database_files",
    "render_registry",
]


class WriteMode(Enum):
    WHOLE_FILE = "whole file"  # the file is ours: any difference is a conflict
    MANAGED_BLOCK = "managed block"  # only a fenced block in a user's file is ours


@dataclass(frozen=True)
class TemplateEntry:
    template: str  # path under tac_bootstrap/templates/
    target: PurePosixPath  # path in the generated project
    mode: WriteMode = WriteMode.WHOLE_FILE


# The folders of the BASE (this repository's adws/) that every project gets a copy of.
BASE_DIRS = ("adws/adw_modules", "adws/schema", "adws/adw_tests")

# BASE files that stay in this repository, with the reason.
BASE_ONLY = {
    "adws/adw_tests/test_readme.py": "runs this repository's README example; "
    "projects have their own README",
}

# BEGIN BASE templates (written by scripts/sync_templates.py; do not edit by hand)
BASE_TEMPLATES = (
    "adws/adw_modules/adw_database.py",
    "adws/adw_modules/adw_db_backend.py",
    "adws/adw_modules/adw_db_checkpointer.py",
    "adws/adw_modules/adw_db_coalesce.py",
    "adws/adw_modules/adw_db_copy.py",
    "adws/adw_modules/adw_db_errors.py",
    "adws/adw_modules/adw_db_ids.py",
    "adws/adw_modules/adw_db_location.py",
    "adws/adw_modules/adw_db_ownership.py",
    "adws/adw_modules/adw_db_postgres.py",
    "adws/adw_modules/adw_db_reports.py",
    "adws/adw_modules/adw_db_schema.py",
    "adws/adw_modules/adw_db_shield.py",
    "adws/adw_modules/adw_db_sql.py",
    "adws/adw_modules/adw_db_sqlite.py",
    "adws/adw_modules/adw_db_writer.py",
    "adws/adw_modules/adw_store_cli.py",
    "adws/adw_modules/adw_store_cli_render.py",
    "adws/adw_modules/orch_database_models.py",
    "adws/schema/schema_orchestrator.sql",
    "adws/schema/schema_orchestrator_postgres.sql",
    "adws/adw_tests/conftest.py",
    "adws/adw_tests/pg_testing.py",
    "adws/adw_tests/realistic_session.py",
    "adws/adw_tests/test_batch_writes.py",
    "adws/adw_tests/test_cancellation.py",
    "adws/adw_tests/test_checkpointer.py",
    "adws/adw_tests/test_cli.py",
    "adws/adw_tests/test_cli_safety.py",
    "adws/adw_tests/test_close.py",
    "adws/adw_tests/test_coalesced_writes.py",
    "adws/adw_tests/test_concurrency.py",
    "adws/adw_tests/test_crud.py",
    "adws/adw_tests/test_faults.py",
    "adws/adw_tests/test_files_and_schema.py",
    "adws/adw_tests/test_group_commit.py",
    "adws/adw_tests/test_ids.py",
    "adws/adw_tests/test_models.py",
    "adws/adw_tests/test_module_docs.py",
    "adws/adw_tests/test_pgbouncer.py",
    "adws/adw_tests/test_postgres.py",
    "adws/adw_tests/test_processes_under_load.py",
    "adws/adw_tests/test_properties.py",
    "adws/adw_tests/test_public_api_errors.py",
    "adws/adw_tests/test_reports.py",
    "adws/adw_tests/test_validation.py",
    "adws/adw_tests/test_wal_housekeeping.py",
)
# END BASE templates

REGISTRY: tuple[TemplateEntry, ...] = (
    *(TemplateEntry(path + TEMPLATE_SUFFIX, PurePosixPath(path)) for path in BASE_TEMPLATES),
    TemplateEntry(
        ".gitignore" + TEMPLATE_SUFFIX, PurePosixPath(".gitignore"), WriteMode.MANAGED_BLOCK
    ),
)


def render_registry(
    config: ProjectConfig,
    repository: TemplateRepository | None = None,
    *,
    project_root: Path | None = None,
) -> list[tuple[TemplateEntry, str]]:
    """Every registered template rendered with ``config``, in registry order.

    ``project_root`` is the folder rendered into: it places a database file given by an
    absolute path (or one that leaves and re-enters the project) for ``.gitignore``.
    """
    repository = repository or TemplateRepository()
    files = database_files(config, project_root)
    return [
        (entry, repository.render(entry.template, config=config, database_files=files))
        for entry in REGISTRY
    ]


def database_files(config: ProjectConfig, project_root: Path | None = None) -> list[str]:
    """The store's SQLite file and the files SQLite keeps beside it, where the generated
    store puts them (relative to the project root, ``/`` between folders), for .gitignore.
    Empty on PostgreSQL, and for a file outside the project."""
    file = config.database.sqlite_file
    if file is None:
        return []
    root = project_root.resolve() if project_root is not None else None  # as the store does
    relative = project_relative(file, PurePosixPath(root) if root is not None else None)
    if relative is None and root is not None:
        # Lexically outside, but a symlink on the way may lead back in: ask the file system.
        try:
            real = (root / file).resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            real = None
        if real is not None and real != root and real.is_relative_to(root):
            relative = PurePosixPath(real.relative_to(root).as_posix())
    if relative is None:
        return []
    return [str(relative) + suffix for suffix in ("", *SIDE_FILE_SUFFIXES)]


def build_plan(
    config: ProjectConfig,
    output_dir: Path,
    *,
    force: bool = False,
    config_file: str | None = None,
    repository: TemplateRepository | None = None,
) -> Plan:
    """Decide, per file, what rendering ``config`` into ``output_dir`` would do; write nothing.

    ``config_file``, when given, is the ``config.yml`` to create if the project has none
    (``init``); an existing one is always kept.
    """
    files: list[PlannedFile] = []
    if config_file is not None:
        files.append(_plan_config_file(output_dir, config_file))
    for entry, text in render_registry(config, repository, project_root=output_dir):
        destination = resolve_inside(output_dir, entry.target)
        if entry.mode is WriteMode.MANAGED_BLOCK:
            files.append(_plan_block(entry.target, destination, text, force))
        else:
            files.append(_plan_whole_file(entry.target, destination, text.encode(), force))
    return Plan(output_dir=output_dir, files=tuple(files))


def apply_plan(plan: Plan) -> list[PlannedFile]:
    """Write what the plan says; refuse a plan that still has conflicts."""
    if plan.conflicts:
        names = ", ".join(str(f.target) for f in plan.conflicts)
        raise TacBootstrapError(f"refusing to write over conflicts: {names}")
    written = []
    for planned in plan.writes:
        # Check again right before writing: the folder may have changed since planning.
        if resolve_inside(plan.output_dir, planned.target) != planned.destination:
            raise TacBootstrapError(f"{planned.target}: changed on disk since planning")
        write_atomic(planned.destination, planned.content)
        written.append(planned)
    return written


def _plan_config_file(output_dir: Path, text: str) -> PlannedFile:
    target = PurePosixPath(CONFIG_FILE_NAME)
    destination = resolve_inside(output_dir, target)
    action = Action.SKIP if destination.exists() else Action.CREATE
    return PlannedFile(target, destination, action, text.encode())


def _plan_whole_file(
    target: PurePosixPath, destination: Path, content: bytes, force: bool
) -> PlannedFile:
    existing = _read_existing(target, destination)
    if existing is None:
        action = Action.CREATE
    elif existing == content:
        action = Action.IDENTICAL
    else:
        action = Action.OVERWRITE if force else Action.CONFLICT
    return PlannedFile(target, destination, action, content)


def _plan_block(target: PurePosixPath, destination: Path, block: str, force: bool) -> PlannedFile:
    existing = _read_existing(target, destination)
    if existing is None:
        return PlannedFile(target, destination, Action.CREATE, block.encode())
    try:
        text = existing.decode()
    except UnicodeDecodeError as exc:
        raise TacBootstrapError(f"{target}: not UTF-8 text, cannot add our block") from exc
    merged = merge_block(text, block)
    actions = {
        "absent": Action.UPDATE,
        "same": Action.IDENTICAL,
        "different": Action.OVERWRITE if force else Action.CONFLICT,
    }
    return PlannedFile(target, destination, actions[merged.state], merged.text.encode())


def _read_existing(target: PurePosixPath, destination: Path) -> bytes | None:
    if not destination.exists():
        return None
    if not destination.is_file():
        raise TacBootstrapError(f"{target}: exists and is not a regular file")
    return destination.read_bytes()
