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
