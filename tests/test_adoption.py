"""Files the original adw_database module wrote: connect() refuses them,
untouched, and ``adopt_database`` (``orchestrator-store adopt``) migrates them
in place after writing a backup copy. The files are written by
``original_era`` (our own SQL, from what is known of the original's files)."""

from __future__ import annotations

import re
import sqlite3
import uuid
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest
from original_era import (
    ADW_ID,
    AGENT,
    BAD_PROMPT,
    BRIDGE,
    BRIDGE_AGENT,
    CHAT,
    CHILD,
    HOSTILE,
    LEFT_OUT,
    MISSING_AGENT,
    MISSING_DEFINITION,
    OLD_LOG_SEQUENCE,
    PLANNER,
    PROMPT,
    SHOUTED,
    all_rows,
    stamp_as_an_earlier_store_did,
    write_original_era_file,
)
from typer.testing import CliRunner, Result

from orchestrator_store import adoption, tables
from orchestrator_store.adoption import (
    ADOPTION_NAMESPACE,
    JSON_AS_STRING,
    JSON_COMPACTED,
    NULL_TO_DEFAULT,
    ORIGINAL_COLUMNS,
    REFERENCE_CLEARED,
    REFERENCE_REMAPPED,
    TIMESTAMP_REWRITTEN,
    UUID_CANONICAL,
    LeftOutRow,
    RemappedId,
    adopt_database,
    adopted_id,
    is_original_era,
)
from orchestrator_store.cli import app
from orchestrator_store.errors import BusyError, DatabaseError, SchemaError
from orchestrator_store.manager import DatabaseManager
from orchestrator_store.schema import DEFAULT_SCHEMA_PATH, LATEST_VERSION, statements_to_upgrade

STORE_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")
NEW_BRIDGE = adopted_id("orchestrator_agents", BRIDGE)
NEW_WORKFLOW = adopted_id("ai_developer_workflows", ADW_ID)


# --- helpers ---------------------------------------------------------------------------


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def files_beside(path: Path) -> list[str]:
    return sorted(entry.name for entry in path.parent.iterdir())


def backups_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.before-adopt-*"))


def raw_rows(path: Path, table: str) -> dict[Any, dict[str, Any]]:
    """The rows of ``table`` by id, read with plain sqlite3."""
    raw = sqlite3.connect(path)
    raw.row_factory = sqlite3.Row
    try:
        return {row["id"]: dict(row) for row in raw.execute(f"SELECT * FROM {table}")}
    finally:
        raw.close()


def pragma(path: Path, name: str) -> Any:
    raw = sqlite3.connect(path)
    try:
        return raw.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        raw.close()


def schema_objects(path: Path) -> list[tuple[str, str, str]]:
    raw = sqlite3.connect(path)
    try:
        return raw.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
        ).fetchall()
    finally:
        raw.close()


def default_timestamp(path: Path, table: str, row_id: Any, column: str) -> str:
    """What a DEFAULT (datetime('now')) wrote, in the store's format."""
    raw = sqlite3.connect(path)
    try:
        (text,) = raw.execute(f"SELECT {column} FROM {table} WHERE id = ?", (row_id,)).fetchone()
    finally:
        raw.close()
    assert isinstance(text, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text), text
    return text.replace(" ", "T") + ".000000+00:00"


@pytest.fixture
def original(tmp_path: Path) -> Path:
    path = tmp_path / "project" / "orchestrator.db"
    write_original_era_file(path)
    return path


# --- connect() refuses, untouched ------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
async def test_connect_refuses_an_original_era_file_and_leaves_it_untouched(
    tmp_path: Path, journal_mode: str
) -> None:
    path = tmp_path / "project" / "orchestrator.db"
    write_original_era_file(path, journal_mode=journal_mode)
    before, listing = snapshot(path), files_beside(path)
    with pytest.raises(SchemaError) as caught:
        await DatabaseManager(path).connect()
    assert str(caught.value) == (
        f"{path} was written by the original adw_database module (no schema version, naive "
        f"timestamps): run `orchestrator-store adopt --db {path}` to migrate it in place (it "
        "writes a backup copy first); the file was left untouched"
    )
    assert snapshot(path) == before
    assert files_beside(path) == listing
    assert pragma(path, "user_version") == 0


