"""The AsyncAPI document describes every channel and message of the pipeline."""

from __future__ import annotations

import json

import pytest

from cli.asyncapi import document, specification
from shared import topology
from shared.settings import PROJECT_ROOT, Settings

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


def test_the_committed_asyncapi_document_is_what_the_code_makes() -> None:
    committed = json.loads((PROJECT_ROOT / "docs" / "asyncapi.json").read_text())
    assert committed == document(Settings()), "docs/asyncapi.json is stale: `./dev docs`"


def test_asyncapi_lists_channels_operations_and_messages_in_name_order() -> None:
    doc = document(Settings())
    for section in (doc["channels"], doc["operations"], doc["components"]["messages"]):
        assert list(section) == sorted(section)
    text = (PROJECT_ROOT / "docs" / "asyncapi.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
