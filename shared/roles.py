"""Who may do what: the database roles and the broker users, one place for every deployment.

Database (PostgreSQL):

* ``flashsale_owner`` owns the database and every table; migrations run as it;
* ``flashsale_app`` is what the gateway and the workers log in as: it owns nothing and may only
  read and write rows (no DDL, no TRUNCATE), also on tables later migrations create;
* ``flashsale`` (optional) is a person at the command line: exactly the application's rights.

Broker (RabbitMQ): one user per process kind, ``flashsale-<kind>``, whose configure / write /
read permissions name only the exchanges and queues that kind declares, binds, publishes to and
consumes from; the operator (CLI, management UI) may do everything.

The topology is created by the operator before the processes start (`declare_topology`): a
queue with a dead-letter exchange may only be *created* by a user who may read it and write to
its dead-letter exchange, which would let the gateway consume a partition.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import asyncpg  # type: ignore[import-untyped]
import httpx
from faststream.rabbit import RabbitExchange

from shared import topology

T = TypeVar("T")

DB_NAME = "flashsale"
DB_OWNER = "flashsale_owner"
DB_APP = "flashsale_app"
DB_OPERATOR = "flashsale"

AMQP_OPERATOR = "flashsale"
PROCESS_KINDS = ("gateway", "inventory", "orders", "payments")


def amqp_user(kind: str) -> str:
    """The broker user of one process kind, e.g. ``flashsale-gateway``."""
    return f"flashsale-{kind}"


# ---- broker permissions --------------------------------------------------------------------
@dataclass(frozen=True)
class Permissions:
    """RabbitMQ's three regular expressions, matched against exchange and queue names alike."""

    configure: str
    write: str
    read: str


def _any_number(name: str) -> str:
    """A regex of `name` with any number where it has digits (partition, TTL)."""
    return re.sub(r"\d+", r"\\d+", re.escape(name))


def _alternatives(*patterns: str) -> str:
    return "^(" + "|".join(patterns) + ")$"


_PARTITIONS = _any_number(topology.partition_key(0))
_ORDERS = re.escape(topology.ORDERS_QUEUE_NAME)
_PAYMENTS = re.escape(topology.PAYMENTS_QUEUE_NAME)
# The delay exchanges and their queues share a name: binding one means reading the other.
_DELAYS = "|".join(_any_number(d(1)[0].name) for d in (topology.hold_delay, topology.order_delay))
_DEAD_QUEUES = f"({_PARTITIONS}|{_ORDERS}|{_PAYMENTS})\\.dead"
_EXCHANGES = "|".join(
    sorted(re.escape(v.name) for v in vars(topology).values() if isinstance(v, RabbitExchange))
)
#: Workers answer requests through the default exchange, to the requester's reply queue.
_DEFAULT_EXCHANGE = re.escape("amq.default")
_INVENTORY = re.escape(topology.INVENTORY_EXCHANGE.name)
_COMMANDS = re.escape(topology.COMMANDS_EXCHANGE.name)
_LEVELS = re.escape(topology.LEVELS_EXCHANGE.name)

# Every process declares (configure), binds (write on the queue, read on the exchange) the whole
# topology at start-up (shared.bus.declare_topology), whatever it uses of it.
_DECLARED = [_EXCHANGES, _PARTITIONS, _ORDERS, _PAYMENTS, _DEAD_QUEUES, _DELAYS]
_BOUND_QUEUES = [_PARTITIONS, _ORDERS, _PAYMENTS, _DEAD_QUEUES, _DELAYS]
_BOUND_EXCHANGES = [_EXCHANGES, _DELAYS]

_PUBLISHES = {
    "gateway": [_INVENTORY, _COMMANDS],
    "inventory": [_INVENTORY, _LEVELS, _DEFAULT_EXCHANGE],  # hold delays: among the bound names
    "orders": [_INVENTORY, _DEFAULT_EXCHANGE],
    "payments": [_INVENTORY, _DEFAULT_EXCHANGE],
}
_CONSUMES: dict[str, list[str]] = {
    "gateway": [],  # only its own queues: replies, stock levels
    "inventory": [_PARTITIONS],
    "orders": [_ORDERS],
    "payments": [_PAYMENTS],
}


def _own_queues(kind: str) -> str:
    """The exclusive queues a process of `kind` names after itself (replies, stock levels)."""
    prefixes = {
        make(kind).split(".")[0] for make in (topology.reply_queue_name, topology.levels_queue_name)
    }
    return f"({'|'.join(sorted(prefixes))})" + re.escape(f".{kind}.") + ".+"