async def test_the_command_in_the_refusal_is_quoted_for_the_shell(tmp_path: Path) -> None:
    path = tmp_path / "my project" / "orchestrator.db"
    write_original_era_file(path, journal_mode="delete")
    with pytest.raises(SchemaError, match="orchestrator-store adopt --db") as caught:
        await DatabaseManager(path).connect()
    assert f"`orchestrator-store adopt --db '{path}'`" in str(caught.value)


async def test_a_file_an_earlier_store_stamped_without_converting_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "project" / "orchestrator.db"
    write_original_era_file(path, journal_mode="delete", later_tables=False)
    stamp_as_an_earlier_store_did(path)
    assert pragma(path, "user_version") == 1
    before = snapshot(path)
    with pytest.raises(SchemaError) as caught:
        await DatabaseManager(path).connect()
    message = str(caught.value)
    assert "stamped version 1 by an earlier store without converting it" in message
    assert f"`orchestrator-store adopt --db {path}`" in message
    assert snapshot(path) == before
    assert pragma(path, "user_version") == 1  # not upgraded to version 2 either


async def test_a_file_without_the_checks_is_refused_whatever_its_columns(tmp_path: Path) -> None:
    """Told apart by its missing timestamp CHECKs, not by its columns: a
    workflow table with the store's adw_id column is original-era all the same."""
    path = tmp_path / "orchestrator.db"
    write_original_era_file(path, journal_mode="delete", unconvertible_rows=False)
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE ai_developer_workflows ADD COLUMN adw_id TEXT")
    raw.close()
    before = snapshot(path)
    with pytest.raises(SchemaError, match="written by the original adw_database module"):
        await DatabaseManager(path).connect()
    assert snapshot(path) == before
    report = adopt_database(path)
    assert raw_rows(path, "ai_developer_workflows")[NEW_WORKFLOW]["adw_id"] == ADW_ID
    assert report.left_out == []


def test_the_original_five_tables_have_the_stores_version_1_columns() -> None:
    """A fact the detection rests on: the original's first five tables are ours."""
    for name in ("orchestrator_agents", "agents", "prompts", "agent_logs", "system_logs"):
        assert ORIGINAL_COLUMNS[name] == set(tables.TABLES[name].columns)
    assert set(tables.TABLES["ai_developer_workflows"].columns) - ORIGINAL_COLUMNS[
        "ai_developer_workflows"
    ] == {"adw_id"}


# --- adopting --------------------------------------------------------------------------


