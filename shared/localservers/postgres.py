"""The local PostgreSQL cluster: initdb, passwords for every login, start, roles, stop."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from shared import roles
from shared.localservers.credentials import (
    DB_APP_PASSWORD,
    DB_OPERATOR_PASSWORD,
    DB_OWNER_PASSWORD,
    LEGACY_DB_USER,
    PG_SUPERUSER,
    PG_SUPERUSER_PASSWORD,
    PG_USER,
)
from shared.localservers.packages import pg_bin_dir
from shared.localservers.processes import (
    ServerError,
    _as_user,
    _chown,
    _chown_tree,
    log_tail,
    pid_alive,
    port_taken,
)


class PostgreSQLCluster:
    """The PostgreSQL half of `LocalServers`, whose fields these are."""

    home: Path
    pg_port: int
    owner_createdb: bool

    # ---- where things are -------------------------------------------------------------
    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def pg_socket_dir(self) -> Path:
        """Where the Unix socket is: only the server's user may enter (mode 0700)."""
        return self.pg_dir / "run"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    # ---- start and stop ---------------------------------------------------------------
    @property
    def _pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_hba(self) -> Path:
        return self._pg_data / "pg_hba.conf"

    def _pg(self, tool: str) -> str:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise ServerError("PostgreSQL is not installed: apt-get install -y postgresql")
        return str(bin_dir / tool)

    def _init_postgres(self) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.pg_dir / "pwfile"
        pwfile.write_text(PG_SUPERUSER_PASSWORD + "\n")
        pwfile.chmod(0o600)
        _chown_tree(self.pg_dir, PG_USER)
        result = subprocess.run(
            _as_user(
                PG_USER,
                [
                    self._pg("initdb"),
                    "-D",
                    str(self._pg_data),
                    "-U",
                    PG_SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise ServerError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        self._write_pg_hba()

    def _write_pg_hba(self) -> bool:
        """Password (SCRAM) for every connection, socket and loopback; whether it changed."""
        text = (
            "# Written by the launcher (shared/localservers.py); every login needs its password.\n"
            "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
            "local   all       all                 scram-sha-256\n"
            "host    all       all   127.0.0.1/32  scram-sha-256\n"
            "host    all       all   ::1/128       scram-sha-256\n"
        )
        if self.pg_hba.exists() and self.pg_hba.read_text() == text:
            return False
        self.pg_hba.write_text(text)
        _chown(self.pg_hba, PG_USER, 0o600)
        return True

    def _trusting(self) -> bool:
        """Whether pg_hba.conf lets anyone in without a password (an older data folder)."""
        lines = self.pg_hba.read_text().splitlines() if self.pg_hba.exists() else []
        return any("trust" in line.split() for line in lines if not line.lstrip().startswith("#"))

    def postgres_running(self) -> bool:
        pid_file = self._pg_data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        return pid_alive(pid)

    def start_postgres(self, timeout: float = 60.0) -> None:
        """Initialise the cluster on first use, start it, and set up its roles and database."""
        if not (self._pg_data / "PG_VERSION").exists():
            self._init_postgres()
        self.pg_socket_dir.mkdir(parents=True, exist_ok=True)
        for private in (self.pg_dir, self.pg_socket_dir):
            _chown(private, PG_USER, 0o700)
        if not self.postgres_running():
            if port_taken(self.pg_port):
                raise ServerError(f"port {self.pg_port} (PostgreSQL) is taken by another process")
            if not self._trusting():
                self._write_pg_hba()
            options = (
                f"-p {self.pg_port} -k {self.pg_socket_dir} -c listen_addresses=127.0.0.1 "
                "-c unix_socket_permissions=0700 -c max_connections=300"
            )
            result = subprocess.run(
                _as_user(
                    PG_USER,
                    [
                        self._pg("pg_ctl"),
                        "-D",
                        str(self._pg_data),
                        "-o",
                        options,
                        "-l",
                        str(self.pg_log),
                        "-w",
                        "-t",
                        str(int(timeout)),
                        "start",
                    ],
                ),
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            if result.returncode != 0:
                raise ServerError(
                    "PostgreSQL did not start; its log ends with:\n" + log_tail(self.pg_log)
                )
        roles.run_sync(self._provision_postgres())

    def _admin_args(self, user: str = PG_SUPERUSER) -> dict[str, Any]:
        """asyncpg arguments of the superuser over the socket. To rotate its password: ALTER
        ROLE postgres PASSWORD '...' as it, then change PG_SUPERUSER_PASSWORD."""
        return {
            "host": str(self.pg_socket_dir),
            "port": self.pg_port,
            "user": user,
            "password": PG_SUPERUSER_PASSWORD,
        }

    async def _provision_postgres(self) -> None:
        if self._trusting():
            await self._end_trust()
        elif self._write_pg_hba():
            await self._reload_postgres()
        await roles.provision_database(
            self._admin_args(),
            DB_OWNER_PASSWORD,
            DB_APP_PASSWORD,
            DB_OPERATOR_PASSWORD,
            owner_createdb=self.owner_createdb,
        )

    async def _reload_postgres(self) -> None:
        conn = await asyncpg.connect(**self._admin_args(), database="postgres")
        try:
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    async def _end_trust(self) -> None:
        """Upgrade a data folder made when the socket trusted anyone and `flashsale` was the
        superuser: that superuser becomes PG_SUPERUSER with a password, then trust ends."""
        helper = "flashsale_upgrade"  # a session cannot rename its own user
        sock = {"host": str(self.pg_socket_dir), "port": self.pg_port, "database": "postgres"}
        try:
            conn = await asyncpg.connect(**sock, user=LEGACY_DB_USER)
        except asyncpg.InvalidAuthorizationSpecificationError:  # renamed by an earlier attempt
            conn = await asyncpg.connect(**sock, user=PG_SUPERUSER)
        try:
            await conn.execute(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{helper}') "
                f"THEN CREATE ROLE {helper} SUPERUSER LOGIN; END IF; END $$"
            )
        finally:
            await conn.close()
        conn = await asyncpg.connect(**sock, user=helper)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", PG_SUPERUSER):
                await conn.execute(f"ALTER ROLE {LEGACY_DB_USER} RENAME TO {PG_SUPERUSER}")
            verifier = roles.scram_verifier(PG_SUPERUSER_PASSWORD)
            await conn.execute(f"ALTER ROLE {PG_SUPERUSER} SUPERUSER LOGIN PASSWORD '{verifier}'")
            self._write_pg_hba()
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
        conn = await asyncpg.connect(**self._admin_args(), database="postgres")
        try:
            await conn.execute(f"DROP ROLE IF EXISTS {helper}")
        finally:
            await conn.close()

    def stop_postgres(self) -> None:
        """Fast shutdown: open transactions are rolled back, nothing committed is lost."""
        if not self.postgres_running():
            return
        subprocess.run(
            _as_user(PG_USER, [self._pg("pg_ctl"), "-D", str(self._pg_data), "stop", "-m", "fast"]),
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
