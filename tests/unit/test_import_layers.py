"""Arrows point down: the entrypoints depend on the domain and the adapters, never the reverse.

Layers, top to bottom: the entrypoint package `cli` (the `flashsale` command, the launcher and
its supervisor, the AsyncAPI generator), which may import anything and which nothing imports;
the gateway and each worker, which import only `shared` and themselves (never each other: what
both sides need, such as signature checking, the contracts and the topology, lives in `shared`);
and `shared`, which imports neither. Every `import` counts, at the top of a module or inside a
function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("cli", "gateway", "workers", "shared")
#: Entrypoints above every layer: they may import whatever they put together.
TOP = ("cli",)
WORKERS = ("workers.inventory", "workers.orders", "workers.payments")


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> Iterator[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of the product's code."""
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            module = _module(path)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield module, alias.name, node.lineno
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    yield module, node.module, node.lineno


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _allowed(importer: str, imported: str) -> bool:
    if _within(importer, *TOP) or not _within(imported, *PACKAGES, "tests"):
        return True
    if _within(imported, "tests") or _within(imported, *TOP):
        return False  # nothing in the product imports the tests or an entrypoint
    if _within(importer, "shared"):
        return _within(imported, "shared")
    if _within(importer, "gateway"):
        return _within(imported, "gateway", "shared")
    own = next((w for w in WORKERS if _within(importer, w)), None)
    if own is not None:
        return _within(imported, own, "shared")
    return _within(imported, "shared")  # workers' own top-level modules


def test_no_arrow_points_back_up() -> None:
    wrong = [
        f"{importer} (line {line}) imports {imported}"
        for importer, imported, line in _imports()
        if not _allowed(importer, imported)
    ]
    assert wrong == []


def test_the_rule_sees_an_arrow_that_points_up() -> None:
    assert not _allowed("shared.bus", "gateway.app")
    assert not _allowed("gateway.routes.payments", "workers.payments.domain")
    assert not _allowed("workers.orders.handlers", "workers.inventory.store")
    assert not _allowed("workers.inventory.store", "gateway.snapshot")
    assert not _allowed("gateway.app", "cli.main")
    assert not _allowed("shared.roles", "cli.launcher")
    assert not _allowed("workers.inventory.main", "cli.asyncapi")
    assert not _allowed("shared.db.migrate", "cli.main")
    assert _allowed("cli.main", "gateway.app")
    assert _allowed("cli.asyncapi", "workers.orders.subscriber")
    assert _allowed("workers.orders.handlers", "shared.db.tables")
    assert sum(1 for _ in _imports()) > 100  # it reads the code
