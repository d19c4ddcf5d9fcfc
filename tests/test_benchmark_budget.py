"""``python -m helpers.benchmark budget``: the T4 budget of a setting, on tiny settings (issue 26)."""

from __future__ import annotations

import pytest
import torch

from helpers import benchmark as B
from helpers import config

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

TINY_DCGAN = config.DCGANSettings(image_size=32, batch_size=4, epochs=3, nz=8, ngf=8, ndf=8, checkpoint_every=100,
                                  run_name="tiny")


def test_the_budget_of_a_tiny_dcgan_adds_up():
    r = B.budget("TINY_REAL", TINY_DCGAN)
    models, make_batch = B.build_for_budget(TINY_DCGAN)
    gan = models[0]
    assert r["params"] == sum(p.numel() for net in gan.networks.values() for p in net.parameters())
    # FLOPs grow linearly with the batch: the batch-1 and batch-2 steps extended to batch 4 give batch 4's own count.
    direct = B.measure_step(gan, make_batch(gan, TINY_DCGAN.batch_size))
    assert r["flops_per_step"] == pytest.approx(direct["flops"], rel=1e-6)
    assert r["activations_bytes"] == pytest.approx(direct["saved_fp16_bytes"], rel=0.15)  # an estimate
    # Memory: checkpointed state + gradients (4 B) + float16 weights (2 B) + activations + faces + CUDA's share.
    assert r["memory_bytes"] == (r["checkpoint_bytes"] + 6 * r["params"] + r["activations_bytes"] + r["data_bytes"]
                                 + B.CUDA_OVERHEAD_BYTES)
    assert r["data_bytes"] == int(B.SAMPLE_TRAIN_FACES * B.UTKFACE_FULL / B.UTKFACE_SAMPLE) * 3 * 32 * 32
    # Steps: 3 epochs of the sample's 5,912 faces in batches of 4, and of the full UTKFace's.
    assert r["steps_sample"] == 3 * (5912 // 4)
    assert r["steps_full"] == 3 * (int(5912 * B.UTKFACE_FULL / B.UTKFACE_SAMPLE) // 4)
    minutes = r["flops_per_step"] * r["steps_full"] / (0.25 * 65e12) / 60
    assert r["t4_minutes_full"][0.25] == pytest.approx(minutes)
    assert r["t4_minutes_full"][0.40] == pytest.approx(minutes * 0.25 / 0.40)
    assert r["checkpoints_written_full"] == r["steps_full"] // 100 + 3 + 1 and r["checkpoints_kept"] == 2
    assert r["fits"] and not r["in_window"]  # a tiny model is done in far under 10 minutes


def test_the_checkpoint_size_is_what_the_trainer_writes(tmp_path):
    from helpers.training import Trainer

    models, make_batch = B.build_for_budget(TINY_DCGAN)
    gan = models[0]
    B.measure_step(gan, make_batch(gan, 2))  # Adam has its state after a step, as in a checkpoint
    written = Trainer(gan, [make_batch(gan, 2)], tmp_path, progress=False).save().stat().st_size
    assert B._state_bytes(gan) == pytest.approx(written, rel=0.05)  # the Trainer's adds history and random states


def test_steps_for_step_counted_settings_and_the_toy_faces():
    cdc = config.CDCGANSettings(image_size=32, batch_size=8, steps=50)
    assert B.steps_of(cdc) == {"steps": 50, "epochs": None, "per_epoch": None}
    enc = config.EncoderSettings(steps=30, batch_size=8)
    assert B.steps_of(enc)["steps"] == 60  # two encoders, one after the other
    cyc = config.CycleGANSettings(image_size=32, load_size=36, batch_size=8, n_epochs_constant=1, n_epochs_decay=1)
    assert B.steps_of(cyc, toy=True) == {"steps": 2 * (1818 // 8), "epochs": 2, "per_epoch": 1818 // 8}
    assert B.steps_of(cyc, 2.0)["per_epoch"] == 2 * 1432 // 8


def test_the_table_has_a_row_and_a_verdict_per_setting():
    rows = [B.budget("TINY_REAL", TINY_DCGAN), B.budget("TINY_TOY", TINY_DCGAN)]
    table = B.budget_table(rows)
    lines = table.splitlines()
    assert lines[0].startswith("| setting | params | GFLOP/step") and lines[1].startswith("|---")
    assert sum(ln.startswith("| TINY_") for ln in lines) == 2
    assert "TINY_REAL: fits 12 GB? yes" in table and "on the full UTKFace? NO" in table
    assert "TINY_TOY: fits 12 GB? yes" in table and "on the toy faces? NO" in table and "(toy faces)" in table


def test_budget_refuses_an_unknown_setting(capsys):
    with pytest.raises(SystemExit, match="no GPU setting NOPE; choose from CYCLEGAN_REAL"):
        B.main(["budget", "--settings", "NOPE"])


def test_activations_saved_for_backward_are_counted_once_in_float16():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(10, 10, bias=False)

    class Model:
        networks = {"n": Net()}
        precision = B.Precision("cpu")

        def train_step(self, x):
            y = self.networks["n"].lin(x)  # saves x (the weight is a parameter: not counted)
            (y * y).sum().backward()  # saves y, twice the same tensor: counted once

    out = B.measure_step(Model(), torch.randn(4, 10))
    assert out["saved_fp16_bytes"] == 2 * (4 * 10 + 4 * 10)
    assert out["flops"] == 2 * 2 * 4 * 10 * 10  # forward, and backward for the weight (the input needs no gradient)
