"""One local RabbitMQ node, or a cluster of them: configuration, start, join, stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Self

from shared import roles
from shared.localservers.credentials import AMQP_PASSWORD, AMQP_PASSWORDS, AMQP_USER, RABBIT_USER
from shared.localservers.packages import RABBIT_SERVER, RABBITMQ_QUEUES, RABBITMQCTL
from shared.localservers.processes import (
    ServerError,
    _as_user,
    _chown,
    _chown_tree,
    amqp_greets,
    log_tail,
    pid_alive,
    port_taken,
    stop_pid,
)


def _epmd_running() -> bool:
    return port_taken(4369)


class RabbitMQNode:
    """The RabbitMQ half of `LocalServers`, whose fields these are."""

    home: Path
    amqp_port: int
    mgmt_port: int
    node_name: str
    prometheus_port: int
    dist_port: int
    started_epmd: bool
    cluster: int
    rabbit_subdir: str
    peers: list[Self]

    @property
    def nodes(self) -> list[Self]:
        """Every RabbitMQ node, this one first."""
        return [self, *self.peers]

    @property
    def node(self) -> str:
        """The Erlang node name, e.g. ``flashsale@localhost``."""
        return f"{self.node_name}@localhost"

    # ---- where things are -------------------------------------------------------------
    @property
    def rabbit_dir(self) -> Path:
        return self.home / self.rabbit_subdir

    @property
    def rabbit_log(self) -> Path:
        return self.rabbit_dir / "log" / "node.log"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}/"

    @property
    def rabbit_pid_file(self) -> Path:
        """RabbitMQ's own (RABBITMQ_PID_FILE): a node restarting on its data writes the pid
        of its Erlang VM there, which is not the launch script."""
        return self.rabbit_dir / "node.pid"

    @property
    def launch_pid_file(self) -> Path:
        """The launch script's pid, written by whoever started the node; RabbitMQ leaves it."""
        return self.rabbit_dir / "launch.pid"

    # ---- start and stop ---------------------------------------------------------------
    def _rabbit_env(self) -> dict[str, str]:
        conf = self.rabbit_dir / "rabbitmq.conf"
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        return {
            **os.environ,
            "HOME": "/var/lib/rabbitmq" if os.geteuid() == 0 else os.environ.get("HOME", "/"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_MNESIA_BASE": str(self.rabbit_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.rabbit_dir / "log"),
            "RABBITMQ_LOGS": str(self.rabbit_log),
            "RABBITMQ_PID_FILE": str(self.rabbit_pid_file),
            "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.rabbit_dir / "enabled_plugins"),
            # quorum_cluster_size (the members of a new quorum queue)
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.rabbit_dir / "advanced.config"),
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # Erlang distribution and the port mapper (when this node starts it) on loopback
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback,
            "RABBITMQ_CTL_ERL_ARGS": loopback,
        }

    def _write_rabbit_config(self) -> None:
        (self.rabbit_dir / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.rabbit_dir / "log").mkdir(parents=True, exist_ok=True)
        (self.rabbit_dir / "enabled_plugins").write_text(
            "[rabbitmq_management,rabbitmq_prometheus].\n"
        )
        (self.rabbit_dir / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                    f"management.tcp.port = {self.mgmt_port}",
                    "management.tcp.ip = 127.0.0.1",
                    f"prometheus.tcp.port = {self.prometheus_port}",
                    "prometheus.tcp.ip = 127.0.0.1",
                    # the operator; the processes' users are added once the node is up
                    f"default_user = {AMQP_USER}",
                    f"default_pass = {AMQP_PASSWORD}",
                    "default_user_tags.administrator = true",
                    "default_permissions.configure = .*",
                    "default_permissions.read = .*",
                    "default_permissions.write = .*",
                    "loopback_users = none",
                    "log.console = false",
                    "log.file.level = info",
                    "collect_statistics_interval = 1000",
                    # a new quorum queue's leader on the node that leads the fewest: the
                    # partitions, declared from one node, are led by every node in turn
                    *(["queue_leader_locator = balanced"] if self.cluster > 1 else []),
                    "",
                ]
            )
        )
        # A quorum queue gets a member on every node of the cluster (RabbitMQ's default is 3).
        members = max(self.cluster, len(self.peers) + 1)
        (self.rabbit_dir / "advanced.config").write_text(
            f"[{{rabbit, [{{quorum_cluster_size, {members}}}]}}].\n"
        )
        _chown_tree(self.rabbit_dir, RABBIT_USER)
        _chown(self.rabbit_dir, RABBIT_USER, 0o700)  # its configuration has the operator's password

    def rabbit_pid(self) -> int | None:
        """Pid of the running node: its launch script, if its pid file names a live process
        that still leads a process group of its own, as the script does (a pid the kernel has
        given since to another process, or to a thread, mostly does not). The script's group
        holds the Erlang VM: killing the group kills the node."""
        try:
            pid = int(self.launch_pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            leads = os.getpgid(pid) == pid
        except ProcessLookupError:
            return None
        return pid if leads and pid_alive(pid) else None

    def start_rabbit(self, timeout: float = 90.0, provision: bool = True) -> int:
        """Start the node (or find it running), wait until AMQP and the UI answer, and give
        each process kind its broker user. A cluster's nodes start together and join the
        first one (once: later starts find each other)."""
        if self.peers:
            return self._start_cluster(timeout)
        if (pid := self.rabbit_pid()) is None:
            for port, what in [(self.amqp_port, "AMQP"), (self.mgmt_port, "management UI")]:
                if port_taken(port):
                    raise ServerError(f"port {port} ({what}) is taken by another process")
            self._write_rabbit_config()
            self.started_epmd = not _epmd_running()
            out = (self.rabbit_dir / "log" / "startup.log").open("ab")
            proc = subprocess.Popen(
                _as_user(RABBIT_USER, [RABBIT_SERVER]),
                env=self._rabbit_env(),
                cwd=self.rabbit_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            out.close()
            self.launch_pid_file.write_text(str(proc.pid))
            pid = proc.pid
        self._wait_rabbit(timeout, pid)
        if provision:
            roles.provision_broker(self.management_url, (AMQP_USER, AMQP_PASSWORD), AMQP_PASSWORDS)
        return pid

    def _start_cluster(self, timeout: float) -> int:
        from concurrent.futures import ThreadPoolExecutor

        for node in self.peers:
            node.cluster = self.cluster
        single = [n.start_rabbit if n is not self else self._start_own_node for n in self.nodes]
        # together: nodes that were clustered wait for each other at boot
        with ThreadPoolExecutor(len(single)) as pool:
            pids = [f.result() for f in [pool.submit(start, timeout, False) for start in single]]
        members = set(self.running_nodes())
        for node in self.peers:
            if node.node not in members:
                node.join(self)
                # quorum queues made before it joined get a member on it too
                self.rabbitmqctl("grow", node.node, "all", tool=RABBITMQ_QUEUES)
        roles.provision_broker(self.management_url, (AMQP_USER, AMQP_PASSWORD), AMQP_PASSWORDS)
        return pids[0]

    def _start_own_node(self, timeout: float, provision: bool) -> int:
        peers, self.peers = self.peers, []
        try:
            return self.start_rabbit(timeout, provision)
        finally:
            self.peers = peers

    def rabbitmqctl(
        self, *args: str, timeout: float = 120, tool: str = RABBITMQCTL
    ) -> subprocess.CompletedProcess[str]:
        """`rabbitmqctl -n <this node> ARGS` (or another of RabbitMQ's tools) as the broker's
        user; raises with its output when it fails."""
        result = subprocess.run(
            _as_user(RABBIT_USER, [tool, "-n", self.node, *args]),
            env=self._rabbit_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise ServerError(
                f"rabbitmqctl {' '.join(args)} on {self.node} failed:\n"
                + result.stdout
                + result.stderr
            )
        return result

    def join(self, seed: RabbitMQNode) -> None:
        """Make this (freshly started) node a member of `seed`'s cluster."""
        self.rabbitmqctl("stop_app")
        self.rabbitmqctl("reset")
        self.rabbitmqctl("join_cluster", seed.node)
        self.rabbitmqctl("start_app")
        pid = self.rabbit_pid()
        assert pid is not None, f"{self.node} is not running"
        self._wait_rabbit(90, pid)

    def running_nodes(self) -> list[str]:
        """The cluster's running nodes, as the first live node's management API lists them."""
        import httpx

        for node in self.nodes:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(
                    f"{node.management_url}api/nodes",
                    auth=(AMQP_USER, AMQP_PASSWORD),
                    timeout=5,
                )
                if r.status_code == 200:
                    return [n["name"] for n in r.json() if n.get("running")]
        return []

    def _wait_rabbit(self, timeout: float, pid: int) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise ServerError(
                    "RabbitMQ exited during start-up; its log ends with:\n"
                    + log_tail(self.rabbit_log)
                    + "\n"
                    + log_tail(self.rabbit_dir / "log" / "startup.log")
                )
            # the UI answers before the node takes AMQP clients (a restart on its old data)
            if amqp_greets(self.amqp_port):
                with contextlib.suppress(httpx.HTTPError):
                    r = httpx.get(
                        f"{self.management_url}api/overview",
                        auth=(AMQP_USER, AMQP_PASSWORD),
                        timeout=2,
                    )
                    if r.status_code == 200:
                        return
            time.sleep(0.3)
        raise ServerError(
            f"RabbitMQ did not answer within {timeout:.0f} s; its log ends with:\n"
            + log_tail(self.rabbit_log)
        )

    def stop_rabbit(self) -> None:
        """Stop the node (every node of a cluster) and, if this launcher started the Erlang
        port mapper, that too."""
        if self.peers:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(self.peers)) as pool:
                list(pool.map(RabbitMQNode.stop_rabbit, self.peers))
        pid = self.rabbit_pid()
        if pid is not None:
            # the pid is the server's wrapper script, which leads a session of its own
            stop_pid(pid, timeout=30, group=True)
        for stale in (self.launch_pid_file, self.rabbit_pid_file):
            with contextlib.suppress(OSError):
                stale.unlink()
        if self.started_epmd and shutil.which("epmd"):
            # refused by epmd while any other node is still registered: shared nodes survive
            subprocess.run(["epmd", "-kill"], capture_output=True, check=False)
