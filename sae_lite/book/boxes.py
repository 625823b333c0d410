"""The chapters' boxes, as MyST admonitions shown in a notebook: a claim's verdict and its parts (`box`), what
was measured (`measured_markdown`), and the "What to take away" box that ends every chapter (`takeaway`)."""

from __future__ import annotations

from sae_lite.study.claims import to_markdown, verdict_text
from sae_lite.study.stats import plus_minus


def box(results: list[dict], title: str = "What the paper claims / what we measured") -> str:
    """`to_markdown` inside a MyST admonition: the chapters' claim box (rendered by the book).

    Raises ``ValueError`` on no results: the rows held none of the claim's (treatment, control) pairs,
    and an empty box would be a silent hole in the chapter (and a Sphinx error in the book).
    """
    if not results:
        raise ValueError("no claim could be judged: the rows hold none of its (treatment, control) pairs")
    return f":::{{admonition}} {title}\n:class: important\n\n{to_markdown(results)}\n:::\n"


def show(results: list[dict]) -> None:
    """Display the claim `box` of ``results`` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(box(results)))


def measured_markdown(summary: dict, title: str) -> str:
    """A `box` of one `sae_lite.study.stats.summarize` entry: every metric as mean ± std over n seeds
    (`plus_minus`: the spread of one seed is not measured and reads n/a, not 0)."""
    metrics = [key[:-5] for key in summary if key.endswith("_mean")]
    rows = [f"| {m} | {plus_minus(summary[m + '_mean'], summary[m + '_std'], summary['n'])} |" for m in metrics]
    return (f":::{{admonition}} What we measured: {title}\n:class: important\n\n"
            f"Mean ± std over {summary['n']} seed(s).\n\n| metric | value |\n|---|---|\n" + "\n".join(rows) + "\n:::\n")


def show_measured(summary: dict, title: str) -> None:
    """Display `measured_markdown` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(measured_markdown(summary, title)))


def takeaway(points: list[str], results: list[dict] = ()) -> str:
    """The "What to take away" box that ends a chapter: its fixed ``points``, then each claim of ``results``
    (`sae_lite.study.claims.evaluate_claims`) with the verdict this build measured on each data set."""
    if not points:
        raise ValueError("a take-away box needs at least one point")
    lines = [f"- {point}" for point in points]
    if results:
        lines += ["", "Measured in this build:", ""]
        lines += [f"- `{r['claim']}` on `{r['data']}`: **{verdict_text(r)}**" for r in results]
    return ":::{admonition} What to take away\n:class: tip\n\n" + "\n".join(lines) + "\n:::\n"


def show_takeaway(points: list[str], results: list[dict] = ()) -> None:
    """Display the `takeaway` box in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(takeaway(points, results)))
