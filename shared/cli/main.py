"""`python -m shared.cli.main`, as callers not yet moved to `python -m cli.main` run it."""

from __future__ import annotations

from cli.main import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
