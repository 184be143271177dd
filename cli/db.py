"""`flashsale db`: migrations of FLASHSALE_DATABASE_URL."""

from __future__ import annotations

import typer

from shared.db import migrate
from shared.settings import get_settings

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True, rich_markup_mode=None)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate FLASHSALE_DATABASE_URL up."""
    migrate.upgrade(get_settings().database_url, revision)


@db_app.command("downgrade")
def db_downgrade(revision: str = "base") -> None:
    """Migrate FLASHSALE_DATABASE_URL down."""
    migrate.downgrade(get_settings().database_url, revision)


@db_app.command("revision")
def db_revision(message: str) -> None:
    """Write the next migration from what autogenerate finds between shared/db/tables.py and
    FLASHSALE_DATABASE_URL (at head); review it, then commit it with the change to tables.py."""
    typer.echo(migrate.revision(get_settings().database_url, message))
