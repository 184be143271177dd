"""Random ids from a pool: version 4 UUIDs as uuid.uuid4 makes them, each handed out once."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from shared import ids


def test_an_id_is_a_random_uuid_version_4() -> None:
    made = ids.random_uuid()
    assert isinstance(made, uuid.UUID)
    assert made.version == 4
    assert made.variant == uuid.RFC_4122
    assert uuid.UUID(str(made)) == made
    assert hash(made) == hash(uuid.UUID(str(made)))


def test_ids_over_many_pools_are_all_different() -> None:
    made = [ids.random_uuid() for _ in range(ids.POOL * 20 + 7)]
    assert len(set(made)) == len(made)
    # every bit that is not the version's or the variant's varies
    fixed = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
    ones = zero = 0
    for u in made:
        ones |= u.int
        zero |= ~u.int
    assert ones & fixed == fixed
    assert zero & fixed == fixed


def test_threads_never_take_the_same_id() -> None:
    taken: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def take(mine: list[uuid.UUID]) -> None:
        for _ in range(ids.POOL * 4):
            mine.append(ids.random_uuid())

    threads = [threading.Thread(target=take, args=(mine,)) for mine in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [u for mine in taken for u in mine]
    assert len(set(every)) == len(every) == 8 * ids.POOL * 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    ids.random_uuid()  # the pool holds ids now, which the child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write, b"".join(ids.random_uuid().bytes for _ in range(4)))
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while len(data) < 64:
        chunk = os.read(read, 64)
        if not chunk:
            break
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    theirs = {uuid.UUID(bytes=data[i : i + 16]) for i in range(0, 64, 16)}
    ours = {ids.random_uuid() for _ in range(4)}
    assert len(theirs) == 4
    assert not theirs & ours
