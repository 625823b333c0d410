"""Fail when a chapter's code cell that draws shows no image: in the executed notebooks, in the HTML.

    python scripts/check_figures.py _build/jupyter_execute/notebooks _build/html/notebooks

A code cell *draws* when its source calls matplotlib (``plt.``), one of the book's figure functions
(``plots.``, except the two that only name things: `NOT_DRAWING`) or ``Image(`` (a PNG shown by
IPython). Such a cell must have an image among its outputs in the executed notebook, and the same
cell of the HTML page must show an ``<img>`` inside its output whose file exists. Images outside a
cell's output (the launch buttons' logos, the theme's) never count. Prints one line per chapter
(drawing cells, cells with an image in the notebook, in the HTML) and exits 1 naming every silent
cell. The test command runs the notebook half on every chapter nbmake executes (``conftest.py``).
"""

from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat

#: Functions of `sae_lite.book.plots` that draw nothing (the rows a figure draws are in `sae_lite.book.rows`).
NOT_DRAWING = frozenset({"colour", "label"})
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
_CALL = re.compile(r"\b(plt|plots)\.(\w+)\s*\(|\bImage\s*\(")


def draws(source: str) -> bool:
    """True when a code cell's ``source`` calls a drawing function (see the module docstring)."""
    for match in _CALL.finditer(source):
        module, name = match.group(1), match.group(2)
        if module is None or module == "plt" or name not in NOT_DRAWING:
            return True
    return False


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def shows_image(cell: nbformat.NotebookNode) -> bool:
    """True when one of the cell's outputs holds an image."""
    return any(any(kind in output.get("data", {}) for kind in IMAGE_TYPES) for output in cell.get("outputs", []))


def silent_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices (among all cells) of the code cells that draw but show no image."""
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and draws(cell.source) and not shows_image(cell)]


class _CellImages(HTMLParser):
    """Per code cell of a Jupyter Book page (``div.cell``), the ``src`` of the images in its output."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[list[str]] = []
        self._stack: list[str] = []   # per open div: "cell", "output" or ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div":
            role = "cell" if "cell" in classes else "output" if "cell_output" in classes else ""
            if role == "cell" and "cell" not in self._stack:
                self.cells.append([])
            self._stack.append(role)
        elif tag == "img" and "cell" in self._stack and "output" in self._stack:
            self.cells[-1].append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._stack:
            self._stack.pop()


def html_cell_images(page: Path) -> list[list[str]]:
    """The image files (resolved, existing ones only) shown by each code cell's output on ``page``."""
    parser = _CellImages()
    parser.feed(page.read_text(encoding="utf-8"))
    return [[src for src in cell if src and (page.parent / src.split("#")[0]).is_file()] for cell in parser.cells]


def check_chapter(notebook: Path, page: Path | None = None) -> tuple[str, list[str]]:
    """(one summary line, the problems) for an executed ``notebook`` and its HTML ``page``."""
    nb = nbformat.read(notebook, as_version=4)
    cells = code_cells(nb)
    drawing = [i for i, cell in enumerate(cells) if draws(cell.source)]
    in_nb = [i for i in drawing if shows_image(cells[i])]
    problems = [f"{notebook.name}: code cell {i + 1} draws but its executed output holds no image"
                for i in drawing if i not in in_nb]
    line = f"{notebook.stem}: {len(drawing)} drawing cells, {len(in_nb)} with an image in the notebook"
    if page is not None:
        images = html_cell_images(page)
        if len(images) != len(cells):
            problems.append(f"{page.name}: {len(images)} code cells on the page but {len(cells)} in the notebook")
            images += [[]] * max(0, len(cells) - len(images))
        in_html = [i for i in drawing if images[i]]
        problems += [f"{page.name}: code cell {i + 1} draws but shows no image on the page"
                     for i in drawing if i not in in_html]
        line += f", {len(in_html)} in the HTML ({sum(map(len, images))} images in cell outputs)"
    return line, problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("executed", type=Path, help="the folder of executed notebooks (*.ipynb)")
    parser.add_argument("pages", type=Path, nargs="?", default=None,
                        help="the folder of their HTML pages (default: check the notebooks only)")
    args = parser.parse_args(argv)
    executed, pages = args.executed, args.pages
    notebooks = sorted(executed.glob("*.ipynb"))
    if not notebooks:
        print(f"check_figures: no executed notebooks in {executed}", file=sys.stderr)
        return 2
    problems = []
    for notebook in notebooks:
        page = None if pages is None else pages / f"{notebook.stem}.html"
        if page is not None and not page.is_file():
            problems.append(f"{notebook.name}: no page {page}")
            page = None
        line, found = check_chapter(notebook, page)
        print(line)
        problems += found
    for problem in problems:
        print(f"check_figures: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
