"""The results cache: where it lives, and a key that covers exactly the code that computes results."""

import ast
import shutil
from pathlib import Path

from sae_lite import cache

PACKAGE = Path(cache.__file__).parent


def test_cache_is_at_the_checkout_root_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("SAE_LITE_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cache.cache_dir() == PACKAGE.parent / ".cache" / "sae-lite"
    monkeypatch.setenv("SAE_LITE_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"


def test_only_the_code_that_computes_results_changes_the_key(tmp_path, monkeypatch):
    copy = tmp_path / "sae_lite"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE", copy)
    before = cache.result_code_hash()
    (copy / "book" / "plots.py").write_text("# a figure changed\n")
    (copy / "study" / "claims.py").write_text("# a verdict changed\n")
    (copy / "study" / "new_grid.py").write_text("# a study added\n")
    (copy / "cli.py").write_text("# the command line changed\n")
    assert cache.result_code_hash() == before
    (copy / "core" / "sae.py").write_text((PACKAGE / "core" / "sae.py").read_text() + "\nCHANGED = True  # the model changed\n")
    changed = cache.result_code_hash()
    assert changed != before
    (copy / "data" / "new_source.py").write_text("# a data source added\n")
    assert cache.result_code_hash() != changed


TOY = '''"""A module docstring."""
# a comment
LIMIT = 3


class Box:
    """A class docstring."""

    def size(self, items):
        """A method docstring."""
        total = len(items)  # a trailing comment
        return min(total, LIMIT)


async def fetch():
    """Only a docstring."""


def message():
    return "not a docstring"
'''
PROSE_EDITS = (("A module docstring.", "Reworded."), ("# a comment", "# another comment\n\n"),
               ("A class docstring.", "Two\n    lines."), ('"""A method docstring."""', "'single quotes'"),
               ("  # a trailing comment", ""), ("Only a docstring.", "Still only prose."))
CODE_EDITS = (("LIMIT = 3", "LIMIT = 4"), ("total", "count"), ("return min", "items = items[1:]\n        return min"),
              ("not a docstring", "another message"), ('"""Only a docstring."""', "return 1"))


def test_the_key_ignores_prose_and_sees_every_change_to_code(tmp_path, monkeypatch):
    """Docstrings (of the module, a class, a method, a function that is only a docstring), comments and
    blank lines do not re-key; a constant, a renamed name, an added statement or a string that is not
    a docstring does."""
    copy = tmp_path / "sae_lite"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE", copy)
    toy = copy / "data" / "toy.py"
    toy.write_text(TOY)
    before = cache.result_code_hash()
    prose = TOY
    for old, new in PROSE_EDITS:
        assert old in prose
        prose = prose.replace(old, new)
    toy.write_text(prose)
    errors = copy / "errors.py"
    errors.write_text(errors.read_text().replace('"""', '"""Reworded: ', 1) + "\n# a closing comment\n")
    assert cache.result_code_hash() == before
    toy.write_text(TOY)
    for old, new in CODE_EDITS:
        assert old in TOY
        toy.write_text(TOY.replace(old, new))
        assert cache.result_code_hash() != before, f"{old!r} -> {new!r} left the key equal"


def imports(path: Path) -> set[str]:
    """The sae_lite modules ``path`` imports, at its top and inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sae_lite"):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("sae_lite")}
    return found


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (a package's __init__.py), or None if it is not a module."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_key_covers_every_module_a_run_imports():
    """What trains, evaluates and writes a run (and makes its data) imports only code inside the key."""
    covered = set(cache.source_files(cache.RESULT_CODE))
    todo = [PACKAGE / name for name in ("core/train.py", "evaluation/metrics.py", "evaluation/probes.py",
                                        "evaluation/runs.py", "evaluation/card.py", "data/catalog.py")]
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [file for file in map(module_file, imports(path)) if file]
    outside = sorted(str(p.relative_to(PACKAGE)) for p in seen - covered)
    assert not outside, f"imported by a run but not in the cache key: {outside}"
    assert len(seen) > 15


def test_the_key_parses_each_source_text_once(monkeypatch):
    """Every run's cache key asks for the code hash: a second ask reads the files but parses none."""
    cache.result_code_hash()
    parsed = []
    monkeypatch.setattr(cache, "code_of", lambda source: parsed.append(source) or "")
    cache.result_code_hash()
    assert parsed == []
    cache.code_digest(b"x = 1  # a source text not seen before\n")
    assert len(parsed) == 1
