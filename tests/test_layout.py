"""The package's layout: folders that import one way only, no import cycles, and a small public API."""

import ast
import re
from pathlib import Path

import sae_lite
from sae_lite import version

PACKAGE = Path(sae_lite.__file__).parent
#: The floors, bottom up: a module may import from its own floor and those below it. The ground floor
#: holds the package's plain helpers; bench/ sits beside the command line, which imports it.
FLOORS = (("errors", "files", "cache", "device", "version"), ("data",), ("core",), ("evaluation",), ("study",), ("book",),
          ("bench",), ("cli", "__main__"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_in(name: str, source: str) -> set[str]:
    """The package's modules that module ``name``, whose text is ``source``, imports (at its top and
    inside functions).

    ``from P import x`` imports module ``P.x`` where that is a module, else the names of ``P`` itself
    (its ``__init__``, or the module ``P``); ``import P.x`` imports ``P.x``; relative imports are
    resolved first. The parent packages Python initialises on the way are not counted (else every
    module would import the root): importing ``sae_lite.data.store`` is no use of ``sae_lite.data``'s
    names. So a package's ``__init__`` that re-exports its children imports them, which is fine, while
    a module taking names from its own package's ``__init__`` (``from sae_lite.data import Dataset``
    inside ``sae_lite.data.embed``) imports that ``__init__``: the floor, cycle and root checks see it.
    """
    package = name if MODULES.get(name, Path()).name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            parts = package.split(".")[:len(package.split(".")) + 1 - node.level] if node.level else []
            module = ".".join([*parts, node.module] if node.module else parts)
            found |= {f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    resolved = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports (see `imports_in`)."""
    return imports_in(name, MODULES[name].read_text())


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


def test_imports_are_read_as_modules_or_the_names_of_an_init():
    embed = "sae_lite.data.embed"
    assert imports_in(embed, "from sae_lite.data import store, Dataset") == {"sae_lite.data.store", "sae_lite.data"}
    assert imports_in(embed, "from . import store\nfrom .datasets import Dataset") == {"sae_lite.data.store",
                                                                                        "sae_lite.data.datasets"}
    assert imports_in(embed, "def f():\n    import sae_lite.core.sae, torch") == {"sae_lite.core.sae"}
    assert imports_in(embed, "from .. import __version__") == {"sae_lite"}
    assert imports_in("sae_lite.data", "from sae_lite.data.store import load_store") == {"sae_lite.data.store"}


def root_importers(graph: dict[str, set[str]]) -> list[str]:
    """The modules of ``graph`` that import the package root, other than the root's own ``__init__`` and
    ``__main__``: the root re-exports the public API, so a module importing it imports (nearly) all."""
    return sorted(name for name, targets in graph.items() if "sae_lite" in targets
                  and name not in ("sae_lite", "sae_lite.__main__"))


def test_nothing_imports_the_package_root():
    assert root_importers(GRAPH) == []
    toy = {name: imports_in(name, source) for name, source in (("sae_lite.evaluation.runs", "from sae_lite import __version__"),
                                                               ("sae_lite.data.embed", "import sae_lite"),
                                                               ("sae_lite.cli", "from sae_lite import cache"),
                                                               ("sae_lite.__main__", "import sae_lite"))}
    assert root_importers(toy) == ["sae_lite.data.embed", "sae_lite.evaluation.runs"]   # the check can fail


def test_the_version_is_the_one_pyproject_states():
    stated = re.search(r'^version = "([^"]+)"$', (PACKAGE.parent / "pyproject.toml").read_text(), flags=re.M)
    assert stated and sae_lite.__version__ == version.__version__ == stated.group(1)


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
