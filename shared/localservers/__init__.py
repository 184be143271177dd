"""RabbitMQ and PostgreSQL as local processes, from Debian's packages, in a folder of our own.

Used by `flashsale up` (the development system) and by the test fixtures (their own folder and
ports). Nothing here needs a Docker engine. One module per part: `servers` (the whole set,
`LocalServers`), `rabbitmq` (its RabbitMQ node or cluster), `postgres` (its PostgreSQL cluster),
`processes` (ports, pids, running as a server's user), `packages` (what Debian installs and
where), `credentials` (the servers' users and development passwords).
"""

from __future__ import annotations

from shared.localservers.credentials import (
    AMQP_PASSWORD,
    AMQP_PASSWORDS,
    AMQP_USER,
    DB_APP_PASSWORD,
    DB_OPERATOR_PASSWORD,
    DB_OWNER_PASSWORD,
    LEGACY_DB_USER,
    PG_SUPERUSER,
    PG_SUPERUSER_PASSWORD,
    PG_USER,
    RABBIT_USER,
)
from shared.localservers.packages import (
    RABBIT_SERVER,
    RABBITMQ_QUEUES,
    RABBITMQCTL,
    ensure_packages,
    missing_packages,
    pg_bin_dir,
)
from shared.localservers.processes import (
    ServerError,
    _as_user,
    free_port,
    listener_port,
    log_tail,
    pid_alive,
    port_taken,
    stop_pid,
)
from shared.localservers.servers import LocalServers

__all__ = [
    "AMQP_PASSWORD",
    "AMQP_PASSWORDS",
    "AMQP_USER",
    "DB_APP_PASSWORD",
    "DB_OPERATOR_PASSWORD",
    "DB_OWNER_PASSWORD",
    "LEGACY_DB_USER",
    "PG_SUPERUSER",
    "PG_SUPERUSER_PASSWORD",
    "PG_USER",
    "RABBITMQCTL",
    "RABBITMQ_QUEUES",
    "RABBIT_SERVER",
    "RABBIT_USER",
    "LocalServers",
    "ServerError",
    "_as_user",
    "ensure_packages",
    "free_port",
    "listener_port",
    "log_tail",
    "missing_packages",
    "pg_bin_dir",
    "pid_alive",
    "port_taken",
    "stop_pid",
]
