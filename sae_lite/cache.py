"""Where results are cached, and the hash that ties a cached result to the code that computed it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE = Path(__file__).parent

#: The subpackages and modules whose code computes a run's result: the data (and the embedding that
#: makes the real data), the model and its training, the evaluation, and what they import beneath
#: them. Everything else (study/, book/, bench/, the command line) only orchestrates or presents.
RESULT_CODE = ("data", "core", "evaluation", "cache.py", "device.py", "errors.py", "files.py")


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


def source_hash(names: tuple[str, ...]) -> str:
    """A short hash of the source of `source_files` (``names``), their paths included."""
    digest = hashlib.sha256()
    for path in source_files(names):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def result_code_hash() -> str:
    """The hash of `RESULT_CODE`: part of every run's cache key."""
    return source_hash(RESULT_CODE)
