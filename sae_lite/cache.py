"""Where results are cached, the hash that ties a cached result to the code (not the prose) that computed it, and how an
entry is shared and healed.

Two processes that want the same entry take turns (`entry_lock`: the second waits, then loads what
the first wrote); an entry found damaged is moved aside with one warning (`set_aside`) and computed
again.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX (Windows): entries are not locked
    fcntl = None

PACKAGE = Path(__file__).parent

#: The subpackages and modules whose code computes a run's result: the data (and the embedding that
#: makes the real data), the model and its training, the evaluation, and what they import beneath
#: them (the version is written into every run). Everything else (study/, book/, bench/, the command
#: line) only orchestrates or presents.
RESULT_CODE = ("data", "core", "evaluation", "cache.py", "device.py", "errors.py", "files.py", "version.py")


def cache_dir() -> Path:
    """Where cached runs and stores live: ``SAE_LITE_CACHE`` if set, else ``.cache/sae-lite`` at the root
    of the source checkout the package runs from (whatever the working directory, so a notebook executed
    in ``notebooks/`` and the book build share it), else under the working directory."""
    if os.environ.get("SAE_LITE_CACHE"):
        return Path(os.environ["SAE_LITE_CACHE"])
    root = PACKAGE.parent
    return (root if (root / "pyproject.toml").is_file() else Path.cwd()) / ".cache" / "sae-lite"


def source_files(names: tuple[str, ...]) -> list[Path]:
    """The package's ``.py`` files named by ``names``: modules (``cache.py``) or subpackages (``data``)."""
    files = []
    for name in names:
        path = PACKAGE / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def without_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstring (a leading string-expression statement) of its module, classes and
    functions removed, in place (the tree is for hashing: a body may be left empty)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:]
    return tree


def code_of(source: str | bytes) -> str:
    """What ``source`` computes, as text: the dump of its syntax tree without docstrings. Comments,
    blank lines and layout are not in the tree (nor are line numbers in the dump), so an edit to prose
    leaves it equal; any change to code (a constant, a name, a statement) changes it. The dump's form is
    the running Python's, the same in every run of one interpreter."""
    return ast.dump(without_docstrings(ast.parse(source)))


@functools.cache
def code_digest(source: bytes) -> bytes:
    """The sha256 of `code_of` ``source``, kept per source text: every run's cache key asks for it,
    and parsing the result code is far slower than reading it."""
    return hashlib.sha256(code_of(source).encode()).digest()


def source_hash(names: tuple[str, ...]) -> str:
    """A short hash of the code of `source_files` (``names``, see `code_of`), their paths included."""
    digest = hashlib.sha256()
    for path in source_files(names):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + code_digest(path.read_bytes()))
    return digest.hexdigest()[:16]


def result_code_hash() -> str:
    """The hash of `RESULT_CODE`: part of every run's cache key."""
    return source_hash(RESULT_CODE)


@contextmanager
def entry_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the cache entry ``path`` for this process: an exclusive ``flock`` on the file
    ``<path>.lock`` beside it, which another process wanting the same entry waits for.

    The lock is released when the block ends or the process dies (SIGKILL included); the lock file
    stays. POSIX only: where ``fcntl`` is missing, nothing is locked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


def set_aside(path: str | os.PathLike, error: Exception) -> Path:
    """Move the damaged cache entry ``path`` to ``<path>.damaged-<UTC time>`` (kept, not deleted) and
    say so in one warning line (a ``UserWarning``); returns where it went. Call it holding `entry_lock`."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    path.rename(aside)
    warnings.warn(f"damaged cache entry: {error}; moved it to {aside} and computing it again", stacklevel=3)
    return aside


def remove_leftovers(path: str | os.PathLike) -> None:
    """Remove what a killed writer of the cache entry ``path`` left: the temporary siblings
    ``.<entry>.*`` of `sae_lite.files.write_dir`. Call it holding `entry_lock` (no live writer then)."""
    path = Path(path)
    for leftover in path.parent.glob(f".{path.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
