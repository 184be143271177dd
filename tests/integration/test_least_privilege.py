"""Least privilege on the servers: passwords everywhere, an application role that owns nothing,
a broker user per process kind, and nothing listening beyond loopback."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aio_pika
import aiormq
import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url

from shared import roles
from shared.db.migrate import upgrade
from shared.localservers import LocalServers
from tests import servers as lp
from tests.fault.test_poison_and_operator_cli import flashsale
from tests.harness import new_vhost, with_vhost
from tests.integration.test_database import _scratch_database
from tests.servers import ServerSet, local_servers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local(servers: ServerSet) -> LocalServers:
    """The launcher's servers behind this session (not those from the environment)."""
    if servers.local is None:
        pytest.skip("the servers are not the launcher's")
    return servers.local


@pytest.fixture(scope="module")
def app_url(servers: ServerSet) -> str:
    if servers.app_database_url == servers.database_url:
        pytest.skip("the servers have no application role")
    return servers.app_database_url


@pytest.fixture
async def as_app(app_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(**roles.connect_args(app_url))
    yield conn
    await conn.close()


@pytest.fixture
async def as_owner(servers: ServerSet) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(**roles.connect_args(servers.database_url))
    yield conn
    await conn.close()


# ---- PostgreSQL ------------------------------------------------------------------------------
def test_the_socket_folder_is_the_server_users_alone(local: LocalServers) -> None:
    mode = local.pg_socket_dir.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o700
    if os.geteuid() == 0:
        assert mode.st_uid == lp.uid_of("postgres")
    assert list(local.pg_socket_dir.glob(".s.PGSQL.*")), "the server's socket is there"


def test_no_line_of_pg_hba_trusts_anyone(local: LocalServers) -> None:
    methods = lp.hba_methods(local.pg_hba.read_text())
    assert methods and set(methods) == {"scram-sha-256"}, methods


@pytest.mark.parametrize(
    "user", [roles.DB_APP, roles.DB_OWNER, roles.DB_OPERATOR, "postgres", "flashsale_upgrade"]
)
async def test_a_login_without_password_is_refused_on_the_socket_and_over_tcp(
    local: LocalServers, user: str
) -> None:
    for host in (str(local.pg_socket_dir), "127.0.0.1"):
        result = lp.psql_without_password(host, local.pg_port, user, roles.DB_NAME)
        assert result.returncode != 0, result.stdout
        assert "no password supplied" in result.stderr, result.stderr
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            conn = await asyncpg.connect(
                host=host, port=local.pg_port, user=user, database=roles.DB_NAME, password=""
            )
            await conn.close()


async def test_the_application_role_owns_nothing_and_has_no_cluster_rights(
    as_owner: asyncpg.Connection,
) -> None:
    owners = await as_owner.fetch("SELECT tablename, tableowner FROM pg_tables")
    assert {"products", "holds", "orders"} <= {r["tablename"] for r in owners}
    assert roles.DB_APP not in {r["tableowner"] for r in owners}
    owned = await as_owner.fetchval(
        "SELECT count(*) FROM pg_class WHERE relowner = $1::regrole", roles.DB_APP
    )
    assert owned == 0
    databases = await as_owner.fetch(
        "SELECT datname FROM pg_database WHERE datdba = $1::regrole", roles.DB_APP
    )
    assert databases == []
    public_tables = await as_owner.fetch(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    )
    assert [r["tableowner"] for r in public_tables] == [roles.DB_OWNER]
    for name in (roles.DB_APP, roles.DB_OWNER):
        role = await as_owner.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = $1",
            name,
        )
        assert role is not None and not any(role.values()), (name, dict(role or {}))
    assert not await as_owner.fetchval(
        "SELECT rolcreatedb FROM pg_roles WHERE rolname = $1", roles.DB_APP
    )


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE products",
        "CREATE TABLE lp_intruder (id int)",
        "TRUNCATE holds",
        "ALTER TABLE products ADD COLUMN lp_intruder int",
        "CREATE TEMP TABLE lp_intruder (id int)",
        "CREATE INDEX lp_intruder ON products (name)",
        "DELETE FROM alembic_version",
        "ALTER TABLE products OWNER TO flashsale_app",
    ],
)
async def test_the_application_role_cannot_change_the_schema(
    as_app: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with as_app.transaction():
            await as_app.execute(statement)


async def test_the_application_role_reads_and_writes_rows(as_app: asyncpg.Connection) -> None:
    name = f"lp-{uuid.uuid4().hex[:10]}"
    product_id = await as_app.fetchval(
        "INSERT INTO products (name, price_cents, stock_total, available) "
        "VALUES ($1, 100, 5, 5) RETURNING id",
        name,
    )
    try:
        await as_app.execute("UPDATE products SET available = 4 WHERE id = $1", product_id)
        assert (
            await as_app.fetchval("SELECT available FROM products WHERE id = $1", product_id) == 4
        )
    finally:
        await as_app.execute("DELETE FROM products WHERE id = $1", product_id)
    assert await as_app.fetchval("SELECT count(*) FROM products WHERE id = $1", product_id) == 0


async def test_a_table_a_later_migration_creates_is_the_application_roles_to_use(
    as_owner: asyncpg.Connection, as_app: asyncpg.Connection
) -> None:
    table = f"lp_later_{uuid.uuid4().hex[:8]}"
    await as_owner.execute(
        f"CREATE TABLE {table} (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text)"
    )
    try:
        await as_app.execute(f"INSERT INTO {table} (note) VALUES ('written by the app')")
        assert await as_app.fetchval(f"SELECT note FROM {table}") == "written by the app"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_app.execute(f"DROP TABLE {table}")
    finally:
        await as_owner.execute(f"DROP TABLE IF EXISTS {table}")


async def test_operator_commands_work_with_the_application_role_and_migrations_need_the_owner(
    servers: ServerSet, app_url: str
) -> None:
    owner_url = await _scratch_database(servers)
    name = make_url(owner_url).database
    assert servers.management_url
    vhost = new_vhost(servers.management_url, servers.management_auth, servers.management_auth[0])
    amqp = with_vhost(servers.amqp_url, vhost)
    try:
        await asyncio.to_thread(upgrade, owner_url)
        scratch_app = make_url(app_url).set(database=name).render_as_string(hide_password=False)

        def cli(*args: str) -> Any:
            return flashsale(*args, amqp_url=amqp, database_url=scratch_app)

        added = cli("products", "add", "--name", "lp", "--price-cents", "100", "--stock", "3")
        assert added.returncode == 0, added.stdout + added.stderr
        for args in (
            ["seed"],
            ["audit"],
            ["stats", "--json"],
            ["products", "list"],
            ["dlq", "list"],
        ):
            done = cli(*args)
            assert done.returncode == 0, (args, done.stdout + done.stderr)
        refused = cli("db", "upgrade")
        assert refused.returncode != 0 and "permission denied" in refused.stderr.lower()
    finally:
        httpx.delete(
            f"{servers.management_url.rstrip('/')}/api/vhosts/{vhost}",
            auth=servers.management_auth,
            timeout=10,
        )
        await lp.drop_database(servers.database_url, name)


# ---- RabbitMQ --------------------------------------------------------------------------------
def test_erlang_distribution_and_every_server_port_listen_on_loopback_only(
    local: LocalServers,
) -> None:
    ports = {
        "Erlang distribution": local.dist_port,
        "AMQP": local.amqp_port,
        "management": local.mgmt_port,
        "Prometheus": local.prometheus_port,
        "PostgreSQL": local.pg_port,
    }
    if local.started_epmd:  # epmd is shared by every node on the machine: ours only if we began it
        ports["epmd"] = 4369
    for what, port in ports.items():
        addresses = lp.listening_addresses(port)
        assert addresses, f"nothing listens on {what} port {port}"
        assert addresses <= lp.LOOPBACK, f"{what} port {port} listens on {addresses}"


@pytest.fixture
def broker_urls(servers: ServerSet) -> dict[str, str]:
    if not servers.amqp_urls:
        pytest.skip("the servers have no broker user per process kind")
    return servers.amqp_urls


async def _refused(url: str, act: Callable[[aio_pika.abc.AbstractChannel], Any]) -> str:
    """What the broker says when `act` (on a channel with publisher confirms) is not allowed."""
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as refused:
            await act(channel)
        return str(refused.value)
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("kind", "queue"),
    [
        ("gateway", "inventory.p00"),
        ("gateway", "orders.commands"),
        ("gateway", "payments.webhooks"),
        ("inventory", "orders.commands"),
        ("orders", "payments.webhooks"),
        ("payments", "inventory.p00"),
        ("inventory", "inventory.p00.dead"),
    ],
)
async def test_a_process_user_cannot_consume_another_kinds_queue(
    broker_urls: dict[str, str], kind: str, queue: str
) -> None:
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        raise AssertionError(f"{kind} got a message of {queue}")

    async def consume(channel: aio_pika.abc.AbstractChannel) -> None:
        target = await channel.get_queue(queue, ensure=False)
        await target.consume(ignore)

    assert "ACCESS_REFUSED" in await _refused(broker_urls[kind], consume)


