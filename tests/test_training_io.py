"""What training writes: checkpoints rotated without filling a cloud drive's trash, and a short
headless log instead of a redrawn progress bar."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest
import torch

from helpers import training
from helpers.training import Checkpointer, Trainer


def _record_unlinks(monkeypatch) -> dict[str, int]:
    """Every deleted file's size at the moment it was deleted."""
    sizes: dict[str, int] = {}
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self.exists():
            sizes[self.name] = self.stat().st_size
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    return sizes


def test_rotation_empties_each_old_checkpoint_before_deleting_it(tmp_path, monkeypatch):
    sizes = _record_unlinks(monkeypatch)
    ck = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        ck.save({"w": torch.full((1000,), float(step))}, step)
    assert sizes == {"ckpt_00000001.pt": 0, "ckpt_00000002.pt": 0}  # truncated to 0 bytes first
    assert [p.name for p in ck.paths()] == ["ckpt_00000003.pt", "ckpt_00000004.pt"]
    for p, step in zip(ck.paths(), (3, 4)):  # the kept ones are whole
        assert torch.load(p, weights_only=True)["w"][0] == step


def test_a_stale_tmp_is_emptied_too_and_the_just_written_checkpoint_is_never_rotated_away(tmp_path, monkeypatch):
    ck = Checkpointer(tmp_path, keep=2)
    ck.save({"s": 8}, 8)
    ck.save({"s": 10}, 10)
    (tmp_path / "ckpt_00000011.pt.tmp").write_bytes(b"x" * 4096)  # a crash mid-save left it
    sizes = _record_unlinks(monkeypatch)
    written = ck.save({"s": 5}, 5)  # e.g. training on from a restored, older checkpoint
    assert written.is_file() and torch.load(written, weights_only=True)["s"] == 5
    assert sizes == {"ckpt_00000008.pt": 0, "ckpt_00000011.pt.tmp": 0}
    assert [p.name for p in ck.paths()] == ["ckpt_00000005.pt", "ckpt_00000010.pt"]


def test_discard_truncates_then_unlinks_and_accepts_a_missing_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(training.os, "truncate", lambda p, n: calls.append(("truncate", Path(p).name, n)))
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: calls.append(("unlink", self.name)))
    f = tmp_path / "ckpt_00000001.pt"
    f.write_bytes(b"data")
    training.discard(f)
    assert calls == [("truncate", f.name, 0), ("unlink", f.name)]
    monkeypatch.undo()
    training.discard(tmp_path / "gone.pt")  # nothing there: no error


# --------------------------------------------------------------------------- headless progress


class _Toy(training.Trainable):
    """A model with a generator and a discriminator loss and nine other terms, like CycleGAN's logs."""

    name = "toy"

    def __init__(self):
        self.net = torch.nn.Linear(1, 1)
        self.networks = {"net": self.net}
        self.optimizers = {"opt": torch.optim.SGD(self.net.parameters(), lr=0.01)}
        self.config = {"lr": 0.01}

    def train_step(self, batch):
        loss = (self.net(batch) ** 2).mean()
        self.optimizers["opt"].zero_grad()
        loss.backward()
        self.optimizers["opt"].step()
        terms = {f"term_{i}": loss.detach() * i for i in range(9)}
        return {"G": loss.detach(), "D": 1.0 - loss.detach() * 0, **terms}


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _fit(tmp_path, monkeypatch, stderr, steps, **kw) -> str:
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # not a Jupyter kernel
    monkeypatch.setattr(sys, "stderr", stderr)
    loader = [torch.ones(2, 1) * (i % 7) for i in range(250)]
    t = Trainer(_Toy(), loader, tmp_path, checkpoint_every=0, progress=True, **kw)
    t.fit(steps=steps)
    return stderr.getvalue()


def test_headless_log_is_a_short_line_every_n_steps(tmp_path, monkeypatch):
    log = _fit(tmp_path, monkeypatch, io.StringIO(), steps=1000)
    lines = log.splitlines()
    assert "\r" not in log
    assert len(lines) < 100, len(lines)
    assert lines[0] == "toy: training from step 0 to step 1000; a line every 50 steps"
    progress = lines[1:]
    assert len(progress) == 20
    pattern = re.compile(r"^toy  step (\d+)/1000 \(\d+%\)  [\d.e+]+ steps/s(  eta \d+m\d\ds)?  G [\d.]+  D 1\.000$")
    steps = [int(pattern.match(line).group(1)) for line in progress]
    assert steps == list(range(50, 1001, 50))
    assert all(len(line) < 100 for line in lines)
    assert "term_3" not in log  # only the headline losses


def test_headless_log_shows_interval_means_and_ends_with_the_last_step(tmp_path, monkeypatch):
    log = _fit(tmp_path, monkeypatch, io.StringIO(), steps=23, log_every=10)
    lines = log.splitlines()
    assert [re.search(r"step (\d+)/", line).group(1) for line in lines[1:]] == ["10", "20", "23"]
    assert "eta" not in lines[-1]
    history = torch.tensor(Trainer(_Toy(), [torch.ones(2, 1)], tmp_path, progress=False).history.terms["G"])
    expected = [history[0:10].mean(), history[10:20].mean(), history[20:23].mean()]
    shown = [float(re.search(r"  G ([\d.]+)", line).group(1)) for line in lines[1:]]
    assert shown == pytest.approx([float(e) for e in expected], abs=1e-3)


def test_a_terminal_gets_the_bar(tmp_path, monkeypatch):
    log = _fit(tmp_path, monkeypatch, _FakeTerminal(), steps=30)
    assert "\r" in log and "step" in log and "training from step" not in log


def test_no_progress_means_silence(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    Trainer(_Toy(), [torch.ones(2, 1)] * 5, tmp_path, checkpoint_every=0, progress=False).fit(steps=5)
    assert sys.stderr.getvalue() == ""


def test_headline_falls_back_to_the_first_two_terms():
    out = io.StringIO()
    lines = training._LogLines(total=None, initial=0, desc="enc", every=2, stream=out)
    for _ in range(2):
        lines.show({"latent": 0.5, "pixel_real": 0.25, "pixel_fake": 9.0})
    assert out.getvalue().splitlines()[-1].endswith("latent 0.500  pixel_real 0.250")
    assert "step 2  " in out.getvalue()
