"""Real gateway and worker processes for end-to-end and fault tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared import roles
from shared.localservers import free_port, log_tail, stop_pid
from shared.settings import PROJECT_ROOT, Settings

ADMIN_TOKEN = "test-admin-token"
WEBHOOK_SECRETS = ["test-webhook-secret-new", "test-webhook-secret-old"]

MODULES = {
    "gateway": "gateway.main",
    "inventory": "workers.inventory.main",
    "orders": "workers.orders.main",
    "payments": "workers.payments.main",
}


@dataclass
class Proc:
    name: str
    module: str
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def metrics_url(self) -> str:
        """Where this process serves Prometheus metrics."""
        if self.name.startswith("gateway"):
            return f"http://127.0.0.1:{self.env['FLASHSALE_HTTP_PORT']}/metrics"
        return f"http://127.0.0.1:{self.env['FLASHSALE_METRICS_PORT']}/metrics"

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines this process wrote so far."""
        lines = []
        for raw in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        return lines

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            stop_pid(self.popen.pid, timeout=15)
            with contextlib.suppress(Exception):
                self.popen.wait(timeout=5)


@dataclass
class System:
    """A gateway plus workers, as separate OS processes, on the given broker and database.

    Every process uses `amqp_url` unless `amqp_urls` names a URL (its own broker user) for its
    kind; then `amqp_url` is the operator's, which declares the topology first.
    """

    amqp_url: str
    database_url: str
    overrides: dict[str, str] = field(default_factory=dict)
    workers: dict[str, int] = field(
        default_factory=lambda: {"inventory": 2, "orders": 1, "payments": 1}
    )
    with_gateway: bool = True
    #: gateway processes sharing the HTTP port, as `flashsale up` runs them
    gateways: int = 1
    procs: dict[str, Proc] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flashsale-logs-")))
    http_port: int = field(default_factory=free_port)
    started: int = 0
    amqp_urls: dict[str, str] = field(default_factory=dict)
    #: On a broker cluster: kind → every node's URL for its user. Processes start on the nodes
    #: in turn (the n-th started on node n mod nodes) and get the others as failover URLs.
    cluster_urls: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def on(cls, servers: Any, **kw: Any) -> System:
        """A system whose processes use the servers' least-privilege roles, where they have
        them: the application's database role and a broker user per kind."""
        return cls(servers.amqp_url, servers.app_database_url, amqp_urls=servers.amqp_urls, **kw)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self, kind: str | None = None) -> dict[str, str]:
        broker: dict[str, str] = {}
        nodes = self.cluster_urls.get(kind or "", [])
        if nodes:
            first = (self.started - 1) % len(nodes)
            ordered = nodes[first:] + nodes[:first]
            broker = {
                "FLASHSALE_AMQP_URL": ordered[0],
                "FLASHSALE_AMQP_FAILOVER_URLS": ",".join(ordered[1:]),
            }
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")},
            "FLASHSALE_ENV": "test",
            "FLASHSALE_AMQP_URL": self.amqp_urls.get(kind or "", self.amqp_url),
            "FLASHSALE_DATABASE_URL": self.database_url,
            "FLASHSALE_HTTP_PORT": str(self.http_port),
            "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLASHSALE_WEBHOOK_SECRETS": ",".join(WEBHOOK_SECRETS),
            "FLASHSALE_HOLD_TTL_SECONDS": "5",
            "FLASHSALE_PAYMENT_WINDOW_SECONDS": "6",
            "FLASHSALE_SWEEP_INTERVAL_SECONDS": "1",
            "FLASHSALE_SWEEP_GRACE_SECONDS": "3",
            "FLASHSALE_DB_POOL_SIZE": "10",
            "FLASHSALE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **broker,
            **self.overrides,
        }

    def add(self, kind: str) -> Proc:
        """Start one more process of `kind` (e.g. a standby inventory worker)."""
        self.started += 1  # never reuse a name: a replaced entry would never be stopped
        name = f"{kind}-{self.started}"
        env = self.env(kind)
        if kind != "gateway":
            env["FLASHSALE_METRICS_PORT"] = str(free_port())
        proc = Proc(name, MODULES[kind], env, self.logs / f"{name}.log")
        proc.start()
        self.procs[name] = proc
        return proc

    def add_gateway(self) -> str:
        """One more gateway process, on a port of its own; its base URL."""
        self.started += 1
        name = f"gateway-{self.started}"
        port = free_port()
        env = {**self.env("gateway"), "FLASHSALE_HTTP_PORT": str(port)}
        proc = Proc(name, MODULES["gateway"], env, self.logs / f"{name}.log")
        proc.start()
        self.procs[name] = proc
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    return base_url
            self._check_alive()
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready:\n" + self.tail(name))

    def declare_topology(self) -> None:
        """As the operator, for the processes' settings: their own users may not create it."""
        env = self.env()

        def number(name: str) -> int:
            return int(env.get(f"FLASHSALE_{name.upper()}", Settings.model_fields[name].default))

        roles.run_sync(
            roles.declare_topology(
                self.amqp_url,
                number("partitions"),
                number("hold_ttl_seconds"),
                number("payment_window_seconds"),
            )
        )

    def start(self) -> System:
        try:
            if self.amqp_urls:
                self.declare_topology()
            for kind, count in self.workers.items():
                for _ in range(count):
                    self.add(kind)
            if self.with_gateway:
                for _ in range(self.gateways):  # on one port (SO_REUSEPORT)
                    self.add("gateway")
                self.wait_ready()
            self.wait_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            self._check_alive()
            time.sleep(0.2)
        gateway = next(n for n in self.procs if n.startswith("gateway"))
        raise RuntimeError("gateway not ready:\n" + self.tail(gateway))

    def wait_workers(self, timeout: float = 60) -> None:
        """Until every worker logged that it consumes."""
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            if name.startswith("gateway"):
                continue
            while "worker started" not in proc.log.read_text(errors="replace"):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n" + self.tail(name))
                time.sleep(0.1)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if (
                proc.popen is not None
                and proc.popen.poll() is not None
                and not getattr(proc, "killed", False)
            ):
                raise RuntimeError(f"{name} exited:\n" + self.tail(name))

    def tail(self, name: str, lines: int = 40) -> str:
        return log_tail(self.procs[name].log, lines)

    def log_text(self, prefix: str) -> str:
        return "\n".join(
            p.log.read_text(errors="replace") for n, p in self.procs.items() if n.startswith(prefix)
        )

    def kill9(self, name: str) -> None:
        """SIGKILL one process, as a crash would; the harness no longer expects it alive."""
        proc = self.procs.pop(name)
        os.kill(proc.pid, 9)
        assert proc.popen is not None
        proc.popen.wait(timeout=10)

    def stop(self) -> None:
        for name in sorted(self.procs, key=lambda n: not n.startswith("gateway")):
            self.procs[name].stop()
        if not os.environ.get("FLASHSALE_TEST_KEEP_LOGS"):
            shutil.rmtree(self.logs, ignore_errors=True)


