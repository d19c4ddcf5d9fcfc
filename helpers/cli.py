"""What the command lines check before they load anything heavy.

Every ``python -m helpers.<app>`` parses its arguments and checks them with the standard
library alone, and imports PyTorch only after that: ``--help`` and a usage error answer at
once, not after the seconds that importing torch takes. This module holds those early checks:

- :func:`usable_folder`: an output folder is created and written to before any work starts,
  so that an unusable ``--out`` ends in one sentence (exit 2) instead of a traceback after
  minutes of work;
- :func:`check_strength`: the age GAN's strength, a number in (0, 2];
- :func:`number_list`: a comma-separated list of numbers, such as ``--strength-curve``.

Ground layer: it imports nothing from the course, and nothing outside the standard library.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def usable_folder(path) -> str | None:
    """None when ``path`` is a folder this process can write to (it is created if missing), else one sentence why not.

    The folder is really created and a small file really written and deleted in it: that is the
    only test that catches every case (a read-only disk, ``/proc``, a path through a file, a
    folder without write permission, a full disk).
    """
    folder = Path(os.path.expanduser(str(path)))
    if folder.exists() and not folder.is_dir():
        return f"--out {str(path)!r} is a file, not a folder: give a folder for the results (it is created if missing)."
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        return (f"--out {str(path)!r} cannot be used ({why.lower()}): give a folder you can write to "
                "(it is created if missing).")
    return None


def check_strength(strength) -> float:
    """``strength`` as a float, or a ValueError saying what it must be."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 2.0:
        raise ValueError(f"strength must be a number in (0, 2] (1: the generator's whole change, 0.5: half of it), "
                         f"not {strength!r}")
    return value


def number_list(text: str, what: str) -> list[float]:
    """``"0.8,0.9, 1"`` -> ``[0.8, 0.9, 1.0]``, or a ValueError that names ``what`` and shows the form to use."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"{what} takes numbers separated by commas, like 0.8,0.9,1 (got {text!r})")
    return values
