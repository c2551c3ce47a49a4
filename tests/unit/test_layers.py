"""The package's parts depend on each other only downwards, and no modules import each other in a cycle.

Every `import` / `from ... import` in the layer is read with `ast`, including imports inside functions
(lazy) and under TYPE_CHECKING: each is a dependency of the module that writes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "layers" / "skylane" / "skylane"

# part -> the parts it may import (besides itself). Arrows go down only.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "ops": {"core"},
    "transport": {"core", "ops"},
    "accounts": {"core", "ops", "transport"},
    "providers": {"core", "ops", "transport"},
    "pipeline": {"core", "ops", "transport", "accounts", "providers"},
    "dialects": {"core", "ops", "transport", "pipeline"},
    "http": {"core", "ops", "transport", "accounts", "providers", "pipeline", "dialects"},
    "cli": {"core", "ops", "transport", "accounts", "providers", "pipeline", "dialects", "http"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:` (annotations only: never run)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                ids.update(id(n) for n in ast.walk(child))
    return ids


def _imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree) if runtime_only else set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("skylane"))
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the package uses absolute imports)"
            if node.module and node.module.startswith("skylane"):
                found.add(node.module)
                # `from skylane.core import errors` imports the module skylane.core.errors
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _graph(*, runtime_only: bool = False) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, runtime_only=runtime_only) if m in modules and m != name}
    return graph


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_belongs_to_a_part() -> None:
    for module in _graph():
        assert module == "skylane" or _part(module) in ALLOWED, f"{module} is outside the parts {sorted(ALLOWED)}"


def test_arrows_go_down_only() -> None:
    bad = []
    for module, deps in _graph().items():
        part = _part(module)
        for dep in deps:
            dep_part = _part(dep)
            if dep_part and dep_part != part and dep_part not in ALLOWED.get(part, set()):
                bad.append(f"{module} ({part}) imports {dep} ({dep_part})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    """No cycle of imports that run (annotation-only imports under TYPE_CHECKING may point back)."""
    graph = _graph(runtime_only=True)
    # Tarjan's strongly connected components: any component with more than one module is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            # a package's __init__ importing its own submodule is not a cycle of parts
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checks can fail: an upward import written into a module is found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from skylane.http.apps import create_app\n\ndef f():\n    from skylane.pipeline import flow\n")
    assert _imports(probe) == {"skylane.http.apps", "skylane.http.apps.create_app", "skylane.pipeline",
                               "skylane.pipeline.flow"}