def broker_permissions(kind: str) -> Permissions:
    """What the broker user of `kind` may configure, write and read (in any virtual host)."""
    own = _own_queues(kind)
    return Permissions(
        configure=_alternatives(*_DECLARED, own),
        write=_alternatives(*_BOUND_QUEUES, own, *_PUBLISHES[kind]),
        read=_alternatives(*_BOUND_EXCHANGES, *_CONSUMES[kind], own),
    )


OPERATOR_PERMISSIONS = Permissions(".*", ".*", ".*")


def provision_broker(
    management_url: str, auth: tuple[str, str], passwords: Mapping[str, str], vhost: str = "/"
) -> None:
    """Create (or update the password of) each kind's user and set its permissions on `vhost`."""
    api = management_url.rstrip("/") + "/api"
    with httpx.Client(auth=auth, timeout=10) as http:
        for kind, password in passwords.items():
            user = quote(amqp_user(kind), safe="")
            body = {"password": password, "tags": ""}
            http.put(f"{api}/users/{user}", json=body).raise_for_status()
        grant_vhost(management_url, auth, vhost, list(passwords), http)


def grant_vhost(
    management_url: str,
    auth: tuple[str, str],
    vhost: str,
    kinds: list[str],
    http: httpx.Client | None = None,
) -> None:
    """Give each kind's user its permissions on `vhost` (e.g. an isolated test vhost)."""
    api = management_url.rstrip("/") + "/api"
    own = http is None
    client = http or httpx.Client(auth=auth, timeout=10)
    try:
        for kind in kinds:
            user = quote(amqp_user(kind), safe="")
            client.put(
                f"{api}/permissions/{quote(vhost, safe='')}/{user}",
                json=asdict(broker_permissions(kind)),
            ).raise_for_status()
    finally:
        if own:
            client.close()


async def declare_topology(amqp_url: str, partitions: int, hold_ttl: int, window: int) -> None:
    """Declare every exchange and queue as the operator, before the processes start."""
    import aio_pika

    from shared.bus import declare_topology as declare
    from shared.settings import Settings

    settings = Settings(
        amqp_url=amqp_url,
        partitions=partitions,
        hold_ttl_seconds=hold_ttl,
        payment_window_seconds=window,
    )
    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        await declare(await connection.channel(), settings)


# ---- database roles ------------------------------------------------------------------------
def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of `password`: the server never sees the password."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    stored = b64(hashlib.sha256(client_key).digest()).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${stored}:{b64(server_key).decode()}"


_LIMITS = "NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def _ensure_role(name: str, attributes: str, password: str) -> list[str]:
    return [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') "
        f"THEN CREATE ROLE {name}; END IF; END $$",
        f"ALTER ROLE {name} LOGIN {_LIMITS} {attributes} PASSWORD '{scram_verifier(password)}'",
    ]


#: Rights of the application role on what exists now; run again after every migration.
APP_GRANTS = f"""
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_APP}') THEN
    GRANT USAGE ON SCHEMA public TO {DB_APP};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {DB_APP};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {DB_APP};
    IF to_regclass('public.alembic_version') IS NOT NULL THEN
      REVOKE ALL ON public.alembic_version FROM {DB_APP};
    END IF;
  END IF;
END $$
"""

# Objects made before the owner role existed (by the superuser) move to the owner. A sequence
# that belongs to a table column moves with its table.
_ADOPT = f"""
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
             AND c.relowner <> '{DB_OWNER}'::regrole
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER %s public.%I OWNER TO {DB_OWNER}',
                   CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                  WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                   r.relname);
  END LOOP;
END $$
"""


def server_statements(
    owner_password: str,
    app_password: str,
    operator_password: str | None = None,
    owner_createdb: bool = False,
) -> list[str]:
    """Roles, cluster-wide (run in any database as a superuser)."""
    createdb = "CREATEDB" if owner_createdb else "NOCREATEDB"
    sql = [
        *_ensure_role(DB_OWNER, f"INHERIT {createdb}", owner_password),
        *_ensure_role(DB_APP, "NOINHERIT NOCREATEDB", app_password),
    ]
    if operator_password is not None:
        sql += _ensure_role(DB_OPERATOR, "INHERIT NOCREATEDB", operator_password)
        sql.append(f"GRANT {DB_APP} TO {DB_OPERATOR}")
    # the maintenance databases are no business of the application's roles
    sql += [f"REVOKE CONNECT ON DATABASE {db} FROM PUBLIC" for db in ("postgres", "template1")]
    return sql


