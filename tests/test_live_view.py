"""Watching a run learn: in a notebook one figure redraws in place while it trains; headless runs draw nothing."""

from __future__ import annotations

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import config, plots, runs  # noqa: E402
from helpers.cache import BatchLoader  # noqa: E402
from helpers.dcgan import DCGAN, DCGANRun  # noqa: E402
from helpers.training import Precision  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(run_dir) -> DCGANRun:
    s = replace(config.DCGAN, image_size=8, nz=4, ngf=4, ndf=4, n_samples=4, batch_size=4, checkpoint_every=3,
                sample_every=2, seed=0)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    gan = DCGAN(s, device="cpu", precision=Precision("cpu"))
    run = DCGANRun(s, "cpu", "toy", gan, BatchLoader(images, batch_size=4, flip=False, seed=0), run_dir)
    return run.start(gan.sample, nrow=2, progress=False)


def _weights(run):
    return {f"{k}.{n}": t.clone() for k, net in run.model.networks.items() for n, t in net.state_dict().items()}


def test_the_view_redraws_in_place_and_leaves_training_as_it_was(tmp_path, monkeypatch):
    plain = _run(tmp_path / "plain")
    plain.train(steps=6, live=False)

    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", [ax.get_title() for ax in fig.axes]))

    def display(fig, display_id=None):
        assert display_id is True  # one display, updated in place
        shown.append(("display", [ax.get_title() for ax in fig.axes]))
        return Handle()

    import IPython.display

    monkeypatch.setattr(IPython.display, "display", display)
    watched = _run(tmp_path / "watched")
    watched.train(steps=6, live=0.0)  # a redraw after every step, and one at the end
    assert [kind for kind, _ in shown] == ["display"] + ["update"] * 6
    titles = shown[-1][1]
    assert titles[0] == "progress grid, step 6"  # the newest saved grid, then each loss group
    assert titles[1:] == list(watched.loss_groups)
    assert watched.trainer.step == 6 and watched.trainer.forget  # and the view is no longer called
    assert not any(fn.__class__.__name__ == "LiveView" for _, fn in watched.trainer._step_callbacks)
    a, b = _weights(plain), _weights(watched)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the view reads saved grids: training is untouched


def test_the_view_waits_for_its_interval(tmp_path):
    run = _run(tmp_path / "r")
    t = [100.0]
    view = plots.LiveView(run.snapshots, run.trainer.history, run.loss_groups, interval=30.0)
    view._clock = lambda: t[0]
    view._last = t[0]
    drawn = []
    view.draw = lambda step=None: (drawn.append(step), setattr(view, "_last", t[0]))
    for step, now in enumerate([110.0, 129.9, 130.0, 140.0, 161.0], start=1):
        t[0] = now
        view(type("T", (), {"step": step})())
    assert drawn == [3, 5]


def test_headless_and_quiet_runs_draw_nothing(tmp_path, monkeypatch):
    assert not plots.in_notebook()  # pytest is no Jupyter kernel

    def refuse(*a, **k):
        raise AssertionError("a headless run made a live view")

    monkeypatch.setattr(plots, "LiveView", refuse)
    run = _run(tmp_path / "r")
    run.train(steps=2)  # live=None: only in a notebook
    monkeypatch.setattr(plots, "in_notebook", lambda: True)
    run.train(steps=3)  # in a notebook, but the run was set up with progress=False
    assert run.trainer.step == 3
    assert runs.Run.LIVE_EVERY_S == 30.0
