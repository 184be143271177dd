"""The committed OpenAPI document tells the truth: schemathesis, with every check and every
phase (the documented examples, boundary values, random and invalid data, and chains of calls
linked through the answers), finds no answer of the live gateway that breaks docs/openapi.json;
and a typed client generated from it (openapi-python-client) works against the gateway.

The gateway requires storefront keys, as production does, so that the document's security
schemes are enforced where it says so; the credentials come from tests/e2e/contract_hooks.py.
What JSON Schema cannot say (rules stated in words, 422s that depend on stored data) is in
tests/e2e/schemathesis.toml and its hooks. A failure prints schemathesis' report: each case
with the curl command that reproduces it, and the seed to run it again (`--seed`).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.settings import PROJECT_ROOT
from tests.e2e import contract_hooks
from tests.harness import ADMIN_TOKEN, WEBHOOK_SECRETS, System
from tests.servers import ServerSet

pytestmark = pytest.mark.e2e

DOCUMENT = PROJECT_ROOT / "docs" / "openapi.json"
CONFIG = PROJECT_ROOT / "tests" / "e2e" / "schemathesis.toml"
PHASES = ("Examples", "Coverage", "Fuzzing", "Stateful")
STOREFRONT_KEY = "contract-shop-key-" + "c" * 32
#: Generated cases per operation and phase: enough to reach every documented answer of this
#: API, few enough for the whole run to take about half a minute here.
MAX_EXAMPLES = 12
#: The run's own bound: a run that hangs fails instead of holding the suite.
TIMEOUT_SECONDS = 240
#: The client generator a storefront developer would use, from PyPI (run by uvx, beside the
#: project's environment: its dependencies are not the project's).
GENERATOR = "openapi-python-client@0.29.1"


@pytest.fixture(scope="module")
def keyed_gateway(system: System, servers: ServerSet) -> Iterator[System]:
    """A gateway process that requires a storefront key, on the session system's broker and
    workers (`system` runs them)."""
    gateway = System.on(
        servers,
        workers={},
        overrides={"FLASHSALE_STOREFRONT_KEYS": f"contract:{STOREFRONT_KEY}"},
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def test_the_live_gateway_answers_as_the_committed_openapi_document_says(
    keyed_gateway: System, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        contract_hooks.STOREFRONT_KEY: STOREFRONT_KEY,
        contract_hooks.ADMIN_TOKEN: ADMIN_TOKEN,
        contract_hooks.WEBHOOK_SECRET: WEBHOOK_SECRETS[0],
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        f"--config-file={CONFIG}",
        "run",
        str(DOCUMENT),
        f"--url={keyed_gateway.base_url}",
        "--checks=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--request-timeout=15",
        # one worker: Python 3.11's ast.parse, which hypothesis calls, is not thread-safe
        "--workers=1",
        "--no-color",
        "--generation-database=none",  # nothing written into the work tree
    ]
    run = subprocess.run(
        command,
        env=env,
        cwd=tmp_path,  # where schemathesis keeps its cache
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    operations = sum(len(item) for item in json.loads(DOCUMENT.read_text())["paths"].values())
    assert f"Tested: {operations}" in report, report
    for phase in PHASES:  # each ran, and passed
        assert re.search(rf"✅\s+{phase} \(in ", report), report


def _generated_client(into: Path) -> Any:
    """The package openapi-python-client generates from docs/openapi.json, imported."""
    uvx = shutil.which("uvx", path=f"{os.environ.get('PATH', '')}:{Path.home() / '.local/bin'}")
    assert uvx, "uvx (uv) is needed to run the client generator"
    made = subprocess.run(
        [uvx, "--quiet", GENERATOR, "generate", f"--path={DOCUMENT}", "--meta=none",
         f"--output-path={into / 'flashsale_client'}"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    sys.path.insert(0, str(into))
    try:
        return importlib.import_module("flashsale_client")
    finally:
        sys.path.remove(str(into))


def test_a_client_generated_from_the_document_holds_and_orders_with_typed_answers(
    keyed_gateway: System, tmp_path: Path
) -> None:
    client = _generated_client(tmp_path)
    api = importlib.import_module("flashsale_client.api")
    models = importlib.import_module("flashsale_client.models")
    for module in ("products.create_product", "holds.create_hold", "holds.get_hold"):
        importlib.import_module(f"flashsale_client.api.{module}")
    importlib.import_module("flashsale_client.api.orders.create_order")  # one per operation
    url = keyed_gateway.base_url
    admin = client.AuthenticatedClient(base_url=url, token=ADMIN_TOKEN)
    shop = client.AuthenticatedClient(base_url=url, token=STOREFRONT_KEY)

    product = api.products.create_product.sync(
        client=admin, body=models.ProductIn(name="typed client", price_cents=2500, stock=1)
    )
    assert isinstance(product, models.ProductOut) and product.available == 1
    hold = api.holds.create_hold.sync(client=shop, body=models.HoldIn(product_id=product.id, qty=1))
    assert isinstance(hold, models.HoldOut), hold
    assert hold.status == models.HoldOutStatus.ACTIVE
    refused = api.holds.create_hold.sync(
        client=shop, body=models.HoldIn(product_id=product.id, qty=1)
    )
    assert isinstance(refused, models.Problem), refused
    assert (refused.status, refused.code, refused.available) == (409, "insufficient_stock", 0)
    order = api.orders.create_order.sync(
        client=shop, body=models.OrderIn(hold_id=str(hold.hold_id))
    )
    # 201 with the order, or 202 (decided a moment later) when the machine is slow
    assert isinstance(order, models.OrderOut | models.OrderProcessing), order
    if isinstance(order, models.OrderOut):
        assert (order.amount_cents, order.status) == (2500, models.OrderOutStatus.PENDING)
    unset = importlib.import_module("flashsale_client.types").UNSET
    deadline = time.monotonic() + 15
    read = api.holds.get_hold.sync(hold_id=str(hold.hold_id), client=shop)
    while isinstance(read, models.HoldOut) and read.order_id in (None, unset):
        assert time.monotonic() < deadline, "the hold never showed its order"
        time.sleep(0.2)
        read = api.holds.get_hold.sync(hold_id=str(hold.hold_id), client=shop)
    assert isinstance(read, models.HoldOut) and read.order_id == order.order_id, read
