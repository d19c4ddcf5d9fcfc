"""The student versions of the notebooks: every exercise's solution replaced by a stub (``make student``).

An exercise cell holds its solution between nbgrader's markers, each alone on its line::

    def discriminator_loss(real_logits, fake_logits):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

:func:`strip_solutions` replaces each such region by a stub, indented like the markers, that
raises ``NotImplementedError("write this part: exercise 'discriminator_loss' ...")`` when the
cell runs; everything else (markdown, check cells, metadata) is kept as it is, and outputs
are cleared. ``python -m helpers.student`` writes a student copy of every notebook into
``student/notebooks/`` (git-ignored); notebooks without exercises are copied unchanged.

This is plain JSON and the standard library on purpose: it runs from a fresh clone before
anything is installed, and it needs none of nbgrader's course folders or database. The
markers are nbgrader's own, so an instructor who grades with nbgrader can use the committed
notebooks directly (see the README, "For instructors: student versions").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)")
ROOT = Path(__file__).resolve().parent.parent


class MarkerError(ValueError):
    """A cell's solution markers do not pair up (nested, unclosed, or an END without a BEGIN)."""


def _stub(indent: str, name: str, where: str) -> list[str]:
    return [f"{indent}# YOUR CODE HERE: write this part, then run the check cell below\n",
            f"{indent}raise NotImplementedError(\"write this part: exercise '{name}' ({where})\")\n"]


def strip_solutions(source: str, where: str = "this cell") -> tuple[str, int]:
    """``(source with every solution region replaced by a stub, how many regions)``.

    The stub names the exercise after the function (or class) the region sits in, else ``where``.
    """
    lines = source.splitlines(keepends=True)
    out, inside, n, name = [], False, 0, None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text == BEGIN:
            if inside:
                raise MarkerError(f"{where}, line {number}: a second {BEGIN!r} before the {END!r} of the first")
            inside, n = True, n + 1
            indent = line[: len(line) - len(line.lstrip())]
            out += _stub(indent, name or "this cell", where)
        elif text == END:
            if not inside:
                raise MarkerError(f"{where}, line {number}: {END!r} without a {BEGIN!r} before it")
            inside = False
        elif not inside:
            match = _DEF.match(line)
            if match:
                name = match.group(1)
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {BEGIN!r} without an {END!r}; close every solution region")
    text = "".join(out)
    if text.endswith("\n") and not source.endswith("\n"):  # a cell's last line has no newline
        text = text[:-1]
    return text, n


def student_notebook(nb: dict, name: str = "notebook") -> tuple[dict, int]:
    """A copy of a notebook (as loaded JSON) with the solutions stubbed and the outputs cleared; and the region count."""
    nb = json.loads(json.dumps(nb))
    total = 0
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        new, n = strip_solutions(source, f"{name} cell {i}")
        total += n
        cell["source"] = new.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
    return nb, total


def write_student_versions(notebooks, out_dir) -> dict[Path, int]:
    """Write the student copy of each notebook into ``out_dir``; returns ``{written path: solution regions}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in map(Path, notebooks):
        text = path.read_text(encoding="utf-8")
        copy, n = student_notebook(json.loads(text), path.name)
        target = out_dir / path.name
        # a notebook without exercises is copied as it is, byte for byte
        target.write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n" if n else text, encoding="utf-8")
        written[target] = n
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.student", description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to convert (default: notebooks/*.ipynb)")
    p.add_argument("--out", type=Path, default=ROOT / "student" / "notebooks", help="where the copies go")
    args = p.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    missing = [str(n) for n in notebooks if not Path(n).is_file()]
    if not notebooks or missing:
        print(f"error: no notebook at {', '.join(missing) or ROOT / 'notebooks'}; give .ipynb files", file=sys.stderr)
        return 2
    try:
        written = write_student_versions(notebooks, args.out)
    except (MarkerError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path, n in written.items():
        print(f"{path}: {n} exercise{'s' if n != 1 else ''}" if n else f"{path}: no exercises, copied as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())
