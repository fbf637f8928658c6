"""Contract tests of the store's read-only reports (what the command line shows)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from realistic_session import EXPECTED, SESSION_A, SESSION_B, RecordedSession

from orchestrator_store.manager import DatabaseError, DatabaseManager, ValidationError


@pytest.fixture
async def store(recorded: RecordedSession) -> AsyncIterator[DatabaseManager]:
    async with DatabaseManager(recorded.path) as manager:
        yield manager


def _figures(row: dict[str, object]) -> tuple[object, ...]:
    return (row["prompts"], row["tokens_input"], row["tokens_output"], row["cost_usd"])


# --- sessions and costs --------------------------------------------------------


async def test_session_summaries_aggregate_agents_prompts_and_activity(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    rows = await store.session_summaries()

    assert [row["session_id"] for row in rows] == [SESSION_B, SESSION_A]  # latest activity first
    for row in rows:
        expected = EXPECTED["sessions"][row["session_id"]]
        assert {key: row[key] for key in expected} == pytest.approx(expected)
    b, a = rows
    assert a["first_activity"] == recorded.base_a.isoformat(timespec="microseconds")
    assert a["last_activity"] == (recorded.base_a + timedelta(minutes=25)).isoformat(
        timespec="microseconds"
    )
    assert b["last_activity"] == (recorded.base_b + timedelta(minutes=5)).isoformat(
        timespec="microseconds"
    )
    assert [row["session_id"] for row in await store.session_summaries(limit=1)] == [SESSION_B]


async def test_session_summaries_of_an_empty_store(db: DatabaseManager) -> None:
    assert await db.session_summaries() == []


@pytest.mark.parametrize(
    ("by", "expected"),
    [("model", EXPECTED["by_model"]), ("agent_type", EXPECTED["by_agent_type"])],
)
async def test_cost_totals_group_in_key_order(
    store: DatabaseManager, by: str, expected: dict[str, tuple[object, ...]]
) -> None:
    rows = await store.cost_totals(by)

    assert [row["key"] for row in rows] == list(expected)
    for row in rows:
        assert _figures(row) == pytest.approx(expected[row["key"]])


async def test_cost_totals_by_session_and_day_and_the_grand_total(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    by_session = {row["key"]: _figures(row) for row in await store.cost_totals("session")}
    by_day = {row["key"]: _figures(row) for row in await store.cost_totals("day")}
    (total,) = await store.cost_totals()

    assert by_session == {
        SESSION_A: pytest.approx((4, 3800, 800, 0.0455)),
        SESSION_B: pytest.approx((2, 800, 150, 0.025)),
    }
    assert by_day == {
        recorded.day(recorded.base_a): pytest.approx((4, 3800, 800, 0.0455)),
        recorded.day(recorded.base_b): pytest.approx((2, 800, 150, 0.025)),
    }
    assert total["key"] is None
    assert _figures(total) == pytest.approx(EXPECTED["total"])


async def test_cost_totals_since_keeps_later_prompts_only(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    (total,) = await store.cost_totals(since=recorded.base_b)
    (nothing,) = await store.cost_totals(since=(recorded.base_b + timedelta(days=1)).isoformat())

    assert _figures(total) == pytest.approx((2, 800, 150, 0.025))
    assert _figures(nothing) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda db: db.cost_totals("agent-type"), "by"),
        (lambda db: db.cost_totals(since="yesterday"), "since"),
        (lambda db: db.session_summaries(limit=0), "limit"),
    ],
)
async def test_report_filters_are_validated(db: DatabaseManager, call: object, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await call(db)  # type: ignore[operator]
    assert caught.value.field == field


# --- logs ----------------------------------------------------------------------


async def test_log_bounds_span_both_tables(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    bounds = await store.log_bounds()

    assert bounds["first"] == (recorded.base_a - timedelta(seconds=1)).isoformat(
        timespec="microseconds"
    )
    assert bounds["last"] == (recorded.base_b + timedelta(minutes=5)).isoformat(
        timespec="microseconds"
    )
    assert bounds["cursor"] == {"agent_logs": 12, "system_logs": 5}


async def test_log_bounds_of_an_empty_store(db: DatabaseManager) -> None:
    bounds = await db.log_bounds()
    cursor = bounds.pop("cursor")

    assert bounds == {"first": None, "last": None}
    if db.backend_name == "sqlite":
        assert cursor == {"agent_logs": 0, "system_logs": 0}
    else:  # the horizon: see test_log_cursor_postgres.py
        horizon = cursor["agent_logs_tx"]
        assert cursor == {
            "agent_logs": 0,
            "system_logs": 0,
            "agent_logs_tx": horizon,
            "system_logs_tx": horizon,
        }


async def test_list_logs_interleaves_both_tables_by_time(store: DatabaseManager) -> None:
    rows = await store.list_logs()

    assert len(rows) == 17
    assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)
    assert [(row["source"], row["id"]) for row in rows[:3]] == [
        ("system", 1),
        ("agent", 1),
        ("agent", 2),
    ]
    assert rows[2]["details"] == {"steps": 3}
    assert rows[0]["component"] == "orchestrator" and rows[0]["agent_id"] is None


async def test_list_logs_limit_keeps_the_latest_rows_oldest_first(store: DatabaseManager) -> None:
    rows = await store.list_logs(limit=3)

    assert [(row["source"], row["id"]) for row in rows] == [
        ("agent", 11),
        ("system", 5),
        ("agent", 12),
    ]


async def test_list_logs_filters(store: DatabaseManager, recorded: RecordedSession) -> None:
    warnings = await store.list_logs(min_level="WARNING")
    errors = await store.list_logs(min_level="ERROR")
    builder_a = await store.list_logs(agent_id=recorded.agents["a2"])
    milestones = await store.list_logs(log_type="milestone")
    scheduler = await store.list_logs(component="scheduler")
    recent = await store.list_logs(since=recorded.base_b)

    assert [row["message"] for row in warnings] == [
        "slow test run",
        "tests failed",
        "builder failed, retry budget exhausted",
        "queue depth 12",
    ]
    assert [row["log_level"] for row in errors] == ["ERROR", "ERROR"]
    assert [row["log_type"] for row in builder_a] == ["state_change", "performance", "error"]
    assert [row["message"] for row in milestones] == ["plan ready", "review done"]
    assert {row["source"] for row in scheduler} == {"system"} and len(scheduler) == 2
    assert len(recent) == 5  # session B's logs after its 09:00 start


async def test_list_logs_up_to_a_cursor_then_logs_after_it_shows_each_row_once(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    cursor = (await store.log_bounds())["cursor"]
    await store.create_agent_log(recorded.agents["b2"], "ERROR", "error", "after the cursor")
    await store.create_system_log("INFO", "orchestrator", "also after")

    listed = await store.list_logs(up_to=cursor)
    first, cursor = await store.logs_after(cursor, limit=1)
    second, cursor = await store.logs_after(cursor, limit=1)
    third, final = await store.logs_after(cursor)

    assert len(listed) == 17
    assert [row["message"] for row in first] == ["after the cursor", "also after"]
    assert second == third == []
    assert final == cursor == {"agent_logs": 13, "system_logs": 6}


async def test_logs_after_pages_each_table_on_its_id(store: DatabaseManager) -> None:
    seen: list[tuple[str, int]] = []
    cursor = {"agent_logs": 0, "system_logs": 0}
    for _ in range(20):
        rows, cursor = await store.logs_after(cursor, limit=2)
        seen += [(row["source"], row["id"]) for row in rows]

    assert sorted(seen) == sorted(
        [("agent", n) for n in range(1, 13)] + [("system", n) for n in range(1, 6)]
    )
    assert len(set(seen)) == len(seen)


async def test_logs_after_applies_filters(store: DatabaseManager) -> None:
    rows, cursor = await store.logs_after({"agent_logs": 0, "system_logs": 0}, min_level="ERROR")
    system_only, _ = await store.logs_after({}, component="scheduler")

    assert [(row["source"], row["message"]) for row in rows] == [
        ("agent", "tests failed"),
        ("system", "builder failed, retry budget exhausted"),
    ]
    assert cursor == {"agent_logs": 6, "system_logs": 2}
    assert [row["message"] for row in system_only] == [
        "builder failed, retry budget exhausted",
        "queue depth 12",
    ]


async def test_log_queries_refuse_filters_of_both_tables(store: DatabaseManager) -> None:
    with pytest.raises(ValidationError, match="component filters system logs"):
        await store.list_logs(component="scheduler", log_type="error")
    with pytest.raises(ValidationError, match="agent_logs"):
        await store.logs_after({"agent_logs": -1})


# --- agents by id prefix ---------------------------------------------------------


async def test_find_agents_by_prefix(store: DatabaseManager, recorded: RecordedSession) -> None:
    agent = recorded.agents["a2"]
    unused = next(
        d for d in "0123456789abcdef" if not any(a.startswith(d) for a in recorded.agents.values())
    )

    assert [row["id"] for row in await store.find_agents_by_prefix(agent[:-4].upper())] == [agent]
    assert [row["id"] for row in await store.find_agents_by_prefix(agent)] == [agent]
    assert (await store.find_agents_by_prefix(agent))[0]["context"] == {"issue": 14}
    assert await store.find_agents_by_prefix(unused) == []


async def test_find_agents_by_prefix_returns_up_to_limit(store: DatabaseManager) -> None:
    ids = sorted([row["id"] for row in await store.list_agents()])

    found = await store.find_agents_by_prefix("-", limit=5)  # no id starts with "-"
    all_hex = [await store.find_agents_by_prefix(digit, limit=5) for digit in "0123456789abcdef"]

    assert found == []
    assert sorted(row["id"] for rows in all_hex for row in rows) == ids


async def test_find_agents_by_suffix(store: DatabaseManager, recorded: RecordedSession) -> None:
    agent = recorded.agents["a2"]
    others = [a for a in recorded.agents.values() if a != agent]
    unused = next(
        d for d in "0123456789abcdef" if not any(a.endswith(d) for a in recorded.agents.values())
    )

    assert not any(a.endswith(agent[-8:]) for a in others)  # the random end tells them apart
    assert [row["id"] for row in await store.find_agents_by_suffix(agent[-8:].upper())] == [agent]
    assert [row["id"] for row in await store.find_agents_by_suffix(agent)] == [agent]
    assert await store.find_agents_by_suffix(agent[:8]) == []  # a start is not an end
    assert await store.find_agents_by_suffix(unused) == []


@pytest.mark.parametrize("part", ["", "xyz", "../a", "0" * 37])
@pytest.mark.parametrize("end", ["prefix", "suffix"])
async def test_find_agents_by_prefix_or_suffix_refuses_what_no_id_looks_like(
    db: DatabaseManager, end: str, part: str
) -> None:
    with pytest.raises(ValidationError, match=end):
        await getattr(db, f"find_agents_by_{end}")(part)


async def test_find_workflows_by_prefix_or_suffix(db: DatabaseManager) -> None:
    runs = [await db.start_workflow(f"run-{n}", "build", input_data={"n": n}) for n in range(3)]
    run = runs[1]
    shared = run[:4]  # made together: time-ordered ids share their start

    assert [row["id"] for row in await db.find_workflows_by_prefix(run[:-4].upper())] == [run]
    assert [row["id"] for row in await db.find_workflows_by_suffix(run[-8:].upper())] == [run]
    assert (await db.find_workflows_by_suffix(run))[0]["input_data"] == {"n": 1}
    assert [row["id"] for row in await db.find_workflows_by_prefix(shared)] == sorted(runs)[:2]
    found = await db.find_workflows_by_prefix(shared, limit=5)
    assert [row["id"] for row in found] == sorted(runs)
    assert await db.find_workflows_by_suffix(run[:8]) == []  # a start is not an end


@pytest.mark.parametrize("part", ["", "xyz", "../a", "0" * 37])
@pytest.mark.parametrize("end", ["prefix", "suffix"])
async def test_find_workflows_by_prefix_or_suffix_refuses_what_no_id_looks_like(
    db: DatabaseManager, end: str, part: str
) -> None:
    with pytest.raises(ValidationError, match=f"ai_developer_workflows.{end}"):
        await getattr(db, f"find_workflows_by_{end}")(part)


# --- retention, storage, streaming ----------------------------------------------


async def test_count_old_logs_matches_what_cleanup_deletes(store: DatabaseManager) -> None:
    counts = await store.count_old_logs(5)

    assert counts == EXPECTED["logs_older_than_5_days"]
    assert await store.cleanup_old_logs(5) == sum(counts.values())
    assert await store.count_old_logs(5) == {"agent_logs": 0, "system_logs": 0}
    assert await store.count_old_logs(0) == {"agent_logs": 4, "system_logs": 2}


@pytest.mark.parametrize("days", [-1, float("nan"), "5", True])
async def test_count_old_logs_validates_days(db: DatabaseManager, days: object) -> None:
    with pytest.raises(ValidationError, match="days"):
        await db.count_old_logs(days)  # type: ignore[arg-type]


async def test_checkpoint_truncates_the_wal_and_storage_reports_sizes(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    for n in range(50):
        await store.create_system_log("INFO", "bench", f"row {n}", {"n": n})
    before = await store.storage()

    result = await store.checkpoint()
    after = await store.storage()

    assert before["wal_bytes"] > 0
    assert result["busy"] == 0  # nothing kept the WAL from being folded in
    assert after["wal_bytes"] == 0
    assert after["file_bytes"] == recorded.path.stat().st_size
    assert after["file_bytes"] == after["page_size"] * after["page_count"]


async def test_checkpoint_is_refused_inside_a_transaction(db: DatabaseManager) -> None:
    async with db.transaction():
        with pytest.raises(DatabaseError, match="inside transaction"):
            await db.checkpoint()


async def test_iter_rows_streams_every_row_once_in_key_order(
    store: DatabaseManager, recorded: RecordedSession
) -> None:
    with sqlite3.connect(recorded.path) as raw:
        prompt_ids = [row[0] for row in raw.execute("SELECT id FROM prompts ORDER BY id")]
    raw.close()

    streamed = [row async for row in store.iter_rows("prompts", batch_size=4)]
    logs = [row async for row in store.iter_rows("agent_logs", batch_size=3)]  # 12 = 4 full pages

    assert [row["id"] for row in streamed] == prompt_ids
    assert [row["id"] for row in logs] == list(range(1, 13))
    assert logs[1]["details"] == {"steps": 3}


async def test_iter_rows_of_an_empty_table_and_bad_input(db: DatabaseManager) -> None:
    assert [row async for row in db.iter_rows("agents")] == []
    with pytest.raises(ValidationError, match="table"):
        [row async for row in db.iter_rows("sqlite_master")]
    with pytest.raises(ValidationError, match="batch_size"):
        [row async for row in db.iter_rows("agents", batch_size=0)]


async def test_reports_need_an_open_store(tmp_path: Path) -> None:
    store = DatabaseManager(tmp_path / "never.db")
    with pytest.raises(DatabaseError, match="not connected"):
        await store.log_bounds()
    assert not (tmp_path / "never.db").exists()
