"""The module docstring's usage example runs, and so does ``main()``."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator_store import demo, manager, schema


def usage_example() -> str:
    """The indented block after ``Usage::`` in the module docstring."""
    doc = manager.__doc__
    assert doc is not None
    _, _, rest = doc.partition("Usage::\n")
    assert rest, "no 'Usage::' block in the module docstring"
    lines = []
    for line in rest.splitlines():
        if line and not line.startswith(" "):
            break  # the next unindented section ends the block
        lines.append(line)
    code = textwrap.dedent("\n".join(lines)).strip()
    assert code
    return code


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as raw:
        counts = {
            table: raw.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in schema.TABLES
        }
    raw.close()
    return counts


def printed_counts(out: str) -> dict[str, int]:
    _, marker, rest = out.partition("rows per table:\n")
    assert marker, out
    counts = {}
    for line in rest.splitlines():
        match = re.fullmatch(r"\s+(\w+)\s+(\d+)", line)
        assert match, line
        counts[match.group(1)] = int(match.group(2))
    return counts


# --- the usage example ---------------------------------------------------------------


def test_docstring_describes_the_contract() -> None:
    doc = manager.__doc__
    assert doc is not None
    for topic in ("Usage::", "connect()", "close()", "WAL", "PostgreSQL", "TEXT", "parameters"):
        assert topic in doc


def test_usage_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = usage_example()
    assert '"orchestrator.db"' in code
    path = tmp_path / "example" / "orchestrator.db"
    code = code.replace('"orchestrator.db"', repr(str(path)))

    exec(compile(code, "<manager usage example>", "exec"), {"__name__": "usage_example"})

    assert path.exists()
    assert table_counts(path) == {
        "orchestrator_agents": 1,
        "agents": 1,
        "prompts": 1,
        "agent_logs": 1,
        "system_logs": 1,
        "orchestrator_chat": 0,
        "ai_developer_workflows": 0,
    }
    with sqlite3.connect(path) as raw:
        status, cost, completed_at, context = raw.execute(
            "SELECT status, cost_usd, completed_at, context FROM agents"
        ).fetchone()
        prompt = raw.execute("SELECT status, tokens_input, tokens_output FROM prompts").fetchone()
    raw.close()
    assert status == "completed"
    assert cost == pytest.approx(0.0061)
    assert completed_at is not None
    assert context == '{"issue":14}'
    assert prompt == ("completed", 812, 230)
    out = capsys.readouterr().out
    assert "'status': 'completed'" in out
    assert "feature_Tac_14_Task_8" in out


# --- main() ------------------------------------------------------------------------------


def test_main_demo_on_a_fresh_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new" / "folder" / "store.db"
    assert demo.main(["--db", str(path), "--demo"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == f"database: {path}"
    assert lines[1] == f"schema version: {schema.LATEST_VERSION}"
    assert re.search(r"^recorded session demo_\S+:$", captured.out, re.MULTILINE)
    expected = {
        "orchestrator_agents": 3,
        "agents": 2,
        "prompts": 2,
        "agent_logs": 4,
        "system_logs": 2,
        "orchestrator_chat": 4,
        "ai_developer_workflows": 1,
    }
    assert re.search(r"^  workflow plan_build completed steps=2/2$", captured.out, re.MULTILINE)
    assert printed_counts(captured.out) == expected
    assert list(printed_counts(captured.out)) == list(schema.TABLES)
    assert table_counts(path) == expected


def test_main_demo_twice_reuses_definitions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.db"
    assert demo.main(["--db", str(path), "--demo"]) == 0
    assert demo.main(["--db", str(path), "--demo"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^recorded session ", out, re.MULTILINE)) == 2
    assert table_counts(path) == {
        "orchestrator_agents": 3,
        "agents": 4,
        "prompts": 4,
        "agent_logs": 8,
        "system_logs": 4,
        "orchestrator_chat": 8,
        "ai_developer_workflows": 2,
    }


def test_main_without_demo_only_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store.db"
    assert demo.main(["--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:2] == [
        f"database: {path}",
        f"schema version: {schema.LATEST_VERSION}",
    ]
    assert "recorded session" not in out
    assert printed_counts(out) == dict.fromkeys(schema.TABLES, 0)
    assert path.exists()


def test_main_uses_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "from_env.db"
    monkeypatch.setenv("ORCHESTRATOR_DB_PATH", str(path))
    assert demo.main([]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"database: {path}"
    assert path.exists()


def test_main_on_a_file_that_is_not_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 100
    path.write_bytes(content)

    assert demo.main(["--db", str(path), "--demo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = captured.err.splitlines()
    assert len(error_lines) == 1, captured.err
    assert error_lines[0].startswith("error: ")
    assert str(path) in error_lines[0]
    assert "Traceback" not in captured.err
    assert path.read_bytes() == content


def test_main_on_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a_folder.db"
    folder.mkdir()
    assert demo.main(["--db", str(folder)]) == 1
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err
    assert list(folder.iterdir()) == []


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        demo.main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "--db" in out
    assert "--demo" in out


def test_main_ends_quietly_when_its_reader_leaves(tmp_path: Path) -> None:
    """``adw_database.py --demo | head -1``: no traceback, status 0."""
    path = tmp_path / "piped.db"
    reader = subprocess.Popen(
        [sys.executable, "-m", "orchestrator_store", "--db", str(path), "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # before the first line is written
    assert reader.wait(timeout=60) == 0
    assert reader.stderr.read() == b""
    assert path.is_file()  # opened, then its first line found no reader
