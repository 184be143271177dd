"""The whole set: one RabbitMQ node (or a cluster) and one PostgreSQL cluster in one folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shared import roles
from shared.localservers.credentials import (
    AMQP_PASSWORD,
    AMQP_PASSWORDS,
    AMQP_USER,
    DB_APP_PASSWORD,
    DB_OPERATOR_PASSWORD,
    DB_OWNER_PASSWORD,
)
from shared.localservers.postgres import PostgreSQLCluster
from shared.localservers.processes import _derived_port, _outgoing_ports, listener_port, port_taken
from shared.localservers.rabbitmq import RabbitMQNode


@dataclass
class LocalServers(RabbitMQNode, PostgreSQLCluster):
    """One RabbitMQ node (or a cluster of `cluster` nodes) and one PostgreSQL cluster with
    their data under `home`.

    A cluster's first node is this object's own (its ports, `rabbit_dir`); node k (2, 3, …) has
    the name `<node_name>-k`, its data in `rabbitmq-k/`, AMQP on `amqp_port + k - 1`,
    management and Prometheus on `mgmt_port + 2(k - 1)` and the port after it (or free ports
    where those are taken). All nodes share the Erlang cookie of the `rabbitmq` user's home.
    """

    home: Path
    amqp_port: int
    mgmt_port: int
    pg_port: int
    node_name: str = "flashsale"
    prometheus_port: int = 0
    dist_port: int = 0
    started_epmd: bool = field(default=False)
    #: The owner may create databases (the tests' scratch databases for migrations).
    owner_createdb: bool = False
    #: RabbitMQ nodes, clustered when more than one.
    cluster: int = 1
    #: The folder of this node's data under `home`.
    rabbit_subdir: str = "rabbitmq"
    #: The other nodes of the cluster (node 2, 3, …), made from the fields above.
    peers: list[LocalServers] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.prometheus_port = self.prometheus_port or _derived_port(self.mgmt_port + 1)
        self.dist_port = self.dist_port or _derived_port(self.amqp_port + 20000)
        if self.cluster > 1 and not self.peers:
            used = {self.amqp_port, self.mgmt_port, self.pg_port}
            used |= {self.prometheus_port, self.dist_port}
            self.peers = [self._peer(k, used) for k in range(2, self.cluster + 1)]

    def _peer(self, k: int, used: set[int]) -> LocalServers:
        """Node k's ports: next to this node's where free, never one another node was given,
        and never one the kernel gives outgoing connections (`listener_port`): joining the
        cluster stops and starts the node's listeners, and on a busy machine a client's
        connection took such a port in between (`eaddrinuse`: the node did not start)."""
        outgoing = _outgoing_ports()

        def pick(port: int) -> int:
            if not 1024 <= port <= 65535 or port in outgoing or port in used or port_taken(port):
                port = listener_port(used)
            used.add(port)
            return port

        step = k - 1
        return LocalServers(
            self.home,
            amqp_port=pick(self.amqp_port + step),
            mgmt_port=pick(self.mgmt_port + 2 * step),
            pg_port=self.pg_port,
            node_name=f"{self.node_name}-{k}",
            prometheus_port=pick(self.mgmt_port + 2 * step + 1),
            dist_port=pick(self.amqp_port + 20000 + step),
            rabbit_subdir=f"rabbitmq-{k}",
        )

    # ---- what clients connect with ----------------------------------------------------
    @property
    def amqp_url(self) -> str:
        """The operator's (CLI, management UI): it may do everything."""
        return f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@127.0.0.1:{self.amqp_port}/"

    @property
    def amqp_urls(self) -> dict[str, str]:
        """Process kind → the URL of its own broker user."""
        return {
            kind: f"amqp://{roles.amqp_user(kind)}:{password}@127.0.0.1:{self.amqp_port}/"
            for kind, password in AMQP_PASSWORDS.items()
        }

    def cluster_amqp_urls(self, kind: str, first: int = 0) -> list[str]:
        """The URLs of every node for one process kind's user (or the operator's for
        ``"operator"``), starting with node `first` (0-based): where it connects first."""
        nodes = self.nodes[first:] + self.nodes[:first]
        if kind == "operator":
            return [n.amqp_url for n in nodes]
        return [n.amqp_urls[kind] for n in nodes]

    def _database_url(self, user: str, password: str) -> str:
        return f"postgresql+asyncpg://{user}:{password}@127.0.0.1:{self.pg_port}/{roles.DB_NAME}"

    @property
    def app_database_url(self) -> str:
        """What the gateway and the workers use: rows only, owns nothing."""
        return self._database_url(roles.DB_APP, DB_APP_PASSWORD)

    @property
    def owner_database_url(self) -> str:
        """The schema's owner: migrations."""
        return self._database_url(roles.DB_OWNER, DB_OWNER_PASSWORD)

    @property
    def operator_database_url(self) -> str:
        """A person at the command line: the application's rights (FLASHSALE_DATABASE_URL's
        default on the launcher's port)."""
        return self._database_url(roles.DB_OPERATOR, DB_OPERATOR_PASSWORD)

    # ---- both -------------------------------------------------------------------------
    def prepare_home(self) -> None:
        """The data folder, reachable by the server users (they run without root)."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)

    def start(self) -> None:
        """Both servers, in parallel: PostgreSQL starts while the Erlang VM boots."""
        from concurrent.futures import ThreadPoolExecutor

        self.prepare_home()
        with ThreadPoolExecutor(2) as pool:
            rabbit = pool.submit(self.start_rabbit)
            pg = pool.submit(self.start_postgres)
            pg.result()
            rabbit.result()

    def stop(self) -> None:
        """Both servers; safe to call when they are not running."""
        self.stop_postgres()
        self.stop_rabbit()
