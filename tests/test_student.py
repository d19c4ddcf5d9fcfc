"""``make student``: student copies with every solution stubbed, nothing else changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import colab, student

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def source(cell) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def regions(text: str) -> list[str]:
    """The bodies of the solution regions of one cell's source."""
    out, body = [], None
    for line in text.splitlines():
        if line.strip() == student.BEGIN:
            body = []
        elif line.strip() == student.END:
            out.append("\n".join(body))
            body = None
        elif body is not None:
            body.append(line)
    return out


def test_strip_solutions_keeps_the_indentation_and_names_the_exercise():
    src = ("def loss(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return x.mean()\n    ### END SOLUTION\n\n"
           "check(loss)")
    new, n = student.strip_solutions(src, "nb cell 3")
    assert n == 1 and "x.mean()" not in new and "BEGIN SOLUTION" not in new
    assert "    raise NotImplementedError(\"write this part: exercise 'loss' (nb cell 3)\")\n" in new
    assert new.startswith("def loss(x):\n    \"\"\"doc\"\"\"\n") and new.endswith("\n\ncheck(loss)")
    namespace = {}
    exec(new.replace("check(loss)", ""), namespace)
    with pytest.raises(NotImplementedError, match="write this part: exercise 'loss'"):
        namespace["loss"](1)


def test_a_cell_without_markers_is_unchanged():
    src = "x = 1\nprint(x)"
    assert student.strip_solutions(src) == (src, 0)


