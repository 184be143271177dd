"""Ports and processes of the local servers: free ports, pids, stopping, running as a user."""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import signal
import socket
import time
from pathlib import Path


class ServerError(RuntimeError):
    """A local server could not be installed, started or reached; the message says why."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


#: AMQP 0-9-1's protocol header: a broker that takes connections answers it with Connection.Start.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def amqp_greets(port: int, timeout: float = 2.0) -> bool:
    """Whether the broker on 127.0.0.1:port answers a client's protocol header with a method
    frame (Connection.Start). A node still booting accepts the TCP connection and closes it
    before a byte is read: a listening port alone does not mean a client can connect."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(_AMQP_HEADER)
            frame = s.recv(7)
    except OSError:
        return False
    return len(frame) == 7 and frame[0] == 1  # frame type 1: a method, on channel 0


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _as_user(user: str, argv: list[str]) -> list[str]:
    """Run argv as `user` (servers refuse root), exec'ing in place so the pid stays the server's."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]


def _chown(path: Path, user: str, mode: int) -> None:
    """One file or folder, to the server's user (when root) and `mode`."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, mode)


def _chown_tree(path: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), entry.pw_uid, entry.pw_gid)


def pid_alive(pid: int) -> bool:
    """Whether the process runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 20.0, group: bool = False) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL (its whole process group with `group`, for a
    wrapper script that leads its group): the process is gone when this returns."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)


def _outgoing_ports() -> range:
    """The ports the kernel picks for outgoing connections (and for `free_port`)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(n) for n in text.split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def listener_port(taken: set[int] | None = None) -> int:
    """A free port for a server to listen on, outside the ports the kernel gives outgoing
    connections where the machine leaves room for that: a server that stops and starts its
    listeners (a broker node joining a cluster, `stop_app` / `start_app`, a restart) finds its
    port still free on a busy machine, where a client's connection may take any of those.
    Never one of `taken`; the port is added to it."""
    outgoing = _outgoing_ports()
    if outgoing.start - 10000 >= 1000:
        spare = range(10000, outgoing.start)
    elif 65536 - outgoing.stop >= 1000:
        spare = range(outgoing.stop, 65536)
    else:
        spare = range(1024, 65536)
    taken = set() if taken is None else taken
    while True:
        port = random.choice(spare)
        if port in taken:
            continue
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            taken.add(port)
            return port


def _derived_port(port: int) -> int:
    """A port next to a configured one (RabbitMQ's convention), or any free one."""
    return port if port <= 65535 and not port_taken(port) else free_port()
