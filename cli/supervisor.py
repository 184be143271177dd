"""Runs the gateway and the workers as child processes, restarts them, stops them all."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.localservers import stop_pid

_PR_SET_PDEATHSIG = 1
#: The first restart comes at once (a gateway killed beside its twin is back within a second);
#: a child that keeps dying waits twice as long each time, up to the ceiling.
FIRST_RESTART_SECONDS = 0.25
MAX_RESTART_SECONDS = 30.0
#: A child that ran this long before exiting starts again from the first delay.
STABLE_SECONDS = 30.0
#: How often the supervisor looks at its children.
POLL_SECONDS = 0.1


def restart_delay(restarts: int) -> float:
    """Back-off before restarting a child that has been restarted `restarts` times lately."""
    return float(min(MAX_RESTART_SECONDS, FIRST_RESTART_SECONDS * 2.0 ** min(restarts, 10)))


def _die_with_parent() -> None:
    # If the supervisor is killed outright, its children get SIGTERM instead of lingering.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops in order
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


@dataclass
class Supervisor:
    children: list[Child]
    stopping: bool = field(default=False)

    def start_all(self) -> None:
        for child in self.children:
            child.start()

    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.children if c.pid is not None}

    def watch(self, on_change: object = None) -> None:
        """Restart children that die (with back-off) until asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                proc = child.proc
                if proc is None or proc.poll() is None:
                    continue
                if child.next_start == 0.0:
                    if now - child.started_at >= STABLE_SECONDS:
                        child.restarts = 0  # it ran fine for a while: not a crash loop
                    delay = restart_delay(child.restarts)
                    child.next_start = now + delay
                    print(
                        f"[supervisor] {child.name} exited with {proc.returncode}; "
                        f"restarting in {delay:.2f} s (log: {child.log})",
                        file=sys.stderr,
                        flush=True,
                    )
                elif now >= child.next_start:
                    child.restarts += 1
                    child.next_start = 0.0
                    child.start()
                    if callable(on_change):
                        on_change()
            time.sleep(POLL_SECONDS)

    def stop_all(self) -> None:
        """Gateway first (no new requests), then the workers; each by its pid."""
        self.stopping = True
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.proc.pid, signal.SIGTERM)
        for child in self.children:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    stop_pid(child.proc.pid, timeout=1)
                    child.proc.wait()
