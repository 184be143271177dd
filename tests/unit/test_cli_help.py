"""Help text shows its defaults as written, and the exit codes are distinct and documented."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.exits import ExitCode
from cli.main import app
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit


def _help(*args: str) -> str:
    run = CliRunner().invoke(app, [*args, "--help"], terminal_width=300, max_content_width=300)
    assert run.exit_code == 0, run.output
    return " ".join(run.output.split())


def test_help_shows_the_defaults_no_markup_swallows() -> None:
    assert "[default: .local/dev]" in _help("up") and "default: 5673]" in _help("up")
    assert "[default: all]" in _help("dlq", "list") and "<queue>.dead" in _help("dlq")
    assert "[default: 30d]" in _help("purge") and "[default: dry-run]" in _help("purge")
    assert "default: http://127.0.0.1:8000]" in _help("simulate")


def test_simulate_help_explains_every_journey_of_the_mix() -> None:
    text = _help("simulate")
    for journey in ("success", "failure", "abandon-hold", "abandon-order"):
        assert f" {journey} " in text
    assert "--duplicates" in text and "--out-of-order" in text


def test_exit_codes_are_distinct_and_documented() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode)
    assert (ExitCode.AUDIT_VIOLATION, ExitCode.USAGE, ExitCode.UNREACHABLE) == (1, 2, 3)
    guide = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    for code in ExitCode:
        if code:
            assert f"\n| {int(code)} |" in guide, code
    assert "Exit codes:" in _help()


def test_a_wrong_option_and_a_short_purge_age_are_usage_errors() -> None:
    assert CliRunner().invoke(app, ["audit", "--no-such-option"]).exit_code == ExitCode.USAGE
    short = CliRunner().invoke(app, ["purge", "--older-than", "1h"])
    assert short.exit_code == ExitCode.USAGE and "at least 24h" in short.output