@pytest.mark.parametrize("bad, why", [
    ("### BEGIN SOLUTION\nx = 1\n", "without an"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "second"),
])
def test_markers_that_do_not_pair_up_are_refused(bad, why):
    with pytest.raises(student.MarkerError, match=why):
        student.strip_solutions(bad, "nb cell 0")


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    written = student.write_student_versions(NOTEBOOKS, out)
    return out, written


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy(copies, path):
    out, written = copies
    original = json.loads(path.read_text(encoding="utf-8"))
    copy_path = out / path.name
    n = sum(len(regions(source(c))) for c in original["cells"] if c["cell_type"] == "code")
    assert written[copy_path] == n
    copy = json.loads(copy_path.read_text(encoding="utf-8"))
    assert len(copy["cells"]) == len(original["cells"])
    assert copy["metadata"] == original["metadata"]
    stubs = 0
    for before, after in zip(original["cells"], copy["cells"]):
        assert after["cell_type"] == before["cell_type"] and after.get("id") == before.get("id")
        if before["cell_type"] != "code":  # markdown: only the badge and the words about the markers change
            want = source(before)
            if before is original["cells"][0]:
                want = source(colab.remove_badge({"cells": [json.loads(json.dumps(before))]},
                                                 student.NO_COLAB_NOTE)["cells"][0])
            assert source(after) == student.student_markdown(want)
            continue
        text = source(after)
        assert student.BEGIN not in text and student.END not in text
        for body in regions(source(before)):
            solution = [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
            assert solution, "an empty solution region"
            left = [line for line in solution if line in {t.strip() for t in text.splitlines()}]
            # a line of the solution may equal a line outside it (a bare `return out`), never the whole solution
            assert len(left) < len(solution), f"solution text left in {path.name}: {left}"
        stubs += text.count("raise NotImplementedError(\"write this part: exercise")
        if not regions(source(before)):
            assert source(after) == source(before)
    assert stubs == n


#: Each notebook's network-block exercise (issue 25): the function the student writes, which the training builds with.
BLOCKS = {"02_gan_basics.ipynb": "up_block", "03_cyclegan.ipynb": "patch_discriminator",
          "04_conditional_dcgan.ipynb": "input_block", "05_encoder.ipynb": "down_block",
          "06_age_modulated_gan.ipynb": "modulated_res_block"}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_notebooks_02_to_06_have_four_exercises_and_a_network_block(name):
    nb = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))
    code = [source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    assert sum(len(regions(c)) for c in code) >= 4
    block = BLOCKS[name]
    written = [c for c in code if regions(c) and f"def {block}(" in c]
    assert written, f"{name} has no exercise that writes {block}"
    used = [c for c in code if f"={block}" in c.replace(" ", "") and f"def {block}(" not in c]
    assert used, f"{name} never trains with the student's {block}"


def test_notebook_07_has_its_fid_exercise():
    nb = json.loads((ROOT / "notebooks" / "07_evaluation.ipynb").read_text(encoding="utf-8"))
    code = [source(c) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(regions(c) and "def fid_from_features(" in c for c in code)
    assert any("formula=fid_from_features" in c for c in code)  # the notebook's FIDs use it


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
def test_make_student_from_a_clean_checkout(tmp_path):
    """Only the tracked files (what a clone has), with no installed environment: ``make student`` writes every copy."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    for name in ("helpers/student.py", "Makefile"):  # the working tree's versions, committed or not
        shutil.copy2(ROOT / name, tmp_path / name)
    run = subprocess.run(["make", "student", f"PYTHON={sys.executable}"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    made = sorted(p.name for p in (tmp_path / "student" / "notebooks").glob("*.ipynb"))
    assert made == [p.name for p in NOTEBOOKS]


def test_the_command_line_says_what_is_wrong(tmp_path, capsys):
    assert student.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook" in capsys.readouterr().err
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": [{"cell_type": "code", "source": "### BEGIN SOLUTION\n", "metadata": {},
                                          "outputs": [], "execution_count": None}], "metadata": {}}))
    assert student.main([str(bad), "--out", str(tmp_path / "out")]) == 1
    assert "without an" in capsys.readouterr().err


def test_copies_without_a_student_repository_have_no_colab_link_to_the_solutions(copies):
    out, _ = copies
    for path in sorted(out.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = "".join(source(c) for c in nb["cells"])
        assert "colab.research.google.com" not in text and "/blob/" not in text, path.name
        assert student.NO_COLAB_NOTE in source(nb["cells"][0]), path.name
        markdown = "".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert student.BEGIN not in markdown and student.END not in markdown, path.name  # words match the stubs


def test_copies_for_a_student_repository_open_it(tmp_path):
    written = student.write_student_versions(NOTEBOOKS, tmp_path / "notebooks", "teach/faces-students", "spring")
    for path in written:
        nb = json.loads(path.read_text(encoding="utf-8"))
        first, setup = source(nb["cells"][0]), source(nb["cells"][1])
        assert colab.badge(path.name, "teach/faces-students", "spring") in first
        assert '"https://github.com/teach/faces-students"' in setup and '"spring"' in setup
        text = "".join(source(c) for c in nb["cells"])
        assert colab.REPO not in text, path.name  # neither a badge, a clone nor a figure of the course's own
        assert student.NO_COLAB_NOTE not in first


def test_the_markers_text_is_reworded_and_relative_images_travel(tmp_path):
    assert student.student_markdown("write it between `### BEGIN SOLUTION` and\n`### END SOLUTION`.") == (
        f"write it in place of the `{student.STUB_MARK}` line (and the `raise` under it).")
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True)
    (course / "imgs").mkdir()
    (course / "imgs" / "grid.png").write_bytes(b"png")
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "\n", "![grid](../imgs/grid.png)"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (course / "notebooks" / "09_x.ipynb").write_text(json.dumps(nb))
    student.write_student_versions([course / "notebooks" / "09_x.ipynb"], tmp_path / "student" / "notebooks")
    assert (tmp_path / "student" / "imgs" / "grid.png").read_bytes() == b"png"  # ../imgs/grid.png works from the copy
    (course / "imgs" / "grid.png").unlink()
    with pytest.raises(FileNotFoundError, match="grid.png"):
        student.write_student_versions([course / "notebooks" / "09_x.ipynb"], tmp_path / "s2" / "notebooks")


def test_the_course_repository_is_refused_as_the_student_one(tmp_path, capsys):
    assert student.main(["--repo", colab.REPO, "--out", str(tmp_path)]) == 2
    assert "solutions" in capsys.readouterr().err
