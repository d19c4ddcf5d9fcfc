"""The command lines answer --help and usage errors before importing torch (helpers.cli), and their early checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli

ROOT = Path(__file__).resolve().parents[1]
#: Every ``python -m helpers.<app>`` with its own --help.
APPS = ["age_photo", "evaluate", "pretrained", "benchmark", "train", "gpu_check"]


def _imports(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", *args], cwd=ROOT, capture_output=True, text=True)
    names = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, names


@pytest.mark.parametrize("app", APPS)
def test_help_does_not_import_torch(app):
    proc, names = _imports(f"helpers.{app}", "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout and "exit codes" in proc.stdout
    assert "torch" not in names, f"helpers.{app} --help imports torch"


def test_usage_errors_exit_2_before_torch():
    for args in (["helpers.evaluate", "--strength-curve", "a,b"], ["helpers.evaluate", "--strength", "9"],
                 ["helpers.pretrained", "export", "agegan", "somewhere", "--strength", "0"],
                 ["helpers.age_photo", "--example", "--model", "nope"], ["helpers.train", "nope"],
                 ["helpers.gpu_check", "--batches", "8,x"]):
        proc, names = _imports(*args)
        assert proc.returncode == 2, (args, proc.stderr[-500:])
        assert "torch" not in names and "Traceback" not in proc.stderr, args


def test_usable_folder(tmp_path):
    assert cli.usable_folder(tmp_path / "new" / "deeper") is None and (tmp_path / "new" / "deeper").is_dir()
    assert list((tmp_path / "new" / "deeper").iterdir()) == []  # the test file is gone again
    a_file = tmp_path / "f.txt"
    a_file.write_text("keep")
    for bad in (a_file, a_file / "inside", "/proc/x"):
        why = cli.usable_folder(bad)
        assert why and why.endswith(".") and "--out" in why and why.count(". ") == 0, why  # one sentence
    assert a_file.read_text() == "keep"


def test_number_list_and_strength():
    assert cli.number_list(" 0.8, 0.9,1 ", "--x") == [0.8, 0.9, 1.0]
    for bad in ("", ",", "a,b", "0.8;0.9"):
        with pytest.raises(ValueError, match="--x takes numbers separated by commas"):
            cli.number_list(bad, "--x")
    assert cli.check_strength("0.85") == 0.85
    for bad in (0, -1, 2.5, "x", None, float("nan")):
        with pytest.raises(ValueError, match=r"\(0, 2\]"):
            cli.check_strength(bad)


def test_model_names_match_the_catalogs():
    from helpers import age_photo, evaluate, pretrained

    assert set(age_photo.MODEL_NAMES) == set(age_photo.AGERS)
    assert tuple(evaluate.MODEL_NAMES) == tuple(evaluate.MODELS)
    assert set(pretrained.SHIPPED_NAMES) == set(pretrained.SHIPPED)


def test_train_titles_match_the_catalog():
    from helpers import catalog, train

    assert {k: v for k, v in train.MODEL_TITLES.items()} == {
        k: (m.title, m.notebook[:2]) for k, m in catalog.MODELS.items()}
