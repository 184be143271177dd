"""Exit codes of the `flashsale` command, and one line (not a traceback) for a lost server."""

from __future__ import annotations

import logging
import socket
import sys
import traceback
from enum import IntEnum
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer


class ExitCode(IntEnum):
    """What `flashsale` exits with; documented in docs/operations.md (section 6)."""

    OK = 0
    #: stock conservation does not hold (`audit`, `simulate`)
    AUDIT_VIOLATION = 1
    #: a wrong option or argument (click's own code)
    USAGE = 2
    #: the database, the broker or the HTTP base URL cannot be reached (or refuses the login)
    UNREACHABLE = 3
    #: the server was reached and refused the request (an HTTP error answer, a SQL error)
    REFUSED = 4
    #: a bug: the traceback is printed
    INTERNAL = 70


#: Where each kind of server is configured, for the message.
_SETTING = {
    "database": "FLASHSALE_DATABASE_URL",
    "broker": "FLASHSALE_AMQP_URL",
}


class Unreachable(Exception):
    """A server the command needs does not answer; `what` and `where` name it."""

    def __init__(self, what: str, where: str, why: str) -> None:
        super().__init__(f"cannot reach the {what} at {where}: {why}")
        self.what, self.where, self.why = what, where, why


class Refused(Exception):
    """The server answered, and said no; the message is the one line to print."""


def masked(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _modules(tb: TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    return names


def _kind(exc: BaseException) -> str | None:
    """Which server an exception came from, by the libraries its traceback went through."""
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        seen += _modules(current.__traceback__)
        current = current.__cause__ or current.__context__
    for module in reversed(seen):
        root = module.split(".")[0]
        if root in ("asyncpg", "sqlalchemy", "alembic"):
            return "database"
        if root in ("aiormq", "aio_pika", "pamqp"):
            return "broker"
    return None


def _connection_error(exc: BaseException) -> bool:
    """Whether the server was not reached (as opposed to reached and refusing)."""
    current: BaseException | None = exc
    while current is not None:
        name = type(current).__name__
        if isinstance(current, OSError | TimeoutError | socket.gaierror):
            return True
        if name in (
            "AMQPConnectionError",
            "ConnectionClosed",
            "ProbableAuthenticationError",
            "IncompatibleProtocolError",
            "InvalidPasswordError",
            "InvalidAuthorizationSpecificationError",
            "InvalidCatalogNameError",
            "CannotConnectNowError",
            "ConnectionDoesNotExistError",
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _innermost_message(exc: BaseException) -> str:
    current: BaseException = exc
    while current.__cause__ is not None:
        current = current.__cause__
    text = str(current).strip().splitlines()
    return text[0] if text else type(current).__name__


def classify(exc: BaseException, urls: dict[str, str]) -> tuple[ExitCode, str] | None:
    """The exit code and one line for an exception about a server, or None (a bug)."""
    if isinstance(exc, Unreachable):
        return ExitCode.UNREACHABLE, str(exc)
    if isinstance(exc, Refused):
        return ExitCode.REFUSED, str(exc)
    kind = _kind(exc)
    if kind is None:
        return None
    where = f"{masked(urls.get(kind, '?'))} ({_SETTING[kind]})"
    why = _innermost_message(exc)
    if _connection_error(exc):
        return ExitCode.UNREACHABLE, f"cannot reach the {kind} at {where}: {why}"
    return ExitCode.REFUSED, f"the {kind} at {where} refused: {why}"


def _server_urls() -> dict[str, str]:
    try:
        from shared.settings import get_settings

        settings = get_settings()
    except Exception:  # settings that do not load are a problem of their own
        return {}
    return {"database": settings.database_url, "broker": settings.amqp_url}


class FlashsaleTyper(typer.Typer):
    """A Typer app that exits with an ExitCode and says in one line which server is missing."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The AMQP client's own warnings about a refused connection would print before our
        # one line (through logging's last resort); configured logging still gets them.
        for name in ("aio_pika", "aiormq"):
            quiet = logging.getLogger(name)
            if not any(isinstance(h, logging.NullHandler) for h in quiet.handlers):
                quiet.addHandler(logging.NullHandler())
        try:
            return typer.main.get_command(self)(*args, **kwargs)
        except KeyboardInterrupt:
            print("flashsale: interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as exc:
            found = classify(exc, _server_urls())
            if found is None:
                traceback.print_exception(exc)
                print(f"flashsale: internal error (exit {ExitCode.INTERNAL})", file=sys.stderr)
                sys.exit(ExitCode.INTERNAL)
            code, line = found
            print(f"flashsale: {line}", file=sys.stderr)
            sys.exit(code)