def database_statements(database: str = DB_NAME) -> list[str]:
    """Ownership and grants inside the application's database (as a superuser, in it)."""
    return [
        f"ALTER DATABASE {database} OWNER TO {DB_OWNER}",
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {database} TO {DB_APP}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        _ADOPT,
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {DB_OWNER} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {DB_APP}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {DB_OWNER} IN SCHEMA public "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {DB_APP}",
        APP_GRANTS,
    ]


async def provision_database(
    admin: Mapping[str, Any],
    owner_password: str,
    app_password: str,
    operator_password: str | None = None,
    owner_createdb: bool = False,
    database: str = DB_NAME,
) -> None:
    """Roles, the database and its grants; idempotent. `admin`: asyncpg.connect() arguments of
    a superuser (any database but `database`), e.g. host, port, user, password."""
    conn = await asyncpg.connect(**{**admin, "database": admin.get("database", "postgres")})
    try:
        for stmt in server_statements(
            owner_password, app_password, operator_password, owner_createdb
        ):
            await conn.execute(stmt)
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f"CREATE DATABASE {database} OWNER {DB_OWNER}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(**{**admin, "database": database})
    try:
        for stmt in database_statements(database):
            await conn.execute(stmt)
    finally:
        await conn.close()


def connect_args(database_url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments of a SQLAlchemy URL (postgresql+asyncpg://...)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    host = url.host or url.query.get("host")
    return {
        "user": url.username,
        "password": url.password,
        "host": host,
        "port": url.port,
        "database": url.database,
    }


async def grant_app(database_url: str) -> None:
    """Re-grant the application role's rights on every table (after migrating)."""
    conn = await asyncpg.connect(**connect_args(database_url))
    try:
        await conn.execute(APP_GRANTS)
    finally:
        await conn.close()


def run_sync(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from synchronous code, even under a running event loop."""

    async def wrapped() -> T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapped())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrapped()).result()


def _wait_for_management(management_url: str, auth: tuple[str, str], timeout: float = 90) -> None:
    """The broker's HTTP API can come up a little after the node answers its health check."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"{management_url.rstrip('/')}/api/overview", auth=auth, timeout=5)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker's management API at {management_url} did not answer")
        time.sleep(1)


def main() -> None:
    """`python -m shared.roles`: a deployment's database roles, broker users and topology, from
    its environment (compose's `provision` service; idempotent, run it at every start).

    FLASHSALE_PROVISION_DATABASE_URL   a superuser's URL (any database but the application's)
    FLASHSALE_PROVISION_MANAGEMENT_URL the broker's HTTP API (as the operator of FLASHSALE_AMQP_URL)
    FLASHSALE_DB_OWNER_PASSWORD, FLASHSALE_DB_APP_PASSWORD, FLASHSALE_AMQP_<KIND>_PASSWORD
    and the processes' FLASHSALE_* settings (partitions, hold TTL, payment window).
    """
    import logging
    from urllib.parse import unquote, urlsplit

    from shared.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = logging.getLogger("provision")
    env = os.environ
    settings = Settings()
    run_sync(
        provision_database(
            connect_args(env["FLASHSALE_PROVISION_DATABASE_URL"]),
            env["FLASHSALE_DB_OWNER_PASSWORD"],
            env["FLASHSALE_DB_APP_PASSWORD"],
        )
    )
    log.info("database roles %s and %s, database %s: ready", DB_OWNER, DB_APP, DB_NAME)
    operator = urlsplit(settings.amqp_url)
    auth = (unquote(operator.username or ""), unquote(operator.password or ""))
    management = env["FLASHSALE_PROVISION_MANAGEMENT_URL"]
    passwords = {kind: env[f"FLASHSALE_AMQP_{kind.upper()}_PASSWORD"] for kind in PROCESS_KINDS}
    _wait_for_management(management, auth)
    provision_broker(management, auth, passwords)
    log.info("broker users %s: ready", ", ".join(amqp_user(kind) for kind in passwords))
    run_sync(
        declare_topology(
            settings.amqp_url,
            settings.partitions,
            settings.hold_ttl_seconds,
            settings.payment_window_seconds,
        )
    )
    log.info("topology declared (%d partitions)", settings.partitions)


if __name__ == "__main__":
    main()
