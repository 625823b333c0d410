"""Help that helps: every default shown once, the choices listed, the environment named, the scripts' options explained."""

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sae_lite.cli import build_parser
from sae_lite.core import penalties, rules

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def help_text(*argv) -> str:
    parser = build_parser()
    for name in argv:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser.format_help()


def options(text: str) -> dict[str, str]:
    """{option: its help text, joined over lines} from an argparse help page."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^  (-[-\w]+|-\w, --[-\w]+)(?: [A-Z_|a-z-]+)?(?:\s{2,}(.*))?$", line)
        if match:
            current = match.group(1).split(", ")[-1]
            entries[current] = match.group(2) or ""
        elif current and line.startswith(" " * 10):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {key: " ".join(value.split()) for key, value in entries.items()}


def test_train_help_shows_every_default_once():
    parser = build_parser()
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    shown = options(train.format_help())
    for action in train._actions:
        flag = action.option_strings[-1] if action.option_strings else None
        if flag is None or flag == "--help":
            continue
        text = shown[flag]
        assert "(default: None)" not in text and text.count("default") <= 1, (flag, text)
        if action.default not in (None, False, True) and not action.required:
            assert re.search(r"default:? ", text), f"{flag} shows no default: {text}"
    assert "(default: planted)" in shown["--data"]
    assert "(default: 0.2)" in shown["--test-fraction"] and "(default: 0)" in shown["--split-seed"]
    assert "(default: 500)" in shown["--checkpoint-every"]
    assert shown["--k-aux"].endswith("(default: d // 2)")


def test_train_help_lists_the_choices_not_a_python_name():
    shown = options(help_text("train"))
    assert "SELECTIONS" not in shown["--activation"] and "sae_lite" not in shown["--activation"]
    for name in rules.names():
        assert name in shown["--activation"]
    for name in penalties.PENALTIES:
        assert name in shown["--penalty"]


@pytest.mark.parametrize("command", ["train", "evaluate", "embed", "reproduce", "bench"])
def test_no_default_none_and_no_backticks(command):
    text = help_text(command)
    assert "(default: None)" not in text and "`" not in text
    assert all(value for value in options(text).values()), "an option without help"


def test_top_level_help_names_the_environment():
    text = help_text()
    assert "`" not in text
    for variable in ("SAE_LITE_PROFILE", "SAE_LITE_DATA", "SAE_LITE_CACHE", "SAE_LITE_JOBS"):
        line = next(line for line in text.splitlines() if line.strip().startswith(variable))
        assert len(line.split()) > 3, f"{variable} is named but not explained"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_script_option_has_help(script):
    """Read from the source (the scripts import torch: running each --help would take seconds): every
    add_argument has a help text, and a script that reads its command line does so with argparse."""
    tree = ast.parse(script.read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    arguments = [call for call in calls if call.func.attr == "add_argument"]
    for call in arguments:
        helps = [k.value for k in call.keywords if k.arg == "help"]
        assert helps, f"{script.name}: {ast.unparse(call)} has no help"
        assert not isinstance(helps[0], ast.Constant) or helps[0].value, f"{script.name}: empty help"
    if "sys.argv" in script.read_text():
        assert any(call.func.attr == "ArgumentParser" for call in calls), f"{script.name} parses argv by hand"


def test_a_script_help_runs():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_figures.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    shown = options(done.stdout)
    assert done.returncode == 0 and "executed" in done.stdout and "pages" in done.stdout and shown["--help"]


def test_build_book_has_help():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build_book.sh"), "--help"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and "--no-install" in done.stdout and "SAE_LITE_PROFILE" in done.stdout
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build_book.sh"), "--bogus"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "--help" in done.stderr
