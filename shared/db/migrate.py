"""Run the Alembic migrations of deploy/alembic against a database URL."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.roles import grant_app, run_sync
from shared.settings import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "deploy" / "alembic"


def alembic_config(database_url: str, migrations: Path = MIGRATIONS) -> Config:
    """Alembic configuration for this project's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
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


def revision(database_url: str, message: str, migrations: Path | None = None) -> Path:
    """Write the next migration (`NNNN_<message>.py`, numbered after the last one) with what
    autogenerate finds between shared/db/tables.py and the database, which must be at head;
    review it before committing. Returns its path."""
    migrations = migrations or MIGRATIONS
    numbers = [
        int(m.group(1))
        for p in (migrations / "versions").glob("*.py")
        if (m := re.match(r"(\d{4})_", p.name))
    ]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40] or "revision"
    cfg = alembic_config(database_url, migrations)
    cfg.set_main_option("file_template", "%%(rev)s_" + slug)
    script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    assert script is not None and not isinstance(script, list)
    return Path(script.path)
