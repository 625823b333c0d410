"""The data spec is one typed value: hashable, with one JSON form that config.json, evaluation.json
and the results cache's key all use."""

import hashlib
import json

import pytest

from sae_lite.cache import result_code_hash
from sae_lite.core.config import TrainConfig
from sae_lite.data.spec import DataSpec, as_spec, data_spec
from sae_lite.errors import SaeLiteError
from sae_lite.study import results


def test_a_spec_round_trips_through_its_json_form():
    spec = data_spec("planted", 0.25, 3, n=512, rate_range=(0.5, 8.0))
    stored = json.loads(json.dumps(spec.to_dict()))
    assert stored == {"name": "planted", "test_fraction": 0.25, "split_seed": 3,
                      "kwargs": {"n": 512, "rate_range": [0.5, 8.0]}}
    assert DataSpec.from_dict(stored) == spec and hash(DataSpec.from_dict(stored)) == hash(spec)
    assert {spec: 1}[DataSpec.from_dict(stored)] == 1                      # usable as a key
    assert data_spec("planted", n=1, seed=2) == data_spec("planted", seed=2, n=1)   # order of kwargs ignored
    assert spec.options == {"n": 512, "rate_range": (0.5, 8.0)}


def test_a_run_data_record_reads_as_its_spec():
    """config.json's data record adds the data set's size and meta; the spec ignores them."""
    spec = data_spec("digits", split_seed=1)
    record = {**spec.to_dict(), "dataset": "digits", "d": 64, "n_train": 1437, "n_test": 360, "meta": {}}
    assert DataSpec.from_dict(record) == spec and as_spec(record) == spec
    assert as_spec("digits", split_seed=1) == spec and as_spec(spec) is spec
    assert DataSpec.from_dict({"name": "digits"}) == data_spec("digits")     # the default split
    for bad in ({"kwargs": {}}, {"name": "digits", "kwargs": [1]}, ["digits"]):
        with pytest.raises(SaeLiteError, match="not a data spec"):
            DataSpec.from_dict(bad)
    with pytest.raises(SaeLiteError, match="keyword argument"):
        data_spec("planted", options={"n": 1})


def test_the_cache_key_hashes_the_spec_json_as_before():
    """The key of a run hashes the spec's JSON form: the same key as the untyped dict it replaced."""
    config, spec = TrainConfig(k=4), data_spec("planted", n=1024)
    legacy = {"name": "planted", "test_fraction": 0.2, "split_seed": 0, "kwargs": {"n": 1024}}
    blob = json.dumps({"train": config.to_dict(), "data": legacy, "code": result_code_hash()}, sort_keys=True)
    assert results.config_hash(config, spec) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert results.config_hash(config, data_spec("planted", n=1024, split_seed=1)) != results.config_hash(config, spec)
