"""The store's entries in a project's own pyproject.toml: added in place, the user's lines
kept, a differing entry a conflict, bad TOML refused with nothing written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from tac_bootstrap.application.scaffold_service import STORE_NEEDS, apply_plan, build_plan
from tac_bootstrap.domain.config import ProjectConfig
from tac_bootstrap.domain.errors import TacBootstrapError
from tac_bootstrap.domain.plan import Action, Plan
from tac_bootstrap.infrastructure.pyproject_edit import merge_pyproject
from tac_bootstrap.interfaces.cli import app
from typer.testing import CliRunner

USERS = """\
# my project, my comments
[project]
name = "myapp"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [
    "httpx>=0.27",  # the user's own
]

[tool.ruff]
line-length = 88
"""


def action_of(plan: Plan, target: str) -> Action:
    (planned,) = [f for f in plan.files if str(f.target) == target]
    return planned.action


def test_entries_are_added_and_the_users_lines_kept() -> None:
    merged = merge_pyproject(USERS, STORE_NEEDS)
    assert merged.state == "absent"
    data = tomllib.loads(merged.text)
    assert data["project"]["dependencies"] == ["httpx>=0.27", "orchestrator-store[cli]"]
    assert data["tool"]["uv"]["sources"]["orchestrator-store"] == {
        "path": "adws/vendor/orchestrator-store",
        "editable": True,
    }
    assert data["dependency-groups"]["dev"] == ["pytest>=8"]
    assert data["tool"]["ruff"] == {"line-length": 88}
    assert merged.text.startswith("# my project, my comments\n")
    assert '"httpx>=0.27",  # the user\'s own' in merged.text
    again = merge_pyproject(merged.text, STORE_NEEDS)
    assert (again.state, again.text) == ("same", merged.text)


def test_a_pinned_pytest_is_the_users_choice() -> None:
    pinned = USERS + '\n[dependency-groups]\ndev = ["pytest==8.3.2"]\n'
    merged = merge_pyproject(pinned, STORE_NEEDS)
    assert tomllib.loads(merged.text)["dependency-groups"]["dev"] == ["pytest==8.3.2"]
    assert merged.differences == ()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('\n[tool.uv.sources]\norchestrator-store = { path = "elsewhere" }\n', "tool.uv.sources"),
        ("", "dependencies"),
    ],
)
def test_an_entry_of_ours_that_differs_is_a_conflict(project: Path, extra: str, named: str) -> None:
    text = USERS + extra
    if not extra:
        text = text.replace('"httpx>=0.27",', '"httpx>=0.27", "orchestrator-store==0.1",')
    (project / "pyproject.toml").write_text(text, encoding="utf-8")

    plan = build_plan(ProjectConfig(), project)
    assert action_of(plan, "pyproject.toml") is Action.CONFLICT
    (conflict,) = plan.conflicts
    assert any(note.startswith(named) for note in conflict.notes), conflict.notes
    with pytest.raises(TacBootstrapError, match=r"conflicts: pyproject\.toml"):
        apply_plan(plan)
    assert (project / "pyproject.toml").read_text(encoding="utf-8") == text

    forced = build_plan(ProjectConfig(), project, force=True)
    assert action_of(forced, "pyproject.toml") is Action.OVERWRITE
    apply_plan(forced)
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert "orchestrator-store[cli]" in data["project"]["dependencies"]
    assert data["tool"]["uv"]["sources"]["orchestrator-store"]["path"] == str(
        STORE_NEEDS.vendored_at
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[project\nname = 1\n", "not valid TOML"),
        ("[tool.ruff]\nline-length = 88\n", "no \\[project\\] table"),
    ],
)
def test_a_pyproject_we_cannot_edit_is_refused_and_nothing_is_written(
    project: Path, text: str, message: str
) -> None:
    (project / "pyproject.toml").write_text(text, encoding="utf-8")
    with pytest.raises(TacBootstrapError, match=message):
        build_plan(ProjectConfig(), project)
    assert sorted(p.name for p in project.iterdir()) == ["pyproject.toml"]


def test_the_cli_shows_the_update_or_says_what_to_run(runner: CliRunner, tmp_path: Path) -> None:
    with_pyproject = tmp_path / "with"
    with_pyproject.mkdir()
    (with_pyproject / "pyproject.toml").write_text(USERS, encoding="utf-8")
    done = runner.invoke(app, ["init", str(with_pyproject)])
    assert done.exit_code == 0, done.output
    assert "  update     pyproject.toml" in done.stdout
    assert "pip install" not in done.stdout

    without = tmp_path / "without"
    done = runner.invoke(app, ["init", str(without)])
    assert done.exit_code == 0, done.output
    assert not (without / "pyproject.toml").exists()
    assert 'pip install -e "./adws/vendor/orchestrator-store[cli]" pytest' in done.stdout


def test_a_conflicting_pyproject_fails_the_command_with_its_reason(
    runner: CliRunner, project: Path
) -> None:
    text = USERS + '\n[tool.uv.sources]\norchestrator-store = { path = "elsewhere" }\n'
    (project / "pyproject.toml").write_text(text, encoding="utf-8")
    done = runner.invoke(app, ["init", str(project)])
    assert done.exit_code == 1
    assert "  conflict   pyproject.toml" in done.stdout
    assert "tool.uv.sources.orchestrator-store is {'path': 'elsewhere'}" in done.stdout
    assert (project / "pyproject.toml").read_text(encoding="utf-8") == text
