"""Every GPU setting, stepped on the CPU the way a Colab student's run steps it (issue 26).

No GPU runs in CI, and Colab students get these settings by default. So each setting of
``config.GPU_SETTINGS`` is built exactly as it says, set up through its family's ``setup_*`` (the
same :class:`helpers.runs.Run` a notebook and ``python -m helpers.train`` use) on the toy faces,
trained for 2 real steps, checkpointed, wiped and reloaded:

- once at its full image size and width, in float32, at batch 2 (shapes and wiring);
- once with a T4's precision forced on the CPU: float16 autocast, a GradScaler and channels-last
  (:meth:`helpers.training.Precision.t4`), at a reduced image size, because float16 kernels are
  10-20 times slower on a CPU (scaler and dtype bugs: the age GAN's auxiliary classifier once
  stepped its optimiser twice without the scaler's ``update()``, which a float16 GPU refuses).

Only the length changes (2 steps; the age GAN's auxiliary classifier learns 3 steps first, not
thousands), and the batch.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import agegan, cdcgan, config, cyclegan, dcgan, encoder
from helpers.training import Precision

# Not one thread (conftest.py's one_thread): these networks are the course's largest, and both cores pay here.

ROOT = Path(__file__).resolve().parent.parent
#: Image size of the float16 runs: about the smallest each family's networks take (CycleGAN's discriminator needs
#: 24 for a 2x2 map before its last layer, the DCGANs' four layers 32). A CPU's float16 convolutions are 5-50 times slower than its float32 ones.
FP16_SIZE = {"CYCLEGAN_REAL": 24, "CYCLEGAN": 24, "AGEGAN_REAL": 16, "DCGAN_REAL": 32, "CDCGAN_REAL": 32,
             "ENCODER_REAL": 32}
#: The batch of the full-size float32 runs: 1 for CycleGAN (the paper's own batch; its networks are the largest),
#: 2 elsewhere (batch norm needs two faces).
FP32_BATCH = {"CYCLEGAN_REAL": 1, "CYCLEGAN": 1}
#: The loss scale the float16 runs start at. A T4 starts at 65,536 and halves it at each overflow, skipping those
#: steps (tested in tests/test_benchmark_cuda.py); at 1,024 the two steps here update the weights.
INIT_SCALE = 2.0**10


def _t4(monkeypatch):
    """Every family's setup gets a T4's precision (float16 + GradScaler + channels-last) on the CPU."""
    def t4(device, *args, **kwargs):
        p = Precision.t4(device)
        p.scaler = torch.amp.GradScaler(torch.device(device).type, init_scale=INIT_SCALE)
        return p

    for module in (agegan, cdcgan, cyclegan, dcgan):
        monkeypatch.setattr(module, "Precision", t4)


def _sized(name: str, s, size: int | None):
    """The setting at batch 1-2 (and at ``size`` px when given), with two faces in its progress grids.

    Nothing else changes: the batch, the grids and the calibration are run fields (``config.RUN_FIELDS``), not the model's.
    """
    changes: dict = {"batch_size": FP32_BATCH.get(name, 2)}
    # calibration_batches: the frozen generator's batch-norm statistics are re-estimated on 1 batch, not 32.
    for field, n in (("n_show", 2), ("n_samples", 4), ("calibration_batches", 1)):
        if hasattr(s, field):
            changes[field] = n
    if size is not None and hasattr(s, "image_size"):
        changes["image_size"] = size
        if hasattr(s, "load_size"):
            changes["load_size"] = size + size // 8
    if name == "AGEGAN_REAL":
        assert s.age_aux_pretrain > 0
        changes["age_aux_pretrain"] = 3  # the auxiliary classifier's pretraining steps through the scaler too
    return replace(s, **changes)


def _setup(name: str, s, run_dir: Path, monkeypatch, size: int | None = None, resume: bool = True):
    """The family's own setup, as a notebook calls it for these settings (device cpu, toy faces)."""
    kw = dict(data="toy", device="cpu", run_dir=run_dir, progress=False, verbose=False, resume=resume)
    if name.startswith("CYCLEGAN"):
        return cyclegan.setup_cyclegan(s, **kw)
    if name == "AGEGAN_REAL":
        return agegan.setup_agegan(s, **kw)
    if name == "DCGAN_REAL":
        return dcgan.setup_dcgan(s, **kw)
    if name == "CDCGAN_REAL":
        return cdcgan.setup_cdcgan(s, s.wide_groups, **kw)
    if name == "ENCODER_REAL":
        # It inverts the conditional DCGAN its settings name; that one is trained for 2 steps first, at the size
        # given (the encoder's image size is the cDCGAN's).
        c = _sized("CDCGAN_REAL", config.GPU_SETTINGS[s.cgan_settings], size)
        monkeypatch.setattr(config, s.cgan_settings, replace(c, steps=2))
        return encoder.setup_inversion(s, cgan_run_dir=run_dir.with_name(run_dir.name + "-cgan"), **kw)
    raise KeyError(name)


