"""The chapters: one MyST-Markdown source each (notebooks/*.md), paired with the .ipynb that nbmake
runs, the book builds and Colab opens. A pair that drifts apart fails here: run
``jupytext --sync notebooks/*.md`` after editing a chapter's .md outside Jupyter."""

from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.md"))


def cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def drift(source: Path) -> list[str]:
    """Where the .md and its .ipynb disagree (empty when they are in sync)."""
    pair = source.with_suffix(".ipynb")
    if not pair.is_file():
        return [f"{pair.name} is missing"]
    text, notebook = cells(jupytext.read(source)), cells(nbformat.read(pair, as_version=4))
    if len(text) != len(notebook):
        return [f"{source.name} has {len(text)} cells, {pair.name} {len(notebook)}"]
    return [f"cell {i}: {kind} differs" for i, ((kind, a), (_, b)) in enumerate(zip(text, notebook)) if a != b]


def test_every_chapter_has_one_source_and_its_notebook():
    assert len(SOURCES) >= 11
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == [p.stem for p in SOURCES]
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    listed = {chapter["file"] for part in toc["parts"] for chapter in part["chapters"]}
    assert {f"notebooks/{p.stem}" for p in SOURCES} <= listed


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_notebook_matches_its_source(source):
    assert drift(source) == []


def test_a_drifted_pair_is_caught(tmp_path):
    source = tmp_path / "chapter.md"
    source.write_text(SOURCES[0].read_text())
    nbformat.write(jupytext.read(source), tmp_path / "chapter.ipynb")
    assert drift(source) == []
    source.write_text(SOURCES[0].read_text().replace("# 0. Setup and data", "# 0. Setup and data, edited"))
    assert drift(source) == ["cell 0: markdown differs"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_notebook_is_committed_without_outputs_and_installs_the_package_first(source):
    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert 'find_spec("sae_lite") is None' in code[0].source and "%pip install" in code[0].source


def structure(text: str) -> list[str]:
    """What a chapter's source lacks of a textbook chapter (empty when it has it all)."""
    missing = []
    if ":::{admonition} Learning objectives" not in text:
        missing.append("learning objectives")
    if "boxes.show_takeaway(" not in text.split("## What to take away", 1)[-1] or "## What to take away" not in text:
        missing.append("a closing 'What to take away' box")
    exercises = text.count("**Exercise ")
    hidden = text.count(":::{admonition} Solution\n:class: dropdown")
    if exercises == 0:
        missing.append("exercises")
    if hidden < exercises:
        missing.append(f"a hidden solution for each exercise ({hidden} of {exercises})")
    return missing


#: Lab-notebook text that does not belong in a chapter: how the code came about, not what it teaches.
LAB_NOTEBOOK = {
    "an issue number": r"(?i)\bissues? #?\d+\b",
    "a source line number": r"\bL\d{2,}(-\d+)?\b",  # L74-90; not the L1 penalty or the L0 count
    "a commit hash": r"(?i)\bcommit [0-9a-f]{7,40}\b",
    "the text we could read": r"(?i)text we could read",
    "an earlier variant's story": r"(?i)\bour earlier variant\b",
    "a build machine's path": r"/(work|home|root|tmp)/[\w.-]+/",
}


def lab_notebook(text: str) -> list[str]:
    import re

    return [name for name, pattern in LAB_NOTEBOOK.items() if re.search(pattern, text)]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_chapter_teaches_as_a_textbook_chapter(source):
    text = source.read_text()
    assert structure(text) == []
    assert lab_notebook(text) == []


def test_a_chapter_without_its_parts_or_with_lab_notebook_text_is_caught():
    text = SOURCES[1].read_text()
    assert structure(text) == [] and lab_notebook(text) == []
    no_box = text.replace("boxes.show_takeaway(", "print(")
    assert structure(no_box) == ["a closing 'What to take away' box"]
    shown = text.replace(":::{admonition} Solution\n:class: dropdown", ":::{admonition} Solution\n:class: note", 1)
    assert structure(shown)[0].startswith("a hidden solution for each exercise")
    assert structure(text.replace(":::{admonition} Learning objectives", ":::{note}")) == ["learning objectives"]
    for planted in ("as the notes of issue 16 say", "(`soft_sae.py` L74-90)", "the text we could read",
                    "at commit 2fecc3b", "in /work/main/.cache/runs"):
        assert lab_notebook(text + planted), planted
