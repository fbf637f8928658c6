"""Plan, then apply, over real folders: create, identical, conflict, --force, idempotence."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from tac_bootstrap.application.scaffold_service import (
    WriteMode,
    apply_plan,
    build_plan,
    render_files,
)
from tac_bootstrap.domain.config import DatabaseConfig, ProjectConfig
from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.domain.plan import Action, Plan

DEFAULT = ProjectConfig()
MODULE = PurePosixPath("adws/adw_modules/adw_database.py")


def actions(plan: Plan) -> dict[str, Action]:
    return {str(f.target): f.action for f in plan.files}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_first_run_creates_every_file(project: Path) -> None:
    """A folder without pyproject.toml: every file is created, and no pyproject.toml."""
    expected = [r for r in render_files(DEFAULT) if r.mode is not WriteMode.MANAGED_ENTRIES]
    plan = build_plan(DEFAULT, project)
    assert set(actions(plan).values()) == {Action.CREATE}
    assert [f.target for f in plan.files] == [r.target for r in expected]

    written = apply_plan(plan)

    assert len(written) == len(expected)
    for rendered in expected:
        assert (project / rendered.target).is_file()
    assert not (project / "pyproject.toml").exists()


def test_second_run_is_identical_and_touches_nothing(project: Path) -> None:
    apply_plan(build_plan(DEFAULT, project))
    before = snapshot(project)

    plan = build_plan(DEFAULT, project)
    assert set(actions(plan).values()) == {Action.IDENTICAL}
    assert apply_plan(plan) == []
    assert snapshot(project) == before


def test_an_edited_file_is_a_conflict_and_apply_refuses(project: Path) -> None:
    apply_plan(build_plan(DEFAULT, project))
    edited = project / MODULE
    edited.write_text(edited.read_text() + "# my edit\n")
    before = snapshot(project)

    plan = build_plan(DEFAULT, project)

    assert actions(plan)[str(MODULE)] is Action.CONFLICT
    assert [f.target for f in plan.conflicts] == [MODULE]
    with pytest.raises(TacBootstrapError, match="refusing to write over conflicts"):
        apply_plan(plan)
    assert snapshot(project) == before


def test_force_overwrites_the_conflict_only(project: Path) -> None:
    apply_plan(build_plan(DEFAULT, project))
    edited = project / MODULE
    edited.write_text("# replaced by the user\n")

    plan = build_plan(DEFAULT, project, force=True)

    assert actions(plan)[str(MODULE)] is Action.OVERWRITE
    assert [str(f.target) for f in apply_plan(plan)] == [str(MODULE)]
    assert "# replaced by the user" not in edited.read_text()
    assert set(actions(build_plan(DEFAULT, project)).values()) == {Action.IDENTICAL}


def test_a_new_database_path_shows_as_a_conflict(project: Path) -> None:
    apply_plan(build_plan(DEFAULT, project))
    moved = ProjectConfig(database=DatabaseConfig(path="var/agents.db"))

    conflicts = {str(f.target) for f in build_plan(moved, project).conflicts}

    assert conflicts == {str(MODULE), ".gitignore"}


def test_planning_writes_nothing(project: Path) -> None:
    (project / ".gitignore").write_text("node_modules/\n")
    before = snapshot(project)
    build_plan(DEFAULT, project, config_file="database:\n  path: x.db\n")
    build_plan(DEFAULT, project, force=True)
    assert snapshot(project) == before


def test_config_file_is_created_once_then_skipped(project: Path) -> None:
    text = "database:\n  path: orchestrator.db\n"
    first = build_plan(DEFAULT, project, config_file=text)
    assert actions(first)["config.yml"] is Action.CREATE
    apply_plan(first)
    assert (project / "config.yml").read_text() == text

    (project / "config.yml").write_text("# mine\n")
    again = build_plan(DEFAULT, project, config_file=text, force=True)
    assert actions(again)["config.yml"] is Action.SKIP
    apply_plan(again)
    assert (project / "config.yml").read_text() == "# mine\n"


def test_a_folder_where_a_file_belongs_is_an_error(project: Path) -> None:
    (project / MODULE).mkdir(parents=True)
    with pytest.raises(TacBootstrapError, match="exists and is not a regular file"):
        build_plan(DEFAULT, project)


# --- .gitignore: a managed block inside the user's file --------------------------------


def test_gitignore_block_is_appended_to_the_users_file(project: Path) -> None:
    (project / ".gitignore").write_text("node_modules/\n*.log")

    plan = build_plan(DEFAULT, project)
    assert actions(plan)[".gitignore"] is Action.UPDATE
    apply_plan(plan)

    text = (project / ".gitignore").read_text()
    assert text.startswith("node_modules/\n*.log\n\n# >>> tac-bootstrap")
    for line in ("/orchestrator.db", "/orchestrator.db-wal", "/orchestrator.db-shm"):
        assert line in text.splitlines()
    assert actions(build_plan(DEFAULT, project))[".gitignore"] is Action.IDENTICAL


def test_edited_gitignore_block_conflicts_and_force_replaces_only_the_block(
    project: Path,
) -> None:
    (project / ".gitignore").write_text("dist/\n")
    apply_plan(build_plan(DEFAULT, project))
    gitignore = project / ".gitignore"
    gitignore.write_text(gitignore.read_text().replace("/orchestrator.db-shm\n", "") + "build/\n")

    assert actions(build_plan(DEFAULT, project))[".gitignore"] is Action.CONFLICT
    apply_plan(build_plan(DEFAULT, project, force=True))

    lines = gitignore.read_text().splitlines()
    assert lines[0] == "dist/"
    assert lines[-1] == "build/"
    assert "/orchestrator.db-shm" in lines


def test_gitignore_that_is_not_text_is_an_error(project: Path) -> None:
    (project / ".gitignore").write_bytes(b"\xff\xfe")
    with pytest.raises(TacBootstrapError, match="not UTF-8"):
        build_plan(DEFAULT, project)
