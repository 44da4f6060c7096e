"""The README's and the documentation's Python examples run, as written.

Every ```` ```python ```` block of `README.md` and of `docs/**/*.md` is
executed by Sybil, page by page, in the page's order and in one namespace per
page (a later block may use an earlier block's names, as a reader would).
A block that starts with `>>>` is a doctest: its printed output is compared
too. So a renamed argument or a changed result breaks the suite, not the
reader. One test per page, not per block: pytest-xdist may not split a
page's blocks across workers.

The figures of the documentation (`docs/_ext/jconv_figures.py`) are drawn
here too, into a temporary directory; `make docs` draws them for the site.
"""

import doctest
import re
import sys
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.myst import PythonCodeBlockParser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _pages():
    built = (DOCS / "_build", DOCS / "_generated")
    pages = [ROOT / "README.md"]
    pages += [
        page
        for page in sorted(DOCS.rglob("*.md"))
        if not any(page.is_relative_to(folder) for folder in built)
    ]
    return pages


PAGES = _pages()
SYBIL = Sybil(
    parsers=[
        PythonCodeBlockParser(
            doctest_optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        )
    ]
)
# A fence's opening or closing line, and a Python block's language under any
# of its usual names (MyST's `{code-block} python` too).
FENCE = re.compile(r"(`{3,}|~{3,})(.*)")
PYTHON = re.compile(r"(\{code(-block)?\}\s*)?(python3?|py|pycon|ipython)")


def _python_blocks(text: str) -> list[tuple[int, int]]:
    """The first and last line numbers (1-based) of each Python block."""
    blocks, fence, first, python = [], None, 0, False
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.fullmatch(line.strip())
        if match is None:
            continue
        marks, info = match.group(1), match.group(2).strip()
        if fence is None:
            fence, first = marks, number
            python = PYTHON.fullmatch(info) is not None
        elif marks[0] == fence[0] and len(marks) >= len(fence) and not info:
            if python:
                blocks.append((first, number))
            fence = None
    return blocks


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _examples(page: Path):
    return list(SYBIL.parse(page).examples())


PAGES_WITH_EXAMPLES = [page for page in PAGES if _examples(page)]


def test_every_page_is_read():
    names = {_name(page) for page in PAGES}
    assert {"README.md", "docs/index.md", "docs/getting-started.md"} <= names
    assert "docs/guide/functions.md" in names


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_python_block_is_run(page):
    """Sybil runs each Python block: none hides under a fence it skips."""
    lines = [example.line for example in _examples(page)]
    for first, last in _python_blocks(page.read_text()):
        assert any(first <= line <= last for line in lines), (
            f"{_name(page)}: the Python block at lines {first}-{last} is not run"
        )


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=_name)
def test_examples_run(page):
    for example in _examples(page):
        try:
            example.evaluate()
        except Exception as error:
            raise AssertionError(
                f"{_name(page)}, the block at line {example.line}: "
                f"{type(error).__name__}: {error}"
            ) from error


def test_figures_are_drawn(tmp_path):
    """Each figure is an SVG of its own, drawn from jconv's numbers."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import jconv_figures
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    paths = jconv_figures.write_figures(tmp_path)
    assert sorted(path.name for path in paths) == sorted(jconv_figures.FIGURES)
    for path in paths:
        text = path.read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text, path.name
    # What the tutorial's figure shows is conv2d's answer, not the document's.
    data = jconv_figures.tutorial_data()
    assert data["valid"].tolist() == [[56, 76], [175, 302]]
    rules = {row["rule"]: row for row in jconv_figures.padding_rule_data(5, 4, 1)}
    assert (rules["same"]["low"], rules["same"]["high"]) == (1, 2)
    assert (rules["same_lower"]["low"], rules["same_lower"]["high"]) == (2, 1)
    assert [rules[r]["out"] for r in jconv_figures.PADDING_RULES] == [2, 5, 5, 8, 5]
    modes = jconv_figures.padding_mode_data((1, 2, 3, 4, 5), 3)
    assert modes["reflect"].tolist() == [4, 3, 2, 1, 2, 3, 4, 5, 4, 3, 2]
    assert modes["circular"].tolist() == [3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3]
