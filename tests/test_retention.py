"""Retention: ``prune()`` with a ``RetentionPolicy``, the ``prune`` command, the
space that comes back, and automatic retention.

Sessions here are made one after another, so their order is their creation
order; age rules get past times written straight into the rows (raw sqlite3,
or a raw asyncpg connection). Sizes are the real file's (SQLite) and the
server's own figures for the tables (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from recount import assert_reports_match
from typer.testing import CliRunner, Result

from orchestrator_store.cli import app
from orchestrator_store.manager import DatabaseError, DatabaseManager, ValidationError
from orchestrator_store.models import RetentionPolicy, format_timestamp
from orchestrator_store.retention import PruneReport, parse_size
from orchestrator_store.tables import TABLES

Spec = tuple[str, bool]  # (session id, still running)
FIVE_SESSIONS: tuple[Spec, ...] = (
    ("s0", False),
    ("s1", True),  # old, but an agent of it still runs: never deleted
    ("s2", False),
    ("s3", False),
    ("s4", False),
)


async def record(
    db: DatabaseManager, specs: Sequence[Spec], *, text: str = ""
) -> dict[str, list[str]]:
    """Each session: a parent agent and its child, each with a costed prompt,
    three logs and a chat message; one chat message and one system log
    outside any session. ``text`` pads the prompts (to fill a file)."""
    definitions = await db.list_orchestrator_agents()
    definition = (
        definitions[0]["id"]
        if definitions
        else await db.create_orchestrator_agent("planner", None, "planner")
    )
    await db.create_chat_message(definition, "user", "orchestrator", "no session")
    agents: dict[str, list[str]] = {}
    for session, running in specs:
        parent = await db.create_agent(definition, session, status="executing")
        child = await db.create_agent(definition, session, parent, status="completed")
        for agent in (parent, child):
            prompt = await db.create_prompt(
                agent, "adw", f"work of {session}{text}", model_used="claude-sonnet"
            )
            await db.update_prompt(
                prompt, status="completed", tokens_input=100, tokens_output=20, cost_usd=0.01
            )
            await db.create_agent_logs(
                [
                    {"agent_id": agent, "log_type": "milestone", "message": f"{session} {step}"}
                    for step in range(3)
                ]
            )
            await db.create_chat_message(
                definition, "orchestrator", "agent", f"to {session}", agent_id=agent
            )
        if not running:
            await db.update_agent(parent, status="completed", completed_at=datetime.now(UTC))
        await db.create_system_log("INFO", "orchestrator", f"{session} recorded")
        agents[session] = [parent, child]
    return agents


async def counts(db: DatabaseManager) -> dict[str, int]:
    """Rows per table, counted from the rows (not from any total)."""
    found = {}
    for table in TABLES:
        found[table] = int((await db.query(f"SELECT count(*) AS n FROM {table}"))[0]["n"])
    return found


async def session_ids(db: DatabaseManager) -> set[str]:
    return {row["session_id"] for row in await db.query("SELECT DISTINCT session_id FROM agents")}


def removed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        table: before[table] - after[table] for table in before if before[table] != after[table]
    }


async def backdate(store_url: Any, backend: str, sessions: dict[str, int]) -> None:
    """Move each session's agents, prompts and agent logs ``days`` days back."""
    for session, days in sessions.items():
        when = datetime.now(UTC) - timedelta(days=days)
        agents = "SELECT id FROM agents WHERE session_id = {mark}"
        statements = [
            "UPDATE agents SET started_at = {when}, completed_at = CASE WHEN completed_at IS NULL"
            " THEN NULL ELSE {when} END WHERE session_id = {mark}",
            f"UPDATE prompts SET created_at = {{when}} WHERE agent_id IN ({agents})",
            f"UPDATE agent_logs SET created_at = {{when}} WHERE agent_id IN ({agents})",
        ]
        if backend == "sqlite":
            with closing(sqlite3.connect(store_url)) as raw, raw:
                for sql in statements:
                    raw.execute(sql.format(when="?1", mark="?2"), (format_timestamp(when), session))
        else:
            from pg_testing import connect_raw

            raw = await connect_raw(store_url)
            try:
                for sql in statements:
                    await raw.execute(sql.format(when="$1::timestamptz", mark="$2"), when, session)
            finally:
                await raw.close()


