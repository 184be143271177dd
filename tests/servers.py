"""Real RabbitMQ and PostgreSQL for the tests.

From the environment (`FLASHSALE_TEST_AMQP_URL` and `FLASHSALE_TEST_DATABASE_URL`, with
`FLASHSALE_TEST_MANAGEMENT_URL` for the broker's HTTP API and `FLASHSALE_TEST_APP_DATABASE_URL`
for the processes), from testcontainers when a Docker engine answers, or else from the project's
own launcher on free ports in a temporary folder. The last two have the deployment's roles: the
processes log in as the application's database role and a broker user of their own kind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from shared import roles
from shared.localservers import (
    AMQP_PASSWORD,
    AMQP_PASSWORDS,
    AMQP_USER,
    DB_APP_PASSWORD,
    DB_OPERATOR_PASSWORD,
    DB_OWNER_PASSWORD,
    PG_SUPERUSER,
    PG_SUPERUSER_PASSWORD,
    LocalServers,
    listener_port,
    pg_bin_dir,
)

#: The broker of compose.yaml and deploy/k8s, so that tests with a Docker engine run the deployed
#: version (the README's "RabbitMQ versions" says where the launcher's differs).
RABBITMQ_IMAGE = "rabbitmq:3.13.7-management"


@dataclass
class ServerSet:
    #: The operator's: the tests' own publishes, virtual hosts, the CLI.
    amqp_url: str
    #: The schema owner's: migrations, scratch databases, the tests' own checks (some corrupt).
    database_url: str
    management_url: str | None
    management_auth: tuple[str, str]
    kind: str
    stop: Callable[[], None] = field(repr=False)
    #: The application role's, for the processes; `database_url` when the source has no roles.
    app_database_url: str = ""
    #: Process kind → URL of its own broker user; every process uses `amqp_url` when empty.
    amqp_urls: dict[str, str] = field(default_factory=dict)
    #: The launcher's servers, when they are (their socket folder, ports, data).
    local: LocalServers | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.app_database_url = self.app_database_url or self.database_url


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
        app_database_url=os.environ.get("FLASHSALE_TEST_APP_DATABASE_URL", ""),
    )


def from_containers() -> ServerSet:
    """RabbitMQ and PostgreSQL containers, given the same roles as the launcher's servers."""
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = RabbitMqContainer(RABBITMQ_IMAGE, username=AMQP_USER, password=AMQP_PASSWORD)
    rabbit.with_exposed_ports(5672, 15672)
    pg = PostgresContainer(
        "postgres:15",
        username=PG_SUPERUSER,
        password=PG_SUPERUSER_PASSWORD,
        dbname="postgres",
        driver="asyncpg",
    )
    rabbit.start()

    def stop() -> None:
        rabbit.stop()
        pg.stop()

    try:
        pg.start()
        host = rabbit.get_container_host_ip()
        amqp = f"{host}:{rabbit.get_exposed_port(5672)}"
        management = f"http://{host}:{rabbit.get_exposed_port(15672)}/"
        pg_host, pg_port = pg.get_container_host_ip(), int(pg.get_exposed_port(5432))
        admin = {"host": pg_host, "port": pg_port, "user": PG_SUPERUSER}
        roles.run_sync(
            roles.provision_database(
                {**admin, "password": PG_SUPERUSER_PASSWORD},
                DB_OWNER_PASSWORD,
                DB_APP_PASSWORD,
                DB_OPERATOR_PASSWORD,
                owner_createdb=True,
            )
        )
        roles.provision_broker(management, (AMQP_USER, AMQP_PASSWORD), AMQP_PASSWORDS)
    except BaseException:
        stop()
        raise

    def db(user: str, password: str) -> str:
        return f"postgresql+asyncpg://{user}:{password}@{pg_host}:{pg_port}/{roles.DB_NAME}"

    return ServerSet(
        f"amqp://{AMQP_USER}:{AMQP_PASSWORD}@{amqp}/",
        db(roles.DB_OWNER, DB_OWNER_PASSWORD),
        management,
        (AMQP_USER, AMQP_PASSWORD),
        "testcontainers",
        stop=stop,
        app_database_url=db(roles.DB_APP, DB_APP_PASSWORD),
        amqp_urls={
            kind: f"amqp://{roles.amqp_user(kind)}:{password}@{amqp}/"
            for kind, password in AMQP_PASSWORDS.items()
        },
    )


