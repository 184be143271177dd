"""Holds benchmark: `./dev bench [--quick] [--scenarios ...] [--seconds 20] [--clients 100]`.

One invocation, one machine, one PostgreSQL server: the headline (this project, one hot
product, qty-1 holds, wrk) and sold-out answers/s; the same load against two baselines it starts
itself (lock per request; Redis + Lua) with the ratios; product pages (GET /api/products/{id})
beside a plain asyncpg read, a Redis cache read and the HTTP ceiling, while holds trickle in,
and how far behind another gateway process is; then how this project grows with connections,
products, expiries coming back inside the window and a holds table of ≥ 2 million rows. Prints
a table, writes a JSON file and a PNG plot. It asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.system import LaunchOptions
from shared.db.migrate import upgrade
from shared.settings import PROJECT_ROOT, Settings
from tests import servers as server_sources
from tests.bench import project, reads, report
from tests.bench.scenarios import (
    baseline_designs,
    growth_apart,
    growth_on,
    headlines,
    project_design,
    running,
)
from tests.harness import System

SCENARIOS = ("headline", "baselines", "reads", "connections", "products", "expiries", "rows")
QUICK = ("headline", "baselines", "reads")
OUT = PROJECT_ROOT / ".local" / "bench"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./dev bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="headline and baselines only")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=20,
        help="per design and load at the headline (default 20), split into the rounds",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="turns the designs take at the headline load (default 4)",
    )
    parser.add_argument(
        "--growth-seconds",
        type=float,
        default=10,
        help="per growth point (default 10; the expiry window is at least 10)",
    )
    parser.add_argument(
        "--clients", type=int, default=100, help="connections of the headline (default 100)"
    )
    parser.add_argument(
        "--inventory-workers",
        type=int,
        default=LaunchOptions.inventory_replicas,
        help=f"of this project (default {LaunchOptions.inventory_replicas}, as `flashsale up`)",
    )
    gateways = Settings.model_fields["gateway_processes"].default
    parser.add_argument(
        "--gateways",
        type=int,
        default=gateways,
        help=f"gateway processes of this project (default {gateways}, as `flashsale up`)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        metavar="NAME=VALUE",
        type=_setting,
        action="append",
        default=[],
        help="a setting of this project's processes for this run, e.g.\n"
        "FLASHSALE_HOLD_BATCH_WAIT_MS=2 (repeatable; shared/settings.py has them all)",
    )
    parser.add_argument(
        "--json", type=Path, default=OUT / "bench.json", help="default: .local/bench/bench.json"
    )
    parser.add_argument(
        "--png", type=Path, default=OUT / "bench.png", help="default: .local/bench/bench.png"
    )
    return parser


def _setting(text: str) -> tuple[str, str]:
    """`FLASHSALE_NAME=value`, checked against the settings the processes read."""
    name, eq, value = text.partition("=")
    field = name.removeprefix("FLASHSALE_").lower()
    if not eq or not name.startswith("FLASHSALE_") or field not in Settings.model_fields:
        raise argparse.ArgumentTypeError(f"not a FLASHSALE_NAME=VALUE setting: {text!r}")
    return name, value


def bench(args: argparse.Namespace, chosen: set[str], results: dict[str, Any]) -> None:
    """Run the chosen scenarios, filling `results` as they finish."""
    report.progress("starting RabbitMQ and PostgreSQL")
    servers = server_sources.start()
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))

    def record(entry: dict[str, Any]) -> None:
        results["scenarios"].append(entry)
        report.say(report.scenario_line(entry))

    try:
        upgrade(servers.database_url)
        with contextlib.ExitStack() as stack:
            system = None
            if chosen & {"headline", "reads", "connections", "products"}:
                report.progress("starting this project")
                system = stack.enter_context(running(servers, project.LONG_TTL_SECONDS, args))
            if chosen & {"headline", "baselines"}:
                headline(args, chosen, results, servers, logs, system)
            if system is not None:
                for entry in growth_on(system, chosen, args):
                    record(entry)
            if system is not None and "reads" in chosen:
                product_reads(args, results, servers, logs, system)
        for entry in growth_apart(servers, chosen, args):
            record(entry)
    finally:
        servers.stop()
        shutil.rmtree(logs, ignore_errors=True)


def headline(
    args: argparse.Namespace,
    chosen: set[str],
    results: dict[str, Any],
    servers: server_sources.ServerSet,
    logs: Path,
    system: System | None,
) -> None:
    """This project and the baselines in turns at the headline load."""
    with contextlib.ExitStack() as stack:
        found = (
            stack.enter_context(baseline_designs(servers, logs)) if "baselines" in chosen else {}
        )
        designs = {"project": project_design(system)} if system and "headline" in chosen else {}
        designs.update(found)
        report.progress(
            f"headline: {', '.join(report.DESIGNS[k] for k in designs)} in turns, "
            f"{args.rounds} rounds of {args.seconds / args.rounds:.0f} s holds "
            f"+ {args.seconds / args.rounds:.0f} s sold out each"
        )
        for key, figures in headlines(designs, args.clients, args.seconds, args.rounds):
            if key == "project":
                results["headline"] = figures
            else:
                results["baselines"][key] = figures
            report.say(report.headline_line(figures, report.DESIGNS[key]))


def product_reads(
    args: argparse.Namespace,
    results: dict[str, Any],
    servers: server_sources.ServerSet,
    logs: Path,
    system: System,
) -> None:
    """Product pages: this project and the read baselines in turns, then the staleness."""
    with reads.read_designs(servers, logs) as found:
        designs = {"project": project_design(system), **found}
        report.progress(
            f"reads: {', '.join(report.DESIGNS[k] for k in designs)} in turns, "
            f"{args.rounds} rounds of {args.seconds / args.rounds:.0f} s, "
            f"{reads.TRICKLE_PER_S} holds/s on the same product"
        )
        measured = results["reads"]["designs"]
        for key, figures in reads.reads(designs, args.clients, args.seconds, args.rounds):
            measured[key] = figures
            report.say(report.read_line(figures, report.DESIGNS[key]))
    report.progress("reads: how far behind another gateway process is, under that load")
    results["reads"]["staleness"] = stale = reads.staleness(
        system, args.clients, args.growth_seconds
    )
    report.say(report.staleness_line(stale))


def _shown(path: Path) -> str:
    """A path as the reader typed it: relative to the project when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(PROJECT_ROOT))
    return str(path)


def main() -> None:
    args = _parser().parse_args()
    args.settings = dict(args.settings)
    chosen = set(QUICK if args.quick else args.scenarios.split(","))
    unknown = chosen - set(SCENARIOS)
    if unknown:
        _parser().error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    # SIGTERM unwinds like Ctrl-C: every server and process the bench started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg())},
        "options": {k: _shown(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "headline": None,  # this project's; the JSON file repeats its main figures at the top
        "baselines": {},
        "reads": {"designs": {}, "staleness": None},
        "scenarios": [],
    }
    began = time.monotonic()
    try:
        bench(args, chosen, results)
    except KeyboardInterrupt:
        report.progress("interrupted: everything the bench started is stopped")
        raise SystemExit(130) from None
    finally:
        results["elapsed_s"] = round(time.monotonic() - began, 1)
        results["machine"]["loadavg_at_end"] = list(os.getloadavg())
        results["ratios"] = report.ratios(results)
        results["reads"]["ratios"] = report.read_ratios(results)
        report.say()
        report.say(report.table(results))
        report.write(results, args.json, args.png)
        report.say(f"\nJSON: {_shown(args.json)}\nplot: {_shown(args.png)}")


if __name__ == "__main__":
    main()
