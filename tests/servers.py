"""Real RabbitMQ and PostgreSQL for the tests.

From the environment (`FLASHSALE_TEST_AMQP_URL` and `FLASHSALE_TEST_DATABASE_URL`, with
`FLASHSALE_TEST_MANAGEMENT_URL` for the broker's HTTP API), from testcontainers when a Docker
engine answers, or else from the project's own launcher on free ports in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.localservers import LocalServers, free_port


@dataclass
class ServerSet:
    amqp_url: str
    database_url: str
    management_url: str | None
    management_auth: tuple[str, str]
    kind: str
    stop: Callable[[], None] = field(repr=False)


def docker_answers() -> bool:
    """Whether a Docker engine answers (testcontainers raises without one)."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def from_environment() -> ServerSet | None:
    amqp, db = (
        os.environ.get("FLASHSALE_TEST_AMQP_URL"),
        os.environ.get("FLASHSALE_TEST_DATABASE_URL"),
    )
    if not (amqp and db):
        return None
    parts = urlsplit(amqp)
    return ServerSet(
        amqp,
        db,
        os.environ.get("FLASHSALE_TEST_MANAGEMENT_URL"),
        (parts.username or "guest", parts.password or "guest"),
        "environment",
        stop=lambda: None,
    )


def from_containers() -> ServerSet:
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = RabbitMqContainer(
        "rabbitmq:3.13-management", username="flashsale", password="flashsale"
    )
    rabbit.with_exposed_ports(5672, 15672)
    pg = PostgresContainer(
        "postgres:15",
        username="flashsale",
        password="flashsale",
        dbname="flashsale",
        driver="asyncpg",
    )
    rabbit.start()
    pg.start()
    host = rabbit.get_container_host_ip()

    def stop() -> None:
        rabbit.stop()
        pg.stop()

    return ServerSet(
        f"amqp://flashsale:flashsale@{host}:{rabbit.get_exposed_port(5672)}/",
        pg.get_connection_url(),
        f"http://{host}:{rabbit.get_exposed_port(15672)}/",
        ("flashsale", "flashsale"),
        "testcontainers",
        stop=stop,
    )


def local_servers(name: str = "test") -> tuple[LocalServers, Path]:
    """A fresh local RabbitMQ + PostgreSQL pair on free ports (not started)."""
    home = Path(tempfile.mkdtemp(prefix=f"flashsale-{name}-"))
    os.chmod(home, 0o755)
    servers = LocalServers(
        home,
        amqp_port=free_port(),
        mgmt_port=free_port(),
        pg_port=free_port(),
        prometheus_port=free_port(),
        dist_port=free_port(),
        node_name=f"flashsale-{name}-{os.getpid()}",
    )
    return servers, home


def from_launcher() -> ServerSet:
    servers, home = local_servers()

    def stop() -> None:
        try:
            servers.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)

    try:
        servers.start()
    except BaseException:
        stop()
        raise
    return ServerSet(
        servers.amqp_url,
        servers.database_url,
        servers.management_url,
        ("flashsale", "flashsale"),
        "local",
        stop=stop,
    )


def start() -> ServerSet:
    """The first source that applies, in the order the module docstring gives."""
    env = from_environment()
    if env is not None:
        return env
    if docker_answers():
        return from_containers()
    return from_launcher()
