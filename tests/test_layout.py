"""How sweepd's modules depend on each other: no import circle anywhere (imports inside functions
count: they run too), and the search core stays pure, importing nothing that reaches the database,
the agent, the worker, the CLI, wandb or subprocesses."""

from __future__ import annotations

import ast
from pathlib import Path

import sweepd.envs

ROOTS = {"sweepd": Path(sweepd.__file__).parent, "sweepd.envs": Path(sweepd.envs.__file__).parent}
PURE_CORE = ("sweepd.search", "sweepd.space")
NOT_IN_CORE_MODULES = ("sweepd.store", "sweepd.agent", "sweepd.worker", "sweepd.cli")
NOT_IN_CORE_PACKAGES = ("sqlalchemy", "wandb", "subprocess")


def _modules() -> dict[str, Path]:
    """Every module of sweepd (sweepd.envs lives in envs/ at the top of the repo) by dotted name."""
    found: dict[str, Path] = {}
    for prefix, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([prefix, *parts])
            found.setdefault(name, path)
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every name an import anywhere in the file brings in (`from a.b import c` gives a.b.c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    """sweepd module -> the sweepd modules it imports (a name that is no module means its module)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imports(path):
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walk_sees_the_modules_and_their_imports():
    graph = _graph()
    assert {"sweepd.agent", "sweepd.worker.puffer", "sweepd.cli.run", "sweepd.search.carbs",
            "sweepd.store.models", "sweepd.envs.family"} <= set(graph)
    assert "sweepd.protocol" in graph["sweepd.agent"] | graph["sweepd.worker_process"]
    assert "sweepd.envs.family" in graph["sweepd.worker.puffer"]  # an import inside a function counts


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_sweepd():
    assert _cycle(_graph()) is None


def test_the_search_core_imports_no_store_agent_worker_cli_wandb_or_subprocess():
    graph = _graph()
    core = [name for name in MODULES if name in PURE_CORE or name.startswith(tuple(f"{p}." for p in PURE_CORE))]
    reached, todo = set(core), list(core)
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    forbidden = sorted(name for name in reached
                       if any(name == m or name.startswith(f"{m}.") for m in NOT_IN_CORE_MODULES))
    assert forbidden == []
    packages = sorted({f"{name}: {imported}" for name in reached for imported in _imports(MODULES[name])
                       if imported.split(".")[0] in NOT_IN_CORE_PACKAGES})
    assert packages == []
