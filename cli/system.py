"""What `flashsale up` runs: its options, its servers, and its processes, each with the
application's database role and a broker user of its own kind."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cli.supervisor import Child
from shared.localservers import LocalServers
from shared.settings import PROJECT_ROOT


@dataclass
class LaunchOptions:
    home: Path
    amqp_port: int
    mgmt_port: int
    pg_port: int
    http_port: int
    inventory_replicas: int = 2
    gateway_processes: int = 2
    seed: bool = True
    node_name: str = ""
    log_format: str = "json"
    #: RabbitMQ nodes; a data folder that once held a cluster keeps it (its nodes wait for
    #: each other at boot).
    cluster: int = 1

    def servers(self) -> LocalServers:
        known = len(list(self.home.glob("rabbitmq-[0-9]*"))) + 1
        return LocalServers(
            self.home,
            amqp_port=self.amqp_port,
            mgmt_port=self.mgmt_port,
            pg_port=self.pg_port,
            node_name=self.node_name or self._node_name(),
            cluster=max(self.cluster, known),
        )

    def _node_name(self) -> str:
        """`flashsale` for the development folder, and for any folder that already has that
        node's data; a name of its own elsewhere: the machine's epmd refuses a second node of a
        name, so two folders started at once must not share one."""
        if (
            self.home == default_home().resolve()
            or (self.home / "rabbitmq" / "mnesia" / "flashsale@localhost").exists()
        ):
            return "flashsale"
        return "flashsale-" + hashlib.blake2b(str(self.home).encode(), digest_size=4).hexdigest()

    @property
    def state_file(self) -> Path:
        return self.home / "state.json"


def processes(opts: LaunchOptions, servers: LocalServers) -> list[Child]:
    """Each process with the application's database role and a broker user of its own kind."""
    env = {
        **os.environ,
        "FLASHSALE_DATABASE_URL": servers.app_database_url,
        "FLASHSALE_HTTP_PORT": str(opts.http_port),
        "FLASHSALE_LOG_FORMAT": opts.log_format,
        "PYTHONUNBUFFERED": "1",
    }
    logs = opts.home / "logs"
    py = sys.executable
    children = []
    for i in range(opts.gateway_processes):  # all on the one HTTP port (SO_REUSEPORT)
        name = "gateway" if i == 0 else f"gateway-{i + 1}"
        gateway_env = {
            **env,
            **_broker_env(servers, "gateway", i),
            "FLASHSALE_METRICS_PORT": str(opts.http_port + 91 + i),
        }
        children.append(Child(name, [py, "-m", "gateway.main"], gateway_env, logs / f"{name}.log"))
    workers = [f"inventory-{i + 1}" for i in range(opts.inventory_replicas)] + [
        "orders",
        "payments",
    ]
    for n, name in enumerate(workers):
        kind = name.split("-")[0]
        worker_env = {
            **env,
            **_broker_env(servers, kind, n),
            "FLASHSALE_METRICS_PORT": str(opts.http_port + 101 + n),
        }
        children.append(
            Child(name, [py, "-m", f"workers.{kind}.main"], worker_env, logs / f"{name}.log")
        )
    return children


def _broker_env(servers: LocalServers, kind: str, position: int) -> dict[str, str]:
    """The broker URL of a process (its own user); on a cluster, processes start on the nodes
    in turn (standbys on another node than the active ones) and know every other node."""
    urls = servers.cluster_amqp_urls(kind, position % len(servers.nodes))
    env = {"FLASHSALE_AMQP_URL": urls[0]}
    if len(urls) > 1:
        env["FLASHSALE_AMQP_FAILOVER_URLS"] = ",".join(urls[1:])
    return env


def default_home() -> Path:
    """The development system's data folder (git-ignored)."""
    return Path(os.environ.get("FLASHSALE_HOME", PROJECT_ROOT / ".local" / "dev"))
