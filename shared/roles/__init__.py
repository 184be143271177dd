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

One module per part: `common` (the names, `run_sync`), `broker` (users, permissions, topology),
`database` (roles and grants); `python -m shared.roles` (`__main__`) provisions a deployment.
"""

from __future__ import annotations

from shared.roles.broker import (
    OPERATOR_PERMISSIONS,
    Permissions,
    _any_number,
    broker_permissions,
    declare_topology,
    grant_vhost,
    provision_broker,
)
from shared.roles.common import (
    AMQP_OPERATOR,
    DB_APP,
    DB_NAME,
    DB_OPERATOR,
    DB_OWNER,
    PROCESS_KINDS,
    amqp_user,
    run_sync,
)
from shared.roles.database import (
    APP_GRANTS,
    connect_args,
    database_statements,
    grant_app,
    provision_database,
    scram_verifier,
    server_statements,
)

__all__ = [
    "AMQP_OPERATOR",
    "APP_GRANTS",
    "DB_APP",
    "DB_NAME",
    "DB_OPERATOR",
    "DB_OWNER",
    "OPERATOR_PERMISSIONS",
    "PROCESS_KINDS",
    "Permissions",
    "_any_number",
    "amqp_user",
    "broker_permissions",
    "connect_args",
    "database_statements",
    "declare_topology",
    "grant_app",
    "grant_vhost",
    "provision_broker",
    "provision_database",
    "run_sync",
    "scram_verifier",
    "server_statements",
]
