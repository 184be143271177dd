"""Servers a fault module starts for itself and throws away afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from shared.localservers import LocalServers, pid_alive


def discard(servers: LocalServers) -> None:
    """Stop servers whose data is removed next: every broker node is killed rather than
    stopped (a clean stop takes about 6 s a node, for data nobody keeps), then the rest stops
    as usual (PostgreSQL's fast stop, the port mapper if these servers started it)."""
    for node in servers.nodes:
        pid = node.rabbit_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                # its whole process group: the launch script leads it, the node is in it
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.02)
    servers.stop()
