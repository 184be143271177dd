"""The AsyncAPI document describes every channel and message of the pipeline."""

from __future__ import annotations

import json

import pytest

from shared import topology
from shared.settings import Settings
from workers.asyncapi import specification

pytestmark = pytest.mark.unit


def test_asyncapi_lists_every_channel_and_command() -> None:
    settings = Settings(partitions=4, hold_ttl_seconds=120, payment_window_seconds=900)
    doc = json.loads(specification(settings).to_specification().to_json())
    channels = set(doc["channels"])
    for q in topology.partition_queues(4):
        assert f"{q.name}:consume" in channels
    assert {
        "orders.commands:consume",
        "payments.webhooks:consume",
        "holds.delay.120s:publish",
        "orders.delay.900s:publish",
    } <= channels
    text = json.dumps(doc)
    for message in (
        "PlaceHold",
        "ExpireHold",
        "Restock",
        "ReleaseOrderStock",
        "ExpireOrder",
        "CreateOrder",
        "RecordPayment",
    ):
        assert message in text, message
