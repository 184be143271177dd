"""Run the Alembic migrations of deploy/alembic against a database URL."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shared.roles import grant_app, run_sync
from shared.settings import PROJECT_ROOT


def alembic_config(database_url: str) -> Config:
    """Alembic configuration for this project's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "deploy" / "alembic"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate up to `revision` as the schema's owner (synchronous; call it outside a running
    event loop), then grant the application role its rights on every table, if it exists."""
    command.upgrade(alembic_config(database_url), revision)
    run_sync(grant_app(database_url))


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate down to `revision`."""
    command.downgrade(alembic_config(database_url), revision)