@pytest.mark.parametrize("kind", roles.PROCESS_KINDS)
async def test_a_process_user_cannot_declare_a_queue_of_its_own_choosing(
    broker_urls: dict[str, str], kind: str
) -> None:
    async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
        await channel.declare_queue(f"lp-{uuid.uuid4().hex[:8]}", auto_delete=True)

    assert "ACCESS_REFUSED" in await _refused(broker_urls[kind], declare)


@pytest.mark.parametrize(
    ("kind", "exchange"),
    [
        ("inventory", "flashsale.commands"),
        ("orders", "flashsale.commands"),
        ("gateway", "flashsale.levels"),
        ("gateway", "amq.default"),
        ("payments", "flashsale.dead"),
    ],
)
async def test_a_process_user_cannot_publish_where_its_kind_does_not(
    broker_urls: dict[str, str], kind: str, exchange: str
) -> None:
    async def publish(channel: aio_pika.abc.AbstractChannel) -> None:
        target = (
            channel.default_exchange
            if exchange == "amq.default"
            else await channel.get_exchange(exchange, ensure=False)
        )
        await target.publish(aio_pika.Message(b"{}"), routing_key="orders.commands")

    assert "ACCESS_REFUSED" in await _refused(broker_urls[kind], publish)


@pytest.mark.parametrize("kind", roles.PROCESS_KINDS)
def test_a_process_user_has_no_way_into_the_management_api(
    servers: ServerSet, broker_urls: dict[str, str], kind: str
) -> None:
    assert servers.management_url
    parts = make_url(broker_urls[kind].replace("amqp://", "postgresql://", 1))
    r = httpx.get(
        f"{servers.management_url.rstrip('/')}/api/overview",
        auth=(parts.username or "", parts.password or ""),
        timeout=10,
    )
    assert r.status_code == 401, r.text


