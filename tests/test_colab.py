"""Colab plumbing: every badge, clone URL and setup cell comes from helpers/colab.py, and the
setup cell does the right thing on Colab and nothing elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from helpers import colab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/([^\s)]+?)/blob/([^/\s)]+)/notebooks/([^/\s)]+)")
GITHUB_REPO = re.compile(r"https://github\.com/([\w.-]+/[\w.-]+)")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 8, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_is_the_generated_one(path):
    cells = _cells(path)
    setup = cells[1]
    assert setup["cell_type"] == "code", f"{path.name}: cell 1 must be the setup cell (run `make stamp`)"
    assert _text(setup) == colab.setup_cell(), f"{path.name}: the setup cell differs from helpers.colab.setup_cell(); run `make stamp`"
    assert not setup.get("outputs")
    others = [i for i, c in enumerate(cells) if i != 1 and 'google.colab" in sys.modules' in _text(c)]
    assert not others, f"{path.name}: a second setup cell at {others}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_and_every_colab_or_clone_url_name_the_course_repository(path):
    cells = _cells(path)
    assert colab.badge(path.name) in _text(cells[0]).split("\n"), f"{path.name}: no current badge in cell 0; run `make stamp`"
    for i, cell in enumerate(cells):
        for repo, branch, target in COLAB_LINK.findall(_text(cell)):
            assert (repo, branch) == (colab.REPO, colab.BRANCH), f"{path.name} cell {i}: opens {repo}@{branch} in Colab"
            assert (ROOT / "notebooks" / target).is_file(), f"{path.name} cell {i}: links to a missing {target}"
        if 'google.colab" in sys.modules' in _text(cell):
            assert set(GITHUB_REPO.findall(_text(cell))) == {colab.REPO}


def test_readme_has_a_current_badge_per_notebook_and_a_current_clone_line():
    for path in NOTEBOOKS:
        row = next((line for line in README.split("\n") if line.startswith(f"| [`{path.stem}`]")), None)
        assert row is not None, f"the README's notebook table has no row for {path.name}"
        assert colab.badge(path.name) in row, f"the README's row for {path.name} has no current Colab badge"
    links = COLAB_LINK.findall(README)
    assert len(links) >= len(NOTEBOOKS)
    assert {(r, b) for r, b, _ in links} == {(colab.REPO, colab.BRANCH)}
    clones = [line for line in README.split("\n") if line.startswith("git clone ")]
    assert clones == [colab.clone_command()]


def test_the_repository_is_stamped_check_mode_finds_nothing():
    assert colab.stamp(ROOT, check=True) == []
    assert colab.main(["--check"]) == 0


def _copy_course(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    for p in NOTEBOOKS:
        shutil.copy(p, tmp_path / "notebooks" / p.name)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    return tmp_path


def test_stamping_a_fork_rewrites_every_badge_and_clone_url_and_nothing_else(tmp_path, capsys):
    root = _copy_course(tmp_path)
    before = {p.name: _cells(p) for p in (root / "notebooks").glob("*.ipynb")}

    assert colab.stamp(root, repo="someone/my-course", branch="fall", check=True)  # reports ...
    assert {p.name: _cells(p) for p in (root / "notebooks").glob("*.ipynb")} == before  # ... writes nothing
    changed = colab.stamp(root, repo="someone/my-course", branch="fall")
    assert sorted(p.name for p in changed) == sorted([*before, "README.md"])
    assert colab.stamp(root, repo="someone/my-course", branch="fall") == []  # idempotent

    text = "".join(p.read_text(encoding="utf-8") for p in root.rglob("*.ipynb")) + (root / "README.md").read_text()
    assert "face-aging-course" not in text
    for name, old in before.items():
        new = _cells(root / "notebooks" / name)
        assert len(new) == len(old), name
        for a, b in zip(new[2:], old[2:]):  # other cells: only the figures' addresses move to the fork
            assert _text(a) == colab.stamp_images(_text(b), "someone/my-course", "fall"), name
        assert colab.badge(name, "someone/my-course", "fall") in _text(new[0])
        assert _text(new[0]).replace(colab.badge(name, "someone/my-course", "fall"), "") == _text(old[0]).replace(colab.badge(name), "")
        assert '"--branch", "fall"' in _text(new[1]) and '"https://github.com/someone/my-course"' in _text(new[1])
        assert 'HOME = "/content/my-course"' in _text(new[1])
    readme = (root / "README.md").read_text()
    assert "git clone --branch fall https://github.com/someone/my-course && cd my-course" in readme
    assert readme.count("/someone/my-course/blob/fall/notebooks/") == len(before)


def test_stamp_moves_an_old_setup_cell_to_second_place_or_adds_one():
    old_setup = {"cell_type": "code", "execution_count": 3, "id": "keepme", "metadata": {}, "outputs": [],
                 "source": ['import sys\n', 'if "google.colab" in sys.modules:\n', '    pass']}
    nb = {"cells": [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# 09 · A title\n", "\n", "Text."]},
                    {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["notes"]}, old_setup]}
    out = colab.stamp_notebook(nb, "09_new.ipynb")
    assert [c["id"] for c in out["cells"]] == ["t", "keepme", "m"]
    assert _text(out["cells"][0]) == f"# 09 · A title\n\n{colab.badge('09_new.ipynb')}\n\nText."
    assert _text(out["cells"][1]) == colab.setup_cell()

    bare = {"cells": [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# 10"]},
                      {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [], "execution_count": None,
                       "source": ["x = 1"]}]}
    out = colab.stamp_notebook(bare, "10.ipynb")
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "code", "code"]
    assert _text(out["cells"][1]) == colab.setup_cell() and out["cells"][1]["id"] not in ("t", "c")
    assert _text(out["cells"][2]) == "x = 1"


def test_bad_input_is_refused_with_a_message(tmp_path, capsys):
    with pytest.raises(ValueError, match="owner/name"):
        colab.setup_cell(repo="no-slash")
    with pytest.raises(ValueError, match="branch"):
        colab.stamp(ROOT, branch="-x", check=True)
    with pytest.raises(ValueError, match="first cell"):
        colab.stamp_notebook({"cells": [{"cell_type": "code", "source": []}]}, "x.ipynb")
    with pytest.raises(ValueError, match="no such notebook"):
        colab.stamp_readme("[x](https://colab.research.google.com/github/a/b/blob/main/notebooks/99_gone.ipynb)",
                           ["01_a.ipynb"])
    assert colab.main(["--root", str(tmp_path)]) == 2
    assert "no numbered notebooks" in capsys.readouterr().err


# --------------------------------------------------------------------------- the setup cell, run


class _Recorder:
    def __init__(self):
        self.commands, self.chdirs, self.mounts = [], [], []


def _run_setup(monkeypatch, tmp_path, on_colab: bool, use_drive: bool = True) -> _Recorder:
    rec = _Recorder()
    for var in ("FACEAGING_DATA", "FACEAGING_RUNS", "SMOKE"):
        monkeypatch.setenv(var, "")  # recorded first, so whatever the cell sets is undone after the test
        monkeypatch.delenv(var)
    if on_colab:
        google = types.ModuleType("google")
        google.__path__ = []
        mod = types.ModuleType("google.colab")
        mod.drive = types.SimpleNamespace(mount=rec.mounts.append)
        google.colab = mod
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", mod)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda cmd, check: rec.commands.append(cmd))
    monkeypatch.setattr(os, "chdir", rec.chdirs.append)
    monkeypatch.setattr(sys, "path", list(sys.path))
    source = colab.setup_cell()
    if not use_drive:
        source = source.replace("USE_DRIVE = True", "USE_DRIVE = False")
        assert "USE_DRIVE = False" in source
    exec(compile(source, "setup-cell", "exec"), {})
    return rec


def test_setup_cell_does_nothing_outside_colab(monkeypatch, tmp_path):
    rec = _run_setup(monkeypatch, tmp_path, on_colab=False)
    assert (rec.commands, rec.chdirs, rec.mounts) == ([], [], [])
    assert "FACEAGING_DATA" not in os.environ and "FACEAGING_RUNS" not in os.environ


def test_setup_cell_on_colab_clones_installs_and_keeps_only_runs_on_drive(monkeypatch, tmp_path):
    rec = _run_setup(monkeypatch, tmp_path, on_colab=True)
    home = "/content/" + colab.REPO.split("/")[1]
    clone, install = rec.commands
    assert clone[:2] == ["git", "clone"] and clone[-2:] == [colab.clone_url(), home]
    assert clone[clone.index("--branch") + 1] == colab.BRANCH
    assert install[1:] == ["-m", "pip", "install", "--quiet", "-e", home]
    assert rec.chdirs == [home + "/notebooks"] and sys.path[0] == home
    assert rec.mounts == ["/content/drive"]
    data, runs = os.environ["FACEAGING_DATA"], os.environ["FACEAGING_RUNS"]
    assert data.startswith("/content/") and not data.startswith("/content/drive"), data  # local disk
    assert runs.startswith("/content/drive/MyDrive/"), runs


def test_setup_cell_without_drive_mounts_nothing(monkeypatch, tmp_path):
    rec = _run_setup(monkeypatch, tmp_path, on_colab=True, use_drive=False)
    assert rec.mounts == [] and len(rec.commands) == 2
    assert "FACEAGING_RUNS" not in os.environ and os.environ["FACEAGING_DATA"].startswith("/content/")


# --------------------------------------------------------------------------- widgets


def test_widgets_usable_needs_a_kernel_and_on_colab_ipywidgets_7(monkeypatch):
    ipywidgets = pytest.importorskip("ipywidgets")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert colab.widgets_usable() is False  # a plain process: nothing would show the widget
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert colab.widgets_usable() is True
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(ipywidgets, "__version__", "8.1.5")
    assert colab.widgets_usable() is False
    monkeypatch.setattr(ipywidgets, "__version__", "7.7.1")
    assert colab.widgets_usable() is True
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    assert colab.widgets_usable() is False


def test_figure_addresses_follow_the_repository():
    text = ('<img src="https://raw.githubusercontent.com/face-aging-course/face-aging-gan/main/imgs/diagram_x.png"> '
            "and ![a](https://raw.githubusercontent.com/a/b/feature/x/imgs/y.png), not https://example.com/imgs/z.png")
    out = colab.stamp_images(text, "me/fork", "dev")
    assert out.count("https://raw.githubusercontent.com/me/fork/dev/imgs/") == 2
    assert "diagram_x.png" in out and "imgs/y.png" in out and "https://example.com/imgs/z.png" in out
    assert colab.raw_image_url("d.png") == f"https://raw.githubusercontent.com/{colab.REPO}/{colab.BRANCH}/imgs/d.png"
    nb = {"cells": [{"cell_type": "markdown", "source": ["# T\n"]}, {"cell_type": "markdown", "source": [text]}]}
    colab.stamp_notebook(nb, "01_x.ipynb", "me/fork", "dev")
    assert "".join(nb["cells"][2]["source"]) == out  # the badge went into cell 0, the setup cell is cell 1
