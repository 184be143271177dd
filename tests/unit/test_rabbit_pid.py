"""A node's launch pid file names its launch script, which leads a process group of its own
with the Erlang VM in it; the tests kill a node through that group. RabbitMQ's own pid file
is not it: a node restarting on its data writes its VM's pid there (which once made a cluster
test kill a group that did not exist). A pid the kernel has given since to another process, or
to one of a process's threads (signals to a thread id reach its process, and /proc shows it),
is not the node: it reads as not running rather than as a live node nobody can kill."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.localservers import LocalServers

_SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def node(tmp_path: Path) -> LocalServers:
    servers = LocalServers(tmp_path, amqp_port=1, mgmt_port=2, pg_port=3)
    servers.launch_pid_file.parent.mkdir(parents=True, exist_ok=True)
    return servers


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_live_group_leader_is_the_running_node(
    node: LocalServers, running: list[subprocess.Popen[bytes]]
) -> None:
    running.append(proc := subprocess.Popen(_SLEEP, start_new_session=True))
    node.launch_pid_file.write_text(str(proc.pid))
    assert node.rabbit_pid() == proc.pid


def test_the_vm_pid_rabbitmq_writes_on_a_restart_does_not_hide_the_node(
    node: LocalServers, running: list[subprocess.Popen[bytes]]
) -> None:
    running.append(script := subprocess.Popen(_SLEEP, start_new_session=True))
    running.append(vm := subprocess.Popen(_SLEEP))  # not a group leader, as the VM is not
    node.launch_pid_file.write_text(str(script.pid))
    node.rabbit_pid_file.write_text(str(vm.pid))  # RABBITMQ_PID_FILE, after a restart
    assert node.rabbit_pid() == script.pid


def test_a_live_process_in_another_group_is_not_the_node(
    node: LocalServers, running: list[subprocess.Popen[bytes]]
) -> None:
    running.append(proc := subprocess.Popen(_SLEEP))  # in this process's group
    node.launch_pid_file.write_text(str(proc.pid))
    assert node.rabbit_pid() is None


def test_a_thread_id_is_not_the_node(node: LocalServers) -> None:
    stop, tid = threading.Event(), list[int]()

    def wait() -> None:
        tid.append(threading.get_native_id())
        stop.wait()

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        while not tid:
            stop.wait(0.01)
        node.launch_pid_file.write_text(str(tid[0]))
        assert node.rabbit_pid() is None
    finally:
        stop.set()
        thread.join()


def test_a_pid_nobody_has_or_no_file_is_not_running(node: LocalServers) -> None:
    assert node.rabbit_pid() is None
    proc = subprocess.Popen(_SLEEP, start_new_session=True)
    proc.kill()
    proc.wait()
    node.launch_pid_file.write_text(str(proc.pid))
    assert node.rabbit_pid() is None