async def backdate_system_logs(store_url: Any, backend: str, days: int) -> None:
    when = datetime.now(UTC) - timedelta(days=days)
    if backend == "sqlite":
        with closing(sqlite3.connect(store_url)) as raw, raw:
            raw.execute("UPDATE system_logs SET created_at = ?", (format_timestamp(when),))
    else:
        from pg_testing import connect_raw

        raw = await connect_raw(store_url)
        try:
            await raw.execute("UPDATE system_logs SET created_at = $1", when)
        finally:
            await raw.close()


# --- what goes ------------------------------------------------------------------------


async def test_keep_sessions_keeps_the_newest_and_every_running_one(db: DatabaseManager) -> None:
    await record(db, FIVE_SESSIONS)
    before = await counts(db)
    policy = RetentionPolicy(keep_sessions=2)

    dry = await db.prune(policy, dry_run=True)
    assert await counts(db) == before  # a dry run only counts
    report = await db.prune(policy)
    after = await counts(db)

    assert await session_ids(db) == {"s1", "s3", "s4"}  # s1 is old but running
    # Two sessions of two agents, each agent with a prompt, three logs and a chat message.
    expected = {"agents": 4, "prompts": 4, "agent_logs": 12, "orchestrator_chat": 4}
    assert removed(before, after) == expected
    assert dict(report.rows) == expected == dict(dry.rows)
    assert report.sessions == dry.sessions == 2
    assert report.deleted == 24 and not report.dry_run and dry.dry_run
    assert after["system_logs"] == 5  # no rule names them
    await assert_reports_match(db)
    assert (await db.prune(policy)).deleted == 0  # nothing more to do


async def test_keep_no_sessions_deletes_every_finished_one(db: DatabaseManager) -> None:
    await record(db, FIVE_SESSIONS)
    report = await db.prune(RetentionPolicy(keep_sessions=0))
    assert report.sessions == 4
    assert await session_ids(db) == {"s1"}
    await assert_reports_match(db)


async def test_sessions_and_logs_by_age(db: DatabaseManager, store_url: Any, backend: str) -> None:
    await record(db, FIVE_SESSIONS)
    await backdate(store_url, backend, {"s0": 40, "s1": 30, "s2": 20, "s3": 10})
    await backdate_system_logs(store_url, backend, 5)
    before = await counts(db)
    policy = RetentionPolicy(session_days=15, agent_log_days=8, system_log_days=3, batch_rows=5)

    dry = await db.prune(policy, dry_run=True)
    report = await db.prune(policy)

    # s0 and s2 are older than 15 days (s1 runs); s3's logs are older than 8 days,
    # and s1's, although its session stays; every system log is 5 days old.
    assert await session_ids(db) == {"s1", "s3", "s4"}
    expected = {
        "agents": 4,
        "prompts": 4,
        "orchestrator_chat": 4,
        "agent_logs": 4 * 6,
        "system_logs": 5,
    }
    assert removed(before, await counts(db)) == expected == dict(report.rows) == dict(dry.rows)
    assert report.sessions == dry.sessions == 2


