"""The README's examples run as written (against files in tmp_path)."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from orchestrator_store import SyncDatabaseManager, manager

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def _python_example() -> str:
    """The main example: the first one, which the API section starts from."""
    blocks = _python_examples()
    assert len(blocks) == 3, "the README holds three Python examples (async, sync, tracking)"
    return blocks[0]


def _run_example(code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``code`` run as a script in ``folder``, with no database chosen by the environment."""
    script = folder / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readme_sync_and_tracking_examples_run_and_record_what_they_say(tmp_path: Path) -> None:
    _, sync_example, tracking_example = _python_examples()
    done = _run_example(sync_example, tmp_path)
    assert done.returncode == 0, done.stderr
    done = _run_example(tracking_example, tmp_path)  # the default database: ./orchestrator.db
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # every call was recorded: no warning
    with SyncDatabaseManager(tmp_path / "orchestrator.db") as db:
        (agent,) = db.list_agents("feature_Tac_14_Task_8")
        run = db.get_workflow_by_adw_id("a1b2c3d4")
    assert agent["status"] == "completed"
    assert run is not None
    assert (run["status"], run["current_step"], run["error_message"]) == (
        "failed",
        "plan",
        "tests failed",
    )


def test_readme_example_runs_and_prints_what_it_promises(tmp_path: Path) -> None:
    db_file = tmp_path / "readme.db"
    code = _python_example().replace('"orchestrator.db"', repr(str(db_file)))
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "orchestrator_agents: UNIQUE constraint failed: orchestrator_agents.name"
    agent = ast.literal_eval(lines[1])  # the printed agent row with its totals
    assert agent["status"] == "completed"
    assert (agent["cost_usd"], agent["prompts_cost_usd"], agent["total_cost_usd"]) == (
        0.0004,
        0.0061,
        0.0065,
    )
    assert agent["context"] == {"issue": 14}
    assert db_file.exists()


def test_readme_lists_the_bounds_and_the_error_classes() -> None:
    from test_models import BOUNDS

    text = README.read_text(encoding="utf-8")
    for name in BOUNDS:
        assert f"`{name}`" in text, name
    errors = [name for name in manager.__all__ if name.endswith("Error")]
    for name in errors:
        assert f"`{name}`" in text, name


def test_the_package_root_exports_what_the_readme_says() -> None:
    """Installing: the error classes, the allowed values and the row models from the root."""
    import orchestrator_store
    from orchestrator_store import errors, models

    exported = set(orchestrator_store.__all__)
    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.DatabaseError)
    }
    assert error_classes <= exported
    values = {"AGENT_STATUSES", "AGENT_TYPES", "PROMPT_STATUSES", "PROMPT_TYPES"}
    assert values | {"LOG_LEVELS", "LOG_TYPES", "PoolSettings", "Transaction"} <= exported
    assert {model.__name__ for model in models.ROW_MODELS.values()} <= exported
    for name in exported:
        assert getattr(orchestrator_store, name) is not None, name


def _console_output_masked(text: str, database: Path) -> list[str]:
    """Command line output with what changes per run masked: the database's path
    (as the README writes it), times, session names, short ids, durations and the
    file's size. Rich pads lines to the terminal's width: trailing blanks go."""
    text = text.replace(str(database), "/path/to/repo/orchestrator.db")
    text = re.sub(r"demo_\d{8}_\d{6}_[0-9a-f]{6}", "<SESSION>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<TIME>", text)
    text = re.sub(r"\b[0-9a-f]{8}\b", "<ID>", text)
    text = re.sub(r"\b\d+m\d\ds\b", "<DURATION>", text)
    text = re.sub(r"^file size .*$", "file size <SIZE>", text, flags=re.M)
    return [line.rstrip() for line in text.splitlines()]


def test_readme_command_line_example_shows_what_the_commands_print(tmp_path: Path) -> None:
    """The console example of "Inspecting the store from a terminal": two demo
    sessions recorded, then each command shown, as wide as the README's (140)."""
    from typer.testing import CliRunner

    from orchestrator_store.cli import app

    block = re.search(
        r"```console\n(\$ uv run orchestrator-store stats\n.*?)```",
        README.read_text(encoding="utf-8"),
        re.S,
    )
    assert block is not None
    database = tmp_path / "orchestrator.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    for _ in range(2):  # "recorded two sessions"
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator_store", "--db", str(database), "--demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    examples = re.split(r"^\$ uv run orchestrator-store ", block.group(1), flags=re.M)[1:]
    assert len(examples) == 5  # stats, sessions, costs --by model, workflows, chat
    for example in examples:
        command, _, shown = example.partition("\n")
        result = CliRunner().invoke(
            app, ["--db", str(database), *command.split()], env={"COLUMNS": "140"}
        )
        assert result.exit_code == 0, (command, result.output)
        printed = _console_output_masked(result.stdout, database)
        assert printed == _console_output_masked(shown, database), command
