"""The layer rule of bench/__init__.py: every import, at module level or inside a function, points down, and no
module imports itself round a circle.

    models  <-  bench.errors, bench.settings, bench.configs, bench.names, bench.provenance, bench.factory,
                bench.outputs, bench.allocator, bench.processes, bench.records
            <-  bench.cost  <-  bench.accuracy  <-  bench.report, bench.launch
            <-  bench.cli and the pytest-benchmark suite (conftest, bench_*.py, suite, reference_t2t)
"""
import ast
import importlib
import importlib.util

import pytest

from .conftest import REPO

LAYERS = {"models": 0, "bench.errors": 1, "bench.settings": 1, "bench.configs": 1, "bench.names": 1,
          "bench.provenance": 1, "bench.factory": 1, "bench.outputs": 1, "bench.allocator": 1, "bench.processes": 1,
          "bench.records": 1,
          "bench.cost": 2,
          "bench.accuracy": 3, "bench.report": 4, "bench.launch": 4}
TOP = 5  # bench.cli, bench.suite, bench.conftest, bench.bench_*, bench.reference_t2t


def layer(module):
    if module == "bench":  # the package itself, a docstring, as `from bench import factory` names it
        return LAYERS["bench.factory"]
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return TOP if module.startswith("bench") else None


def module_name(path):
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imported(path):
    """Every module `path` imports, relative imports resolved."""
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


SOURCES = sorted((REPO / "models").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_point_down_the_layers(path):
    own = layer(module_name(path))
    upward = [name for name in imported(path) if layer(name) is not None and layer(name) > own]
    assert not upward, f"{module_name(path)} (layer {own}) imports higher layers: {upward}"


def test_the_rule_catches_an_upward_import():
    assert layer("bench.report.tables") > layer("bench.cost.sweep") > layer("models.registry")
    assert layer("bench.cli") == TOP and layer("timm") is None


@pytest.mark.parametrize("path", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_import_only_what_the_package_has(path):
    """The scripts are not run by the tests; at least every name they take from the package exists."""
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("models", "bench"):
            module = importlib.import_module(node.module)
            missing += [f"{node.module}.{alias.name}" for alias in node.names if not hasattr(module, alias.name)
                        and not (hasattr(module, "__path__")  # a package's submodule not imported yet
                                 and importlib.util.find_spec(f"{node.module}.{alias.name}"))]
    assert not missing, f"{path.name} imports names the package no longer has: {missing}"


def import_graph():
    """module -> the package's own modules it imports (at module level or inside a function)."""
    modules = {module_name(path) for path in SOURCES}
    return {module_name(path): {name for name in imported(path) if name in modules and name != module_name(path)}
            for path in SOURCES}


def cycles(graph):
    """Every import circle of `graph`, each as the path that closes it (depth-first, white/grey/black)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_module_imports_itself_round_a_circle():
    """Within a layer imports may go sideways, but never round: a circle makes import order matter."""
    found = cycles(import_graph())
    assert not found, f"import circles: {[' -> '.join(cycle) for cycle in found]}"


def test_the_circle_rule_catches_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