async def test_a_session_with_any_agent_running_is_kept_whole(db: DatabaseManager) -> None:
    agents = await record(db, FIVE_SESSIONS)
    await db.update_agent(agents["s0"][1], status="executing", completed_at=None)
    await db.prune(RetentionPolicy(keep_sessions=0))
    assert await session_ids(db) == {"s0", "s1"}


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"keep_sessions": -1},
        {"keep_sessions": True},
        {"agent_log_days": float("nan")},
        {"session_days": -0.5},
        {"max_bytes": 0},
        {"every": 0},
        {"every": float("inf")},
        {"batch_rows": 0},
        {"keep_session": 3},
    ],
)
def test_a_bad_policy_is_a_validation_error_naming_the_field(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        RetentionPolicy(**fields)
    assert str(caught.value).startswith(f"retention.{next(iter(fields))}: ")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: db.prune({"keep_sessions": 1}), "a RetentionPolicy, got dict"),
        (lambda db: db.prune(RetentionPolicy(keep_sessions=0), dry_run=1), "True or False"),
        (
            lambda db: db.prune(RetentionPolicy(keep_sessions=0), dry_run=True, vacuum=True),
            "a dry run rewrites nothing",
        ),
    ],
)
async def test_bad_prune_arguments_write_nothing(
    db: DatabaseManager, call: Any, message: str
) -> None:
    await record(db, FIVE_SESSIONS)
    before = await counts(db)
    with pytest.raises(ValidationError, match=message):
        await call(db)
    assert await counts(db) == before


@pytest.mark.backend("postgresql")
async def test_max_bytes_is_refused_on_postgresql(db: DatabaseManager, store_url: str) -> None:
    await record(db, FIVE_SESSIONS)
    before = await counts(db)
    with pytest.raises(ValidationError, match=r"retention\.max_bytes: caps a SQLite file"):
        await db.prune(RetentionPolicy(max_bytes=1000))
    assert await counts(db) == before
    with pytest.raises(ValidationError, match=r"retention\.max_bytes"):
        DatabaseManager(store_url, retention=RetentionPolicy(max_bytes=1000, every=60))


async def test_prune_inside_a_transaction_raises_and_the_block_deletes_nothing(
    db: DatabaseManager,
) -> None:
    """Its deletes join the block; the space step cannot run inside one."""
    await record(db, FIVE_SESSIONS)
    before = await counts(db)
    with pytest.raises(DatabaseError):
        async with db.transaction():
            await db.prune(RetentionPolicy(keep_sessions=0))
    assert await counts(db) == before


# --- space: SQLite ----------------------------------------------------------------------


def file_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def auto_vacuum(path: Path) -> int:
    with closing(sqlite3.connect(path)) as raw:
        return int(raw.execute("PRAGMA auto_vacuum").fetchone()[0])


@pytest.mark.backend("sqlite")
async def test_a_new_file_shrinks_after_prune(db: DatabaseManager, db_path: Path) -> None:
    assert auto_vacuum(db_path) == 2  # INCREMENTAL, from its first page on
    sessions = [(f"s{index:02}", False) for index in range(30)]
    await record(db, sessions, text=" " + "x" * 20_000)  # about 1.2 MB of prompts
    await db.checkpoint()
    full = file_size(db_path)

    report = await db.prune(RetentionPolicy(keep_sessions=3))

    assert report.sessions == 27
    assert report.bytes_before == full
    assert report.bytes_after == file_size(db_path) == db_path.stat().st_size  # WAL truncated
    assert report.bytes_after < full / 4, (full, report.bytes_after)
    assert report.free_bytes == 0 and report.used_bytes == report.bytes_after
    assert report.bytes_reclaimed == full - report.bytes_after
    assert report.auto_vacuum == "incremental" and report.notes == ()
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    await assert_reports_match(db)


@pytest.mark.backend("sqlite")
async def test_an_older_file_keeps_its_size_until_vacuum_rewrites_it(
    db: DatabaseManager, db_path: Path
) -> None:
    await db.close()
    with closing(sqlite3.connect(db_path)) as raw:  # as files made before auto-vacuum was on
        raw.execute("PRAGMA auto_vacuum = NONE")
        raw.execute("VACUUM")
    assert auto_vacuum(db_path) == 0
    await db.connect()
    await record(db, [(f"s{index:02}", False) for index in range(30)], text="x" * 20_000)
    await db.checkpoint()
    full = file_size(db_path)

    report = await db.prune(RetentionPolicy(keep_sessions=3))
    assert report.bytes_after == full  # free pages stay inside, for new rows
    assert report.free_bytes > full / 2
    assert report.auto_vacuum == "none"
    assert any("prune --vacuum" in note for note in report.notes)

    rewritten = await db.prune(RetentionPolicy(), vacuum=True)
    assert rewritten.deleted == 0
    assert rewritten.bytes_after == file_size(db_path) < full / 4
    assert rewritten.auto_vacuum == "incremental" and auto_vacuum(db_path) == 2
    assert rewritten.notes == ()


