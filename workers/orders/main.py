"""The orders worker process: `python -m workers.orders.main`."""

from __future__ import annotations

from shared.auditing import auditor
from shared.settings import get_settings
from shared.worker import build_app, run
from workers.orders.subscriber import register

app, broker, context = build_app("orders", register, auditor)

if __name__ == "__main__":
    run(app, get_settings())
