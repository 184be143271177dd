"""`flashsale dlq`: the dead-lettered messages, listed with their reason and replayed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli import ops
from shared.settings import get_settings

dlq_app = typer.Typer(
    help="Dead-letter queues (<queue>.dead).", no_args_is_help=True, rich_markup_mode=None
)


QueueOpt = Annotated[
    str | None,
    typer.Option("--queue", help="One dead queue, e.g. inventory.p03.dead [default: all]"),
]


@dlq_app.command("list")
def dlq_list(
    queue: QueueOpt = None,
    limit: int = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead-lettered messages with their failure reason (they stay where they are)."""
    rows = ops.run(ops.dlq_list(get_settings(), queue, limit))
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    if not rows:
        typer.echo("no dead-lettered messages")
    for r in rows:
        typer.echo(
            f"{r['dead_queue']}  {r['type']}  {r['message_id']}  from {r['source_queue']}  "
            f"reason {r['reason']} x{r['count']}  at {r['time']}\n"
            f"    last error: {r['last_error'] or '(none recorded)'}"
            + (f" ({r['failures']} failures)" if r["failures"] else "")
        )


@dlq_app.command("replay")
def dlq_replay(queue: QueueOpt = None, limit: int = 1000) -> None:
    """Put dead-lettered messages back on their original queue (handlers are idempotent)."""
    n = ops.run(ops.dlq_replay(get_settings(), queue, limit))
    typer.echo(f"replayed {n} message(s)")
