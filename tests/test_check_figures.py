"""The guard that every chapter cell that draws shows an image (scripts/check_figures.py, conftest.py)."""

import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_figures", ROOT / "scripts" / "check_figures.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

PNG = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
TEXT = {"output_type": "stream", "name": "stdout", "text": "done\n"}


def notebook(*cells: tuple[str, list]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter")]
    for source, outputs in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        nb.cells.append(cell)
    return nb


def test_a_cell_draws_when_it_calls_matplotlib_a_figure_function_or_shows_a_png():
    assert check.draws("fig, ax = plt.subplots()")
    assert check.draws('plots.band(rows, "k", "r2");')
    assert check.draws("display(Image(filename=str(path)))")
    assert not check.draws('walk = long(rows, "r2_x", "k_factor", "r2")')   # computes rows only
    assert not check.draws('widgets.explore(history_rows(rows), x="step", y="fvu", slider="k")')
    assert not check.draws('print(plots.label("r2"))')
    assert not check.draws("from IPython.display import Image, display")


def test_a_drawing_cell_without_an_image_output_is_silent():
    nb = notebook(("plots.band(rows, 'k', 'r2')", [TEXT]), ("plots.bars(rows, ['r2'])", [PNG]),
                  ("print(1)", []))
    assert check.silent_cells(nb) == [1]   # cell 0 is the markdown title


def page(tmp_path: Path, outputs: list[str]) -> Path:
    """A Jupyter Book page: launch-button logos in the header, then one div.cell per output given."""
    (tmp_path / "_images").mkdir(exist_ok=True)
    (tmp_path / "_images" / "fig.png").write_bytes(b"\x89PNG")
    (tmp_path / "_static").mkdir(exist_ok=True)
    (tmp_path / "_static" / "colab.png").write_bytes(b"\x89PNG")
    header = '<div class="header"><img src="_static/colab.png"/><img src="_static/colab.png"/></div>'
    cells = "".join(f'<div class="cell docutils container"><div class="cell_input docutils container">'
                    f'<pre>code</pre></div><div class="cell_output docutils container">{body}</div></div>'
                    for body in outputs)
    path = tmp_path / "chapter.html"
    path.write_text(f"<html><body>{header}<main>{cells}</main></body></html>")
    return path


def test_the_page_check_counts_only_images_in_cell_outputs_that_exist(tmp_path):
    images = check.html_cell_images(page(tmp_path, ['<img src="_images/fig.png"/>', "<pre>text</pre>",
                                                    '<img src="_images/missing.png"/>']))
    assert images == [["_images/fig.png"], [], []]


def test_a_chapter_whose_page_shows_only_logos_fails(tmp_path):
    nb = notebook(("plots.band(rows, 'k', 'r2')", [PNG]))
    nbformat.write(nb, tmp_path / "chapter.ipynb")
    line, problems = check.check_chapter(tmp_path / "chapter.ipynb", page(tmp_path, ["<pre>text</pre>"]))
    assert problems == ["chapter.html: code cell 1 draws but shows no image on the page"]
    line, problems = check.check_chapter(tmp_path / "chapter.ipynb", page(tmp_path, ['<img src="_images/fig.png"/>']))
    assert problems == [] and "1 drawing cells, 1 with an image in the notebook, 1 in the HTML" in line


SILENT = """import matplotlib.pyplot as plt
plt.plot([0, 1], [1, 0]);"""


@pytest.mark.parametrize("backend, fails", [("Agg", True), (None, False)])
def test_the_test_command_fails_on_a_chapter_with_a_silent_plot(pytester, monkeypatch, backend, fails):
    """nbmake under this repository's conftest: with MPLBACKEND=Agg exported the kernel never installs
    IPython's inline backend, the plot is silent and the notebook fails; with the inline backend it passes."""
    shutil.copy(ROOT / "conftest.py", pytester.path / "conftest.py")
    for folder, name in (("scripts", "check_figures.py"), ("book/_ext", "nbclient_poll.py")):
        (pytester.path / folder).mkdir(parents=True)
        shutil.copy(ROOT / folder / name, pytester.path / folder / name)
    nb = notebook((SILENT, []))
    nbformat.write(nb, pytester.path / "chapter.ipynb")
    if backend:
        monkeypatch.setenv("MPLBACKEND", backend)
    else:
        monkeypatch.delenv("MPLBACKEND", raising=False)
    result = pytester.runpytest_subprocess("--nbmake", "-p", "no:cacheprovider", "--nbmake-timeout=120",
                                           "chapter.ipynb")
    outcomes = result.parseoutcomes()
    if fails:
        assert outcomes.get("failed") == 1 and "passed" not in outcomes, outcomes
        result.stdout.fnmatch_lines(["*draw but show no image*"])
    else:
        assert outcomes.get("passed") == 1 and "failed" not in outcomes, outcomes
