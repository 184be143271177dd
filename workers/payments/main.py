"""The payments worker process: `python -m workers.payments.main`."""

from __future__ import annotations

from shared.settings import get_settings
from shared.worker import build_app, run
from workers.payments.subscriber import register

app, broker, context = build_app("payments", register)

if __name__ == "__main__":
    run(app, get_settings())
