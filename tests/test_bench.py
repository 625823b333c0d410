"""The benchmark runs end to end on a tiny size: a header line, then the summary line with a vs_<peer> for
every peer (no timing is asserted); the peers' scripts run in their own environments when those exist."""

import json
import re
import subprocess

import pytest
import torch

from sae_lite.bench import bench
from sae_lite.cli import main

SUMMARY = re.compile(r"^size=d16_n64_k4 base/bound=\S+ off/bound=\S+ ratio/bound=\S+ auxk/bound=\S+ "
                     r"vs_overcomplete=\S+ vs_sparsify=\S+ vs_saelens=\S+$")
TINY = ["bench", "--size", "16,64,4,32", "--repeats", "1", "--warmup", "0"]


def _missing(tmp_path):
    return [arg for name in bench.PEERS for arg in ("--peer-python", f"{name}={tmp_path / name / 'python'}")]


def test_bench_prints_a_header_and_one_summary_line_per_size(capsys):
    assert main(TINY + ["--no-peer", "--dense", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert SUMMARY.match(lines[-1]) and lines[-1].endswith("vs_overcomplete=n/a vs_sparsify=n/a vs_saelens=n/a")
    assert lines[-2] == bench.header(torch.device("cpu"), 1, 0)
    assert any(line.split()[0] == "dense" for line in lines)


def test_header_names_the_cpu_threads_torch_and_repeats():
    line = bench.header(torch.device("cpu"), 5, 1)
    assert bench.cpu_model() in line and f"threads={torch.get_num_threads()}" in line
    assert f"torch {torch.__version__}" in line and "device=cpu" in line and "median of 5" in line
    cpuinfo = bench.Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        model = next(row for row in cpuinfo.read_text().splitlines() if row.startswith("model name"))
        assert bench.cpu_model() == model.split(":", 1)[1].strip()


def test_summary_ratios_and_every_peer():
    medians = {"bound": 2.0, "base": 3.0, "off": 4.0, "ratio": 5.0, "auxk": 6.0, "overcomplete": 9.0, "saelens": 30.0}
    line = bench.summary(bench.Size(768, 16384, 64, 4096), medians)
    assert line == ("size=d768_n16384_k64 base/bound=1.50 off/bound=2.00 ratio/bound=2.50 auxk/bound=3.00 "
                    "vs_overcomplete=3.00 vs_sparsify=n/a vs_saelens=10.00")


def test_a_peer_time_reaches_its_summary_field(monkeypatch, tmp_path, capsys):
    python = tmp_path / "python"
    python.touch()
    seen = []

    def fake_peer(name, size, device, repeats, warmup, python):
        seen.append(name)
        return f"fake {name}", [1000.0]

    monkeypatch.setattr(bench, "peer", fake_peer)
    assert main(TINY + ["--peer-python", f"sparsify={python}"] + _missing(tmp_path)[:2]
                + ["--peer-python", f"saelens={tmp_path / 'none'}"]) == 0
    out = capsys.readouterr().out
    assert seen == ["overcomplete", "sparsify", "saelens"]
    summary = dict(part.split("=") for part in out.strip().splitlines()[-1].split()[1:])
    assert float(summary["vs_sparsify"]) > 1 and float(summary["vs_saelens"]) > 1 and "(fake sparsify)" in out


@pytest.mark.parametrize("size", ["16,64,64,32", "16,64", "a,b,c,d", "0,64,4,32"])
def test_bad_size_is_refused(size, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--size", size])
    assert "a size" in capsys.readouterr().err


def test_unknown_peer_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(TINY + ["--peer-python", "sklearn=/usr/bin/python3"])
    assert "unknown peer" in capsys.readouterr().err


def test_missing_peer_envs_are_reported(tmp_path, capsys):
    assert main(TINY + _missing(tmp_path)) == 0
    out = capsys.readouterr().out
    assert all(f"no {name} peer" in out for name in bench.PEERS)
    assert out.strip().splitlines()[-1].endswith("vs_overcomplete=n/a vs_sparsify=n/a vs_saelens=n/a")


def test_bad_repeats_or_threads_are_refused(capsys):
    assert main(["bench", "--size", "16,64,4,32", "--threads", "0", "--no-peer"]) == 2
    assert main(["bench", "--size", "16,64,4,32", "--repeats", "0", "--no-peer"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(bench.PEERS))
def test_peer_script_in_its_environment(name):
    """Where a peer's environment exists (scripts/bench_env.sh), its script times a tiny step."""
    python = bench.PEERS[name].default_python()
    if not python.is_file():
        pytest.skip(f"no {python}")
    command = [str(python), str(bench.Path(bench.__file__).with_name(bench.PEERS[name].script)), "--d", "8",
               "--n", "32", "--k", "2", "--batch", "4", "--repeats", "1", "--warmup", "0", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["times"]) == 1 and result["peer"]


def test_peer_scripts_import_nothing_from_sae_lite():
    """They run in the peers' environments, where sae_lite is not installed."""
    for peer in bench.PEERS.values():
        source = bench.Path(bench.__file__).with_name(peer.script).read_text()
        assert not re.search(r"^\s*(from|import)\s+sae_lite", source, flags=re.M), peer.script
