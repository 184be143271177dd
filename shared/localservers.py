"""RabbitMQ and PostgreSQL as local processes, from Debian's packages, in a folder of our own.

Used by `flashsale up` (the development system) and by the test fixtures (their own folder and
ports). Nothing here needs a Docker engine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from shared import roles

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
RABBITMQ_QUEUES = "/usr/lib/rabbitmq/bin/rabbitmq-queues"
RABBIT_USER = "rabbitmq"
PG_USER = "postgres"  # the operating-system user the cluster runs as
PG_SUPERUSER = "postgres"  # its database superuser: the launcher's, never the application's
#: The superuser of data folders made before the roles existed (renamed to PG_SUPERUSER).
LEGACY_DB_USER = "flashsale"

# Development passwords of the local servers, one per role, kept here and nowhere else (the
# defaults of FLASHSALE_AMQP_URL and FLASHSALE_DATABASE_URL name the operator's). `flashsale up`
# sets them again at every start: change one here to rotate it (PG_SUPERUSER_PASSWORD: see
# _admin_args). A deployment gets its own from its secret store (compose: .env).
PG_SUPERUSER_PASSWORD = "dev-postgres-superuser"
DB_OWNER_PASSWORD = "dev-flashsale-owner"
DB_APP_PASSWORD = "dev-flashsale-app"
DB_OPERATOR_PASSWORD = "flashsale"
AMQP_USER = roles.AMQP_OPERATOR
AMQP_PASSWORD = "flashsale"
AMQP_PASSWORDS = {kind: f"dev-{kind}-amqp" for kind in roles.PROCESS_KINDS}


class ServerError(RuntimeError):
    """A local server could not be installed, started or reached; the message says why."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def pg_bin_dir() -> Path | None:
    """Directory of the newest installed PostgreSQL server binaries."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return versions[0].parent if versions else None


def missing_packages() -> list[str]:
    """Debian packages the local servers need that are not installed."""
    missing = []
    if not Path(RABBIT_SERVER).exists():
        missing.append("rabbitmq-server")
    if pg_bin_dir() is None:
        missing.append("postgresql")
    return missing


def ensure_packages() -> None:
    """Install missing Debian packages when root; otherwise say exactly what to install."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServerError(
            "missing Debian packages: "
            + " ".join(missing)
            + f"\ninstall them with: sudo apt-get install -y {' '.join(missing)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def _as_user(user: str, argv: list[str]) -> list[str]:
    """Run argv as `user` (servers refuse root), exec'ing in place so the pid stays the server's."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]


def _chown(path: Path, user: str, mode: int) -> None:
    """One file or folder, to the server's user (when root) and `mode`."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, mode)


def _chown_tree(path: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), entry.pw_uid, entry.pw_gid)


def pid_alive(pid: int) -> bool:
    """Whether the process runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = 20.0, group: bool = False) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL (its whole process group with `group`, for a
    wrapper script that leads its group): the process is gone when this returns."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)


def _outgoing_ports() -> range:
    """The ports the kernel picks for outgoing connections (and for `free_port`)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(n) for n in text.split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def listener_port(taken: set[int] | None = None) -> int:
    """A free port for a server to listen on, outside the ports the kernel gives outgoing
    connections where the machine leaves room for that: a server that stops and starts its
    listeners (a broker node joining a cluster, `stop_app` / `start_app`, a restart) finds its
    port still free on a busy machine, where a client's connection may take any of those.
    Never one of `taken`; the port is added to it."""
    outgoing = _outgoing_ports()
    if outgoing.start - 10000 >= 1000:
        spare = range(10000, outgoing.start)
    elif 65536 - outgoing.stop >= 1000:
        spare = range(outgoing.stop, 65536)
    else:
        spare = range(1024, 65536)
    taken = set() if taken is None else taken
    while True:
        port = random.choice(spare)
        if port in taken:
            continue
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            taken.add(port)
            return port


def _derived_port(port: int) -> int:
    """A port next to a configured one (RabbitMQ's convention), or any free one."""
    return port if port <= 65535 and not port_taken(port) else free_port()


def _epmd_running() -> bool:
    return port_taken(4369)


