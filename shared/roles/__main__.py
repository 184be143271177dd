"""`python -m shared.roles`: a deployment's database roles, broker users and topology."""

from __future__ import annotations

import os

import httpx

from shared.roles.broker import declare_topology, provision_broker
from shared.roles.common import DB_APP, DB_NAME, DB_OWNER, PROCESS_KINDS, amqp_user, run_sync
from shared.roles.database import connect_args, provision_database


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