async def test_adopt_converts_every_row(original: Path) -> None:
    shouted_created = default_timestamp(original, "orchestrator_agents", SHOUTED, "created_at")
    system_created = default_timestamp(original, "system_logs", 2, "created_at")

    report = adopt_database(original)

    assert pragma(original, "user_version") == LATEST_VERSION
    definitions = raw_rows(original, "orchestrator_agents")
    assert set(definitions) == {PLANNER, NEW_BRIDGE, SHOUTED.lower()}
    assert definitions[PLANNER]["created_at"] == "2026-11-30T01:20:04.981620+00:00"
    assert definitions[NEW_BRIDGE]["name"] == "adw-orchestrator"
    assert definitions[NEW_BRIDGE]["created_at"] == "2026-11-30T01:20:05.000000+00:00"
    assert definitions[NEW_BRIDGE]["updated_at"] == "2026-11-30T01:25:00.000000+00:00"
    assert definitions[SHOUTED.lower()]["created_at"] == shouted_created

    agents = raw_rows(original, "agents")
    assert set(agents) == {AGENT, BRIDGE_AGENT, CHILD}
    assert agents[AGENT]["context"] == '{"issue":13,"files":["a.py"]}'
    assert agents[AGENT]["started_at"] == "2026-11-30T01:20:05.000001+00:00"
    assert agents[AGENT]["cost_usd"] == 0.0
    assert agents[BRIDGE_AGENT]["orchestrator_agent_id"] == NEW_BRIDGE
    assert agents[BRIDGE_AGENT]["context"] == '"Bridge sync for ADW a1b2c3d4"'
    assert agents[BRIDGE_AGENT]["started_at"] == "2026-11-30T01:21:00.000000+00:00"
    assert agents[BRIDGE_AGENT]["completed_at"] == "2026-11-30T01:22:00.000000+00:00"  # was +02:00
    assert agents[CHILD]["orchestrator_agent_id"] == SHOUTED.lower()
    assert agents[CHILD]["parent_agent_id"] is None  # its parent was never in the file

    prompts = raw_rows(original, "prompts")
    assert set(prompts) == {PROMPT}
    assert prompts[PROMPT]["tokens_input"] == 0
    assert prompts[PROMPT]["created_at"] == "2026-11-30T01:20:06.000000+00:00"
    assert prompts[PROMPT]["completed_at"] == "2026-11-30T01:20:09.500000+00:00"

    agent_logs = raw_rows(original, "agent_logs")
    assert set(agent_logs) == {1, 2}
    assert agent_logs[1]["log_level"] == "INFO"
    assert agent_logs[1]["details"] == '{"phase":"plan"}'
    assert agent_logs[1]["created_at"] == "2026-11-30T01:20:05.100000+00:00"
    assert agent_logs[2]["created_at"] == "2026-11-30T01:21:01.000000+00:00"

    system_logs = raw_rows(original, "system_logs")
    assert system_logs[1]["details"] == '"not json at all"'
    assert system_logs[2]["log_level"] == "INFO"
    assert system_logs[2]["created_at"] == system_created

    chat = raw_rows(original, "orchestrator_chat")
    assert set(chat) == {CHAT}
    assert chat[CHAT]["orchestrator_agent_id"] == NEW_BRIDGE
    assert chat[CHAT]["agent_id"] == BRIDGE_AGENT
    assert chat[CHAT]["metadata"] == "{}"
    assert chat[CHAT]["created_at"] == "2026-11-30T01:20:30.250000+00:00"

    workflows = raw_rows(original, "ai_developer_workflows")
    assert set(workflows) == {NEW_WORKFLOW}
    workflow = workflows[NEW_WORKFLOW]
    assert workflow["adw_id"] == ADW_ID
    assert workflow["orchestrator_agent_id"] == NEW_BRIDGE
    assert workflow["duration_seconds"] == 120.0
    assert workflow["error_count"] == 0
    assert workflow["input_data"] == '{"issue":13}'
    assert (workflow["output_data"], workflow["metadata"]) == ("{}", "{}")
    assert workflow["updated_at"] == "2026-11-30T01:22:00.000000+00:00"

    assert report.rows_copied == {
        "orchestrator_agents": 3,
        "agents": 3,
        "prompts": 1,
        "agent_logs": 2,
        "system_logs": 2,
        "orchestrator_chat": 1,
        "ai_developer_workflows": 1,
    }
    assert report.remapped_ids == [
        RemappedId("orchestrator_agents", BRIDGE, NEW_BRIDGE),
        RemappedId("ai_developer_workflows", ADW_ID, NEW_WORKFLOW),
    ]
    assert report.converted == {
        ("orchestrator_agents", "id", UUID_CANONICAL): 1,
        ("orchestrator_agents", "created_at", TIMESTAMP_REWRITTEN): 3,
        ("orchestrator_agents", "updated_at", TIMESTAMP_REWRITTEN): 3,
        ("agents", "orchestrator_agent_id", REFERENCE_REMAPPED): 1,
        ("agents", "parent_agent_id", REFERENCE_CLEARED): 1,
        ("agents", "context", JSON_AS_STRING): 1,
        ("agents", "context", JSON_COMPACTED): 1,
        ("agents", "started_at", TIMESTAMP_REWRITTEN): 3,
        ("agents", "completed_at", TIMESTAMP_REWRITTEN): 1,
        ("agents", "cost_usd", NULL_TO_DEFAULT): 1,
        ("prompts", "tokens_input", NULL_TO_DEFAULT): 1,
        ("prompts", "created_at", TIMESTAMP_REWRITTEN): 1,
        ("prompts", "completed_at", TIMESTAMP_REWRITTEN): 1,
        ("agent_logs", "log_level", NULL_TO_DEFAULT): 1,
        ("agent_logs", "details", JSON_COMPACTED): 1,
        ("agent_logs", "created_at", TIMESTAMP_REWRITTEN): 2,
        ("system_logs", "log_level", NULL_TO_DEFAULT): 1,
        ("system_logs", "details", JSON_AS_STRING): 1,
        ("system_logs", "created_at", TIMESTAMP_REWRITTEN): 2,
        ("orchestrator_chat", "orchestrator_agent_id", REFERENCE_REMAPPED): 1,
        ("orchestrator_chat", "created_at", TIMESTAMP_REWRITTEN): 1,
        ("orchestrator_chat", "updated_at", TIMESTAMP_REWRITTEN): 1,
        ("ai_developer_workflows", "orchestrator_agent_id", REFERENCE_REMAPPED): 1,
        ("ai_developer_workflows", "started_at", TIMESTAMP_REWRITTEN): 1,
        ("ai_developer_workflows", "completed_at", TIMESTAMP_REWRITTEN): 1,
        ("ai_developer_workflows", "input_data", JSON_COMPACTED): 1,
        ("ai_developer_workflows", "error_count", NULL_TO_DEFAULT): 1,
        ("ai_developer_workflows", "created_at", TIMESTAMP_REWRITTEN): 1,
        ("ai_developer_workflows", "updated_at", TIMESTAMP_REWRITTEN): 1,
    }
    assert report.values_converted == sum(report.converted.values())


