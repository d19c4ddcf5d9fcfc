"""How much a student has to read: per notebook, the words of markdown, the longest markdown cell
and the diagrams it shows.

Run ``python -m helpers.notebook_stats`` for the table (``--markdown`` prints it as a markdown
table). ``tests/test_notebook_text.py`` holds the notebooks to the limits below.

- **words**: whitespace-separated words over every markdown cell (the questions included);
- **longest cell**: the most lines in one markdown cell, leaving out the end-of-notebook
  questions (the cells from the last one headed ``## Questions`` on), given with the cell's index;
- **diagrams**: the distinct ``imgs/diagram_<name>.png`` / ``.svg`` images the markdown shows.

This module is ground layer: it reads notebooks as JSON and imports nothing from the course.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"

#: No markdown cell may run longer than this many lines (the end-of-notebook questions excepted).
MAX_CELL_LINES = 25
#: No notebook may hold more than this many words of markdown.
MAX_WORDS = 4000
#: The heading of the summary every notebook opens with, followed by exactly five bullet lines.
SUMMARY_HEADING = "**What you will see and do**"
SUMMARY_LINES = 5

DIAGRAM = re.compile(r"imgs/(diagram_[A-Za-z0-9_-]+\.(?:png|svg))")
_QUESTIONS = re.compile(r"^#{1,3}\s+Questions\b", re.IGNORECASE)


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    """``(index, source)`` for every markdown cell of a notebook, in order."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            src = cell["source"]
            out.append((i, "".join(src) if isinstance(src, list) else src))
    return out


def questions_start(cells: list[tuple[int, str]]) -> int | None:
    """The index of the cell that opens the end-of-notebook questions, or None."""
    starts = [i for i, src in cells if _QUESTIONS.match(src.lstrip())]
    return starts[-1] if starts else None


def n_lines(src: str) -> int:
    return len(src.splitlines())


def summary_bullets(src: str) -> list[str] | None:
    """The bullet lines after :data:`SUMMARY_HEADING` in ``src``, or None if there is no heading."""
    lines = src.splitlines()
    for k, line in enumerate(lines):
        if line.strip().lower() == SUMMARY_HEADING.lower():
            bullets = []
            for rest in lines[k + 1:]:
                if not rest.strip() and not bullets:
                    continue
                if not rest.lstrip().startswith(("- ", "* ")):
                    break
                bullets.append(rest.strip())
            return bullets
    return None


@dataclass
class NotebookStats:
    name: str
    words: int
    longest_lines: int
    longest_cell: int | None
    long_cells: list[tuple[int, int]]  # (cell index, lines) of every cell over MAX_CELL_LINES
    diagrams: list[str]
    summary: list[str] | None


def notebook_stats(path: Path) -> NotebookStats:
    cells = markdown_cells(path)
    q = questions_start(cells)
    story = [(i, s) for i, s in cells if q is None or i < q]
    words = sum(len(s.split()) for _, s in cells)
    longest = max(story, key=lambda c: n_lines(c[1]), default=(None, ""))
    long_cells = [(i, n_lines(s)) for i, s in story if n_lines(s) > MAX_CELL_LINES]
    diagrams = sorted({m for _, s in cells for m in DIAGRAM.findall(s)})
    summary = summary_bullets(cells[0][1]) if cells and cells[0][0] == 0 else None
    return NotebookStats(Path(path).name, words, n_lines(longest[1]), longest[0], long_cells,
                         diagrams, summary)


def all_stats(folder: Path = NOTEBOOKS_DIR) -> list[NotebookStats]:
    return [notebook_stats(p) for p in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))]


def table(stats: list[NotebookStats], markdown: bool = False) -> str:
    head = ["notebook", "markdown words", "longest cell (lines)", "cells > 25 lines", "diagrams",
            "summary"]
    rows = []
    for s in stats:
        rows.append([s.name, f"{s.words:,}", f"{s.longest_lines} (c{s.longest_cell})",
                     str(len(s.long_cells)), str(len(s.diagrams)),
                     "yes" if s.summary is not None and len(s.summary) == SUMMARY_LINES else "no"])
    rows.append(["total", f"{sum(s.words for s in stats):,}",
                 str(max((s.longest_lines for s in stats), default=0)),
                 str(sum(len(s.long_cells) for s in stats)),
                 str(len({d for s in stats for d in s.diagrams})), ""])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--folder", type=Path, default=NOTEBOOKS_DIR)
    args = ap.parse_args(argv)
    print(table(all_stats(args.folder), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
