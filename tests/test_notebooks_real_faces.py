"""Every notebook on the real-face path: nbval in smoke mode with the course's data source set to UTKFace.

CI has no real faces, so the folder here is in UTKFace's layout (``age_gender_race_time.jpg.chip.jpg``) and
drawn by the toy painter. The pictures do not matter; what is tested is that every notebook takes the
real-face branch (the real-face settings, their extra terms, no toy ground truth) and runs to the end.
With ``UTKFACE_SAMPLE_DIR`` set, the real sample is used instead.

The main nbval run takes each notebook as committed, with ``PRETRAINED = True`` (the shipped weights after a
check run of the student's code); this one flips the switch to ``False`` in a copy, so that the training path
of every notebook runs too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.toyfaces import render_face

ROOT = Path(__file__).resolve().parents[1]


def utkface_layout_folder(folder: Path, n: int = 240) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        age = int(rng.integers(1, 91))
        render_face(identity=i, age=age, size=96).convert("RGB").save(
            folder / f"{age}_{i % 2}_{i % 5}_2017{i:013d}.jpg.chip.jpg", quality=90)
    return folder


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_on_real_faces(notebook, tmp_path):
    given = os.environ.get("UTKFACE_SAMPLE_DIR")
    faces = given if given and given != "none" else str(utkface_layout_folder(tmp_path / "UTKFace"))
    env = {**os.environ, "SMOKE": "1", "FACEAGING_SOURCE": "utkface", "FACEAGING_SOURCE_PATH": faces,
           "FACEAGING_RUNS": str(tmp_path / "runs"), "FACEAGING_DATA": str(tmp_path / "data"),
           "FACEAGING_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    copy = tmp_path / "notebooks" / notebook
    copy.parent.mkdir()
    text = (ROOT / "notebooks" / notebook).read_text()
    assert text.count('"PRETRAINED = True\\n"') == (notebook[:2] in ("02", "03", "04", "05", "06"))
    copy.write_text(text.replace('"PRETRAINED = True\\n"', '"PRETRAINED = False\\n"'))  # the training path
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           str(copy)], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "passed" in done.stdout
