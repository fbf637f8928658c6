"""The command line against what could go wrong: an export aimed at the store's
own files, Ctrl-C in the middle of a write, stored text that would drive the
terminal or a spreadsheet, and failures of every kind, each one line."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from realistic_session import RecordedSession
from test_cli import CLI, digest, fails, ok, run

from orchestrator_store.dialect import COLUMNS
from orchestrator_store.manager import DatabaseError, DatabaseManager

# What a terminal acts on instead of showing; none may come from the store.
TERMINAL_CONTROLS = {chr(code) for code in (*range(0x20), *range(0x7F, 0xA0))} - {"\n"}
TERMINAL_CONTROLS |= {"\u202e", "\u2066"}
HANG_GUARD = 120  # seconds: a hung process fails the test instead of stalling the run


def wait_for(found: Callable[[], Any], process: subprocess.Popen[str]) -> Any:
    """Poll until ``found()`` returns something, or the process ends (then None)."""
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        result = found()
        if result or process.poll() is not None:
            return result
        time.sleep(0.005)
    raise AssertionError("hang guard: nothing happened")


def grow_agent_logs(path: Path, rows: int) -> None:
    """At least ``rows`` agent log rows of ~200 bytes, doubled with plain SQL:
    an export of them takes long enough to be interrupted half-way."""
    names = ", ".join(column for column in COLUMNS["agent_logs"] if column != "id")
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE agent_logs SET message = message || ' ' || hex(zeroblob(64))")
        while raw.execute("SELECT count(*) FROM agent_logs").fetchone()[0] < rows:
            raw.execute(f"INSERT INTO agent_logs ({names}) SELECT {names} FROM agent_logs")
    raw.close()


def folder_listing(folder: Path) -> dict[str, str]:
    return {path.name: digest(path) for path in folder.iterdir() if path.is_file()}


# --- export never writes over the store -------------------------------------------


SPELLINGS: dict[str, Callable[[Path, Path], object]] = {
    "the file": lambda store, root: str(store),
    "its WAL": lambda store, root: f"{store}-wal",
    "its shared memory": lambda store, root: f"{store}-shm",
    "its journal": lambda store, root: f"{store}-journal",
    "relative": lambda store, root: str(store.relative_to(root)),
    "with ..": lambda store, root: f"./{store.parent.name}/../{store.parent.name}/{store.name}",
    "a symlink": lambda store, root: _link(root / "link.jsonl", store),
    "a symlinked folder": lambda store, root: (
        str(_link(root / "alias", store.parent)) + f"/{store.name}-wal"
    ),
    "a hard link": lambda store, root: _hard_link(root / "hard.jsonl", store),
}


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _hard_link(link: Path, target: Path) -> Path:
    os.link(target, link)
    return link


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_export_refuses_the_store_files_however_spelt(
    recorded: RecordedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    store = recorded.path
    monkeypatch.chdir(tmp_path)
    target = str(SPELLINGS[spelling](store, tmp_path))
    before = folder_listing(store.parent)

    line = fails(store, "export", "--output", target)

    assert line.startswith(f"error: --output {Path(target)} is the store's own file {store}")
    assert folder_listing(store.parent) == before
    assert json.loads(ok(store, "stats", "--json"))["rows"]["agents"] == 5


def test_export_refuses_a_hard_link_to_the_live_wal(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    reader = sqlite3.connect(recorded.path)  # in WAL mode: the -wal file exists while open
    try:
        reader.execute("SELECT count(*) FROM agents").fetchone()
        wal = Path(f"{recorded.path}-wal")
        alias = _hard_link(tmp_path / "wal-alias", wal)

        line = fails(recorded.path, "export", "--output", str(alias))

        assert line.endswith(f"is the store's own file {wal}")
    finally:
        reader.close()


# --- export replaces its output only when complete --------------------------------


def test_a_failed_export_leaves_the_previous_file_untouched(
    recorded: RecordedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous export\n", encoding="utf-8")
    real_iter_rows = DatabaseManager.iter_rows

    async def failing_half_way(
        self: DatabaseManager, table: str, *, batch_size: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        async for row in real_iter_rows(self, table, batch_size=batch_size):
            yield row
            if table == "agents":
                raise DatabaseError("disk I/O error")

    monkeypatch.setattr(DatabaseManager, "iter_rows", failing_half_way)

    assert fails(recorded.path, "export", "--output", str(target)) == "error: disk I/O error"
    assert target.read_text(encoding="utf-8") == "previous export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl", "recorded"]


def test_export_replaces_the_file_a_symlink_names_and_keeps_its_mode(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous export\n", encoding="utf-8")
    target.chmod(0o640)
    link = _link(tmp_path / "latest.jsonl", target)
    fresh = tmp_path / "fresh.jsonl"

    ok(recorded.path, "export", "--table", "agents", "--output", str(link))
    ok(recorded.path, "export", "--table", "agents", "--output", str(fresh))

    assert link.is_symlink()
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert sorted(row["id"] for row in rows) == sorted(recorded.agents.values())
    assert target.stat().st_mode & 0o777 == 0o640
    umask = os.umask(0o022)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert fresh.read_bytes() == target.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "fresh.jsonl",
        "latest.jsonl",
        "out.jsonl",
        "recorded",
    ]


def test_export_writes_into_a_device(recorded: RecordedSession) -> None:
    ok(recorded.path, "export", "--output", os.devnull)

    assert Path(os.devnull).is_char_device()


def test_export_to_a_folder_or_into_a_missing_one_is_one_line(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    missing = tmp_path / "missing" / "out.jsonl"

    assert fails(recorded.path, "export", "--output", str(tmp_path)).endswith("is a folder")
    assert fails(recorded.path, "export", "--output", str(missing)).endswith(
        f"no folder {missing.parent}"
    )
    assert not missing.parent.exists()


# --- Ctrl-C and closed pipes ---------------------------------------------------------------


# The command line, with the export held after its first row until Ctrl-C comes: the
# signal lands mid-export however fast the machine is (no race against the export's end).
HELD_EXPORT = """
import asyncio, signal, sys
from orchestrator_store import cli, manager

