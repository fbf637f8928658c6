"""What is written where, building a plan, and applying it.

Each file a project receives has one source (see ``infrastructure/sources.py``): a
template where a value from ``config.yml`` is rendered, otherwise the file itself,
read at render time from the installed store package or this repository's ``adws/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from orchestrator_store.location import SIDE_FILE_SUFFIXES
from tac_bootstrap.domain.config import ProjectConfig, project_relative
from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.domain.plan import Action, Plan, PlannedFile
from tac_bootstrap.infrastructure.atomic_write import write_atomic
from tac_bootstrap.infrastructure.config_file import CONFIG_FILE_NAME
from tac_bootstrap.infrastructure.managed_block import merge_block
from tac_bootstrap.infrastructure.pyproject_edit import StoreRequirements, merge_pyproject
from tac_bootstrap.infrastructure.safe_paths import resolve_inside
from tac_bootstrap.infrastructure.sources import (
    STORE_DISTRIBUTION,
    StoreMetadata,
    base_file,
    store_files,
)
from tac_bootstrap.infrastructure.template_repository import TEMPLATE_SUFFIX, TemplateRepository

__all__ = [
    "BASE_FILES",
    "PYPROJECT",
    "SEED_TEMPLATE",
    "STORE_NEEDS",
    "VENDOR_DIR",
    "RenderedFile",
    "WriteMode",
    "apply_plan",
    "build_plan",
    "database_files",
    "render_files",
]


class WriteMode(Enum):
    WHOLE_FILE = "whole file"  # the file is ours: any difference is a conflict
    MANAGED_BLOCK = "managed block"  # only a fenced block in a user's file is ours
    MANAGED_ENTRIES = "managed entries"  # only some entries of the user's pyproject.toml


@dataclass(frozen=True)
class RenderedFile:
    target: PurePosixPath  # path in the project
    content: bytes
    mode: WriteMode = WriteMode.WHOLE_FILE
    group: PurePosixPath | None = None  # the vendored folder it belongs to, if any


# The seed module: the one file that takes values (database.path, database.url).
SEED_TEMPLATE = PurePosixPath("adws/adw_modules/adw_database.py")
# BASE files a project receives unchanged, from this repository's adws/.
BASE_FILES = (
    PurePosixPath("adws/adw_modules/orch_database_models.py"),
    PurePosixPath("adws/adw_tests/test_store_smoke.py"),
)
# The spec's schema file: the store's own, from the package.
SCHEMA_FILE = PurePosixPath("adws/schema/schema_orchestrator.sql")
SCHEMA_SOURCE = PurePosixPath("orchestrator_store/sql/schema_orchestrator.sql")
# The store's package, vendored: a folder uv installs (editable) into the project.
VENDOR_DIR = PurePosixPath("adws/vendor/orchestrator-store")
PYPROJECT = PurePosixPath("pyproject.toml")
STORE_NEEDS = StoreRequirements(
    distribution=STORE_DISTRIBUTION,
    requirement=f"{STORE_DISTRIBUTION}[cli]",  # the inspection command line comes with it
    vendored_at=str(VENDOR_DIR),
    dev_requirements=("pytest>=8",),  # for the rendered smoke suite
)


def render_files(
    config: ProjectConfig,
    repository: TemplateRepository | None = None,
    *,
    project_root: Path | None = None,
) -> list[RenderedFile]:
    """Every file a project receives, in the order the plan lists them.

    ``project_root`` is the folder rendered into: it places a database file given by an
    absolute path (or one that leaves and re-enters the project) for ``.gitignore``.
    ``pyproject.toml`` is listed with the store's entries only; ``build_plan`` merges
    them into the project's file, if it has one.
    """
    repository = repository or TemplateRepository()
    package = store_files()
    schema = dict(package)[SCHEMA_SOURCE]
    files = [
        RenderedFile(SEED_TEMPLATE, _render(repository, SEED_TEMPLATE, config=config)),
        *(RenderedFile(path, base_file(path)) for path in BASE_FILES),
        RenderedFile(SCHEMA_FILE, schema),
        *(RenderedFile(VENDOR_DIR / path, content, group=VENDOR_DIR) for path, content in package),
        RenderedFile(
            VENDOR_DIR / PYPROJECT,
            _render(repository, VENDOR_DIR / PYPROJECT, store=StoreMetadata.installed()),
            group=VENDOR_DIR,
        ),
        RenderedFile(PYPROJECT, b"", WriteMode.MANAGED_ENTRIES),
        RenderedFile(
            PurePosixPath(".gitignore"),
            _render(
                repository,
                PurePosixPath(".gitignore"),
                config=config,
                database_files=database_files(config, project_root),
            ),
            WriteMode.MANAGED_BLOCK,
        ),
    ]
    return files


def _render(repository: TemplateRepository, target: PurePosixPath, **context: object) -> bytes:
    return repository.render(str(target) + TEMPLATE_SUFFIX, **context).encode()


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
    for rendered in render_files(config, repository, project_root=output_dir):
        destination = resolve_inside(output_dir, rendered.target)
        if rendered.mode is WriteMode.MANAGED_BLOCK:
            files.append(_plan_block(rendered.target, destination, rendered.content, force))
        elif rendered.mode is WriteMode.MANAGED_ENTRIES:
            planned = _plan_pyproject(rendered.target, destination, force)
            if planned is not None:
                files.append(planned)
        else:
            planned = _plan_whole_file(rendered.target, destination, rendered.content, force)
            files.append(planned if rendered.group is None else planned.in_group(rendered.group))
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


def _plan_block(target: PurePosixPath, destination: Path, block: bytes, force: bool) -> PlannedFile:
    existing = _read_existing(target, destination)
    if existing is None:
        return PlannedFile(target, destination, Action.CREATE, block)
    merged = merge_block(_text(target, existing, "cannot add our block"), block.decode())
    actions = {
        "absent": Action.UPDATE,
        "same": Action.IDENTICAL,
        "different": Action.OVERWRITE if force else Action.CONFLICT,
    }
    return PlannedFile(target, destination, actions[merged.state], merged.text.encode())


def _plan_pyproject(target: PurePosixPath, destination: Path, force: bool) -> PlannedFile | None:
    """The store's entries merged into the project's ``pyproject.toml``; ``None`` when the
    project has none (the command then says what to run instead)."""
    existing = _read_existing(target, destination)
    if existing is None:
        return None
    merged = merge_pyproject(_text(target, existing, "cannot add the store to it"), STORE_NEEDS)
    actions = {
        "absent": Action.UPDATE,
        "same": Action.IDENTICAL,
        "different": Action.OVERWRITE if force else Action.CONFLICT,
    }
    return PlannedFile(
        target, destination, actions[merged.state], merged.text.encode(), merged.differences
    )


def _text(target: PurePosixPath, content: bytes, consequence: str) -> str:
    try:
        return content.decode()
    except UnicodeDecodeError as exc:
        raise TacBootstrapError(f"{target}: not UTF-8 text, {consequence}") from exc


def _read_existing(target: PurePosixPath, destination: Path) -> bytes | None:
    if not destination.exists():
        return None
    if not destination.is_file():
        raise TacBootstrapError(f"{target}: exists and is not a regular file")
    return destination.read_bytes()
