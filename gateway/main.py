"""The gateway process: `python -m gateway.main`.

Several gateway processes may serve one port: each binds it with SO_REUSEPORT and the kernel
spreads the connections over them (`flashsale up` runs FLASHSALE_GATEWAY_PROCESSES of them).
Each process has its own broker connection, reply queue, hold envelopes and stock snapshot.
"""

from __future__ import annotations

import socket

import uvicorn

from gateway.app import create_app
from gateway.fastlane import FastLane
from gateway.server import FrontDoorProtocol
from gateway.tracing import Traced
from shared import tracing
from shared.logging import setup_logging
from shared.settings import Settings, get_settings


def shared_socket(settings: Settings) -> socket.socket:
    """The HTTP port, bound so that other gateway processes may bind it too."""
    family, kind, proto, _, address = socket.getaddrinfo(
        settings.http_host, settings.http_port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def main() -> None:
    """Serve the API on FLASHSALE_HTTP_HOST:FLASHSALE_HTTP_PORT, bounded by the front door."""
    settings = get_settings()
    setup_logging(settings.log_format, settings.log_level)
    lane = FastLane(create_app(settings))
    protocol = FrontDoorProtocol.for_settings(
        settings, at_once=lane.wire_page, hold_at_once=lane.wire_hold
    )
    # Traced only when tracing is on: off, the server calls the application itself.
    config = uvicorn.Config(
        Traced(lane) if tracing.configure("gateway") else lane,
        host=settings.http_host,
        port=settings.http_port,
        http=protocol,
        ws="none",
        server_header=False,
        # Forwarded headers only from the proxies named (nothing to parse per request else).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        headers=[("X-Content-Type-Options", "nosniff")],
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # An idle keep-alive connection is closed when its next request's headers are due:
        # later than clients' own idle expiry (httpx: 5 s), so that a client never sends a
        # request on a connection the server is closing at that moment.
        timeout_keep_alive=max(1, round(settings.header_timeout_seconds)),
    )
    uvicorn.Server(config).run(sockets=[shared_socket(settings)])


if __name__ == "__main__":
    main()
