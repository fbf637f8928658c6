"""New row ids: time-ordered version 7 UUIDs that only grow within a process,
never repeat, and are not repeated by a forked child."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from orchestrator_store import ids as ids_module
from orchestrator_store.ids import new_id


def test_ids_are_canonical_version_7_uuids_carrying_their_creation_time() -> None:
    before_ms = time.time_ns() // 1_000_000
    texts = [new_id() for _ in range(600)]  # more than one buffer of random bytes
    after_ms = time.time_ns() // 1_000_000
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms + 1  # +1: a full millisecond


def test_ids_grow_in_creation_order_and_do_not_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_keep_growing_when_the_clock_stands_still_or_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A generator of its own: the shared one must not keep this test's clock.
    monkeypatch.setattr(ids_module, "_ids", ids_module._TimeOrderedIds())
    clock = [time.time_ns()]
    monkeypatch.setattr(ids_module.time, "time_ns", lambda: clock[0])
    standing = [new_id() for _ in range(5_000)]  # more than the 4,096 of one millisecond
    clock[0] -= 60 * 10**9  # the clock is set back a minute
    stepped_back = [new_id() for _ in range(10)]
    ids = standing + stepped_back
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_forked_child_does_not_reuse_its_parents_random_bits() -> None:
    new_id()  # the parent holds a buffer with random bits still unused
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover  (the child reports through the pipe)
        os.close(read_end)
        os.write(write_end, "\n".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    parent_ids = {new_id() for _ in range(10)}
    with os.fdopen(read_end) as pipe:
        child_ids = set(pipe.read().split("\n"))
    os.waitpid(child, 0)
    assert len(child_ids) == 10
    assert not parent_ids & child_ids
