"""Who the local servers run and log in as, and their development passwords."""

from __future__ import annotations

from shared import roles

RABBIT_USER = "rabbitmq"
PG_USER = "postgres"  # the operating-system user the cluster runs as
PG_SUPERUSER = "postgres"  # its database superuser: the launcher's, never the application's
#: The superuser of data folders made before the roles existed (renamed to PG_SUPERUSER).
LEGACY_DB_USER = "flashsale"

# Development passwords of the local servers, one per role, kept here and nowhere else (the
# defaults of FLASHSALE_AMQP_URL and FLASHSALE_DATABASE_URL name the operator's). `flashsale up`
# sets them again at every start: change one here to rotate it (PG_SUPERUSER_PASSWORD: see
# PostgreSQLCluster._admin_args). A deployment gets its own from its secret store (compose: .env).
PG_SUPERUSER_PASSWORD = "dev-postgres-superuser"
DB_OWNER_PASSWORD = "dev-flashsale-owner"
DB_APP_PASSWORD = "dev-flashsale-app"
DB_OPERATOR_PASSWORD = "flashsale"
AMQP_USER = roles.AMQP_OPERATOR
AMQP_PASSWORD = "flashsale"
AMQP_PASSWORDS = {kind: f"dev-{kind}-amqp" for kind in roles.PROCESS_KINDS}
