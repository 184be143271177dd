"""Holds at a steady rate beside a read run: `python -m tests.bench.trickle URL PRODUCT RATE
SECONDS` prints `{"sent": n, "statuses": {...}}`.

A few keep-alive connections and plain asyncio streams: it must cost every design the same few
percent of a core, whatever that design answers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.parse
from collections import Counter

CONNECTIONS = 4


async def _one(
    host: str, port: int, request: bytes, due: asyncio.Queue[float], seen: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            at = await due.get()
            if at < 0:
                return
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            seen[status] += 1
    finally:
        writer.close()


async def trickle(url: str, product_id: int, rate: float, seconds: float) -> dict[str, object]:
    parts = urllib.parse.urlsplit(url)
    body = json.dumps({"product_id": product_id, "qty": 1}).encode()
    request = (
        f"POST /api/holds HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    due: asyncio.Queue[float] = asyncio.Queue()
    start = time.monotonic()
    count = int(rate * seconds)
    for i in range(count):
        due.put_nowait(start + i / rate)
    for _ in range(CONNECTIONS):
        due.put_nowait(-1)
    seen: Counter[int] = Counter()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    await asyncio.gather(*(_one(host, port, request, due, seen) for _ in range(CONNECTIONS)))
    return {"sent": count, "statuses": {str(k): v for k, v in sorted(seen.items())}}


if __name__ == "__main__":
    url, product, rate, seconds = (
        sys.argv[1],
        int(sys.argv[2]),
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    sys.stdout.write(json.dumps(asyncio.run(trickle(url, product, rate, seconds))) + "\n")
