"""create_agent_logs / create_system_logs: validated up front, one transaction, ids in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator_store.manager import DatabaseManager, IntegrityError, ValidationError

MISSING_ID = "00000000-0000-4000-8000-000000000000"


def agent_log(agent_id: str, number: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "agent_id": agent_id,
        "log_level": "INFO",
        "log_type": "tool_call",
        "message": f"call {number}",
        "details": {"number": number, "nested": [1, {"x": None}]},
    }
    return {**row, **changes}


async def test_agent_logs_batch_returns_ids_in_input_order(
    db: DatabaseManager, agent_id: str
) -> None:
    await db.create_agent_log(agent_id, "INFO", "milestone", "before the batch")
    rows = [agent_log(agent_id, number) for number in range(250)]

    ids = await db.create_agent_logs(rows)

    assert len(ids) == 250 and len(set(ids)) == 250
    stored = {row["id"]: row for row in await db.get_agent_logs(agent_id)}
    for log_id, row in zip(ids, rows, strict=True):
        assert {key: stored[log_id][key] for key in row} == row


async def test_system_logs_batch_accepts_any_iterable_and_defaults(db: DatabaseManager) -> None:
    rows = ({"component": "scheduler", "message": f"tick {n}"} for n in range(3))

    ids = await db.create_system_logs(rows)

    stored = await db.get_system_logs()
    assert [row["id"] for row in stored] == ids
    assert [(row["log_level"], row["message"], row["details"]) for row in stored] == [
        ("INFO", "tick 0", None),
        ("INFO", "tick 1", None),
        ("INFO", "tick 2", None),
    ]


async def test_empty_batch_writes_nothing(db: DatabaseManager) -> None:
    assert await db.create_system_logs([]) == []
    assert (await db.count_rows())["system_logs"] == 0


@pytest.mark.parametrize(
    ("bad_row", "named"),
    [
        ({"log_type": "nonsense"}, "agent_logs[3].log_type"),
        ({"message": "   "}, "agent_logs[3].message"),
        ({"details": float("nan")}, "agent_logs[3].details"),
        ({"agent_id": "../x"}, "agent_logs[3].agent_id"),
        ({"colour": "red"}, "agent_logs[3].colour: unknown field"),
    ],
)
async def test_one_bad_row_rejects_the_batch_naming_its_index(
    db: DatabaseManager, agent_id: str, bad_row: dict[str, Any], named: str
) -> None:
    rows = [agent_log(agent_id, number) for number in range(6)]
    rows[3] = {**rows[3], **bad_row}

    with pytest.raises(ValidationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        await db.create_agent_logs(rows)

    assert (await db.count_rows())["agent_logs"] == 0


@pytest.mark.parametrize("rows", [None, "rows", {"message": "x"}, [["not", "a", "dict"]]])
async def test_batch_that_is_not_rows_of_dicts_is_refused(db: DatabaseManager, rows: Any) -> None:
    with pytest.raises(ValidationError, match="system_logs"):
        await db.create_system_logs(rows)
    assert (await db.count_rows())["system_logs"] == 0


async def test_batch_refused_by_the_database_writes_nothing(
    db: DatabaseManager, agent_id: str
) -> None:
    rows = [agent_log(agent_id, number) for number in range(5)]
    rows[4] = agent_log(MISSING_ID, 4)

    with pytest.raises(IntegrityError) as caught:
        await db.create_agent_logs(rows)

    assert caught.value.constraint == "foreign_key"
    assert caught.value.__cause__ is not None
    assert (await db.count_rows())["agent_logs"] == 0


async def test_batch_inside_a_transaction_commits_with_it_or_not_at_all(
    db: DatabaseManager, agent_id: str
) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.create_agent_logs([agent_log(agent_id, n) for n in range(3)])
            assert len(await db.get_agent_logs(agent_id)) == 3  # sees its own writes
            raise RuntimeError("abandon the block")
    assert await db.get_agent_logs(agent_id) == []

    async with db.transaction():
        ids = await db.create_agent_logs([agent_log(agent_id, n) for n in range(3)])
    assert [row["id"] for row in await db.get_agent_logs(agent_id)] == ids


async def test_batch_refused_inside_a_transaction_fails_alone(
    db: DatabaseManager, agent_id: str
) -> None:
    """The refused batch names its table, writes none of its rows, and leaves
    the block usable: the block's other writes commit with it."""
    rows = [agent_log(agent_id, number) for number in range(5)]
    rows[3] = agent_log(MISSING_ID, 3)

    async with db.transaction():
        before = await db.create_agent_log(agent_id, "INFO", "milestone", "before")
        with pytest.raises(IntegrityError) as caught:
            await db.create_agent_logs(rows)
        after = await db.create_agent_logs([agent_log(agent_id, 9)])

    assert (caught.value.table, caught.value.constraint) == ("agent_logs", "foreign_key")
    stored = await db.get_agent_logs(agent_id)
    assert [(row["id"], row["message"]) for row in stored] == [
        (before, "before"),
        (after[0], "call 9"),
    ]


async def test_concurrent_batches_each_get_their_own_ids_in_input_order(
    db: DatabaseManager, agent_id: str
) -> None:
    batches = [
        [
            agent_log(agent_id, number, message=f"batch {batch} row {number}")
            for number in range(200)
        ]
        for batch in range(4)
    ]

    results = await asyncio.gather(*(db.create_agent_logs(rows) for rows in batches))

    stored = {row["id"]: row["message"] for row in await db.get_agent_logs(agent_id)}
    assert len(stored) == 800
    for rows, ids in zip(batches, results, strict=True):
        assert ids == sorted(ids)
        assert [stored[log_id] for log_id in ids] == [row["message"] for row in rows]
