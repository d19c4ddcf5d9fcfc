"""Google Colab plumbing: the course's repository, every notebook's badge and setup cell.

The repository the notebooks open from and clone lives in one place, :data:`REPO` and
:data:`BRANCH` below. Everything that spells it out is generated from them:

- the "Open in Colab" badge in each notebook's first cell and in the README's notebook table;
- the setup cell, the first code cell of every notebook (:func:`setup_cell`), which on Colab
  clones and installs the course, keeps data and caches on the local disk and, behind
  ``USE_DRIVE``, checkpoints and results on Google Drive; anywhere else it does nothing;
- the ``git clone`` line of the README;
- the absolute addresses of the figures the notebooks show from ``imgs/``
  (``https://raw.githubusercontent.com/<REPO>/<BRANCH>/imgs/...``: a relative path does not show on Colab).

The student copies (``make student``, :mod:`helpers.student`) are stamped the same way with
:data:`STUDENT_REPO` instead, or carry no badge where none is set.

An instructor who forks the course sets ``REPO`` (and ``BRANCH``) to the fork and runs::

    python -m helpers.colab            # re-stamp every notebook and the README
    python -m helpers.colab --check    # only report what is out of date (exit status 1)

:func:`widgets_usable` tells a notebook whether ipywidgets can be shown here.

This module is ground layer: it imports nothing from the course.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

#: The course's GitHub repository, ``owner/name``: what the badges open and the setup cell clones.
REPO = "face-aging-course/face-aging-gan"
#: The branch the badges open and the setup cell clones.
BRANCH = "main"
#: The repository that holds the *student* copies (``make student``), ``owner/name``, or None: an
#: instructor publishes the copies there (the course with ``student/notebooks/`` as its ``notebooks/``)
#: and the copies' badges and setup cells point at it. Set it here or in the environment
#: (``make student STUDENT_REPO=owner/name``). Without one the copies carry no Colab link, because the
#: course's own badges open the notebooks with their solutions.
STUDENT_REPO: str | None = os.environ.get("STUDENT_REPO") or None
#: The branch of :data:`STUDENT_REPO` (``STUDENT_BRANCH`` in the environment).
STUDENT_BRANCH: str = os.environ.get("STUDENT_BRANCH") or "main"

BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)$")
_COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/([^/\s)]+)/"
                         r"notebooks/([^/\s)]+\.ipynb)")
_SETUP_MARK = '"google.colab" in sys.modules'
_ROOT = Path(__file__).resolve().parent.parent


def _check_repo(repo: str, branch: str) -> None:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ValueError(f"the repository must be written owner/name (like {REPO!r}), not {repo!r}")
    if not re.fullmatch(r"[\w./-]+", branch) or branch.startswith(("-", "/")):
        raise ValueError(f"{branch!r} is not a usable branch name")


_RAW_IMG = re.compile(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[\w./-]+?/imgs/")


def raw_image_url(name: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """The address of ``imgs/<name>`` on GitHub that shows in a notebook on Colab as well as locally."""
    return f"https://raw.githubusercontent.com/{repo}/{branch}/imgs/{name}"


def stamp_images(text: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """``text`` with every raw GitHub address of a figure in ``imgs/`` pointing at ``repo`` and ``branch``."""
    return _RAW_IMG.sub(raw_image_url("", repo, branch), text)


def clone_url(repo: str = REPO) -> str:
    """``https://github.com/<owner>/<name>``."""
    return f"https://github.com/{repo}"


