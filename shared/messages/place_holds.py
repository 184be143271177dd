"""PlaceHolds: one gateway process's holds for one partition, decided in order, answered once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.messages.base import Command
from shared.messages.place_hold import PlaceHold

#: Most holds one envelope carries (also the gateway's batch size).
MAX_HOLDS_PER_MESSAGE = 500


class PlaceHolds(Command):
    """Several PlaceHold, each with its own id, key and deadline: only the envelope is shared.

    The partition decides them in this order, in one transaction with whatever else it is
    deciding, and answers with one HoldsDecided whose replies line up with `holds`.
    """

    type: Literal["PlaceHolds"] = "PlaceHolds"
    holds: list[PlaceHold] = Field(min_length=1, max_length=MAX_HOLDS_PER_MESSAGE)
