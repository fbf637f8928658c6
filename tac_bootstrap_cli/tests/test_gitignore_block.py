"""The .gitignore block lists exactly the files the generated store creates, checked with git.

Each case renders a real project through the CLI, runs the generated store there (it prints
and creates its database), adds the -wal/-shm/-journal files beside it and asks
``git check-ignore`` which of them a real repository ignores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tac_bootstrap.domain.config import project_relative
from tac_bootstrap.infrastructure.managed_block import BEGIN_MARKER, END_MARKER
from tac_bootstrap.infrastructure.template_filters import gitignore_path
from tac_bootstrap.interfaces.cli import app
from typer.testing import CliRunner

SUFFIXES = ("", "-wal", "-shm", "-journal")
PROJECT = "{project}"  # replaced by the project folder
TMP = "{tmp}"  # replaced by the folder that holds the project


def git_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The machine's or the user's excludes must not decide what is ignored here.
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, HOME=str(tmp_path))
    return env


def store_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "PYTEST_"))}
    env.pop("COV_CORE_SOURCE", None)
    env["PYTHONUTF8"] = "1"
    return env


def render(runner: CliRunner, project: Path, key: str, value: str) -> None:
    config = project / "config.yml"
    text = json.dumps(value, ensure_ascii=False)
    config.write_text(f"database:\n  {key}: {text}\n", encoding="utf-8")
    result = runner.invoke(app, ["render", str(config)])
    assert result.exit_code == 0, result.output


def run_store(project: Path) -> Path:
    """Run the generated store with its defaults: the database file it really created."""
    done = subprocess.run(
        [sys.executable, "adws/adw_modules/adw_database.py"],
        cwd=project,
        env=store_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.split("\n", 1)[0]
    assert first.startswith("database: "), done.stdout
    database = Path(first.removeprefix("database: "))
    assert database.is_file(), database
    return database


def ignored_by_git(project: Path, tmp_path: Path, names: list[str]) -> set[str]:
    """Which of ``names`` (relative to the project) a real git repository ignores."""
    done = subprocess.run(
        ["git", "check-ignore", "-z", "--stdin"],
        cwd=project,
        input=b"".join(os.fsencode(name) + b"\0" for name in names),
        env=git_env(tmp_path),
        capture_output=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: none of them is ignored
    return {os.fsdecode(name) for name in done.stdout.split(b"\0") if name}


def block_lines(project: Path) -> list[str]:
    lines = (project / ".gitignore").read_text(encoding="utf-8").splitlines()
    begin = next(i for i, line in enumerate(lines) if line.startswith(BEGIN_MARKER))
    end = next(i for i, line in enumerate(lines) if line.startswith(END_MARKER))
    return lines[begin + 1 : end]


CASES = [
    # (key, value, the file the store creates relative to the project, names git must keep)
    ("url", "sqlite:///data/store.db", "data/store.db", ["orchestrator.db", "store.db"]),
    ("path", "data/store.db", "data/store.db", ["orchestrator.db", "data/store.db.bak"]),
    ("url", "sqlite:///./data//store.db", "data/store.db", ["orchestrator.db"]),
    ("url", "sqlite:///data/../up.db", "up.db", ["data/up.db"]),
    ("url", "sqlite:///../project/back-in.db", "back-in.db", []),
    ("url", f"sqlite:///{PROJECT}/absolute.db", "absolute.db", []),
    # A backslash is a character of the file name (POSIX), not a folder separator.
    ("path", "data\\store.db", "data\\store.db", ["data/store.db", "data\\\\store.db"]),
    ("path", "back\\slash\\*.db", "back\\slash\\*.db", ["back\\slash\\x.db", "back/slash/x.db"]),
    ("path", "*.db", "*.db", ["other.db", "orchestrator.db"]),
    ("path", "[ab]?.db", "[ab]?.db", ["ax.db", "b1.db"]),
    ("path", "!important.db", "!important.db", ["important.db"]),
    ("path", "#notes.db", "#notes.db", ["notes.db"]),
    ("path", "trailing.db  ", "trailing.db  ", ["trailing.db", "trailing.db "]),
    ("path", "sub dir/a]b{c}.db", "sub dir/a]b{c}.db", ["sub dir/ab{c}.db"]),
    ("path", "émoji 🗄/store.db", "émoji 🗄/store.db", ["store.db"]),
    ("url", "sqlite:///q/store.db?mode=ro", "q/store.db?mode=ro", ["q/store.dbXmode=ro"]),
]


@pytest.mark.parametrize(
    ("key", "value", "expected", "kept"), CASES, ids=[repr(case[1]) for case in CASES]
)
def test_the_block_ignores_exactly_the_database_the_store_creates(
    runner: CliRunner,
    tmp_path: Path,
    project: Path,
    key: str,
    value: str,
    expected: str,
    kept: list[str],
) -> None:
    render(runner, project, key, value.replace(PROJECT, str(project)))
    database = run_store(project)
    relative = Path(os.path.realpath(database)).relative_to(project.resolve())
    assert relative.as_posix() == expected
    files = [expected + suffix for suffix in SUFFIXES]
    for name in files[1:]:
        (project / name).write_bytes(b"")
    subprocess.run(["git", "init", "-q"], cwd=project, env=git_env(tmp_path), check=True)

    assert ignored_by_git(project, tmp_path, files + kept) == set(files)

    # What `git add -A` would commit: the store's code, never its database.
    subprocess.run(["git", "add", "-A"], cwd=project, env=git_env(tmp_path), check=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=project,
        env=git_env(tmp_path),
        capture_output=True,
        check=True,
    ).stdout
    tracked = {os.fsdecode(name) for name in listed.split(b"\0") if name}
    assert tracked.isdisjoint(files)
    assert {"config.yml", ".gitignore", "adws/adw_modules/adw_database.py"} <= tracked


@pytest.mark.parametrize(
    "url", [f"sqlite:///{TMP}/elsewhere/outside.db", "sqlite:///../outside.db"]
)
def test_a_file_outside_the_project_gets_a_comment_not_a_pattern(
    runner: CliRunner, tmp_path: Path, project: Path, url: str
) -> None:
    render(runner, project, "url", url.replace(TMP, str(tmp_path)))
    assert block_lines(project) == [
        "# database.url names a file outside the project: nothing here to ignore"
    ]
    database = run_store(project)
    assert not Path(os.path.realpath(database)).is_relative_to(project.resolve())


def test_an_absolute_path_through_a_symlink_into_the_project_is_listed(
    runner: CliRunner, tmp_path: Path, project: Path
) -> None:
    (tmp_path / "link").symlink_to(project, target_is_directory=True)
    render(runner, project, "url", f"sqlite:///{tmp_path}/link/linked.db")
    assert block_lines(project)[0] == "/linked.db"
    assert Path(os.path.realpath(run_store(project))) == project.resolve() / "linked.db"


def test_a_symlink_loop_on_the_way_is_outside(
    runner: CliRunner, tmp_path: Path, project: Path
) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    render(runner, project, "url", "sqlite:///../loop/x.db")
    assert block_lines(project) == [
        "# database.url names a file outside the project: nothing here to ignore"
    ]


@pytest.mark.parametrize(
    ("file", "relative"),
    [("a/../b.db", "b.db"), ("./a//b.db", "a/b.db"), ("../x.db", None), ("/abs/x.db", None)],
)
def test_without_a_project_root_only_plainly_relative_files_are_placed(
    file: str, relative: str | None
) -> None:
    found = project_relative(file, None)
    assert (str(found) if found is not None else None) == relative


def test_a_postgresql_url_needs_no_pattern(runner: CliRunner, project: Path) -> None:
    render(runner, project, "url", "postgresql://agents@db.internal:5432/orchestrator")
    assert block_lines(project) == [
        "# database.url is a PostgreSQL server: no database file to ignore"
    ]


def test_the_default_block_is_unchanged(runner: CliRunner, project: Path) -> None:
    """Projects rendered before keep an identical block: no conflict after an upgrade."""
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    assert (project / ".gitignore").read_text() == (
        "# >>> tac-bootstrap: the orchestrator store's database, WAL and shared-memory files\n"
        "/orchestrator.db\n"
        "/orchestrator.db-wal\n"
        "/orchestrator.db-shm\n"
        "/orchestrator.db-journal\n"
        "# <<< tac-bootstrap (this block is rewritten by `tac-bootstrap render --force`)\n"
    )


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("data\\store.db", "/data\\\\store.db"),
        ("a/./b//c.db", "/a/b/c.db"),
        ("x.db  ", "/x.db \\ "),
        ("!x#y.db", "/\\!x\\#y.db"),
    ],
)
def test_gitignore_path_escapes_backslashes_and_normalises(name: str, pattern: str) -> None:
    assert gitignore_path(name) == pattern
