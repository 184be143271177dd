"""A gateway process's hold envelopes (gateway.coalescer), with a partition that answers when
the test says so: when an envelope leaves, what it carries, and whose reply each hold gets."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from gateway.coalescer import HoldCoalescer
from shared.messages import HoldPlaced, HoldsDecided, PlaceHold, PlaceHolds

pytestmark = pytest.mark.unit

KEY = "inventory.p0"


@dataclass
class Partition:
    """Records each envelope and answers it only when `answer` is called."""

    sent: list[PlaceHolds] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _answers: list[asyncio.Future[bytes]] = field(default_factory=list)

    async def __call__(self, envelope: PlaceHolds, routing_key: str) -> bytes:
        assert routing_key == KEY
        self.sent.append(envelope)
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._answers.append(answer)
        self.arrived.set()
        return await answer

    async def next_envelope(self) -> PlaceHolds:
        await asyncio.wait_for(self.arrived.wait(), 5)
        self.arrived.clear()
        return self.sent[-1]

    def answer(self, envelope: PlaceHolds) -> None:
        expires = datetime(2030, 1, 1, tzinfo=UTC)
        replies = [
            HoldPlaced(hold_id=h.hold_id, product_id=1, qty=h.qty, expires_at=expires, available=0)
            for h in envelope.holds
        ]
        decided = HoldsDecided(replies=list(replies))
        self._answers[self.sent.index(envelope)].set_result(decided.model_dump_json().encode())


def _hold(qty: int = 1) -> PlaceHold:
    return PlaceHold(hold_id=uuid.uuid4(), product_id=1, qty=qty)


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_holds_waiting_behind_an_answer_gather_for_linger_after_it() -> None:
    partition = Partition()
    coalescer = HoldCoalescer(partition, linger=0.05, max_batch=50, max_in_flight=1)
    first = [coalescer.submit(_hold(), KEY) for _ in range(4)]
    envelope = await partition.next_envelope()
    assert len(envelope.holds) == 4
    behind = [coalescer.submit(_hold(), KEY) for _ in range(2)]
    await asyncio.sleep(0.1)  # a round trip longer than the linger: theirs is over meanwhile
    partition.answer(envelope)
    await asyncio.gather(*first)
    await _turns()
    assert len(partition.sent) == 1, "the next envelope left at once instead of gathering"
    later = [coalescer.submit(_hold(), KEY)]  # arrives during the wait: 3, fewer than 4
    second = await partition.next_envelope()
    assert len(second.holds) == 3
    partition.answer(second)
    await asyncio.gather(*behind, *later)


async def test_everyone_counted_at_an_answer_waiting_again_leaves_without_the_linger() -> None:
    partition = Partition()
    coalescer = HoldCoalescer(partition, linger=0.01, max_batch=50, max_in_flight=1)
    first = [coalescer.submit(_hold(), KEY) for _ in range(3)]
    envelope = await partition.next_envelope()
    coalescer.linger = 30  # from here on, only the count can make an envelope leave in time
    behind = [coalescer.submit(_hold(), KEY)]
    partition.answer(envelope)  # counted: its 3 and the 1 behind it
    await asyncio.gather(*first)
    behind += [coalescer.submit(_hold(), KEY) for _ in range(2)]  # 2 of the 3 answered are back
    await _turns()
    assert len(partition.sent) == 1, "left before everyone counted at the answer was back"
    behind.append(coalescer.submit(_hold(), KEY))  # and the third: 4 waiting
    second = await asyncio.wait_for(partition.next_envelope(), 1)  # long before the 30 s
    assert len(second.holds) == 4
    more = [coalescer.submit(_hold(), KEY) for _ in range(4)]  # as many, while it is unanswered
    await _turns()
    assert len(partition.sent) == 2, "an envelope left while the partition's one was unanswered"
    partition.answer(second)  # counted: its 4 and the 4 behind it
    await asyncio.gather(*behind)
    more += [coalescer.submit(_hold(), KEY) for _ in range(4)]
    third = await asyncio.wait_for(partition.next_envelope(), 1)
    assert len(third.holds) == 8
    partition.answer(third)
    await asyncio.gather(*more)


async def test_a_full_envelope_waiting_behind_an_answer_leaves_at_once() -> None:
    partition = Partition()
    coalescer = HoldCoalescer(partition, linger=30, max_batch=4, max_in_flight=1)
    first = [coalescer.submit(_hold(), KEY) for _ in range(4)]  # full: leaves without waiting
    envelope = await partition.next_envelope()
    behind = [coalescer.submit(_hold(), KEY) for _ in range(6)]
    partition.answer(envelope)
    await asyncio.gather(*first)
    second = await partition.next_envelope()  # long before the 30 s linger
    assert len(second.holds) == 4
    partition.answer(second)
    await _turns()
    assert len(partition.sent) == 2  # the 2 left over gather for the linger...
    behind += [coalescer.submit(_hold(), KEY) for _ in range(2)]
    third = await partition.next_envelope()  # ...until they fill an envelope
    assert len(third.holds) == 4
    partition.answer(third)
    await asyncio.gather(*behind)


async def test_each_hold_gets_its_own_reply_in_an_envelope_of_many() -> None:
    partition = Partition()
    coalescer = HoldCoalescer(partition, linger=0.01, max_batch=50, max_in_flight=1)
    holds = [_hold(qty=1 + i % 3) for i in range(7)]
    futures = [coalescer.submit(h, KEY) for h in holds]
    envelope = await partition.next_envelope()
    assert [h.hold_id for h in envelope.holds] == [h.hold_id for h in holds]
    partition.answer(envelope)
    replies = await asyncio.gather(*futures)
    assert all(isinstance(r, HoldPlaced) for r in replies)
    placed = [(r.hold_id, r.qty) for r in replies if isinstance(r, HoldPlaced)]
    assert placed == [(h.hold_id, h.qty) for h in holds]
