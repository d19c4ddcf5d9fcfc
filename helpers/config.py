"""Every size, count and path the course uses, in one place.

Smoke mode (``SMOKE=1`` in the environment) shrinks every size so that each notebook runs end
to end in seconds on a CPU; that is what CI does. Without it, the notebooks use the real course
settings. Notebooks read their sizes from here and never branch on smoke mode themselves.

Each section is a small frozen dataclass with a full and a smoke instance; :func:`pick` returns
the one that applies. To change a size for the whole course, change it here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: True when the environment variable SMOKE is set to anything but "", "0" or "false".
SMOKE: bool = os.environ.get("SMOKE", "").strip().lower() not in ("", "0", "false", "no")


def _project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    # An editable install or a clone: the package sits beside notebooks/.
    if (here / "notebooks").is_dir():
        return here
    return Path.cwd()


ROOT: Path = _project_root()
#: Downloads, generated faces and caches. FACEAGING_DATA moves it (to Google Drive, say).
DATA_DIR: Path = Path(os.environ.get("FACEAGING_DATA", ROOT / "data")).expanduser()
#: Checkpoints, samples and translated test sets. FACEAGING_RUNS moves it.
RUNS_DIR: Path = Path(os.environ.get("FACEAGING_RUNS", ROOT / "runs")).expanduser()
#: Figures for the README.
IMGS_DIR: Path = ROOT / "imgs"
#: Which faces the notebooks use: "auto" (UTKFace when its zip, folder or Kaggle credentials are
#: at hand, else the toy faces), "toy" (built in, offline), "utkface", "facial-age" or
#: "imdb-wiki". FACEAGING_SOURCE_PATH points at a zip or folder of it.
DATA_SOURCE: str = os.environ.get("FACEAGING_SOURCE", "auto")
DATA_SOURCE_PATH: str | None = os.environ.get("FACEAGING_SOURCE_PATH") or None


def pick(full, smoke):
    """Return ``smoke`` in smoke mode and ``full`` otherwise."""
    return smoke if SMOKE else full


@dataclass(frozen=True)
class DataSettings:
    """Data exploration and preprocessing (notebook 01)."""

    toy_images: int  # how many toy faces to generate
    toy_identities: int  # how many different people they show
    toy_dir: Path  # where they are written
    image_size: int  # resolution of the uint8 cache used for training
    max_images: int | None  # cap on real-dataset images (None: all)
    test_fraction: float = 0.2
    split_seed: int = 0


DATA = pick(
    DataSettings(
        toy_images=5000,
        toy_identities=1000,
        toy_dir=DATA_DIR / "toyfaces",
        image_size=128,
        max_images=None,
    ),
    DataSettings(
        toy_images=240,
        toy_identities=60,
        toy_dir=DATA_DIR / "toyfaces-smoke",
        image_size=32,
        max_images=300,
    ),
)


def summary() -> str:
    """One line that tells a student which mode is on and where the data lives."""
    mode = "SMOKE (tiny sizes, for CI)" if SMOKE else "full course settings"
    return f"mode: {mode} | data: {DATA_DIR} | runs: {RUNS_DIR}"
