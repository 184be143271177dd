"""The database's roles: the owner, the application's role and the operator's, with their
grants, made by a superuser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from shared.roles.common import DB_APP, DB_NAME, DB_OPERATOR, DB_OWNER


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