@pytest.mark.backend("sqlite")
async def test_max_bytes_deletes_the_oldest_until_the_file_fits(
    db: DatabaseManager, db_path: Path
) -> None:
    sessions = [(f"s{index:02}", index == 3) for index in range(40)]
    await record(db, sessions, text="x" * 10_000)
    full = (await db.storage())["page_count"] * 4096
    cap = full // 2

    report = await db.prune(RetentionPolicy(max_bytes=cap))

    assert report.used_bytes <= cap and not report.over_cap
    assert report.bytes_after == db_path.stat().st_size == report.used_bytes
    left = await session_ids(db)
    kept = sorted(session for session in left if session != "s03")
    gone = sorted({session for session, _ in sessions} - left)
    assert "s03" in left and gone and kept  # the running one stays
    assert max(gone) < min(kept)  # the oldest went first
    # Each session's system log comes after it: those older than the last session
    # deleted went before it, whatever they belong to.
    logs = await db.query("SELECT message FROM system_logs")
    assert all(row["message"].split()[0] >= max(gone) for row in logs), logs
    await assert_reports_match(db)


@pytest.mark.backend("sqlite")
async def test_a_cap_that_cannot_be_met_says_so(db: DatabaseManager) -> None:
    await record(db, FIVE_SESSIONS)
    report = await db.prune(RetentionPolicy(max_bytes=1))
    assert report.over_cap
    assert await session_ids(db) == {"s1"}
    assert (await counts(db))["system_logs"] == 0
    assert any("still over max_bytes" in note for note in report.notes)


@pytest.mark.backend("sqlite")
async def test_other_writers_go_on_while_prune_deletes(db: DatabaseManager) -> None:
    """Deletes are short transactions: a writer interleaves with them, and
    every one of its rows is there afterwards."""
    agents = await record(db, [(f"s{index:03}", False) for index in range(60)])
    writer_agent = agents["s059"][0]
    await db.update_agent(writer_agent, status="executing", completed_at=None)
    written: list[int] = []
    pruning = asyncio.create_task(db.prune(RetentionPolicy(keep_sessions=0, batch_rows=2)))
    while not pruning.done():
        written.append(
            await db.create_agent_log(writer_agent, "INFO", "milestone", f"line {len(written)}")
        )
    report = await pruning
    assert report.sessions == 59
    kept = await db.get_agent_logs(writer_agent)
    assert set(written) <= {row["id"] for row in kept}
    assert len(written) > 1  # it wrote between the deletes


# --- space: PostgreSQL ------------------------------------------------------------------


