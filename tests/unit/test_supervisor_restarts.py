"""The supervisor brings a dead child back at once, and backs off only from a crash loop."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from cli.supervisor import Child, Supervisor, restart_delay

pytestmark = pytest.mark.unit


def test_the_first_restart_is_immediate_and_a_crash_loop_backs_off_to_a_ceiling() -> None:
    assert restart_delay(0) <= 0.25
    assert restart_delay(1) == 2 * restart_delay(0)
    assert restart_delay(100) == 30.0


def test_a_child_killed_with_sigkill_runs_again_within_a_second(tmp_path: Path) -> None:
    child = Child(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        dict(os.environ),
        tmp_path / "sleeper.log",
    )
    supervisor = Supervisor([child])
    supervisor.start_all()
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    watcher.start()
    try:
        first = child.pid
        assert first is not None
        os.kill(first, 9)
        killed = time.monotonic()
        while child.pid == first:
            assert time.monotonic() - killed < 1.0, "not restarted within a second"
            time.sleep(0.01)
    finally:
        supervisor.stop_all()
        watcher.join(timeout=5)
