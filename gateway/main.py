"""The gateway process: `python -m gateway.main`."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.server import FrontDoorProtocol
from shared.logging import setup_logging
from shared.settings import get_settings


def main() -> None:
    """Serve the API on FLASHSALE_HTTP_HOST:FLASHSALE_HTTP_PORT, bounded by the front door."""
    settings = get_settings()
    setup_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        http=FrontDoorProtocol.for_settings(settings),
        ws="none",
        server_header=False,
        headers=[("X-Content-Type-Options", "nosniff")],
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