async def test_rows_that_cannot_be_converted_are_listed_with_their_reasons(
    original: Path,
) -> None:
    report = adopt_database(original)
    listed = {(row.table, row.original_id): row.reason for row in report.left_out}
    assert set(listed) == set(LEFT_OUT)
    for key, named in LEFT_OUT.items():
        assert named in listed[key], (key, listed[key])
    order = list(tables.TABLES)
    assert [order.index(row.table) for row in report.left_out] == sorted(
        order.index(row.table) for row in report.left_out
    )
    # A reference names the row it needed, and says why that row is not there.
    assert listed[("agent_logs", 5)].endswith("which is not in the file")
    assert listed[("agent_logs", 6)].endswith("which was left out")
    assert "prompt_type" in listed[("prompts", BAD_PROMPT)]
    assert raw_rows(original, "prompts").keys() == {PROMPT}


def test_a_row_left_out_counts_no_reference_cleared(tmp_path: Path) -> None:
    """A row whose ON DELETE CASCADE reference and ON DELETE SET NULL
    reference both dangle is left out; its cleared reference is not counted,
    nor any other conversion of it: the report is that of the file without it."""
    clean, extra = tmp_path / "clean.db", tmp_path / "extra.db"
    for path in (clean, extra):
        write_original_era_file(path, unconvertible_rows=False)
    doomed = "11111111-1111-4111-8111-111111111111"
    raw = sqlite3.connect(extra, isolation_level=None)
    raw.execute(
        "INSERT INTO agents (id, orchestrator_agent_id, session_id, parent_agent_id, started_at) "
        f"VALUES ('{doomed}', '{MISSING_DEFINITION}', 's', '{MISSING_AGENT}', "
        "'2026-11-30T01:00:00')"
    )
    raw.close()
    expected = adopt_database(clean)
    report = adopt_database(extra)
    assert report.left_out == [
        LeftOutRow(
            "agents",
            doomed,
            f"orchestrator_agent_id names orchestrator_agents row '{MISSING_DEFINITION}', "
            "which is not in the file",
        )
    ]
    assert report.converted[("agents", "parent_agent_id", REFERENCE_CLEARED)] == 1  # CHILD's
    assert report.converted == expected.converted
    assert report.rows_copied == expected.rows_copied


def test_damaged_values_are_left_out_without_stopping_the_adoption(original: Path) -> None:
    raw = sqlite3.connect(original, isolation_level=None)
    try:
        raw.executescript(
            f"""
            INSERT INTO system_logs (id, component, message, created_at)
                VALUES (10, 'bridge', 'when?', 'yesterday');
            INSERT INTO system_logs (id, component, message, created_at)
                VALUES (11, 'bridge', CAST(X'ff6f6f' AS TEXT), '2026-11-30T01:00:00');
            INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, cost_usd, created_at)
                VALUES ('{uuid.uuid4()}', '{AGENT}', 'adw', 'refund', -0.5, '2026-11-30T01:00:00');
            INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at)
                VALUES ('{AGENT.upper()}', '{PLANNER}', 'again', '2026-11-30T01:00:00');
            INSERT INTO agents (id, orchestrator_agent_id, session_id, started_at)
                VALUES (CAST(X'ff' AS TEXT), '{PLANNER}', 'damaged', '2026-11-30T01:00:00');
            """
        )
    finally:
        raw.close()
    report = adopt_database(original)
    reasons = [row.reason for row in report.left_out]
    assert "created_at: 'yesterday' is not a date and time" in reasons
    assert "system_logs.message: Value error, must be valid Unicode (no lone surrogates)" in (
        reasons
    )
    assert any(reason.startswith("prompts.cost_usd: Input should be greater") for reason in reasons)
    assert f"its id is the same UUID as an earlier row's ({AGENT})" in reasons
    assert "its id is not valid UTF-8 text" in reasons
    assert ("agents", "\\xff") in {(row.table, row.original_id) for row in report.left_out}
    assert len(report.left_out) == len(LEFT_OUT) + 5
    assert report.rows_copied["agents"] == 3


