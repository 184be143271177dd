"""The inventory worker process: `python -m workers.inventory.main`."""

from __future__ import annotations

from shared.settings import get_settings
from shared.worker import build_app, run
from workers.inventory.subscriber import register, sweeper

app, broker, context = build_app("inventory", register, sweeper)

if __name__ == "__main__":
    run(app, get_settings())
