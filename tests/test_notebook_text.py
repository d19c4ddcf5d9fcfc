"""How much the notebooks ask a student to read, and what they show (helpers.notebook_stats).

- no markdown cell runs over 25 lines, apart from the end-of-notebook questions;
- no notebook holds more than 4,000 words of markdown;
- every notebook opens with a five-line "what you will see and do" summary;
- each of the course's diagrams is embedded in a notebook, through the raw GitHub URL that Colab can show;
- no notebook embeds an image by a relative path, which Colab cannot follow.
"""

import re

import pytest

from helpers import colab
from helpers import notebook_stats as ns

NOTEBOOKS = sorted(ns.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
DIAGRAMS = ("cyclegan", "patchgan", "agegan", "cdcgan")


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_markdown_cell_over_25_lines_except_the_questions(path):
    s = ns.notebook_stats(path)
    assert not s.long_cells, (f"{path.name}: markdown cells over {ns.MAX_CELL_LINES} lines "
                              f"(cell index, lines): {s.long_cells}; split them or fold measurements into <details>")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_over_4000_words_of_markdown(path):
    s = ns.notebook_stats(path)
    assert s.words <= ns.MAX_WORDS, f"{path.name}: {s.words:,} words of markdown (at most {ns.MAX_WORDS:,})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_opens_with_a_five_line_summary(path):
    s = ns.notebook_stats(path)
    assert s.summary is not None, f"{path.name}: cell 0 has no {ns.SUMMARY_HEADING} block"
    assert len(s.summary) == ns.SUMMARY_LINES, f"{path.name}: the summary has {len(s.summary)} lines, not five"


@pytest.mark.parametrize("name", DIAGRAMS)
def test_each_diagram_exists_and_is_embedded_by_its_raw_url(name):
    assert (ns.ROOT / "imgs" / f"diagram_{name}.png").is_file(), f"run `python -m helpers.diagrams`"
    url = f"https://raw.githubusercontent.com/{colab.REPO}/{colab.BRANCH}/imgs/diagram_{name}.png"
    shown_in = [p.name for p in NOTEBOOKS if any(url in s for _, s in ns.markdown_cells(p))]
    assert shown_in, f"diagram_{name}.png is not embedded with {url} in any notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_image_by_a_relative_path(path):
    for i, s in ns.markdown_cells(path):
        relative = re.findall(r"!\[[^\]]*\]\((?!https?://)([^)]+)\)|<img[^>]*src=\"(?!https?://)([^\"]+)\"", s)
        assert not relative, f"{path.name} cell {i}: images by relative path do not show on Colab: {relative}"


def test_stats_count_words_lines_and_diagrams(tmp_path):
    import json

    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# T\n\n**What you will see and do**\n- a\n- b\n- c\n- d\n- e"},
        {"cell_type": "markdown", "metadata": {}, "source": "one two\nthree\n![](https://x/imgs/diagram_a.png)"},
        {"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [], "execution_count": None},
        {"cell_type": "markdown", "metadata": {}, "source": "## Questions\n" + "q\n" * 40},
    ]
    p = tmp_path / "01_t.ipynb"
    p.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    s = ns.notebook_stats(p)
    assert s.longest_lines == 8 and s.longest_cell == 0  # the questions are left out
    assert s.long_cells == [] and s.diagrams == ["diagram_a.png"] and len(s.summary) == 5
    assert s.words == 18 + 4 + 42  # whitespace-separated, the questions included
    assert "01_t.ipynb" in ns.table(ns.all_stats(tmp_path))
