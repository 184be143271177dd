"""The Debian packages the local servers come from, and where their programs are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shared.localservers.processes import ServerError

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
RABBITMQ_QUEUES = "/usr/lib/rabbitmq/bin/rabbitmq-queues"


def pg_bin_dir() -> Path | None:
    """Directory of the newest installed PostgreSQL server binaries."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return versions[0].parent if versions else None


def missing_packages() -> list[str]:
    """Debian packages the local servers need that are not installed."""
    missing = []
    if not Path(RABBIT_SERVER).exists():
        missing.append("rabbitmq-server")
    if pg_bin_dir() is None:
        missing.append("postgresql")
    return missing


def ensure_packages() -> None:
    """Install missing Debian packages when root; otherwise say exactly what to install."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServerError(
            "missing Debian packages: "
            + " ".join(missing)
            + f"\ninstall them with: sudo apt-get install -y {' '.join(missing)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