# Ctrl-C as a terminal delivers it, even when this test runs as a background job
# of a non-interactive shell (those start with SIGINT ignored, and so would we).
signal.signal(signal.SIGINT, signal.default_int_handler)

iter_rows = manager.DatabaseManager.iter_rows

async def held_iter_rows(self, *args, **kwargs):
    async for row in iter_rows(self, *args, **kwargs):
        yield row
        print("exporting", flush=True)
        await asyncio.Event().wait()  # until Ctrl-C cancels it

manager.DatabaseManager.iter_rows = held_iter_rows
sys.argv = ["orchestrator-store", *sys.argv[1:]]  # python -c HELD_EXPORT ARGS...
cli.app()
"""


def test_ctrl_c_during_export_exits_130_and_keeps_the_previous_file(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("previous export\n", encoding="utf-8")
    before = digest(target)
    command = ["--db", str(recorded.path), "export", "-o", str(target)]
    exporter = subprocess.Popen(
        [sys.executable, "-c", HELD_EXPORT, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert exporter.stdout is not None
    try:
        assert exporter.stdout.readline() == "exporting\n", "the export never started"
        partial = wait_for(lambda: list(tmp_path.glob(".out.jsonl.*.partial")), exporter)
        assert partial, "the export ended before it could be interrupted"
        exporter.send_signal(signal.SIGINT)  # as Ctrl-C does
        _, stderr = exporter.communicate(timeout=HANG_GUARD)
    finally:
        exporter.kill()
        exporter.wait(timeout=HANG_GUARD)

    assert exporter.returncode == 130
    assert stderr.splitlines()[-1] == "interrupted"
    assert "Traceback" not in stderr
    assert digest(target) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl", "recorded"]


def test_a_closed_pipe_ends_export_quietly(recorded: RecordedSession) -> None:
    grow_agent_logs(recorded.path, 2_000)  # more than a pipe holds
    exporter = subprocess.Popen(
        [str(CLI), "--db", str(recorded.path), "export"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert exporter.stdout is not None and exporter.stderr is not None
    try:
        assert exporter.stdout.readline().startswith(b'{"table": "orchestrator_agents"')
        exporter.stdout.close()  # as `| head -1` does
        stderr = exporter.stderr.read().decode()
        exporter.wait(timeout=HANG_GUARD)
    finally:
        exporter.kill()
        exporter.wait(timeout=HANG_GUARD)

    assert exporter.returncode == 1
    assert stderr == ""


# --- stored text is shown, never obeyed ----------------------------------------------------

HOSTILE: dict[str, Any] = {
    "definition": "[/bold]",
    "session": "s\x1b]0;pwned\x07",
    "error": "boom \x1b[2J\nsecond line",
    "prompt": "[bold]plan[/bold]",
    "model": "m\x9b31m",
    "message": "red \x1b[31malert\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \u202eevil\rover",
    "component": "cron\x1b[1m",
    "details": {"note": "\x1b[5mblink\x9b"},
}


async def record_hostile(path: Path) -> str:
    async with DatabaseManager(path) as db:
        definition = await db.create_orchestrator_agent(HOSTILE["definition"], "x", "builder")
        agent = await db.create_agent(definition, HOSTILE["session"])
        await db.update_agent(agent, status="failed", error_message=HOSTILE["error"])
        prompt = await db.create_prompt(
            agent, "adw", "do it", prompt_name=HOSTILE["prompt"], model_used=HOSTILE["model"]
        )
        await db.update_prompt(prompt, cost_usd=0.5)
        await db.create_agent_log(
            agent, "ERROR", "error", HOSTILE["message"], details=HOSTILE["details"]
        )
        await db.create_system_log("INFO", HOSTILE["component"], "tick")
        return agent


def test_stored_text_is_printed_inert_by_every_command(tmp_path: Path) -> None:
    path = tmp_path / "hostile.db"
    agent = asyncio.run(record_hostile(path))
    outputs = {
        " ".join(command): ok(path, *command)
        for command in (
            ["agents"],
            ["agent", agent],
            ["sessions"],
            ["session", HOSTILE["session"]],
            ["costs", "--by", "session"],
            ["costs", "--by", "model"],
            ["logs"],
            ["stats"],
        )
    }

    for command, out in outputs.items():
        assert not TERMINAL_CONTROLS & set(out), command
    assert "[/bold]" in outputs["agents"] and "[/bold] (builder)" in outputs["agent " + agent]
    assert "[bold]plan[/bold]" in outputs["agent " + agent]
    assert "s\\x1b]0;pwned\\x07" in outputs["sessions"]
    session = outputs["session " + HOSTILE["session"]]
    assert "session     s\\x1b]0;pwned\\x07" in session and "[/bold]" in session
    assert "m\\x9b31m" in session
    assert "no session 'nope\\x1b[2J'" in fails(path, "session", "nope\x1b[2J")
    assert "m\\x9b31m" in outputs["costs --by model"]
    assert "error       boom \\x1b[2J\n            second line" in outputs["agent " + agent]
    logs = outputs["logs"]
    assert "red \\x1b[31malert\\x1b[0m \\x1b]8;;http://x\\x1b\\link" in logs
    assert "\\u202eevil\\rover" in logs and "system cron\\x1b[1m" in logs
    assert '{"note": "\\u001b[5mblink\\u009b"}' in logs


def test_json_output_keeps_stored_text_exact_and_escaped(tmp_path: Path) -> None:
    path = tmp_path / "hostile.db"
    agent = asyncio.run(record_hostile(path))

    detail_text = ok(path, "agent", agent, "--json")
    logs_text = ok(path, "logs", "--json")
    detail = json.loads(detail_text)
    logs = [json.loads(line) for line in logs_text.splitlines()]

    for text in (detail_text, logs_text, ok(path, "agents", "--json")):
        assert not TERMINAL_CONTROLS & set(text)
    assert detail["definition"]["name"] == HOSTILE["definition"]
    assert detail["agent"]["session_id"] == HOSTILE["session"]
    assert detail["prompts"][0]["model_used"] == HOSTILE["model"]
    agent_log = next(row for row in logs if row["source"] == "agent")
    assert agent_log["message"] == HOSTILE["message"]
    assert agent_log["details"] == HOSTILE["details"]


def test_an_error_quoting_a_path_shows_its_control_characters(tmp_path: Path) -> None:
    missing = tmp_path / "x\x1b[31m.db"

    line = fails(missing, "stats")

    assert "x\\x1b[31m.db" in line and "\x1b" not in line


# --- CSV that spreadsheets do not run ------------------------------------------------------


def test_csv_export_neutralises_formula_cells_and_keeps_numbers(tmp_path: Path) -> None:
    path = tmp_path / "formulas.db"
    messages = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "ok"]

    async def record() -> None:
        async with DatabaseManager(path) as db:
            for message in messages:
                await db.create_system_log("INFO", "=cmd|' /C calc'!A0", message, details=-1.5)

    asyncio.run(record())
    target = tmp_path / "system_logs.csv"
    ok(path, "export", "--table", "system_logs", "--format", "csv", "--output", str(target))
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))

    assert [row["message"] for row in rows] == ["'" + text for text in messages[:-1]] + ["ok"]
    assert {row["component"] for row in rows} == {"'=cmd|' /C calc'!A0"}
    assert {row["details"] for row in rows} == {"-1.5"}  # a number, kept as one
    assert [row["id"] for row in rows] == [str(n) for n in range(1, len(messages) + 1)]


# --- failures of every kind are one line ---------------------------------------------------

BROKEN_STORE = """
import logging, sys
from orchestrator_store import cli, manager

