"""Raw HTTP/1.1 over a socket: what a misbehaving client sends, byte by byte."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int, timeout: float = 10) -> socket.socket:
    """A TCP connection to the gateway on 127.0.0.1."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request_head(method: str, path: str, headers: list[tuple[str, str]]) -> bytes:
    """The request line and headers, up to and including the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket, method: str = "GET") -> Answer:
    """One whole answer from the socket (status, headers, body)."""
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    return Answer(response.status, response.headers, response.read())


def wait_closed(sock: socket.socket, timeout: float) -> tuple[float, bytes]:
    """Seconds until the peer closed, and what it sent before; fails after `timeout`."""
    start, got = time.monotonic(), b""
    sock.settimeout(timeout)
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - start, got


class _Unclosed(io.BufferedReader):
    """One reader for every answer of a connection: an answer read whole does not close it."""

    def close(self) -> None:
        pass


class Answers:
    """Answers read one after another from one connection (pipelined ones included)."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = _Unclosed(socket.SocketIO(sock, "rb"))

    def makefile(self, *_: Any) -> Any:
        return self._file

    def next(self, method: str = "GET") -> Answer:
        response = http.client.HTTPResponse(self, method=method)  # type: ignore[arg-type]
        response.begin()
        return Answer(response.status, response.headers, response.read())