def colab_url(notebook: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """The link that opens ``notebooks/<notebook>`` from GitHub in Colab."""
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{notebook}"


def badge(notebook: str, repo: str = REPO, branch: str = BRANCH) -> str:
    """The Markdown "Open in Colab" badge for ``notebooks/<notebook>``."""
    return f"[![Open In Colab]({BADGE_SVG})]({colab_url(notebook, repo, branch)})"


def clone_command(repo: str = REPO, branch: str = BRANCH) -> str:
    """The README's line that fetches the course."""
    return f"git clone --branch {branch} {clone_url(repo)} && cd {repo.split('/')[1]}"


def setup_cell(repo: str = REPO, branch: str = BRANCH) -> str:
    """The source of every notebook's setup cell (its first code cell)."""
    _check_repo(repo, branch)
    home = "/content/" + repo.split("/")[1]
    return f'''\
# Setup. On Google Colab this fetches and installs the course; anywhere else it does nothing
# (on a laptop, run `make lab` once instead).
import os, subprocess, sys

USE_DRIVE = True  # Colab: keep checkpoints and results on Google Drive, where they outlive the session
# os.environ["SMOKE"] = "1"  # uncomment for a quick run of the whole notebook at tiny sizes

if {_SETUP_MARK}:
    HOME = "{home}"
    if not os.path.isdir(HOME):
        subprocess.run(["git", "clone", "--depth", "1", "--branch", "{branch}",
                        "{clone_url(repo)}", HOME], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", HOME], check=True)
    sys.path.insert(0, HOME)  # new kernels see the install; this one needs the path
    os.chdir(HOME + "/notebooks")
    os.environ["FACEAGING_DATA"] = "/content/face-aging-data"  # data and caches: the fast local disk
    if USE_DRIVE:
        from google.colab import drive

        drive.mount("/content/drive")
        os.environ["FACEAGING_RUNS"] = "/content/drive/MyDrive/face-aging/runs"'''


# --------------------------------------------------------------------------- stamping


def _lines(text: str) -> list[str]:
    """A cell's source as a notebook stores it: lines that keep their newline, the last one without."""
    return text.splitlines(keepends=True)


def _is_setup(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and _SETUP_MARK in "".join(cell.get("source", []))


def stamp_notebook(nb: dict, notebook: str, repo: str = REPO, branch: str = BRANCH) -> dict:
    """``nb`` (a notebook's JSON) with its badge (first cell) and setup cell (second cell) made current.

    The badge replaces the first cell's badge line, or goes below its title when it has none.
    An existing setup cell moves to the second place and gets the generated source, keeping its
    cell id; without one, a new cell is put there. No other cell is touched.
    """
    cells = nb["cells"]
    if not cells or cells[0].get("cell_type") != "markdown":
        raise ValueError(f"{notebook}: the first cell must be the title (a Markdown cell), to carry the badge")
    lines = "".join(cells[0]["source"]).split("\n")
    at = [i for i, line in enumerate(lines) if _BADGE_LINE.match(line.strip())]
    if at:
        lines[at[0]] = badge(notebook, repo, branch)
    else:
        lines[1:1] = ["", badge(notebook, repo, branch)]
    cells[0]["source"] = _lines("\n".join(lines))

    old = next((i for i, c in enumerate(cells) if _is_setup(c)), None)
    cell = cells.pop(old) if old is not None else {
        "cell_type": "code", "execution_count": None, "id": _new_id(cells, notebook), "metadata": {}, "outputs": []}
    cell["source"] = _lines(setup_cell(repo, branch))
    cells.insert(1, cell)
    for c in cells:
        if c.get("cell_type") == "markdown":
            text = "".join(c["source"])
            if _RAW_IMG.search(text):
                c["source"] = _lines(stamp_images(text, repo, branch))
    return nb


def remove_badge(nb: dict, note: str) -> dict:
    """``nb`` without its Colab badge; ``note`` (Markdown) takes the badge's place in the first cell."""
    cells = nb["cells"]
    lines = "".join(cells[0]["source"]).split("\n")
    at = [i for i, line in enumerate(lines) if _BADGE_LINE.match(line.strip())]
    if at:
        lines[at[0]] = note
    else:
        lines[1:1] = ["", note]
    cells[0]["source"] = _lines("\n".join(lines))
    return nb


def _new_id(cells: list[dict], notebook: str) -> str:
    taken = {c.get("id") for c in cells}
    n = 0
    while (cid := hashlib.sha1(f"{notebook}:setup:{n}".encode()).hexdigest()[:8]) in taken:
        n += 1
    return cid


def _dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"  # the layout Jupyter writes


def stamp_readme(text: str, notebooks: list[str], repo: str = REPO, branch: str = BRANCH) -> str:
    """The README with every Colab link and its ``git clone`` line made current."""
    known = set(notebooks)

    def link(m: re.Match) -> str:
        if m.group(3) not in known:
            raise ValueError(f"README.md links to notebooks/{m.group(3)} in Colab, but there is no such notebook")
        return colab_url(m.group(3), repo, branch)

    text = _COLAB_LINK.sub(link, text)
    return re.sub(r"^git clone (--branch \S+ )?https://github\.com/.*$", clone_command(repo, branch), text, flags=re.M)


def stamp(root=_ROOT, repo: str = REPO, branch: str = BRANCH, check: bool = False) -> list[Path]:
    """Stamp every notebook in ``root/notebooks`` and ``root/README.md``; the files that were (or, with
    ``check=True``, would be) changed."""
    _check_repo(repo, branch)
    root = Path(root)
    paths = sorted((root / "notebooks").glob("[0-9]*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks in {root / 'notebooks'}: run this from the course's folder")
    changed = []
    for p in paths:
        text = p.read_text(encoding="utf-8")
        new = _dump(stamp_notebook(json.loads(text), p.name, repo, branch))
        if new != text:
            changed.append(p)
            if not check:
                p.write_text(new, encoding="utf-8")
    readme = root / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        new = stamp_readme(text, [p.name for p in paths], repo, branch)
        if new != text:
            changed.append(readme)
            if not check:
                readme.write_text(new, encoding="utf-8")
    return changed


# --------------------------------------------------------------------------- widgets


def widgets_usable() -> bool:
    """True when an ipywidgets widget can be shown here, False where a notebook should fall back.

    That needs ipywidgets installed, a Jupyter kernel (a plain script or terminal IPython shows
    no widgets) and, on Colab, ipywidgets 7: Colab's own widget frontend renders 7.x, while 8.x
    needs its third-party widget manager and has failed to render there (colabtools#3020).
    """
    if "ipykernel" not in sys.modules:
        return False
    try:
        import ipywidgets  # optional at run time: only a notebook needs it, so imported here
    except ImportError:
        return False
    if "google.colab" in sys.modules:
        return ipywidgets.__version__.split(".")[0] == "7"
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m helpers.colab",
        description=f"Write every notebook's Colab badge and setup cell, and the README's Colab links and "
                    f"git clone line, for the repository {REPO} (branch {BRANCH}) set at the top of "
                    "helpers/colab.py.")
    p.add_argument("--check", action="store_true", help="change nothing; list what is out of date and exit 1 if any")
    p.add_argument("--root", default=str(_ROOT), help="the course's folder (default: the one holding this code)")
    args = p.parse_args(argv)
    try:
        changed = stamp(args.root, check=args.check)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    root = Path(args.root)
    for path in changed:
        print(("out of date: " if args.check else "stamped: ") + str(path.relative_to(root)))
    if not changed:
        print(f"every notebook and the README already point at {REPO} ({BRANCH})")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