# ---- an older data folder --------------------------------------------------------------------
@pytest.fixture
def legacy_folder() -> Iterator[LocalServers]:
    """A PostgreSQL data folder as the launcher made it before roles: trust on the socket and
    `flashsale` (password `flashsale`) the superuser owning the migrated schema."""
    servers, home = local_servers("legacy")
    try:
        lp.make_legacy_cluster(servers)
        yield servers
    finally:
        servers.stop_postgres()
        lp.remove_tree(home)


async def test_a_data_folder_from_before_the_roles_is_upgraded_in_place(
    legacy_folder: LocalServers,
) -> None:
    servers = legacy_folder
    await asyncio.to_thread(servers.start_postgres)
    assert set(lp.hba_methods(servers.pg_hba.read_text())) == {"scram-sha-256"}
    refused = lp.psql_without_password(
        str(servers.pg_socket_dir), servers.pg_port, "postgres", roles.DB_NAME
    )
    assert refused.returncode != 0
    app = await asyncpg.connect(**roles.connect_args(servers.app_database_url))
    try:
        assert await app.fetchval("SELECT name FROM products WHERE name = 'from before'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("DROP TABLE products")
        owners = await app.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert [r["tableowner"] for r in owners] == [roles.DB_OWNER]
        supers = await app.fetch("SELECT rolname FROM pg_roles WHERE rolsuper")
        assert [r["rolname"] for r in supers] == ["postgres"]
    finally:
        await app.close()
    # the old URL is now the operator's, with the application's rights
    operator = await asyncpg.connect(**roles.connect_args(servers.operator_database_url))
    try:
        assert await operator.fetchval("SELECT count(*) FROM products") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await operator.execute("TRUNCATE products")
    finally:
        await operator.close()
    await asyncio.to_thread(servers.stop_postgres)
    await asyncio.to_thread(servers.start_postgres)  # and again: nothing left to upgrade
    owner = await asyncpg.connect(**roles.connect_args(servers.owner_database_url))
    await owner.close()
