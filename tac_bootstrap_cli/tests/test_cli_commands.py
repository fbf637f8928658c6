"""The tac-bootstrap command through Typer's CliRunner, and once as the installed script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tac_bootstrap import __version__
from tac_bootstrap.interfaces.cli import app
from typer.testing import CliRunner


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_version_and_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"tac-bootstrap {__version__}\n"
    help_text = runner.invoke(app, ["--help"]).stdout
    for command in ("init", "render", "demo"):
        assert command in help_text
    init_help = runner.invoke(app, ["init", "--help"]).stdout
    for option in ("--db-path", "--dry-run", "--force"):
        assert option in init_help


def test_init_writes_config_and_the_store_without_prompting(
    runner: CliRunner, project: Path
) -> None:
    # CliRunner's stdin is not a terminal: any prompt would fail or hang here.
    result = runner.invoke(app, ["init", str(project), "--db-path", "var/agents.db"], input="")
    assert result.exit_code == 0, result.output
    assert "create     config.yml" in result.stdout
    assert (project / "config.yml").read_text().endswith("database:\n  path: var/agents.db\n")
    module = (project / "adws/adw_modules/adw_database.py").read_text()
    assert 'DEFAULT_DB_PATH = "var/agents.db"\n' in module
    assert "/var/agents.db-wal" in (project / ".gitignore").read_text()


def test_init_dry_run_writes_nothing(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["init", str(project), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would render into" in result.stdout
    assert "create     adws/adw_modules/adw_database.py" in result.stdout
    assert result.stdout.endswith("dry run: nothing written\n")
    assert list(project.iterdir()) == []


def test_init_twice_is_idempotent(runner: CliRunner, project: Path) -> None:
    assert runner.invoke(app, ["init", str(project)]).exit_code == 0
    before = files_under(project)
    second = runner.invoke(app, ["init", str(project)])
    assert second.exit_code == 0, second.output
    assert "skip       config.yml" in second.stdout
    assert re.search(r"0 file\(s\) written, \d+ unchanged", second.stdout)
    assert files_under(project) == before


def test_init_keeps_an_existing_config_and_refuses_a_contradicting_option(
    runner: CliRunner, project: Path
) -> None:
    (project / "config.yml").write_text("database:\n  path: mine.db\n")
    clash = runner.invoke(app, ["init", str(project), "--db-path", "other.db"])
    assert clash.exit_code == 2
    assert "database.path: is 'mine.db', not 'other.db'" in clash.stderr
    assert list(project.iterdir()) == [project / "config.yml"]

    ok = runner.invoke(app, ["init", str(project)])
    assert ok.exit_code == 0, ok.output
    assert (
        'DEFAULT_DB_PATH = "mine.db"' in (project / "adws/adw_modules/adw_database.py").read_text()
    )


def test_init_with_an_unsafe_db_path_exits_2(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["init", str(project), "--db-path", "../outside.db"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --db-path: Value error, must stay inside the project")
    assert list(project.iterdir()) == []


def test_render_conflict_exits_1_and_writes_nothing_then_force_overwrites(
    runner: CliRunner, project: Path
) -> None:
    config = project / "config.yml"
    config.write_text("database:\n  path: a.db\n")
    assert runner.invoke(app, ["render", str(config)]).exit_code == 0
    config.write_text("database:\n  path: b.db\n")
    module = project / "adws/adw_modules/adw_database.py"
    before = files_under(project)

    conflict = runner.invoke(app, ["render", str(config), "--output", str(project)])

    assert conflict.exit_code == 1
    assert "conflict   adws/adw_modules/adw_database.py" in conflict.stdout
    assert "2 conflict(s)" in conflict.stderr
    assert "--force" in conflict.stderr
    assert files_under(project) == before

    dry = runner.invoke(app, ["render", str(config), "--force", "--dry-run"])
    assert dry.exit_code == 0
    assert "overwrite  adws/adw_modules/adw_database.py" in dry.stdout
    assert files_under(project) == before

    forced = runner.invoke(app, ["render", str(config), "--force"])
    assert forced.exit_code == 0, forced.output
    assert 'DEFAULT_DB_PATH = "b.db"' in module.read_text()


def test_render_into_another_output_folder(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "settings.yml"
    config.write_text("")
    result = runner.invoke(app, ["render", str(config), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out/adws/schema/schema_orchestrator.sql").is_file()
    assert not (tmp_path / "out/config.yml").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("database:\n  path: [1\n", "invalid YAML: "),
        ("database:\n  path: 5\n", "database.path: Input should be a valid string"),
        ("database:\n  paht: x.db\n", "database.paht: unknown key"),
        ("database:\n  path: /abs.db\n", "database.path: Value error, must be relative"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(
    runner: CliRunner, project: Path, text: str, message: str
) -> None:
    config = project / "config.yml"
    config.write_text(text)
    result = runner.invoke(app, ["render", str(config)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {config}: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_an_escaping_symlink_is_refused_with_exit_2(
    runner: CliRunner, tmp_path: Path, project: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (project / "adws").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = runner.invoke(app, ["init", str(project)])
    assert result.exit_code == 2
    assert "leads outside the output folder" in result.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_an_output_that_is_a_file_is_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = runner.invoke(app, ["init", str(blocker)])
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_demo_scaffolds_and_runs_the_generated_store(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = runner.invoke(app, ["demo", str(target)])
    assert result.exit_code == 0, result.output
    assert f"database: {target.resolve() / 'orchestrator.db'}" in result.stdout
    assert re.search(r"recorded session demo_\S+:", result.stdout)
    assert re.search(r"agents\s+2\n", result.stdout)
    assert (target / "orchestrator.db").is_file()
    # Last, how to look at that store in the dashboard: the folder is kept, so its path.
    serve = f"uv run orchestrator-store serve --db {target.resolve() / 'orchestrator.db'}"
    assert result.stdout.rstrip().endswith(serve)


def test_installed_console_script_runs(tmp_path: Path) -> None:
    script = shutil.which("tac-bootstrap", path=str(Path(sys.executable).parent))
    assert script, "the tac-bootstrap console script is not installed in this environment"
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"tac-bootstrap {__version__}\n"

    done = subprocess.run(
        [script, "init", str(tmp_path / "p"), "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "create     adws/adw_modules/adw_database.py" in done.stdout
    assert not (tmp_path / "p").exists()


LONG_NAME = "x" * 250 + ".db"  # 253 bytes: the store's -journal beside it would not fit


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        (r'path: "\ud800.db"', "path", "U+D800 is a lone surrogate"),
        (r'url: "sqlite:///\ud800.db"', "url", "U+D800 is a lone surrogate"),
        (r'url: "postgresql://agents@db/\udcff"', "url", "U+DCFF is a lone surrogate"),
        (r'path: "a\0.db"', "path", "control characters (U+0000)"),
        (r'url: "sqlite:///a\0.db"', "url", "control characters (U+0000)"),
        (r'path: "a\x85.db"', "path", "control characters (U+0085)"),
        (r'path: "a\u2028b.db"', "path", "line breaks (U+2028)"),
        ('path: "."', "path", "must name a file"),
        ('path: "data/."', "path", "must name a file"),
        ('url: "sqlite:///data/"', "url", "must name a file"),
        (f'path: "{LONG_NAME}"', "path", "too long"),
        (f'path: "{"d" * 256}/x.db"', "path", "too long"),
        (f'url: "sqlite:///{LONG_NAME}"', "url", "too long"),
    ],
)
def test_unusable_database_values_are_one_line_exit_2_and_write_nothing(
    runner: CliRunner, project: Path, line: str, key: str, message: str
) -> None:
    config = project / "config.yml"
    config.write_text(f"database:\n  {line}\n", encoding="utf-8")
    result = runner.invoke(app, ["render", str(config)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {config}: database.{key}: Value error, ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert list(project.iterdir()) == [config]


def test_a_lone_surrogate_is_refused_by_the_installed_script(tmp_path: Path) -> None:
    """The reported case, as a user runs it: a config with "\\ud800.db", and the same
    through --db-path as bytes that are not UTF-8 (Python reads them as surrogates)."""
    script = shutil.which("tac-bootstrap", path=str(Path(sys.executable).parent))
    assert script
    project = tmp_path / "p"
    project.mkdir()
    config = project / "config.yml"
    config.write_text('database:\n  path: "\\ud800.db"\n', encoding="utf-8")
    runs = [
        ([script, "render", str(config)], f"error: {config}: database.path: ", "U+D800"),
        (
            [os.fsencode(script), b"init", os.fsencode(tmp_path / "q"), b"--db-path", b"\xff.db"],
            "error: --db-path: ",
            "U+DCFF",
        ),
    ]
    for argv, start, code in runs:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(start), done.stderr
        assert code in done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stdout == ""
    assert list(project.iterdir()) == [config]
    assert not (tmp_path / "q").exists()