async def test_the_backup_holds_the_file_as_it_was(original: Path) -> None:
    before = all_rows(original)
    report = adopt_database(original)
    assert backups_of(original) == [report.backup_path]
    assert re.fullmatch(
        rf"{re.escape(original.name)}\.before-adopt-\d{{8}}T\d{{6}}Z", report.backup_path.name
    )
    assert all_rows(report.backup_path) == before
    assert pragma(report.backup_path, "user_version") == 0
    assert pragma(report.backup_path, "journal_mode") == "delete"  # one self-contained file
    raw = sqlite3.connect(report.backup_path)
    try:
        assert is_original_era(raw)
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()
    # Every row left out is in the backup.
    for table, original_id in LEFT_OUT:
        assert original_id in raw_rows(report.backup_path, table)


async def test_the_backup_includes_writes_still_in_the_wal(original: Path) -> None:
    """A row the original committed into its WAL, not yet checkpointed into
    the file, is in the backup and in the adopted file."""
    writer = sqlite3.connect(original, isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute(
            "INSERT INTO system_logs (component, message, created_at) "
            "VALUES ('bridge', 'still in the WAL', '2026-11-30T02:00:00')"
        )
        assert Path(f"{original}-wal").stat().st_size > 0
        report = adopt_database(original)
    finally:
        writer.close()
    assert [row[3] for row in all_rows(report.backup_path)["system_logs"]][-1] == (
        "still in the WAL"
    )
    adopted = {row["message"]: row for row in raw_rows(original, "system_logs").values()}
    assert adopted["still in the WAL"]["created_at"] == "2026-11-30T02:00:00.000000+00:00"


def test_no_write_slips_in_between_the_backup_and_the_migration(
    original: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the backup is written, another connection tries to write:
    the write lock taken before the backup is still held, so it cannot."""
    write_backup = adoption._write_backup
    attempts: list[str] = []

    def backup_then_write(path: Path, requested: Path | None) -> Path:
        made = write_backup(path, requested)
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            other.execute("INSERT INTO system_logs (component, message) VALUES ('late', 'in')")
            attempts.append("written")
        except sqlite3.OperationalError as exc:
            attempts.append(str(exc))
        finally:
            other.close()
        return made

    monkeypatch.setattr(adoption, "_write_backup", backup_then_write)
    report = adopt_database(original)
    assert attempts == ["database is locked"]
    for path in (original, report.backup_path):
        assert "late" not in {row["component"] for row in raw_rows(path, "system_logs").values()}


async def test_the_store_opens_the_adopted_file_and_reads_its_rows(original: Path) -> None:
    adopt_database(original)
    async with DatabaseManager(original) as db:
        assert await db.schema_version() == LATEST_VERSION
        definitions = await db.list_orchestrator_agents()
        stamps = [row["created_at"] for row in definitions]
        assert all(STORE_TIMESTAMP.fullmatch(stamp) for stamp in stamps)
        assert stamps == sorted(stamps, reverse=True)  # newest first, in time order
        bridge = await db.get_orchestrator_agent(NEW_BRIDGE)
        assert bridge is not None and bridge["name"] == "adw-orchestrator"
        agent = await db.get_agent(BRIDGE_AGENT)
        assert agent is not None
        assert agent["context"] == "Bridge sync for ADW a1b2c3d4"
        assert agent["completed_at"] == "2026-11-30T01:22:00.000000+00:00"
        logs = await db.get_agent_logs(AGENT)
        assert [row["details"] for row in logs] == [{"phase": "plan"}]
        workflow = await db.get_workflow_by_adw_id(ADW_ID)
        assert workflow is not None
        assert workflow["id"] == NEW_WORKFLOW
        assert workflow["input_data"] == {"issue": 13}
        messages = await db.list_chat_messages(NEW_BRIDGE)
        assert [row["message"] for row in messages] == ["Build issue 13"]
        # The store writes to it as to its own files: the original's trigger,
        # which stamped updated_at in its own format, is gone.
        assert await db.update_orchestrator_agent(NEW_BRIDGE, description="the bridge")
        log_id = await db.create_agent_log(AGENT, "INFO", "milestone", "after adoption")
        assert log_id == OLD_LOG_SEQUENCE + 1  # ids the original handed out are not reused
        workflow_id = await db.start_workflow("b2c3d4e5", "sdlc", adw_id="b2c3d4e5")
        assert await db.get_workflow(workflow_id) is not None


async def test_the_adopted_file_has_exactly_the_stores_schema(original: Path) -> None:
    adopt_database(original)
    fresh = original.with_name("fresh.db")
    async with DatabaseManager(fresh):
        pass
    adopted = [(kind, name, sql) for kind, name, sql in schema_objects(original)]
    made = [(kind, name, sql) for kind, name, sql in schema_objects(fresh)]
    assert adopted == made  # the same tables, indexes and CHECKs; no trigger, no old table


def test_the_adopted_file_gives_the_old_tables_pages_back(original: Path) -> None:
    """The old tables are dropped after the copy; a VACUUM returns their pages,
    so the adopted file keeps no free pages."""
    adopt_database(original)
    connection = sqlite3.connect(original)
    try:
        assert connection.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()


async def test_a_file_an_earlier_store_stamped_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "project" / "orchestrator.db"
    write_original_era_file(path, journal_mode="delete", later_tables=False)
    stamp_as_an_earlier_store_did(path)
    report = adopt_database(path)
    assert report.rows_copied["orchestrator_chat"] == 0
    assert report.rows_copied["system_logs"] == 3
    # The store's own row was in its format already: kept as it was, not counted.
    assert report.converted[("system_logs", "created_at", TIMESTAMP_REWRITTEN)] == 2
    by_message = {row["message"]: row for row in raw_rows(path, "system_logs").values()}
    assert by_message["written by store version 1"]["created_at"] == (
        "2026-12-01T00:00:00.000000+00:00"
    )
    fresh = path.with_name("fresh.db")
    async with DatabaseManager(fresh):
        pass
    # Its indexes (which the old tables carried under the store's names) are the store's.
    assert schema_objects(path) == schema_objects(fresh)
    async with DatabaseManager(path) as db:
        assert await db.get_orchestrator_agent(NEW_BRIDGE) is not None


async def test_adopting_twice_is_refused_the_second_time(original: Path) -> None:
    adopt_database(original)
    before = snapshot(original)
    with pytest.raises(SchemaError, match="already in the store's schema") as caught:
        adopt_database(original)
    assert f"version {LATEST_VERSION}" in str(caught.value)
    assert snapshot(original) == before
    assert len(backups_of(original)) == 1


async def test_a_store_file_is_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with DatabaseManager(path) as db:
        await db.create_system_log("INFO", "store", "its own row")
    before = snapshot(path)
    with pytest.raises(SchemaError, match="nothing to adopt"):
        adopt_database(path)
    assert snapshot(path) == before
    assert backups_of(path) == []


def test_an_unversioned_store_file_is_not_adopted(tmp_path: Path) -> None:
    """The store's own tables (adw_id included), not yet versioned: connect()
    stamps such a file, adopt has nothing to do."""
    path = tmp_path / "store.db"
    raw = sqlite3.connect(path, isolation_level=None)
    for statement in statements_to_upgrade(0, DEFAULT_SCHEMA_PATH):
        raw.execute(statement)
    raw.close()
    before = snapshot(path)
    with pytest.raises(SchemaError) as caught:
        adopt_database(path)
    assert str(caught.value) == (
        f"{path} already holds the store's schema, not yet versioned: there is nothing to "
        "adopt; connect() stamps its version"
    )
    assert snapshot(path) == before
    assert files_beside(path) == ["store.db"]


def with_a_newer_version(path: Path) -> None:
    write_original_era_file(path, journal_mode="delete")
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    raw.close()


def with_no_tables(path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("CREATE TABLE gone (x)")
    raw.execute("DROP TABLE gone")
    raw.close()


def with_a_view(path: Path) -> None:
    write_original_era_file(path, journal_mode="delete")
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("CREATE VIEW busy AS SELECT * FROM agents")
    raw.close()


def with_a_trigger_on_another_table(path: Path) -> None:
    """Stamped version 1: an unversioned file's other table is refused earlier."""
    write_original_era_file(path, journal_mode="delete", later_tables=False)
    stamp_as_an_earlier_store_did(path)
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("CREATE TABLE notes (body TEXT)")
    raw.execute("CREATE TRIGGER noted AFTER INSERT ON notes BEGIN SELECT 1; END")
    raw.close()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (with_a_newer_version, SchemaError, f"newer than this store's {LATEST_VERSION}"),
        (with_no_tables, DatabaseError, "holds no tables"),
        (with_a_view, DatabaseError, "holds view busy: adopt carries over"),
        (with_a_trigger_on_another_table, DatabaseError, "holds trigger noted: adopt carries"),
    ],
    ids=["newer_version", "no_tables", "view", "trigger_on_another_table"],
)
def test_what_adopt_cannot_carry_over_is_refused_untouched(
    tmp_path: Path, make: Any, error: type[DatabaseError], message: str
) -> None:
    path = tmp_path / "orchestrator.db"
    make(path)
    before = snapshot(path)
    with pytest.raises(DatabaseError, match=message) as caught:
        adopt_database(path)
    assert type(caught.value) is error
    assert "nothing was changed" in str(caught.value) or "holds no tables" in str(caught.value)
    assert snapshot(path) == before
    assert files_beside(path) == ["orchestrator.db"]


