"""Load from wrk (C, one thread): a Python load generator would be the bottleneck on 2 cores.

Every design gets the same script: `POST /api/holds` with `{"product_id": N, "qty": 1}`, N one
product or a random one of a list. A sold-out run counts answers by status, so its figure counts
409s, not every failure.
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
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %d %d\\n", status, count))
    end
  end
end

statuses = {}
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Run:
    """What one wrk run measured."""

    connections: int
    seconds: float
    requests: int = 0
    #: answers with a status of 400 or more (wrk's own count)
    non_2xx: int = 0
    #: answers by status, when the run counted them
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    raw: str = ""

    @property
    def ok_per_s(self) -> float:
        """Answers with a 2xx status per second (holds placed)."""
        return (self.requests - self.non_2xx) / self.seconds

    def per_second(self, status: int) -> float:
        """Answers with this status per second (needs a run that counted statuses)."""
        return self.statuses.get(status, 0) / self.seconds

    def figures(self) -> dict[str, Any]:
        """The fields every result of the report has."""
        figures: dict[str, Any] = {
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "holds_per_s": round(self.ok_per_s, 1),
            "p50_ms": self.latency_ms.get("50%"),
            "p90_ms": self.latency_ms.get("90%"),
            "p99_ms": self.latency_ms.get("99%"),
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
        }
        if self.statuses:
            figures["statuses"] = {str(s): c for s, c in sorted(self.statuses.items())}
        return figures


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return round(float(number) * _UNITS_MS[unit], 2)


def parse(out: str, connections: int, seconds: float) -> Run:
    """wrk's text output (with `--latency` and our `done`) as figures."""
    run = Run(connections, seconds, raw=out)
    for line in out.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] in ("50%", "75%", "90%", "99%") and len(parts) == 2:
            run.latency_ms[parts[0]] = _ms(parts[1])
        elif parts[0] == "status" and len(parts) == 3:
            run.statuses[int(parts[1])] = int(parts[2])
        elif "requests in" in line:
            run.requests = int(parts[0])
            run.seconds = _ms(parts[3].rstrip(",")) / 1000
        elif "Non-2xx" in line:
            run.non_2xx = int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            run.socket_errors = sum(int(n) for n in re.findall(r"\d+", line))
    return run


def script(product_ids: list[int], count_statuses: bool) -> str:
    """The Lua script: a static request for one product, else a random one of the list."""
    if len(product_ids) == 1:
        text = _ONE_PRODUCT % {"id": product_ids[0]}
    else:
        text = _RANDOM_PRODUCT % {"ids": ", ".join(str(i) for i in product_ids)}
    return text + (_COUNT_STATUSES if count_statuses else "")


def drive(
    base_url: str,
    product_ids: list[int],
    connections: int,
    seconds: float,
    count_statuses: bool = False,
) -> Run:
    """POST /api/holds for `seconds` over `connections` connections, one product or a random
    one of `product_ids` per request."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        path = Path(tmp) / "holds.lua"
        path.write_text(script(product_ids, count_statuses))
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(path),
                f"{base_url}/api/holds",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return parse(out, connections, seconds)
