"""Load from wrk (C, one thread): a Python load generator would be the bottleneck on 2 cores.

Every design gets the same script: `POST /api/holds` with `{"product_id": N, "qty": 1}`, N one
product or a random one of a list (reads: `GET /api/products/N`). A sold-out run counts answers
by status, so its figure counts 409s, not every failure. Each run prints its latency quantiles
on a fine grid, so runs of the same design can be merged into one distribution.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ONE_PRODUCT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"product_id": %(id)d, "qty": 1}'
"""

_RANDOM_PRODUCT = """\
local ids = {%(ids)s}
local headers = {["Content-Type"] = "application/json"}
local bodies = {}
for i, id in ipairs(ids) do
  bodies[i] = '{"product_id": ' .. id .. ', "qty": 1}'
end

function init(args)
  math.randomseed(os.time())
end

function request()
  return wrk.format("POST", "/api/holds", headers, bodies[math.random(#bodies)])
end
"""

#: Counting answers by status costs wrk CPU (it hands each answer to Lua): only where it matters.
_COUNT_STATUSES = """
statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""

_DONE = """
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      io.write(string.format("status %%d %%d\\n", status, count))
    end
  end
  for i = 1, %(grid)d do
    io.write(string.format("quantile %%d\\n", latency:percentile(100 * (i - 0.5) / %(grid)d)))
  end
end
"""

#: Latency quantiles each run prints: the midpoints of this many equal slices of its requests.
GRID = 1000


@dataclass
class Run:
    """What one wrk run (or several merged) measured."""

    connections: int
    seconds: float
    requests: int = 0
    #: answers with a status of 400 or more (wrk's own count)
    non_2xx: int = 0
    #: answers by status, when the run counted them
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    #: (latency ms, share of the requests it stands for), from each run's quantile grid
    quantiles: list[tuple[float, float]] = field(default_factory=list)
    raw: str = ""

    @property
    def ok_per_s(self) -> float:
        """Answers with a 2xx status per second (holds placed)."""
        return (self.requests - self.non_2xx) / self.seconds

    def per_second(self, status: int) -> float:
        """Answers with this status per second (needs a run that counted statuses)."""
        return self.statuses.get(status, 0) / self.seconds

    def latency_ms(self, percent: float) -> float | None:
        """The latency under which `percent` % of the requests were answered."""
        if not self.quantiles:
            return None
        total = sum(w for _, w in self.quantiles)
        seen = 0.0
        for value, weight in sorted(self.quantiles):
            seen += weight
            if seen >= total * percent / 100:
                return round(value, 2)
        return round(max(v for v, _ in self.quantiles), 2)

    def figures(self) -> dict[str, Any]:
        """The fields every result of the report has."""
        figures: dict[str, Any] = {
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "holds_per_s": round(self.ok_per_s, 1),
            "p50_ms": self.latency_ms(50),
            "p90_ms": self.latency_ms(90),
            "p99_ms": self.latency_ms(99),
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
        }
        if self.statuses:
            figures["statuses"] = {str(s): c for s, c in sorted(self.statuses.items())}
        return figures


def merge(runs: list[Run]) -> Run:
    """Runs of one design at one load as one run: counts add up, latencies pool."""
    merged = Run(runs[0].connections, sum(r.seconds for r in runs))
    for r in runs:
        merged.requests += r.requests
        merged.non_2xx += r.non_2xx
        merged.socket_errors += r.socket_errors
        for status, count in r.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + count
        merged.quantiles += r.quantiles
    return merged


def parse(out: str, connections: int, seconds: float) -> Run:
    """wrk's text output (with our `done`) as figures."""
    run = Run(connections, seconds, raw=out)
    grid: list[float] = []
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quantile" and len(parts) == 2:
            grid.append(int(parts[1]) / 1000)  # wrk measures in µs
        elif parts[0] == "status" and len(parts) == 3:
            run.statuses[int(parts[1])] = int(parts[2])
        elif "requests in" in line:
            run.requests = int(parts[0])
            duration = re.fullmatch(r"([\d.]+)(ms|s|m)", parts[3].rstrip(","))
            if duration:
                scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[duration.group(2)]
                run.seconds = float(duration.group(1)) * scale
        elif "Non-2xx" in line:
            run.non_2xx = int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            run.socket_errors = sum(int(n) for n in re.findall(r"\d+", line))
    run.quantiles = [(v, run.requests / len(grid)) for v in grid] if run.requests else []
    return run


def script(product_ids: list[int], count_statuses: bool) -> str:
    """The Lua script: a static request for one product, else a random one of the list."""
    if len(product_ids) == 1:
        text = _ONE_PRODUCT % {"id": product_ids[0]}
    else:
        text = _RANDOM_PRODUCT % {"ids": ", ".join(str(i) for i in product_ids)}
    return text + (_COUNT_STATUSES if count_statuses else "") + _DONE % {"grid": GRID}


def drive(
    base_url: str,
    product_ids: list[int],
    connections: int,
    seconds: float,
    count_statuses: bool = False,
) -> Run:
    """POST /api/holds for `seconds` over `connections` connections, one product or a random
    one of `product_ids` per request."""
    return _wrk(f"{base_url}/api/holds", script(product_ids, count_statuses), connections, seconds)


def read(base_url: str, product_id: int, connections: int, seconds: float) -> Run:
    """GET /api/products/{id} for `seconds` over `connections` connections."""
    return _wrk(
        f"{base_url}/api/products/{product_id}", _DONE % {"grid": GRID}, connections, seconds
    )


def _wrk(url: str, lua: str, connections: int, seconds: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        path = Path(tmp) / "run.lua"
        path.write_text(lua)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(path),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return parse(out, connections, seconds)
