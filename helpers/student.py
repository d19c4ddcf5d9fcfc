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

The copies are made for the student in three more ways:

- **Colab.** With a student repository (:data:`helpers.colab.STUDENT_REPO`, or ``--repo`` /
  ``make student STUDENT_REPO=owner/name``), each copy's badge and setup cell open and clone that
  repository. Without one, the badges are removed (the course's own would open the notebooks
  *with* their solutions) and the first cell says that the copy has no Colab link yet.
- **Pictures.** Images linked relatively (``../imgs/x.png``) are copied next to the copies
  (``student/imgs/``), so the same links work from ``student/notebooks/``.
- **Words.** The notebooks' text that tells a student where to write ("between ``### BEGIN
  SOLUTION`` and ``### END SOLUTION``") is reworded to what the copy shows: the ``# YOUR CODE
  HERE`` line.

This is plain JSON and the standard library on purpose: it runs from a fresh clone before
anything is installed, and it needs none of nbgrader's course folders or database. The
markers are nbgrader's own, so an instructor who grades with nbgrader can use the committed
notebooks directly (see the README, "For instructors: student versions").
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from . import colab

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB_MARK = "# YOUR CODE HERE"
#: What the first cell of a copy says where the badge was, when there is no student repository.
NO_COLAB_NOTE = ("> **No Colab link yet.** This is a student copy. The course's own Colab links open the notebooks "
                 "with their solutions, so this copy has none until your instructor publishes the student copies "
                 "(`make student STUDENT_REPO=owner/name`). Open it in Jupyter (`make lab`), or upload it to Colab.")
_MARKERS_TEXT = re.compile(r"between\s+`### BEGIN SOLUTION`\s+and\s+`### END SOLUTION`")
_RELATIVE_IMG = re.compile(r"""(\]\(|src=["'])\.\./(imgs/[^)"'\s]+)""")
_DEF = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)")
ROOT = Path(__file__).resolve().parent.parent


class MarkerError(ValueError):
    """A cell's solution markers do not pair up (nested, unclosed, or an END without a BEGIN)."""


def _stub(indent: str, name: str, where: str) -> list[str]:
    return [f"{indent}{STUB_MARK}: write this part, then run the check cell below\n",
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


def student_markdown(text: str) -> str:
    """A markdown cell's text as the student copy shows it: where to write is the ``# YOUR CODE HERE`` line."""
    return _MARKERS_TEXT.sub(f"in place of the `{STUB_MARK}` line (and the `raise` under it)", text)


def relative_images(nb: dict) -> list[str]:
    """The ``imgs/...`` paths that the notebook's markdown links relatively (``../imgs/x.png``)."""
    found = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            found += [m.group(2) for m in _RELATIVE_IMG.finditer(text)]
    return list(dict.fromkeys(found))


def student_notebook(nb: dict, name: str = "notebook", repo: str | None = None,
                     branch: str = colab.STUDENT_BRANCH) -> tuple[dict, int]:
    """A copy of a notebook (as loaded JSON) with the solutions stubbed and the outputs cleared; and the region count.

    With ``repo`` (the student repository), its badge and setup cell point there; without one, the
    badge is replaced by :data:`NO_COLAB_NOTE`.
    """
    nb = json.loads(json.dumps(nb))
    total = 0
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") == "markdown":
            text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            cell["source"] = student_markdown(text).splitlines(keepends=True)
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        new, n = strip_solutions(source, f"{name} cell {i}")
        total += n
        cell["source"] = new.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
    cells = nb.get("cells", [])
    if cells and cells[0].get("cell_type") == "markdown":
        if repo:
            colab.stamp_notebook(nb, name, repo, branch)
        else:
            colab.remove_badge(nb, NO_COLAB_NOTE)
    return nb, total


def write_student_versions(notebooks, out_dir, repo: str | None = None,
                           branch: str = colab.STUDENT_BRANCH) -> dict[Path, int]:
    """Write the student copy of each notebook into ``out_dir``; returns ``{written path: solution regions}``.

    Images the notebooks link relatively (``../imgs/x.png``) are copied to ``out_dir/../imgs``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in map(Path, notebooks):
        nb = json.loads(path.read_text(encoding="utf-8"))
        copy, n = student_notebook(nb, path.name, repo, branch)
        target = out_dir / path.name
        target.write_text(json.dumps(copy, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written[target] = n
        for rel in relative_images(nb):
            source = path.resolve().parent.parent / rel
            if not source.is_file():
                raise FileNotFoundError(f"{path.name} shows ../{rel}, which does not exist: fix the link")
            (out_dir.parent / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out_dir.parent / rel)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.student", description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="notebooks to convert (default: notebooks/*.ipynb)")
    p.add_argument("--out", type=Path, default=ROOT / "student" / "notebooks", help="where the copies go")
    p.add_argument("--repo", default=colab.STUDENT_REPO,
                   help="the student repository (owner/name) the copies' Colab badges and setup cells open "
                        "(default: STUDENT_REPO, now " + (colab.STUDENT_REPO or "not set: no Colab links") + ")")
    p.add_argument("--branch", default=colab.STUDENT_BRANCH, help="its branch (default: STUDENT_BRANCH or main)")
    args = p.parse_args(argv)
    if args.repo:
        try:
            colab.setup_cell(args.repo, args.branch)  # checks the names
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if args.repo == colab.REPO:
            print(f"error: {args.repo} is the course's own repository, whose notebooks hold the solutions: give the "
                  "repository where the student copies are published", file=sys.stderr)
            return 2
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    missing = [str(n) for n in notebooks if not Path(n).is_file()]
    if not notebooks or missing:
        print(f"error: no notebook at {', '.join(missing) or ROOT / 'notebooks'}; give .ipynb files", file=sys.stderr)
        return 2
    try:
        written = write_student_versions(notebooks, args.out, args.repo, args.branch)
    except (MarkerError, json.JSONDecodeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path, n in written.items():
        print(f"{path}: {n} exercise{'s' if n != 1 else ''}" if n else f"{path}: no exercises")
    if args.repo:
        print(f"The copies' Colab badges and setup cells open {args.repo} ({args.branch}): publish "
              f"{args.out} there as its notebooks/ folder.")
    else:
        print("The copies have no Colab link: the course's own links open the notebooks with their solutions. "
              "Publish the copies in a repository of their own and run `make student STUDENT_REPO=owner/name` "
              "to give them badges that open it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
