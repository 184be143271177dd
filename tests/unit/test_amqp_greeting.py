"""A broker is ready for clients when it answers AMQP's protocol header, not when its port
listens: a node restarting on its old data accepts sockets and closes them unread for a while
(the launcher's second `up` once failed there)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.localservers.processes import amqp_greets, free_port

#: The first 7 bytes of Connection.Start: a method frame (type 1) on channel 0, its size.
_START = bytes([1, 0, 0, 0, 0, 1, 0])


@contextmanager
def _listener(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # closing a socket does not wake a thread blocked in accept()
    port = server.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        done.set()
        thread.join(timeout=5)
        server.close()


def _greet(conn: socket.socket) -> None:
    if conn.recv(8) == b"AMQP\x00\x00\x09\x01":
        conn.sendall(_START)


def _close_unread(conn: socket.socket) -> None:
    pass  # what a booting node does: accept, then close


def _speak_something_else(conn: socket.socket) -> None:
    conn.recv(8)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_a_broker_that_sends_connection_start_greets() -> None:
    with _listener(_greet) as port:
        assert amqp_greets(port)


def test_a_socket_closed_unread_is_not_a_broker_ready_for_clients() -> None:
    with _listener(_close_unread) as port:
        assert not amqp_greets(port)


def test_another_protocol_on_the_port_is_not_a_broker() -> None:
    with _listener(_speak_something_else) as port:
        assert not amqp_greets(port)


def test_nothing_listening_is_not_a_broker() -> None:
    assert not amqp_greets(free_port())
