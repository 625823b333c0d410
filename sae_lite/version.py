"""The package's version, on the ground floor so that any module can record it (``pyproject.toml``
states the same number)."""

__version__ = "0.1.0"
