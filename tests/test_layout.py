"""The tree shows the architecture: imports point one way, and backends stay apart.

Every ``import`` statement in ``src/werk`` counts, wherever it is: at module level, inside a
function (a lazy import hides a cycle from Python's import machinery, not from the design;
the server's lazy import of the web UI was one), and under ``if TYPE_CHECKING:`` (an
annotation that names a class is a dependency on that class; the client's worker ↔
processor cycle was made of those). A part that needs to see its owner depends on a
protocol below both (:mod:`werk.server.state`, :mod:`werk.client.state`). The graph is
read with :mod:`ast`, so nothing is imported and the test sees code that never runs here.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import werk

SRC = Path(werk.__file__).parent
STORAGE = SRC / "storage"
BACKEND_CLIENTS = {
    "sqlite": {"sqlite3", "apsw"},
    "redis": {"redis", "valkey"},
    "postgres": {"psycopg", "psycopg2", "psycopg_pool", "asyncpg"},
}
"""Each storage backend package and the client libraries only it may import."""


def module_name(path: Path) -> str:
    """``src/werk/server/server.py`` -> ``werk.server.server`` (a package: its own name)."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}
TREES = {path: ast.parse(path.read_text(), str(path)) for path in MODULES.values()}
"""Every module's syntax tree, read while pytest collects, before any test runs: Python
3.11's ``ast`` can raise a spurious ``SystemError: AST constructor recursion depth
mismatch`` after other code changed the recursion limit (CPython gh-106905; hypothesis
raises it while its tests run), which the suite's long runs met once here."""


def imported_names(path: Path) -> Iterator[str]:
    """Every module name an import statement in ``path`` names, anywhere in the file.

    ``from a.b import c`` names ``a.b.c`` when that is a module of ``src/werk``, else
    ``a.b``; relative imports are made absolute.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(TREES[path]):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in MODULES else base


def werk_imports(path: Path) -> set[str]:
    """The modules of ``src/werk`` that ``path`` imports (not counting itself)."""
    targets = set()
    for name in imported_names(path):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            targets.add(name)
    targets.discard(module_name(path))
    return targets


def module_graph() -> dict[str, set[str]]:
    """``src/werk`` as a graph: each module and the modules it imports."""
    return {name: werk_imports(path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one cycle of ``graph`` (its first node repeated at the end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle: list[str] = exc.args[1]
        return cycle[::-1]  # graphlib lists it against the edges' direction
    return None


def part_of(module: str) -> str:
    """The part a module belongs to: ``werk.server.handlers.jobs`` -> ``werk.server``."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules() -> None:
    graph = module_graph()
    assert len(graph) > 50  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_parts() -> None:
    # server, webui, manager, storage, client, cli, ...: each pair depends one way only
    parts: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        part = part_of(module)
        parts.setdefault(part, set()).update(part_of(t) for t in targets if part_of(t) != part)
    cycle = find_cycle(parts)
    assert cycle is None, "parts import each other: " + " -> ".join(cycle or [])


def test_the_check_sees_every_kind_of_import() -> None:
    # The check itself: it finds a cycle, and it reads lazy and TYPE_CHECKING imports
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) in (
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    )
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    server = werk_imports(SRC / "server" / "server.py")
    assert "werk.server.connection" in server  # module-level
    assert "werk.server.backups" in server  # inside a method
    assert "werk.server.state" in werk_imports(SRC / "server" / "tasks.py")  # TYPE_CHECKING


def backend_packages() -> list[str]:
    """The storage backends: the packages beside ``storage/base.py``."""
    return sorted(p.parent.name for p in STORAGE.glob("*/__init__.py"))


def test_every_backend_names_its_client_library() -> None:
    assert {"sqlite", "redis"} <= set(backend_packages())
    for backend in backend_packages():
        assert backend in BACKEND_CLIENTS, f"add storage/{backend}'s client to BACKEND_CLIENTS"


def top_level_imports(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports (``redis.asyncio`` -> ``redis``)."""
    return {name.split(".")[0] for name in imported_names(path) if name}


@pytest.mark.parametrize("path", sorted(STORAGE.glob("*.py")), ids=lambda p: p.name)
def test_storage_contract_names_no_backend_client(path: Path) -> None:
    clients = set().union(*BACKEND_CLIENTS.values())
    assert not top_level_imports(path) & clients, f"storage/{path.name} imports a backend client"


@pytest.mark.parametrize("backend", backend_packages())
def test_a_backend_uses_only_its_own_client_and_package(backend: str) -> None:
    others = [name for name in BACKEND_CLIENTS if name != backend]
    foreign_clients = set().union(*(BACKEND_CLIENTS[name] for name in others))
    foreign_packages = {f"werk.storage.{name}" for name in others}
    for path in sorted((STORAGE / backend).rglob("*.py")):
        where = path.relative_to(STORAGE)
        assert not top_level_imports(path) & foreign_clients, f"{where} imports another client"
        imports = werk_imports(path)
        crossed = {t for t in imports for p in foreign_packages if t == p or t.startswith(p + ".")}
        assert not crossed, f"{where} imports another backend: {sorted(crossed)}"