@pytest.fixture
async def own_database(postgres_server: str, postgres_traits: Any) -> AsyncIterator[str]:
    """A database of its own: VACUUM keeps rows that an open transaction may still
    see, and only transactions in the same database count (other tests, and
    other suites on the same server, open theirs in the shared one)."""
    from pg_testing import database_url, run_sql

    name = f"adw_test_{uuid.uuid4().hex[:12]}"
    await run_sql(postgres_server, f"CREATE DATABASE {name} TEMPLATE template0")
    try:
        yield database_url(postgres_server, name)
    finally:
        await run_sql(postgres_server, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize("vacuumed", [True, False], ids=["prune", "deletes-only"])
async def test_repeated_fill_and_prune_keeps_the_tables_flat(
    own_database: str, vacuumed: bool
) -> None:
    """Autovacuum off, so that what keeps the size flat is prune's own plain
    VACUUM; the same deletes without it (``delete_agent``) grow the tables
    cycle after cycle (the control)."""
    from pg_testing import run_sql

    async with DatabaseManager(own_database) as db:
        await run_sql(
            own_database,
            ";".join(f"ALTER TABLE {table} SET (autovacuum_enabled = false)" for table in TABLES),
        )
        sizes = []
        text_bytes = 6000
        for cycle in range(12):
            text = secrets.token_hex(text_bytes // 2)  # does not compress: rows take their size
            await record(db, [(f"c{cycle:02}_{index}", False) for index in range(5)], text=text)
            if vacuumed:
                await db.prune(RetentionPolicy(keep_sessions=5))
            else:
                for session in sorted(await session_ids(db))[:-5]:
                    for agent in await db.list_agents(session):
                        await db.delete_agent(agent["id"])
            assert len(await session_ids(db)) == 5
            sizes.append((await db.storage())["file_bytes"])
    # Measured (bytes): pruned, 0.70 M then a band of 0.84 to 0.92 M (40 cycles: 0.84 to
    # 0.96 M); deletes alone, 0.70 M then about 100 k more every cycle, 1.79 M at the 12th.
    per_cycle = 10 * text_bytes  # the prompts' text each cycle adds (and deletes)
    growth = max(sizes[6:]) - max(sizes[1:6])  # the second half against the first
    if vacuumed:
        assert growth <= 3 * per_cycle, sizes
    else:
        assert growth >= 6 * per_cycle, sizes


# --- automatic retention ----------------------------------------------------------------


async def eventually(check: Any, what: str) -> None:
    """Poll ``check()`` until it is true; a generous bound only catches a hang."""
    for _ in range(3000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def retention_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().endswith("retention")]


async def test_automatic_retention_prunes_in_the_background_until_close(store_url: Any) -> None:
    policy = RetentionPolicy(keep_sessions=1, every=0.05)
    async with DatabaseManager(store_url, retention=policy) as db:
        assert len(retention_tasks()) == 1
        await record(db, [("first", False)])
        await record(db, [("second", False)])  # "first" is now beyond the newest one

        async def only_the_newest() -> bool:
            return await session_ids(db) == {"second"}

        await eventually(only_the_newest, "the older session deleted")
    assert retention_tasks() == []
    async with DatabaseManager(store_url) as plain:  # off by default
        assert retention_tasks() == []
        assert await session_ids(plain) == {"second"}


@pytest.mark.backend("sqlite")
async def test_a_failed_automatic_run_is_logged_and_the_next_one_works(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with DatabaseManager(db_path) as db:
        await record(db, [("first", False), ("second", False)])
    policy = RetentionPolicy(keep_sessions=1, every=0.05)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with caplog.at_level(logging.WARNING, logger="orchestrator_store.retention"):
            async with DatabaseManager(db_path, busy_timeout=0.05, retention=policy) as db:

                async def warned() -> bool:
                    return "automatic retention failed" in caplog.text

                await eventually(warned, "a warning for the failed run")
                blocker.execute("ROLLBACK")

                async def pruned() -> bool:
                    return await session_ids(db) == {"second"}

                await eventually(pruned, "the next run deleting the older session")
    finally:
        blocker.close()


def test_a_retention_without_every_is_refused(db_path: Path) -> None:
    with pytest.raises(ValidationError, match="every=SECONDS"):
        DatabaseManager(db_path, retention=RetentionPolicy(keep_sessions=1))
    with pytest.raises(ValidationError, match="got str"):
        DatabaseManager(db_path, retention="keep 5")  # type: ignore[arg-type]
    assert not db_path.exists()


# --- sizes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("500MB", 500_000_000), ("1.5GiB", 1_610_612_736), ("2048", 2048), ("64 kib", 65_536)],
)
def test_sizes_are_read_with_their_unit(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "5XB", "-1MB", "0.1B", "1e3MB"])
def test_a_bad_size_says_what_a_size_is(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|less than one byte"):
        parse_size(text)


# --- the command ----------------------------------------------------------------------


def cli(path: Path | str, *args: str) -> Result:
    result = CliRunner().invoke(app, ["--db", str(path), *args], env={"COLUMNS": "220"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def recorded_store(db_path: Path) -> Path:
    async with DatabaseManager(db_path) as db:
        await record(db, FIVE_SESSIONS, text="x" * 20_000)
        await db.checkpoint()
    return db_path


def test_the_command_keeps_the_newest_sessions(recorded_store: Path) -> None:
    before = digest(recorded_store)
    dry = cli(recorded_store, "prune", "--keep-sessions", "2")
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 sessions, 4 agents, 4 prompts, 4 chat messages, 12 agent logs" in (
        dry.stdout
    )
    assert digest(recorded_store) == before

    done = cli(recorded_store, "prune", "--keep-sessions", "2", "--yes", "--json")
    report = json.loads(done.stdout)
    assert report["sessions"] == 2 and report["deleted"] == 24
    assert report["bytes_after"] == recorded_store.stat().st_size < report["bytes_before"]
    assert report["auto_vacuum"] == "incremental" and report["dry_run"] is False


def test_the_command_caps_the_file_and_says_when_it_cannot(recorded_store: Path) -> None:
    done = cli(recorded_store, "prune", "--max-size", "1B", "--yes")
    assert done.exit_code == 0, done.output
    assert "deleted 59 rows (4 sessions, 8 agents, 8 prompts, 8 chat messages, 30 agent " in (
        " ".join(done.stdout.split())
    )
    assert "to keep the file under 1 B" in done.stdout
    assert "WAL checkpointed and truncated" in done.stdout
    assert "note: still over max_bytes" in done.stdout


def test_the_command_shrinks_an_older_file_once_asked_to(recorded_store: Path) -> None:
    with closing(sqlite3.connect(recorded_store)) as raw:  # as files made before auto-vacuum
        raw.execute("PRAGMA auto_vacuum = NONE")
        raw.execute("VACUUM")
    full = recorded_store.stat().st_size

    pruned = cli(recorded_store, "prune", "--keep-sessions", "0", "--yes")
    assert pruned.exit_code == 0, pruned.output
    assert "note: this file was made before incremental auto-vacuum" in pruned.stdout
    assert recorded_store.stat().st_size == full

    rewritten = cli(recorded_store, "prune", "--vacuum", "--yes")
    assert rewritten.exit_code == 0, rewritten.output
    assert "file rewritten (VACUUM)" in rewritten.stdout
    # Eight prompts of 20 kB went; the running session and the schema's pages stay.
    assert recorded_store.stat().st_size < full - 100_000
    assert auto_vacuum(recorded_store) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to prune: give --older-than"),
        (["--max-size", "lots"], "'--max-size': 'lots' is not a size"),
        (["--keep-sessions", "-1"], "'--keep-sessions'"),
        (["--sessions-older-than", "nan"], "'--sessions-older-than'"),
    ],
)
def test_the_command_refuses_bad_options_naming_them(
    recorded_store: Path, args: list[str], message: str
) -> None:
    before = digest(recorded_store)
    result = cli(recorded_store, "prune", *args, "--yes")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert digest(recorded_store) == before


def test_the_command_refuses_a_size_cap_on_postgresql_in_one_line(postgres_url: str) -> None:
    result = cli(postgres_url, "prune", "--max-size", "1GB", "--yes")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: retention.max_bytes: caps a SQLite file; a PostgreSQL server's tables do not "
        "shrink when rows go: use session_days, keep_sessions or the log ages there"
    ]


def test_the_report_adds_up() -> None:
    report = PruneReport(
        dry_run=False,
        rows={"agents": 2, "prompts": 3},
        sessions=1,
        bytes_before=10,
        bytes_after=4,
        used_bytes=4,
        free_bytes=0,
        max_bytes=3,
    )
    assert (report.deleted, report.bytes_reclaimed, report.over_cap) == (5, 6, True)
    assert report.as_dict()["deleted"] == 5
