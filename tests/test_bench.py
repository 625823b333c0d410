"""The benchmark runs end to end on a tiny size and ends with the summary line (no timing is asserted)."""

import re

import pytest

from sae_lite.bench import bench
from sae_lite.cli import main

SUMMARY = re.compile(r"^size=d16_n64_k4 base/bound=\S+ off/bound=\S+ ratio/bound=\S+ auxk/bound=\S+ vs_peer=\S+$")


def test_bench_prints_one_summary_line_per_size(capsys):
    assert main(["bench", "--size", "16,64,4,32", "--repeats", "1", "--warmup", "0", "--no-peer", "--dense"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert SUMMARY.match(lines[-1]) and lines[-1].endswith("vs_peer=n/a")
    assert any(line.split()[0] == "dense" for line in lines)


def test_summary_ratios():
    medians = {"bound": 2.0, "base": 3.0, "off": 4.0, "ratio": 5.0, "auxk": 6.0, "peer": 9.0}
    line = bench.summary(bench.Size(768, 16384, 64, 4096), medians)
    assert line == "size=d768_n16384_k64 base/bound=1.50 off/bound=2.00 ratio/bound=2.50 auxk/bound=3.00 vs_peer=3.00"


@pytest.mark.parametrize("size", ["16,64,64,32", "16,64", "a,b,c,d", "0,64,4,32"])
def test_bad_size_is_refused(size, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--size", size])
    assert "a size" in capsys.readouterr().err


def test_missing_peer_env_is_reported(tmp_path, capsys):
    assert main(["bench", "--size", "16,64,4,32", "--repeats", "1", "--warmup", "0",
                 "--peer-python", str(tmp_path / "none" / "python")]) == 0
    assert "no peer" in capsys.readouterr().out


def test_bad_repeats_or_threads_are_refused(capsys):
    assert main(["bench", "--size", "16,64,4,32", "--threads", "0", "--no-peer"]) == 2
    assert main(["bench", "--size", "16,64,4,32", "--repeats", "0", "--no-peer"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
