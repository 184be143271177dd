"""A partition's reads and writes, as a few set-based statements on the asyncpg connection.

A batch costs a fixed number of round trips whatever its size: one read per kind of thing the
batch needs (products always; holds, orders, restocks and customer usage when it has them) and
one statement that writes every decision. Every write is conditional (`available + delta >= 0`,
`status = 'active'`, `status = 'pending'`) and the CHECK constraint backs it: the counts it
returns must match, or the batch is rolled back and decided again (ConcurrentWriter).

The rush's batches (new holds without an Idempotency-Key on products without a per-customer
limit) take one round trip: the partition decides on the products as its last commit left them
(`known`), and one statement, committed on its own, writes the holds only if every product is
still at the version decided on (`place`). Anything else, or a version that moved (another
consumer wrote meanwhile), takes the locked read first.
"""

from workers.inventory.store.reads import load
from workers.inventory.store.writes import ConcurrentWriter, place, placeable, save

__all__ = ["ConcurrentWriter", "load", "place", "placeable", "save"]