def new_vhost(
    management_url: str, auth: tuple[str, str], user: str, kinds: list[str] | None = None
) -> str:
    """A fresh virtual host (isolated queues) that `user` may use, and each of `kinds`' broker
    users with its own permissions."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    api = management_url.rstrip("/") + "/api"
    httpx.put(f"{api}/vhosts/{name}", auth=auth, timeout=10).raise_for_status()
    httpx.put(
        f"{api}/permissions/{name}/{user}",
        auth=auth,
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    roles.grant_vhost(management_url, auth, name, kinds or [])
    return name


def with_vhost(amqp_url: str, vhost: str) -> str:
    return amqp_url.rstrip("/") + "/" + vhost


@contextlib.contextmanager
def isolated_system(
    servers: Any, workers: dict[str, int], overrides: dict[str, str] | None = None
) -> Iterator[tuple[System, str, str]]:
    """A system on a virtual host of its own (its own queues), stopped even when tests fail.

    Yields the system, the virtual host and its AMQP URL. The sweep is off unless overridden,
    so this system does not act on the other tests' holds in the shared database.
    """
    assert servers.management_url, "needs the broker's management API"
    kinds = list(servers.amqp_urls)
    auth = servers.management_auth
    vhost = new_vhost(servers.management_url, auth, auth[0], kinds)
    amqp = with_vhost(servers.amqp_url, vhost)
    system = System(
        amqp,
        servers.app_database_url,
        workers=workers,
        overrides={"FLASHSALE_SWEEP_INTERVAL_SECONDS": "3600", **(overrides or {})},
        amqp_urls={kind: with_vhost(url, vhost) for kind, url in servers.amqp_urls.items()},
    )
    try:
        yield system.start(), vhost, amqp
    finally:
        system.stop()


async def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await asyncio.sleep(interval)
