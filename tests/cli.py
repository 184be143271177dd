"""The `flashsale` command run in the test's own process, as its entry point runs it."""

from __future__ import annotations

import os

import pytest

from cli.main import app
from shared.settings import get_settings


def invoke(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, **env: str
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `flashsale <args>` with only `env` as FLASHSALE_ settings."""
    for name in [n for n in os.environ if n.startswith("FLASHSALE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    capsys.readouterr()
    try:
        app(args=list(args), prog_name="flashsale")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    return code, out.out, out.err
