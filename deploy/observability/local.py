"""A Prometheus for the system `flashsale up` runs on this machine.

`python -m deploy.observability.local [--home .local/dev] [--port 9090]` writes prometheus.yml
(the compose profile's, with each job's targets replaced by the local processes' metrics
ports and the alert rules by their path here) into the data folder and runs Debian's
`prometheus` on it in the foreground until Ctrl-C. The targets come from the launcher's
state.json: each child's FLASHSALE_METRICS_PORT (read from /proc), each RabbitMQ node's
`prometheus.tcp.port`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from shared.settings import PROJECT_ROOT

HERE = Path(__file__).parent
_RABBIT_PORT = re.compile(r"^prometheus\.tcp\.port\s*=\s*(\d+)\s*$", re.MULTILINE)


def environ(pid: int) -> dict[str, str]:
    """A running process's environment."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def targets(home: Path) -> dict[str, list[str]]:
    """host:port to scrape, by job name, for the system whose data folder is `home`."""
    state = json.loads((home / "state.json").read_text())
    jobs: dict[str, list[str]] = {}
    for name, pid in sorted(state["children"].items()):
        port = environ(pid).get("FLASHSALE_METRICS_PORT")
        if port:  # `gateway-2` is a gateway, `inventory-1` an inventory worker
            jobs.setdefault("flashsale-" + name.split("-")[0], []).append(f"127.0.0.1:{port}")
    for conf in sorted(home.glob("rabbitmq*/rabbitmq.conf")):
        if found := _RABBIT_PORT.search(conf.read_text()):
            jobs.setdefault("rabbitmq", []).append(f"127.0.0.1:{found.group(1)}")
    return jobs


def local_config(
    config: dict[str, Any], jobs: dict[str, list[str]], rules: Path, interval: str
) -> dict[str, Any]:
    """The compose configuration scraping `jobs` instead (both RabbitMQ jobs scrape the
    `rabbitmq` targets, each on its own path), every `interval`."""
    local = copy.deepcopy(config)
    local["global"] |= {"scrape_interval": interval, "evaluation_interval": interval}
    local["rule_files"] = [str(rules)]
    for job in local["scrape_configs"]:
        name = "rabbitmq" if job["job_name"].startswith("rabbitmq") else job["job_name"]
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": jobs.get(name, [])}]
    return local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=PROJECT_ROOT / ".local" / "dev",
        help="the data folder of `flashsale up`",
    )
    parser.add_argument("--port", type=int, default=9090, help="Prometheus's port (127.0.0.1)")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / ".local" / "prometheus")
    parser.add_argument("--interval", default="5s", help="scrape and rule evaluation interval")
    args = parser.parse_args(argv)
    binary = shutil.which("prometheus")
    if not binary:
        sys.stderr.write("prometheus is not installed: apt-get install -y prometheus\n")
        return 1
    jobs = targets(args.home.resolve())
    compose = yaml.safe_load((HERE / "prometheus.yml").read_text())
    config = local_config(compose, jobs, HERE / "alerts.yml", args.interval)
    args.data.mkdir(parents=True, exist_ok=True)
    (args.data / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for job, found in sorted(jobs.items()):
        sys.stdout.write(f"{job}: {', '.join(found)}\n")
    command = [
        binary,
        f"--config.file={args.data / 'prometheus.yml'}",
        f"--storage.tsdb.path={args.data / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{args.port}",
    ]
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:  # the child got the same Ctrl-C and stops by itself
        return 0


if __name__ == "__main__":
    sys.exit(main())