@dataclass
class LocalServers:
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

    @property
    def nodes(self) -> list[LocalServers]:
        """Every RabbitMQ node, this one first."""
        return [self, *self.peers]

    @property
    def node(self) -> str:
        """The Erlang node name, e.g. ``flashsale@localhost``."""
        return f"{self.node_name}@localhost"

    # ---- where things are -------------------------------------------------------------
    @property
    def rabbit_dir(self) -> Path:
        return self.home / self.rabbit_subdir

    @property
    def pg_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def pg_socket_dir(self) -> Path:
        """Where the Unix socket is: only the server's user may enter (mode 0700)."""
        return self.pg_dir / "run"

    @property
    def rabbit_log(self) -> Path:
        return self.rabbit_dir / "log" / "node.log"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

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

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}/"

    @property
    def rabbit_pid_file(self) -> Path:
        return self.rabbit_dir / "node.pid"

    # ---- RabbitMQ ---------------------------------------------------------------------
    def _rabbit_env(self) -> dict[str, str]:
        conf = self.rabbit_dir / "rabbitmq.conf"
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        return {
            **os.environ,
            "HOME": "/var/lib/rabbitmq" if os.geteuid() == 0 else os.environ.get("HOME", "/"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_MNESIA_BASE": str(self.rabbit_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.rabbit_dir / "log"),
            "RABBITMQ_LOGS": str(self.rabbit_log),
            "RABBITMQ_PID_FILE": str(self.rabbit_pid_file),
            "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.rabbit_dir / "enabled_plugins"),
            # quorum_cluster_size (the members of a new quorum queue)
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.rabbit_dir / "advanced.config"),
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # Erlang distribution and the port mapper (when this node starts it) on loopback
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback,
            "RABBITMQ_CTL_ERL_ARGS": loopback,
        }

    def _write_rabbit_config(self) -> None:
        (self.rabbit_dir / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.rabbit_dir / "log").mkdir(parents=True, exist_ok=True)
        (self.rabbit_dir / "enabled_plugins").write_text(
            "[rabbitmq_management,rabbitmq_prometheus].\n"
        )
        (self.rabbit_dir / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
                    f"management.tcp.port = {self.mgmt_port}",
                    "management.tcp.ip = 127.0.0.1",
                    f"prometheus.tcp.port = {self.prometheus_port}",
                    "prometheus.tcp.ip = 127.0.0.1",
                    # the operator; the processes' users are added once the node is up
                    f"default_user = {AMQP_USER}",
                    f"default_pass = {AMQP_PASSWORD}",
                    "default_user_tags.administrator = true",
                    "default_permissions.configure = .*",
                    "default_permissions.read = .*",
                    "default_permissions.write = .*",
                    "loopback_users = none",
                    "log.console = false",
                    "log.file.level = info",
                    "collect_statistics_interval = 1000",
                    # a new quorum queue's leader on the node that leads the fewest: the
                    # partitions, declared from one node, are led by every node in turn
                    *(["queue_leader_locator = balanced"] if self.cluster > 1 else []),
                    "",
                ]
            )
        )
        # A quorum queue gets a member on every node of the cluster (RabbitMQ's default is 3).
        members = max(self.cluster, len(self.peers) + 1)
        (self.rabbit_dir / "advanced.config").write_text(
            f"[{{rabbit, [{{quorum_cluster_size, {members}}}]}}].\n"
        )
        _chown_tree(self.rabbit_dir, RABBIT_USER)
        _chown(self.rabbit_dir, RABBIT_USER, 0o700)  # its configuration has the operator's password

    def rabbit_pid(self) -> int | None:
        """Pid of the running node, if its pid file names a live process."""
        try:
            pid = int(self.rabbit_pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start_rabbit(self, timeout: float = 90.0, provision: bool = True) -> int:
        """Start the node (or find it running), wait until AMQP and the UI answer, and give
        each process kind its broker user. A cluster's nodes start together and join the
        first one (once: later starts find each other)."""
        if self.peers:
            return self._start_cluster(timeout)
        if (pid := self.rabbit_pid()) is None:
            for port, what in [(self.amqp_port, "AMQP"), (self.mgmt_port, "management UI")]:
                if port_taken(port):
                    raise ServerError(f"port {port} ({what}) is taken by another process")
            self._write_rabbit_config()
            self.started_epmd = not _epmd_running()
            out = (self.rabbit_dir / "log" / "startup.log").open("ab")
            proc = subprocess.Popen(
                _as_user(RABBIT_USER, [RABBIT_SERVER]),
                env=self._rabbit_env(),
                cwd=self.rabbit_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            out.close()
            self.rabbit_pid_file.write_text(str(proc.pid))
            pid = proc.pid
        self._wait_rabbit(timeout, pid)
        if provision:
            roles.provision_broker(self.management_url, (AMQP_USER, AMQP_PASSWORD), AMQP_PASSWORDS)
        return pid

    def _start_cluster(self, timeout: float) -> int:
        from concurrent.futures import ThreadPoolExecutor

        for node in self.peers:
            node.cluster = self.cluster
        single = [n.start_rabbit if n is not self else self._start_own_node for n in self.nodes]
        # together: nodes that were clustered wait for each other at boot
        with ThreadPoolExecutor(len(single)) as pool:
            pids = [f.result() for f in [pool.submit(start, timeout, False) for start in single]]
        members = set(self.running_nodes())
        for node in self.peers:
            if node.node not in members:
                node.join(self)
                # quorum queues made before it joined get a member on it too
                self.rabbitmqctl("grow", node.node, "all", tool=RABBITMQ_QUEUES)
        roles.provision_broker(self.management_url, (AMQP_USER, AMQP_PASSWORD), AMQP_PASSWORDS)
        return pids[0]

    def _start_own_node(self, timeout: float, provision: bool) -> int:
        peers, self.peers = self.peers, []
        try:
            return self.start_rabbit(timeout, provision)
        finally:
            self.peers = peers

    def rabbitmqctl(
        self, *args: str, timeout: float = 120, tool: str = RABBITMQCTL
    ) -> subprocess.CompletedProcess[str]:
        """`rabbitmqctl -n <this node> ARGS` (or another of RabbitMQ's tools) as the broker's
        user; raises with its output when it fails."""
        result = subprocess.run(
            _as_user(RABBIT_USER, [tool, "-n", self.node, *args]),
            env=self._rabbit_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise ServerError(
                f"rabbitmqctl {' '.join(args)} on {self.node} failed:\n"
                + result.stdout
                + result.stderr
            )
        return result

    def join(self, seed: LocalServers) -> None:
        """Make this (freshly started) node a member of `seed`'s cluster."""
        self.rabbitmqctl("stop_app")
        self.rabbitmqctl("reset")
        self.rabbitmqctl("join_cluster", seed.node)
        self.rabbitmqctl("start_app")
        pid = self.rabbit_pid()
        assert pid is not None, f"{self.node} is not running"
        self._wait_rabbit(90, pid)

    def running_nodes(self) -> list[str]:
        """The cluster's running nodes, as the first live node's management API lists them."""
        import httpx

        for node in self.nodes:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(
                    f"{node.management_url}api/nodes",
                    auth=(AMQP_USER, AMQP_PASSWORD),
                    timeout=5,
                )
                if r.status_code == 200:
                    return [n["name"] for n in r.json() if n.get("running")]
        return []

    def _wait_rabbit(self, timeout: float, pid: int) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise ServerError(
                    "RabbitMQ exited during start-up; its log ends with:\n"
                    + log_tail(self.rabbit_log)
                    + "\n"
                    + log_tail(self.rabbit_dir / "log" / "startup.log")
                )
            if port_taken(self.amqp_port):
                with contextlib.suppress(httpx.HTTPError):
                    r = httpx.get(
                        f"{self.management_url}api/overview",
                        auth=(AMQP_USER, AMQP_PASSWORD),
                        timeout=2,
                    )
                    if r.status_code == 200:
                        return
            time.sleep(0.3)
        raise ServerError(
            f"RabbitMQ did not answer within {timeout:.0f} s; its log ends with:\n"
            + log_tail(self.rabbit_log)
        )

    def stop_rabbit(self) -> None:
        """Stop the node (every node of a cluster) and, if this launcher started the Erlang
        port mapper, that too."""
        if self.peers:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(self.peers)) as pool:
                list(pool.map(LocalServers.stop_rabbit, self.peers))
        pid = self.rabbit_pid()
        if pid is not None:
            # the pid is the server's wrapper script, which leads a session of its own
            stop_pid(pid, timeout=30, group=True)
        with contextlib.suppress(OSError):
            self.rabbit_pid_file.unlink()
        if self.started_epmd and shutil.which("epmd"):
            # refused by epmd while any other node is still registered: shared nodes survive
            subprocess.run(["epmd", "-kill"], capture_output=True, check=False)

    # ---- PostgreSQL -------------------------------------------------------------------
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