def test_another_applications_file_is_refused_by_adopt(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE notes (body TEXT)")
    raw.execute("CREATE TABLE agents (x TEXT)")  # a store name, other columns
    raw.commit()
    raw.close()
    before = snapshot(path)
    with pytest.raises(DatabaseError, match="another application's database") as caught:
        adopt_database(path)
    assert "agents, notes" in str(caught.value)
    assert snapshot(path) == before
    assert files_beside(path) == ["other.db"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no database at"), (b"", "is empty"), (b"name,cost\n" * 20, "not a SQLite database")],
    ids=["missing", "empty", "text"],
)
def test_what_is_not_a_database_is_refused(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "orchestrator.db"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatabaseError, match=message):
        adopt_database(path)
    assert files_beside(path) == ([] if content is None else ["orchestrator.db"])


# --- backups and failures --------------------------------------------------------------


def test_the_backup_goes_where_asked_and_never_over_a_file(original: Path) -> None:
    taken = original.with_name("taken.db")
    taken.write_bytes(b"someone's file")
    before = snapshot(original)
    with pytest.raises(DatabaseError, match="exists: adopt never writes over a file"):
        adopt_database(original, backup_path=taken)
    assert taken.read_bytes() == b"someone's file"
    assert snapshot(original) == before
    for own in (original, Path(f"{original}-journal")):
        with pytest.raises(DatabaseError, match="the database's own file"):
            adopt_database(original, backup_path=own)
    assert snapshot(original) == before
    chosen = original.with_name("kept.db")
    report = adopt_database(original, backup_path=chosen)
    assert report.backup_path == chosen
    assert backups_of(original) == []
    assert pragma(chosen, "user_version") == 0


class FixedClock(datetime):
    """adoption's clock, stopped: backups are named after the second they are made in."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> FixedClock:
        return cls(2026, 11, 30, 1, 2, 3, tzinfo=UTC)


def test_a_default_backup_name_already_taken_gets_a_number(
    original: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adoption, "datetime", FixedClock)
    taken = Path(f"{original}.before-adopt-20261130T010203Z")
    taken.write_bytes(b"an earlier backup")
    report = adopt_database(original)
    assert report.backup_path == Path(f"{taken}-2")
    assert taken.read_bytes() == b"an earlier backup"
    assert all_rows(report.backup_path)["agents"]


def test_an_error_mid_way_leaves_the_file_as_it_was_and_keeps_the_backup(
    original: Path, tmp_path: Path
) -> None:
    """The failure comes after the old tables were renamed and the new ones
    created: everything is one transaction, so none of it stays."""
    failing = tmp_path / "failing.sql"
    failing.write_text(
        DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8") + "\nCREATE TABLE broken (;\n",
        encoding="utf-8",
    )
    rows, objects = all_rows(original), schema_objects(original)
    with pytest.raises(DatabaseError) as caught:
        adopt_database(original, schema_path=failing)
    message = str(caught.value)
    assert "failed and was rolled back" in message
    (backup,) = backups_of(original)
    assert str(backup) in message
    assert all_rows(original) == rows
    assert schema_objects(original) == objects
    assert pragma(original, "user_version") == 0
    assert all_rows(backup) == rows
    # Still the original's file: adopting it with the real schema works.
    report = adopt_database(original)
    assert report.rows_copied["agents"] == 3


def test_a_file_another_connection_is_writing_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.db"
    write_original_era_file(path, journal_mode="delete")
    before = snapshot(path)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(BusyError, match="is in use") as caught:
            adopt_database(path, busy_timeout=0.05)
        assert "nothing was changed" in str(caught.value)
        assert caught.value.retryable
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert snapshot(path) == before
    assert backups_of(path) == []


def test_adopted_ids_are_fixed_version_5_uuids() -> None:
    assert str(uuid.uuid5(ADOPTION_NAMESPACE, "orchestrator_agents:adw-orchestrator")) == NEW_BRIDGE
    assert uuid.UUID(NEW_WORKFLOW).version == 5
    assert adopted_id("agents", SHOUTED) == SHOUTED.lower()
    assert adopted_id("agents", PLANNER) == PLANNER


# --- the command line ------------------------------------------------------------------


def run(*args: str) -> Result:
    """The command line in this process (wide terminal: tables never truncate)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_adopt_prints_the_report_and_shows_file_text_inertly(original: Path) -> None:
    result = run("--db", str(original), "adopt")
    assert result.exit_code == 0, result.output
    out = result.stdout
    (backup,) = backups_of(original)
    assert f"backup    {backup}" in out
    for name, count in [("orchestrator_agents", 3), ("agent_logs", 2), ("orchestrator_chat", 1)]:
        assert re.search(rf"│ {name} +│ +{count} │", out), name
    assert "remapped 2 ids that were not UUIDs" in out
    assert re.search(rf"│ orchestrator_agents +│ adw-orchestrator +│ {NEW_BRIDGE} │", out)
    assert re.search(rf"│ ai_developer_workflows +│ {ADW_ID} +│ {NEW_WORKFLOW} │", out)
    assert "agents.context" in out and JSON_AS_STRING in out
    assert f"left out {len(LEFT_OUT)} rows (kept in the backup)" in out
    assert re.search(r"│ agent_logs +│ 5 +│ agent_id names agents row", out)
    # The hostile id reaches the terminal as escapes, never as control characters.
    assert HOSTILE.encode("unicode_escape").decode() in out
    assert "\x1b" not in out and "\x07" not in out
    assert "\x1b" not in result.stderr
    assert result.stderr.strip() == (
        f"WARNING: {len(LEFT_OUT)} rows could not be converted and were left out; "
        f"they remain in the backup {backup}"
    )


def test_cli_adopt_of_a_clean_file_warns_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.db"
    write_original_era_file(path, unconvertible_rows=False)
    chosen = tmp_path / "saved.db"
    result = run("adopt", "--db", str(path), "--backup", str(chosen))
    assert result.exit_code == 0, result.output
    assert f"backup    {chosen}" in result.stdout
    assert "left out" not in result.stdout
    assert result.stderr == ""
    assert pragma(path, "user_version") == LATEST_VERSION


def test_cli_adopt_refuses_what_it_cannot_adopt_in_one_line(original: Path, tmp_path: Path) -> None:
    assert run("adopt", "--db", str(original)).exit_code == 0
    line = one_line_error(run("adopt", "--db", str(original)))
    assert "already in the store's schema" in line
    missing = tmp_path / "absent.db"
    assert "no database at" in one_line_error(run("adopt", "--db", str(missing)))
    assert not missing.exists()
    folder = tmp_path / "folder.db"
    folder.mkdir()
    line = one_line_error(run("adopt", "--db", str(folder)))
    assert line == f"error: {folder} is a directory, not a SQLite database file"


def test_cli_adopt_refuses_a_postgresql_url_in_one_line() -> None:
    url = "postgresql://adw:s3cret@127.0.0.1:5432/orchestrator"
    line = one_line_error(run("--db", url, "adopt"))
    assert "adopt migrates SQLite files only" in line
    assert "s3cret" not in line
