"""New row ids: random version 4 UUIDs, never repeated, not even across a fork."""

from __future__ import annotations

import os
import uuid

from adw_db_ids import new_id


def test_ids_are_canonical_version_4_uuids() -> None:
    for _ in range(600):  # more than one buffer of random bytes
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_reuse_its_parents_buffer() -> None:
    new_id()  # the parent holds a buffer with ids still unused
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
