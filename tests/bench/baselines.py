"""Start and stop the two baselines: each is 2 uvicorn worker processes (and a redis-server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from shared.localservers import free_port, log_tail, stop_pid
from shared.settings import PROJECT_ROOT
from tests.bench.lock_app import schema_sql
from tests.bench.redis_app import encode

LOCK_SCHEMA = "bench_lock_per_request"
HTTP_WORKERS = 2


@dataclass
class Baseline:
    """A running baseline: where to send holds and how to make a product of it."""

    name: str
    base_url: str
    make_product: Callable[[int], int]


def _wait(ready: Callable[[], bool], what: str, log: Path, popen: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n" + log_tail(log))
        time.sleep(0.1)


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@contextlib.contextmanager
def uvicorn_app(module: str, env: dict[str, str], logs: Path) -> Iterator[str]:
    """`uvicorn module:app --workers 2` on a free port, stopped (with its workers) on exit."""
    port = free_port()
    log = logs / f"{module.rsplit('.', 1)[-1]}-{port}.log"  # a log of its own per start
    argv = [sys.executable, "-m", "uvicorn", f"{module}:app", "--workers", str(HTTP_WORKERS)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    popen = _start(argv, {**os.environ, **env}, log)
    try:
        _wait(
            lambda: (
                log.read_text(errors="replace").count("Application startup complete")
                >= HTTP_WORKERS
            ),
            module,
            log,
            popen,
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_pid(popen.pid, timeout=15, group=True)
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its supervisor
            os.killpg(popen.pid, signal.SIGKILL)


def redis_command(port: int, *args: str | int) -> bytes:
    """One command on a fresh connection; the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(encode(*args))
        return s.recv(65536)


@contextlib.contextmanager
def redis_server(logs: Path) -> Iterator[int]:
    """A redis-server of our own: free port, own data folder, no persistence."""
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    log = logs / "redis.log"
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    popen = _start(argv, dict(os.environ), log)
    try:

        def answers() -> bool:
            with contextlib.suppress(OSError):
                return redis_command(port, "PING") == b"+PONG\r\n"
            return False

        _wait(answers, "redis-server", log, popen)
        yield port
    finally:
        stop_pid(popen.pid, timeout=15)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def redis_lua(logs: Path) -> Iterator[Baseline]:
    """Redis + Lua pre-deduction behind 2 uvicorn workers."""
    with redis_server(logs) as port:
        ids = iter(range(1, 1 << 62))

        def make_product(stock: int) -> int:
            product_id = next(ids)
            redis_command(port, "SET", f"stock:{product_id}", stock)
            page = {"id": product_id, "name": "bench product", "price_cents": 100}
            page |= {"stock_total": stock, "max_per_customer": None}
            page |= {"sale_starts_at": None, "sale_ends_at": None}
            redis_command(port, "SET", f"page:{product_id}", json.dumps(page))
            return product_id

        env = {"BENCH_REDIS_PORT": str(port)}
        with uvicorn_app("tests.bench.redis_app", env, logs) as url:
            yield Baseline("redis + lua", url, make_product)


async def _sql(dsn: str, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args) if args else await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def lock_per_request(database_url: str, logs: Path) -> Iterator[Baseline]:
    """Lock per request behind 2 uvicorn workers, tables of its own on the project's server."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    asyncio.run(_sql(dsn, schema_sql(LOCK_SCHEMA)))

    def make_product(stock: int) -> int:
        insert = (
            f"INSERT INTO {LOCK_SCHEMA}.products (stock_total, available) "
            "VALUES ($1, $1) RETURNING id"
        )
        return int(asyncio.run(_sql(dsn, insert, stock)))

    try:
        env = {"BENCH_DSN": dsn, "BENCH_SCHEMA": LOCK_SCHEMA}
        with uvicorn_app("tests.bench.lock_app", env, logs) as url:
            yield Baseline("lock per request", url, make_product)
    finally:
        asyncio.run(_sql(dsn, f"DROP SCHEMA IF EXISTS {LOCK_SCHEMA} CASCADE"))


@contextlib.contextmanager
def http_ceiling(logs: Path) -> Iterator[Baseline]:
    """A constant answer to every request behind 2 uvicorn workers: what HTTP alone costs."""
    with uvicorn_app("tests.bench.ceiling_app", {}, logs) as url:
        yield Baseline("http ceiling", url, lambda stock: 1)
