"""The package's layout: folders that import one way only, no import cycles, and a small public API."""

import ast
from pathlib import Path

import sae_lite

PACKAGE = Path(sae_lite.__file__).parent
#: The floors, bottom up: a module may import from its own floor and those below it. The ground floor
#: holds the package's plain helpers; bench/ sits beside the command line, which imports it.
FLOORS = (("errors", "files", "cache", "device"), ("data",), ("core",), ("evaluation",), ("study",), ("book",),
          ("bench",), ("cli", "__main__"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports, at its top and inside functions."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sae_lite"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    resolved = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name and not name.startswith(target + "."):  # a parent package: its __init__
            resolved.add(target)
    return resolved


def floor(name: str) -> int:
    top = name.split(".")[1] if "." in name else ""
    return next(i for i, names in enumerate(FLOORS) if top in names) if top else len(FLOORS)


GRAPH = {name: imports(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_counting_imports_inside_functions():
    assert cycles(GRAPH) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]   # the check can fail


def test_every_module_imports_only_from_its_floor_and_below():
    upward = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
                    if name != "sae_lite" and floor(target) > floor(name))
    assert upward == []


def test_the_public_api_and_the_stable_interfaces():
    from sae_lite import SAE, Dataset, TrainConfig, digits, load, load_run, load_store, metrics, penalties, planted, train
    from sae_lite.data import load_store as store_loader
    from sae_lite.data import write_store

    assert set(sae_lite.__all__) >= {"SAE", "TrainConfig", "train", "Dataset", "load", "load_store", "write_store",
                                     "load_run", "metrics", "penalties", "planted", "digits"}
    assert callable(penalties.off_support_l1) and callable(penalties.l1_l2_ratio)
    assert callable(metrics.r2) and callable(metrics.monosemanticity) and callable(metrics.class_purity)
    assert store_loader is load_store and callable(write_store) and callable(load_run)
    assert all(callable(f) for f in (SAE, Dataset, TrainConfig, train, load, planted, digits))
