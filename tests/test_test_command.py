"""The test command's own set-up (the root conftest.py): how many processes run it."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
root_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(root_conftest)


@pytest.mark.parametrize("cores, processes", [(1, 1), (2, 2), (3, 3), (4, 4), (16, 4)])
def test_one_test_process_per_core_and_at_most_four(monkeypatch, cores, processes):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert root_conftest.pytest_xdist_auto_num_workers(config=None) == processes


def test_the_test_command_runs_in_parallel_processes():
    text = (ROOT / "pyproject.toml").read_text()
    assert "-n auto --dist worksteal" in text and '"pytest-xdist>=3.2"' in text