def _runs(run):
    """The trainable runs of a setup (the encoder's setup holds two: the seed's encoder and the improved one)."""
    return [run.seed, run.real] if hasattr(run, "seed") and hasattr(run, "real") else [run]


def _weights(r) -> dict:
    return {f"{k}.{n}": t.detach().clone() for k, net in r.model.networks.items()
            for n, t in net.state_dict().items() if t.is_floating_point()}


def _two_steps_checkpoint_and_resume(name, s, tmp_path, monkeypatch, size=None):
    run_dir = tmp_path / name.lower()
    run = _setup(name, s, run_dir, monkeypatch, size)
    for r in _runs(run):
        before = _weights(r)
        history = r.train(steps=2)
        assert r.trainer.step == 2
        frame = history.to_frame()
        assert len(frame) == 2
        values = frame.to_numpy(dtype=float)
        assert np.isfinite(values[~np.isnan(values)]).all() and not np.isnan(values).all(axis=0).any(), frame
        after = _weights(r)
        for net in r.model.networks:
            if any(p.requires_grad for p in r.model.networks[net].parameters()):
                moved = [k for k in after if k.startswith(net + ".") and not torch.equal(after[k], before[k])]
                assert moved, f"{name}: the weights of {net} did not change in 2 steps"
        assert r.trainer.checkpointer.latest() is not None
    # The checkpoint reloads: every weight wiped, then put back by the Trainer's resume path (what a new session runs).
    for r in _runs(run):
        trained = _weights(r)
        with torch.no_grad():
            for net in r.model.networks.values():
                for t in net.state_dict().values():
                    if t.is_floating_point():
                        t.zero_()
        r.trainer.step = 0
        assert r.trainer.restore() == r.trainer.checkpointer.latest() and r.trainer.step == 2
        restored = _weights(r)
        assert restored.keys() == trained.keys() and all(torch.equal(restored[k], trained[k]) for k in trained)
    return run


@pytest.mark.parametrize("name", list(config.GPU_SETTINGS))
def test_every_gpu_setting_trains_at_full_size_in_float32(name, tmp_path, monkeypatch):
    s = _sized(name, config.GPU_SETTINGS[name], None)
    _two_steps_checkpoint_and_resume(name, s, tmp_path, monkeypatch)


@pytest.mark.parametrize("name", list(config.GPU_SETTINGS))
def test_every_gpu_setting_trains_with_a_t4s_precision(name, tmp_path, monkeypatch):
    _t4(monkeypatch)
    s = _sized(name, config.GPU_SETTINGS[name], FP16_SIZE[name])
    run = _two_steps_checkpoint_and_resume(name, s, tmp_path, monkeypatch, FP16_SIZE[name])
    p = _runs(run)[-1].model.precision
    assert p.dtype == torch.float16 and p.scaler is not None and p.memory_format == torch.channels_last


def test_pretrain_aux_updates_the_grad_scaler_after_every_step():
    # Bug: pretrain_aux stepped the classifier's optimiser through the GradScaler on every step and never called
    # update(); a float16 GPU (a T4) then refused the second step ("step() has already been called since the last
    # update()"), so notebook 06 crashed on Colab before training began.
    precision = Precision.t4("cpu")
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=1)
    gan = agegan.AgeGAN(group_edges=(0, 15, 30, 45), image_size=32, ngf=8, ndf=8, n_enc_blocks=1, n_dec_blocks=1,
                        style_dim=16, n_layers_D=3, lambda_age_aux=1.0, age_aux_size=16, age_aux_ndf=4,
                        precision=precision)
    before = [p.detach().clone() for p in gan.C_age.parameters()]
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    acc = gan.pretrain_aux(images, np.arange(16) % 4, steps=3, batch_size=8)
    assert acc is not None and 0.0 <= acc <= 1.0
    assert precision.scaler.get_scale() == 8.0 * 2**3  # one update per step, none skipped
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.C_age.parameters()))


def test_the_gpu_settings_are_what_a_gpu_gets():
    # In full mode (not the tests' smoke mode), default_settings("cuda", source) of every family is one of
    # GPU_SETTINGS, and every GPU setting is some family's choice on a GPU.
    code = (
        "from helpers import agegan, cdcgan, config, cyclegan, dcgan, encoder\n"
        "got = {m.__name__: {src: m.default_settings('cuda', src) for src in ('toy', 'utkface')}\n"
        "       for m in (agegan, cdcgan, cyclegan, dcgan, encoder)}\n"
        "gpu = {n for n, s in config.GPU_SETTINGS.items() for d in got.values() for v in d.values() if v is s}\n"
        "real = all(any(v is s for s in config.GPU_SETTINGS.values()) for d in got.values() for v in [d['utkface']])\n"
        "print(sorted(gpu) == sorted(config.GPU_SETTINGS), real)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SMOKE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
