"""Where results are cached, and the hash that ties a cached result to the code that computed it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE = Path(__file__).parent


def cache_dir() -> Path:
    """Where cached runs and stores live: ``SAE_LITE_CACHE`` if set, else ``.cache/sae-lite`` at the root
    of the source checkout the package runs from (whatever the working directory, so a notebook executed
    in ``notebooks/`` and the book build share it), else under the working directory."""
    if os.environ.get("SAE_LITE_CACHE"):
        return Path(os.environ["SAE_LITE_CACHE"])
    root = PACKAGE.parent
    return (root if (root / "pyproject.toml").is_file() else Path.cwd()) / ".cache" / "sae-lite"


def source_hash(modules: tuple[str, ...]) -> str:
    """A short hash of the source of the package's ``modules`` (file names in ``sae_lite/``)."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode() + (PACKAGE / name).read_bytes())
    return digest.hexdigest()[:16]
