"""`./dev bench --set NAME=VALUE`: a setting of this project's processes for one run, checked
against the settings they read, so a misspelt name fails at once instead of measuring the
defaults under another label."""

from __future__ import annotations

import argparse

import pytest

from tests.bench.__main__ import _parser, _setting


def test_a_setting_the_processes_read_is_taken() -> None:
    assert _setting("FLASHSALE_HOLD_BATCH_WAIT_MS=2") == ("FLASHSALE_HOLD_BATCH_WAIT_MS", "2")
    args = _parser().parse_args(
        ["--set", "FLASHSALE_HOLD_BATCH_WAIT_MS=2", "--set", "FLASHSALE_HOLD_BATCH_SIZE=50"]
    )
    assert dict(args.settings) == {
        "FLASHSALE_HOLD_BATCH_WAIT_MS": "2",
        "FLASHSALE_HOLD_BATCH_SIZE": "50",
    }


@pytest.mark.parametrize(
    "text", ["FLASHSALE_HOLD_BATCH_WAIT=2", "HOLD_BATCH_WAIT_MS=2", "FLASHSALE_HOLD_BATCH_WAIT_MS"]
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a FLASHSALE_NAME=VALUE"):
        _setting(text)
