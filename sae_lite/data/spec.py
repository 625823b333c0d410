"""The data spec: which data set a run trains on (a name for `sae_lite.data.catalog.load`, with its
keyword arguments) and how it is split into train and test, as one hashable value.

Its JSON form (`DataSpec.to_dict`, read back by `DataSpec.from_dict`) is what a run directory's
config.json holds under ``data`` and its evaluation.json under ``computed_on.data``; the results
cache hashes it. These two methods are the only conversion between the value and its JSON.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sae_lite.errors import SaeLiteError

#: A keyword argument's value: a JSON scalar, or a tuple of them (a JSON list).
Value = str | int | float | bool | None | tuple


@dataclass(frozen=True)
class DataSpec:
    """A data set by ``name`` with its ``kwargs`` (given as pairs or a mapping, held as sorted (key,
    value) pairs with lists as tuples), split with ``test_fraction`` held out by ``split_seed``.
    Equal specs name the same split."""

    name: str
    test_fraction: float = 0.2
    split_seed: int = 0
    kwargs: tuple[tuple[str, Value], ...] = ()

    def __post_init__(self) -> None:
        pairs = self.kwargs.items() if isinstance(self.kwargs, Mapping) else self.kwargs
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "kwargs", tuple(sorted((str(key), _frozen(value)) for key, value in pairs)))

    @property
    def options(self) -> dict[str, Value]:
        """The keyword arguments of `sae_lite.data.catalog.load`."""
        return dict(self.kwargs)

    def to_dict(self) -> dict:
        """The JSON form: ``{"name", "test_fraction", "split_seed", "kwargs": {...}}``."""
        return {"name": self.name, "test_fraction": self.test_fraction, "split_seed": self.split_seed,
                "kwargs": {key: _plain(value) for key, value in self.kwargs}}

    @classmethod
    def from_dict(cls, record: Mapping) -> DataSpec:
        """The spec in ``record``: a `to_dict`, or a run's data record (config.json's ``data``, which adds
        the data set's size and meta). Raises SaeLiteError when ``record`` holds no spec."""
        kwargs = record.get("kwargs", {}) if isinstance(record, Mapping) else None
        if not isinstance(kwargs, Mapping) or not isinstance(record.get("name"), str):
            raise SaeLiteError(f"{record!r} is not a data spec (a name and a table of keyword arguments)")
        return cls(record["name"], record.get("test_fraction", 0.2), record.get("split_seed", 0), kwargs)


def data_spec(name: str | os.PathLike, test_fraction: float = 0.2, split_seed: int = 0, **kwargs: Value) -> DataSpec:
    """The spec of the data set ``name`` (a catalog name or a store's directory) loaded with ``kwargs``."""
    return DataSpec(str(name), test_fraction, split_seed, kwargs)


def as_spec(data: str | os.PathLike | Mapping | DataSpec, test_fraction: float = 0.2, split_seed: int = 0) -> DataSpec:
    """``data`` as a spec: a spec as it is, a mapping read by `DataSpec.from_dict`, a name (or a store's
    directory) split by ``test_fraction`` and ``split_seed``."""
    if isinstance(data, DataSpec):
        return data
    if isinstance(data, Mapping):
        return DataSpec.from_dict(data)
    return data_spec(data, test_fraction, split_seed)


def _frozen(value):
    """``value`` with every list as a tuple (hashable); a mapping is refused."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, Mapping):
        raise SaeLiteError(f"a data spec's keyword argument must be a number, a string or a list, not {value!r}")
    return value


def _plain(value):
    """``value`` with every tuple as a list (its JSON form)."""
    return [_plain(item) for item in value] if isinstance(value, tuple) else value
