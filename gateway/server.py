"""The gateway's HTTP server: uvicorn's httptools protocol with the front-door limits.

Enforced here, before the application sees a request (and with no proxy on the hot path):
request line and headers within `max_header_bytes` and MAX_HEADERS (431), the headers within
`header_timeout_seconds` of connecting or of the previous answer (408, or a plain close when
nothing came), a body within `max_body_bytes` (413: a Content-Length at once, a chunked body as
soon as it passes the limit), `max_connections` per process (503), and a bound on the
requests being answered at once per process (at most `max_in_flight`, lowered while answers
take longer than `in_flight_target_ms`: see gateway.shedding): one more is answered 429
`overloaded` with Retry-After at once, without reaching the application, so that a flood is shed
early and cheap instead of queueing (health and metrics are never shed); that connection is not
read again before the delay it was given. An availability stream (`Accept: text/event-stream`
on `/api/products/{id}/availability/stream`) is a request that lasts: it is neither shed nor
counted in flight (its route bounds the streams per process), and it is told to end when the
server shuts down (the CLOSING event in its scope's extensions). Hold, order and webhook answers
get `Cache-Control: no-store`; every answer gets `X-Content-Type-Options: nosniff` (a default
header of the server, set in gateway/main.py).

Two answers are written here without an ASGI cycle, by what the application hands the server
(gateway.fastlane): a product page it can vouch for (`at_once`), and the common hold
(`hold_at_once`: a keep-alive HTTP/1.1 `POST /api/holds` with a body of known length, let in
and counted in flight like any request, answered from its reply's callback). A request
pipelined behind such a hold waits its turn, as behind any answer in progress.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gateway.frontdoor import (
    CLOSING,
    HOLD_PATH,
    IN_FLIGHT,
    LINGER_SECONDS,
    MAX_HEADERS,
    NEVER_SHED,
    NO_STORE,
    NO_STORE_PATHS,
    SHED,
    SHED_ANSWER,
    SHED_RETRY_AFTER_MS,
    AtOnce,
    HoldAtOnce,
    answered_one,
    is_stream,
    server_headers,
    tick,
)
from gateway.problems import problem_bytes
from gateway.shedding import TICK_SECONDS, InFlightBound
from shared.metrics import FRONT_DOOR_REFUSALS
from shared.settings import Settings

log = logging.getLogger("gateway")


class _HoldBeingAnswered:
    """Stands in for the cycle while a hold is answered without one, so that a request
    pipelined behind it waits its turn (uvicorn queues a request behind an unfinished cycle)."""

    response_complete = False
    disconnected = False
    keep_alive = True

    def __init__(self) -> None:
        self.message_event = asyncio.Event()


class _Refused(Exception):
    """Stops the parser once a refusal has been written."""


class FrontDoorProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection, bounded; the limits come from `for_settings`."""

    max_header_bytes: ClassVar[int] = 32 * 1024
    max_body_bytes: ClassVar[int] = 64 * 1024
    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 4096
    max_in_flight: ClassVar[int] = 256
    #: the process's in-flight bound (one per process: its connections share it)
    bound: ClassVar[InFlightBound] = InFlightBound(256, 0.5)
    #: what answers a GET from memory, if anything (see `_answer_at_once`)
    at_once: ClassVar[AtOnce | None] = None
    #: what takes the common hold without an ASGI cycle, if anything (see `_hold_eligible`)
    hold_at_once: ClassVar[HoldAtOnce | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._reading_headers = True  # until the current request's headers are complete
        self._header_bytes = 0
        self._header_count = 0
        self._body_bytes = 0
        self._too_large = False
        self._chunked = False
        self._header_since: float | None = None  # when the client began to owe us headers
        self._deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._active: RequestResponseCycle | None = None
        self._deferred: tuple[RequestResponseCycle, ASGI3Application] | None = None
        self._shedding = False  # the current request was answered 429 before the application
        self._answered = False  # the current request was answered from memory (at once)
        self._began = 0.0  # when the request being answered was let in (0: none counted)
        self._closing: asyncio.Event | None = None  # set: the stream being answered must end
        self._hold_body: bytearray | None = None  # the body of a hold taken without a cycle
        self._holding = False  # such a hold is being answered
        self._close_after_hold = False  # the server stops: close once it is answered

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        at_once: AtOnce | None = None,
        hold_at_once: HoldAtOnce | None = None,
    ) -> type[FrontDoorProtocol]:
        """This protocol with the limits of `settings`, what answers GETs from memory and what
        takes holds without an ASGI cycle."""
        limits: dict[str, object] = {
            "at_once": staticmethod(at_once) if at_once is not None else None,
            "hold_at_once": staticmethod(hold_at_once) if hold_at_once is not None else None,
            "max_header_bytes": settings.max_header_bytes,
            "max_body_bytes": settings.max_body_bytes,
            "header_timeout": settings.header_timeout_seconds,
            "max_connections": settings.max_connections,
            "max_in_flight": settings.max_in_flight,
            "bound": InFlightBound(settings.max_in_flight, settings.in_flight_target_ms / 1000),
        }
        return type("FrontDoor", (cls,), limits)

    # Connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse(503, "unavailable", "too many connections", linger=False)
            return
        self._headers_owed()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._deadline, self._linger):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._holding:
            self._close_after_hold = True  # answered, then closed
            return
        if self._deferred is not None:  # a body still arriving: no answer was started
            self.transport.close()
            return
        if self._closing is not None:
            self._closing.set()  # the stream ends its answer; keep-alive is off (below)
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and drop
        self._unset_keepalive_if_required()
        if self._reading_headers:
            if len(data) > self.max_header_bytes - self._header_bytes:
                self._feed_headers(data)
                return
            self._header_bytes += len(data)
        self._feed(data)

    def _feed_headers(self, data: bytes) -> None:
        while self._reading_headers:
            room = self.max_header_bytes - self._header_bytes
            if room <= 0:
                self._refuse(431, "header_too_large", "request headers too large")
                return
            if len(data) <= room:
                self._header_bytes += len(data)
                break
            # feed only what may still be headers; the rest once they are complete
            self._header_bytes += room
            if not self._feed(data[:room]):
                return
            data = data[room:]
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> bool:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if not self._refused:
                self._refuse(400, "bad_request", "the request is not valid HTTP/1.1")
            return False
        return not self._refused

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = self._body_bytes = 0
        self._too_large = self._chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._refuse(431, "header_too_large", f"more than {MAX_HEADERS} request headers")
            raise _Refused
        name = name.lower()
        if name == b"content-length":
            digits = value.strip()  # a malformed value is the parser's to refuse (400)
            if digits.isdigit() and (len(digits) > 18 or int(digits) > self.max_body_bytes):
                self._too_large = True
        elif name == b"transfer-encoding":
            self._chunked = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._reading_headers, self._header_since = False, None
        if self._too_large:
            self._refuse_body()
        if self.at_once is not None and self._answer_at_once():
            return
        if (
            IN_FLIGHT[0] >= self.bound.limit
            and not self._busy()  # a pipelined request waits its turn (answers stay in order)
            and not self.url.startswith(NEVER_SHED)
            and not is_stream(self.url.partition(b"?")[0].decode("latin-1"), self.headers)
        ):
            SHED.inc()
            self.bound.shed()
            self._shedding = True
            self.transport.write(SHED_ANSWER)
            return
        if self.hold_at_once is not None and self._hold_eligible():
            self._hold_body = bytearray()  # taken when its body is complete
            return
        if self._holding:
            self.cycle = _HoldBeingAnswered()  # type: ignore[assignment]
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            if self.scope["path"].startswith(NO_STORE_PATHS):
                cycle.default_headers = [*self.server_state.default_headers, NO_STORE]

    def _answer_at_once(self) -> bool:
        """A GET the application can answer from memory, written here without an ASGI cycle
        (no task, no scope for the app): only in turn (no answer in progress on this
        connection), while the client reads what it is sent, and on a connection that stays
        open (anything else is the application's to answer)."""
        if (
            self._busy()
            or self.flow.write_paused
            or self.parser.get_method() != b"GET"
            or self.parser.get_http_version() != "1.1"
            or not self.parser.should_keep_alive()  # the application says `connection: close`
            or self.expect_100_continue
        ):
            return False
        assert self.at_once is not None
        try:
            found = self.at_once(self.url, self.headers)
        except Exception as exc:  # only on a bug: the application answers it, the long way
            # Raised from here, the parser would take it for the client's and answer 400.
            log.error("unhandled error answering %s at once", self.url[:200], exc_info=exc)
            return False
        if found is None:
            return False
        status, rest = found
        self._answered = True  # its body, if any, is dropped
        self._write_answer(status, rest)
        return True

    def _write_answer(self, status: int, rest: bytes) -> None:
        """An answer written here: its status line, the server's headers, then `rest`."""
        head = STATUS_LINE[status] + server_headers(self.server_state.default_headers)
        self.transport.write(head + rest)

    def on_body(self, body: bytes) -> None:
        if self._shedding or self._answered:
            return  # read and dropped: the answer is out
        self._body_bytes += len(body)
        if self._body_bytes > self.max_body_bytes:
            self._refuse_body()
        if self._hold_body is not None:
            self._hold_body += body
            return
        super().on_body(body)
        if self._deferred is not None:
            self.flow.resume_reading()  # nobody reads the body yet; it is bounded above

    def on_message_complete(self) -> None:
        if self._hold_body is not None:
            body, self._hold_body = bytes(self._hold_body), None
            self._reading_headers, self._header_bytes = True, 0
            self._take_hold(body)
            return
        if self._answered:
            self._answered = False
            self._reading_headers, self._header_bytes = True, 0
            self._headers_owed()
            return
        if self._shedding:
            self._shedding = False
            self._reading_headers, self._header_bytes = True, 0
            if self.parser.should_keep_alive() and not self.expect_100_continue:
                # Its next request is not read before the delay it was given: a flooding
                # client is slowed here instead of taking the loop from the requests let in.
                self.transport.pause_reading()
                self.loop.call_later(SHED_RETRY_AFTER_MS / 1000, self._resume_after_shed)
                self._headers_owed()
            else:
                self.transport.close()
            return
        super().on_message_complete()
        self._reading_headers, self._header_bytes = True, 0
        deferred = self._deferred
        if deferred is not None and deferred[0] is self.cycle:
            self._deferred = None
            self._start(*deferred)

    # Holds taken without an ASGI cycle
    def _hold_eligible(self) -> bool:
        """Only `POST /api/holds` exactly, in turn, on a keep-alive HTTP/1.1 connection, with a
        body of a known length (the taker decides the rest)."""
        return (
            self.url == HOLD_PATH
            and not self._busy()
            and not self._chunked
            and not self.expect_100_continue
            and self.parser.get_method() == b"POST"
            and self.parser.get_http_version() == "1.1"
            and self.parser.should_keep_alive()
        )

    def _take_hold(self, body: bytes) -> None:
        assert self.hold_at_once is not None
        self._holding = True
        self._count_in()
        if self.hold_at_once(self.headers, body, self._hold_answered):
            return
        # the application's to answer: as if it had been handed the request from the start
        self._holding = False
        IN_FLIGHT[0] -= 1
        self._began = 0.0
        super().on_headers_complete()
        cycle = self.cycle
        cycle.default_headers = [*self.server_state.default_headers, NO_STORE]
        cycle.body += body  # uvicorn's cycle keeps the body as a bytearray
        cycle.more_body = False
        cycle.message_event.set()

    def _hold_answered(self, status: int, rest: bytes) -> None:
        """Write a hold's answer; then, as after any answer, the next request in turn."""
        if not self._holding:
            return
        self._holding = False
        IN_FLIGHT[0] -= 1
        if self._began:
            self.bound.answered(self.loop.time() - self._began)
            self._began = 0.0
        if self.transport.is_closing():
            return  # the client left: nothing to answer
        self._write_answer(status, rest)
        self.server_state.total_requests += 1
        if self._close_after_hold:
            self.transport.close()
            return
        self.flow.resume_reading()
        if self.pipeline:  # a request that came while this one was answered
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._reading_headers:
            self._headers_owed()

    def _resume_after_shed(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if self._chunked and cycle is self.cycle and cycle.more_body:
            # A chunked body is read whole (it is bounded) before the application starts, so
            # that no route ever sees a body past the limit.
            self._deferred = (cycle, app)
            if cycle.waiting_for_100_continue:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                cycle.waiting_for_100_continue = False
            return
        self._start(cycle, app)

    def _start(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._active = cycle
        if is_stream(cycle.scope["path"], cycle.scope["headers"]):
            self._closing = asyncio.Event()
            extensions: dict[str, Any] = cycle.scope.setdefault("extensions", {})
            extensions[CLOSING] = self._closing
            task = self.loop.create_task(cycle.run_asgi(app))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return
        # Counted from now until its task is done, whatever ends it (even a cancel before it
        # ran): a burst parsed in one loop turn is bounded as well.
        self._count_in()
        task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(answered_one)
        self.tasks.add(task)

    def _count_in(self) -> None:
        """A request let in: counted in flight (until its answer), its clock started."""
        IN_FLIGHT[0] += 1
        self._began = self.loop.time()
        if not self.bound.armed:
            self.bound.armed = True
            self.loop.call_later(TICK_SECONDS, tick, self.loop, self.bound)

    def on_response_complete(self) -> None:
        if self._began:
            self.bound.answered(self.loop.time() - self._began)
            self._began = 0.0
        self._closing = None
        super().on_response_complete()
        if self._reading_headers and not self.transport.is_closing():
            self._headers_owed()

    # Refusals
    def _refuse_body(self) -> None:
        self._refuse(413, "body_too_large", f"bodies are limited to {self.max_body_bytes} bytes")
        raise _Refused

    def _busy(self) -> bool:
        return self._holding or (self._active is not None and not self._active.response_complete)

    def _headers_owed(self) -> None:
        # One timer per connection, re-armed only when it fires: nothing per request on the
        # hot path but a clock read.
        self._header_since = self.loop.time()
        if self._deadline is None:
            deadline = self._header_since + self.header_timeout
            self._deadline = self.loop.call_at(deadline, self._header_deadline)

    def _header_deadline(self) -> None:
        self._deadline = None
        since = self._header_since
        if since is None or self.transport.is_closing() or self._busy():
            return  # not owed now; the next answer starts a new deadline
        left = since + self.header_timeout - self.loop.time()
        if left > 0:
            self._deadline = self.loop.call_later(left, self._header_deadline)
            return
        if self._header_bytes:
            self._refuse(408, "header_timeout", "request headers not received in time")
        else:  # an idle connection: nothing was asked, so nothing is answered
            FRONT_DOOR_REFUSALS.labels("idle").inc()
            self.transport.close()

    def _refuse(self, status: int, code: str, detail: str, *, linger: bool = True) -> None:
        """Answer with a problem and close; never in the middle of another answer."""
        if self._refused:
            return
        self._refused = True
        FRONT_DOOR_REFUSALS.labels(code).inc()
        if self._deadline is not None:
            self._deadline.cancel()
        self._unset_keepalive_if_required()
        if self._busy():
            self.transport.close()
            return
        headers = list(self.server_state.default_headers)
        if status == 503:
            headers.append((b"retry-after", b"1"))
        self.transport.write(problem_bytes(status, code, detail, headers))
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()
            self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
