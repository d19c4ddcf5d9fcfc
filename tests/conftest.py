"""Shared fixtures.

The real UTKFace sample lives beside the project on development machines and in CI, never
inside it; a student's fresh clone has none. Point UTKFACE_SAMPLE_DIR at a folder of UTKFace
JPEGs to use another copy, or set it to ``none`` to run as a fresh clone does. Tests that need
real faces skip, with the reason, where none is found; tests whose result depends on whether the
sample is here state what they expect in both cases and carry the ``sample`` mark, so that
``.ci/run`` can run them a second time with the sample hidden (``pytest -m sample``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent


#: ``UTKFACE_SAMPLE_DIR=none`` hides the sample: the tests then see what a student's fresh clone sees.
HIDDEN = "none"


def _real_sample_dir() -> Path | None:
    env = os.environ.get("UTKFACE_SAMPLE_DIR")
    if env == HIDDEN:
        return None
    candidates = [Path(env)] if env else []
    candidates.append(_ROOT.parent / "shared" / "data" / "utkface-sample" / "UTKFace")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.jpg")):
            return c
    return None


@pytest.fixture(scope="session")
def real_utkface_dir() -> Path:
    d = _real_sample_dir()
    if d is None:
        pytest.skip("no real UTKFace sample here: set UTKFACE_SAMPLE_DIR to a folder of UTKFace images")
    return d


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``).

    The tests' networks are tiny: one thread is as fast as two, and far faster when other
    processes share the cores (threads that wait for each other spin).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config):
    config.addinivalue_line("markers", "sample: reads the real UTKFace sample when it is here (and checks the "
                                       "fresh-clone behaviour when it is not); run again with UTKFACE_SAMPLE_DIR=none")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "real_utkface_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.sample)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs two pytest-xdist workers with ``--dist loadfile``: each test file stays whole on one
    worker (its module fixtures are built once), and all the notebooks run in order on one worker, since a
    notebook reuses the runs of the notebooks before it (05 inverts 04's generator, 07 scores 03-06)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NotebooksTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "notebooks" if file.endswith(".ipynb") else file

    return NotebooksTogether(config, log)


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_worker():
    """Under pytest-xdist each worker has a core of its own: one torch thread each, so that they do not spin."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
    yield