async def storage(self):
    try:
        raise OSError("disk I/O error")
    except OSError:
        logging.getLogger("orchestrator_store.sqlite_backend").exception("ROLLBACK failed")
    raise manager.DatabaseError("database disk image is malformed")

manager.DatabaseManager.storage = storage
sys.argv = ["orchestrator-store", "--db", sys.argv[1], "stats"]
cli.app()
"""


def test_a_failing_command_prints_one_line_even_when_the_store_logs(
    recorded: RecordedSession, tmp_path: Path
) -> None:
    script = tmp_path / "broken_store.py"
    script.write_text(BROKEN_STORE, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, str(script), str(recorded.path)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )

    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: database disk image is malformed"]
    assert done.stdout == ""


def test_an_unexpected_exception_is_one_line(
    recorded: RecordedSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def overflowing(self: DatabaseManager, *args: Any, **kwargs: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(DatabaseManager, "prune", overflowing)

    assert fails(recorded.path, "prune", "--older-than", "5") == (
        "error: unexpected OverflowError: date value out of range"
    )


def test_a_validation_error_from_the_store_is_one_line(recorded: RecordedSession) -> None:
    line = fails(recorded.path, "agents", "--status", "bogus")

    assert line.startswith("error: ") and "status" in line
    assert run(recorded.path, "agents", "--status", "bogus").exit_code == 1
