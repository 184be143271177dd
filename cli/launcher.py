"""`flashsale up` / `flashsale down`: the whole system on one machine, no Docker engine needed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time

import httpx

from cli.exits import Unreachable, masked
from cli.supervisor import Supervisor
from cli.system import LaunchOptions, processes
from shared import roles
from shared.db.migrate import upgrade
from shared.db.session import make_engine
from shared.demo import seed
from shared.localservers import (
    AMQP_PASSWORD,
    AMQP_USER,
    DB_OWNER_PASSWORD,
    LocalServers,
    ServerError,
    ensure_packages,
    pid_alive,
    port_taken,
    stop_pid,
)
from shared.settings import Settings


def _say(line: str) -> None:
    print(line, flush=True)


def _declare_topology(servers: LocalServers) -> None:
    """Every exchange and queue, as the operator: the processes' users may not create them."""
    from aio_pika.exceptions import AMQPConnectionError

    settings = Settings(amqp_url=servers.amqp_url)  # the children's environment, too
    try:
        roles.run_sync(
            roles.declare_topology(
                servers.amqp_url,
                settings.partitions,
                settings.hold_ttl_seconds,
                settings.payment_window_seconds,
            )
        )
    except (OSError, asyncio.IncompleteReadError, AMQPConnectionError) as exc:
        # the broker this launcher started, not FLASHSALE_AMQP_URL's
        raise Unreachable("broker", masked(servers.amqp_url), str(exc) or repr(exc)) from exc


def _write_state(opts: LaunchOptions, servers: LocalServers, sup: Supervisor) -> None:
    state = {
        "supervisor_pid": os.getpid(),
        "children": sup.pids(),
        "rabbitmq_pid": servers.rabbit_pid(),
        "rabbitmq_nodes": {n.node: n.rabbit_pid() for n in servers.nodes},
        "started_epmd": servers.started_epmd,
        "ports": {
            "amqp": opts.amqp_port,
            "management": opts.mgmt_port,
            "postgres": opts.pg_port,
            "http": opts.http_port,
        },
    }
    opts.state_file.write_text(json.dumps(state, indent=2))


def _wait_http(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        time.sleep(0.3)
    return False


def _banner(opts: LaunchOptions, servers: LocalServers, sup: Supervisor) -> None:
    api = f"http://127.0.0.1:{opts.http_port}"
    _say("")
    _say("Flash-sale checkout is up.")
    _say(f"  API docs (OpenAPI)  {api}/docs")
    _say(f"  Products            {api}/api/products")
    _say(
        f"  RabbitMQ UI         {servers.management_url}  (user {AMQP_USER}, "
        f"password {AMQP_PASSWORD})"
    )
    _say(f"  RabbitMQ metrics    http://127.0.0.1:{servers.prometheus_port}/metrics")
    _say(f"  AMQP (operator)     {servers.amqp_url}")
    if servers.peers:  # every node of the cluster, the first one too
        width = max(len(n.node) for n in servers.nodes)
        for node in servers.nodes:
            _say(
                f"  node {node.node:<{width}}  UI {node.management_url}  AMQP port "
                f"{node.amqp_port}  metrics http://127.0.0.1:{node.prometheus_port}/metrics"
            )
        running = ", ".join(sorted(servers.running_nodes()))
        _say(f"  RabbitMQ cluster    {len(servers.nodes)} nodes, running: {running}")
    _say(f"  PostgreSQL          {servers.operator_database_url}")
    owner = servers.owner_database_url.replace(f":{DB_OWNER_PASSWORD}@", ":***@")
    _say(f"  Migrations (owner)  {owner}  (password in shared/localservers/credentials.py)")
    _say(f"  Logs                {opts.home / 'logs'}")
    _say("  Processes           " + ", ".join(f"{k} {v}" for k, v in sup.pids().items()))
    _say("Stop with Ctrl-C here, or `flashsale down` from another terminal.")


def up(opts: LaunchOptions) -> int:
    """Start servers, migrate, seed, start the processes, and supervise until told to stop."""
    if (pid := running_supervisor(opts)) is not None:
        _say(f"already running (supervisor pid {pid}); stop it with `flashsale down`")
        return 1
    if port_taken(opts.http_port):
        _say(
            f"port {opts.http_port} (gateway) is taken by another process; "
            "choose another with --http-port"
        )
        return 1
    ensure_packages()
    servers = opts.servers()
    nodes = "" if not servers.peers else f", a cluster of {len(servers.nodes)} nodes"
    _say(
        f"starting RabbitMQ (port {opts.amqp_port}{nodes}) and PostgreSQL (port "
        f"{opts.pg_port}) with data in {opts.home} ..."
    )
    sup: Supervisor | None = None
    stop_requested = False

    def _on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        if sup is not None:
            sup.stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        servers.start()
        _say("migrating the database ...")
        upgrade(servers.owner_database_url)
        _declare_topology(servers)
        if opts.seed:
            added = asyncio.run(_seed(servers))
            _say(f"seeded {added} demo product(s)" if added else "demo products already present")
        sup = Supervisor(processes(opts, servers))
        if stop_requested:
            return 0
        sup.start_all()
        _write_state(opts, servers, sup)
        if not _wait_http(f"http://127.0.0.1:{opts.http_port}/readyz"):
            _say(f"the gateway did not become ready; see {opts.home / 'logs' / 'gateway.log'}")
            return 1
        _banner(opts, servers, sup)
        sup.watch(on_change=lambda: _write_state(opts, servers, sup))
        return 0
    except ServerError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        _say("stopping ...")
        if sup is not None:
            sup.stop_all()
        servers.stop()
        with contextlib.suppress(OSError):
            opts.state_file.unlink()
        _say("stopped: no process of the system is left running.")


async def _seed(servers: LocalServers) -> int:
    engine = make_engine(Settings(database_url=servers.app_database_url), pool_size=1)
    try:
        return await seed(engine)
    finally:
        await engine.dispose()


def running_supervisor(opts: LaunchOptions) -> int | None:
    """Pid of a live `flashsale up` for this data folder, if any."""
    try:
        pid = int(json.loads(opts.state_file.read_text())["supervisor_pid"])
    except (OSError, ValueError, KeyError):
        return None
    return pid if pid_alive(pid) else None


def down(opts: LaunchOptions, timeout: float = 90.0) -> int:
    """Ask the running supervisor to stop everything; clean up by pid if it is gone."""
    pid = running_supervisor(opts)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                _say("stopped.")
                return 0
            time.sleep(0.2)
        _say(f"the supervisor (pid {pid}) did not stop in {timeout:.0f} s; killing what is left")
    # No supervisor (killed outright?): stop what the state file and the data folder name.
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(opts.state_file.read_text())
        for child_pid in state.get("children", {}).values():
            stop_pid(int(child_pid), timeout=10)
        if pid is not None:
            stop_pid(pid, timeout=5)
    servers = opts.servers()
    with contextlib.suppress(OSError, ValueError):
        servers.started_epmd = bool(json.loads(opts.state_file.read_text()).get("started_epmd"))
    servers.stop()
    with contextlib.suppress(OSError):
        opts.state_file.unlink()
    _say("stopped.")
    return 0