def local_servers(name: str = "test", cluster: int = 1) -> tuple[LocalServers, Path]:
    """A fresh local RabbitMQ (a cluster of `cluster` nodes) + PostgreSQL pair on free ports
    (not started)."""
    home = Path(tempfile.mkdtemp(prefix=f"flashsale-{name}-"))
    os.chmod(home, 0o755)
    ports: set[int] = set()  # each distinct; none the kernel gives outgoing connections
    servers = LocalServers(
        home,
        amqp_port=listener_port(ports),
        mgmt_port=listener_port(ports),
        pg_port=listener_port(ports),
        prometheus_port=listener_port(ports),
        dist_port=listener_port(ports),
        node_name=f"flashsale-{name}-{os.getpid()}",
        owner_createdb=True,  # the migration tests make scratch databases
        cluster=cluster,
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
        servers.owner_database_url,
        servers.management_url,
        (AMQP_USER, AMQP_PASSWORD),
        "local",
        stop=stop,
        app_database_url=servers.app_database_url,
        amqp_urls=servers.amqp_urls,
        local=servers,
    )


def start() -> ServerSet:
    """The first source that applies, in the order the module docstring gives."""
    env = from_environment()
    if env is not None:
        return env
    if docker_answers():
        return from_containers()
    return from_launcher()


# ---- looking at the servers from outside (the least-privilege tests) -------------------------
#: What /proc/net/tcp{,6} shows for loopback listeners: 127.0.0.1, ::1, ::ffff:127.0.0.1.
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # host order per 32 bits
    return str(ipaddress.IPv6Address(words))


def listening_addresses(port: int) -> set[str]:
    """Addresses that TCP sockets of this machine listen on at `port` (any process)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(_address(address))
    return found


def hba_methods(pg_hba: str) -> list[str]:
    """The authentication method of every rule of a pg_hba.conf."""
    rules = [line.split() for line in pg_hba.splitlines()]
    return [rule[-1] for rule in rules if rule and not rule[0].startswith("#")]


def psql_without_password(
    host: str, port: int, user: str, database: str
) -> subprocess.CompletedProcess[str]:
    """psql as `user`, never asking for (or finding) a password."""
    bin_dir = pg_bin_dir()
    assert bin_dir is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = os.devnull
    argv = [str(bin_dir / "psql"), "-w", "-h", host, "-p", str(port), "-U", user]
    return subprocess.run(
        [*argv, "-d", database, "-tAc", "SELECT 1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


async def drop_database(owner_url: str, name: str | None) -> None:
    """Drop a scratch database (its owner may), even with sessions still open."""
    if not name:
        return
    conn = await asyncpg.connect(**roles.connect_args(owner_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_legacy_cluster(servers: LocalServers) -> None:
    """A PostgreSQL data folder as the launcher made it before the roles (trust on the socket,
    `flashsale`/`flashsale` its superuser), migrated and holding one product; left stopped."""
    bin_dir = pg_bin_dir()
    assert bin_dir is not None
    servers.prepare_home()
    servers.pg_socket_dir.mkdir(parents=True)
    pwfile = servers.pg_dir / "pwfile"
    pwfile.write_text("flashsale\n")
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    as_postgres = as_postgres if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(servers.pg_dir)], check=True)
    data = str(servers.pg_dir / "data")
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", data, "-U", "flashsale"]
        + [f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256"],
        capture_output=True,
        check=True,
    )
    options = f"-p {servers.pg_port} -k {servers.pg_socket_dir} -c listen_addresses=127.0.0.1"
    pg_ctl = [*as_postgres, str(bin_dir / "pg_ctl"), "-D", data]
    subprocess.run(
        [*pg_ctl, "-o", options, "-l", str(servers.pg_log), "-w", "start"],
        capture_output=True,
        check=True,
        start_new_session=True,
    )
    try:
        old = f"postgresql+asyncpg://flashsale:flashsale@127.0.0.1:{servers.pg_port}/flashsale"

        async def prepare() -> None:
            conn = await asyncpg.connect(**{**roles.connect_args(old), "database": "postgres"})
            await conn.execute("CREATE DATABASE flashsale")
            await conn.close()

        roles.run_sync(prepare())
        from shared.db.migrate import upgrade

        upgrade(old)

        async def product() -> None:
            conn = await asyncpg.connect(**roles.connect_args(old))
            await conn.execute(
                "INSERT INTO products (name, price_cents, stock_total, available) "
                "VALUES ('from before', 100, 5, 5)"
            )
            await conn.close()

        roles.run_sync(product())
    finally:
        subprocess.run([*pg_ctl, "stop", "-m", "fast"], capture_output=True, check=False)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
