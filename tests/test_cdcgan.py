"""The conditional DCGAN: shapes, the label reaching both networks, groups, resume and loading; the age classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import cdcgan as cd
from helpers.metrics import GroupClassifier, accuracy, confusion, predict_groups, train_group_classifier
from helpers.cache import BatchLoader
from helpers.config import CDCGANSettings
from helpers.splits import AgeRangeError
from helpers.training import Trainer


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny(groups=("20-30", "40-50"), **kw):
    torch.manual_seed(0)
    return cd.ConditionalDCGAN(groups=groups, n_show=3, nz=8, ngf=4, ndf=4, image_size=16, **kw)


def test_shapes_and_label_grid():
    gan = tiny(("1-15", "20-30", "60+"))
    assert gan.n_classes == 3 and gan.config["groups"] == ["1-15", "20-30", "60+"]
    grid = gan.label_grid()
    assert grid.shape == (3, 3, 3, 16, 16) and grid.min() >= -1 and grid.max() <= 1
    faces = gan.generate([0, 1, 2, 2], seed=0)
    assert faces.shape == (4, 3, 16, 16)
    assert torch.equal(faces, gan.generate([0, 1, 2, 2], seed=0))  # seeded


def test_changing_only_the_label_changes_both_networks():
    gan = tiny()
    G, D = gan.G.eval(), gan.D.eval()  # eval: no batch statistics, each output depends on its own input only
    z, x = torch.randn(4, 8), torch.rand(4, 3, 16, 16) * 2 - 1
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    with torch.no_grad():
        assert (G(z, zeros) - G(z, ones)).abs().max() > 1e-4
        assert (D(x, zeros) - D(x, ones)).abs().max() > 1e-5
    # ... and the label's own weights get gradients in both networks
    G.train(), D.train()
    gan.train_step((x, torch.tensor([0, 1, 0, 1])))
    w_G = G.net[0].weight  # (nz + K, C, 4, 4): the last K input rows belong to the label
    w_D = D.rest[0].weight  # (C, ndf + K, 4, 4): the last K input channels are the label maps
    assert w_G.grad[8:].abs().sum() > 0 and w_D.grad[:, 4:].abs().sum() > 0


def test_train_step_logs_finite_numbers():
    gan = tiny()
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    out = gan.train_step((x, torch.arange(6) % 2))
    assert set(out) == {"loss_D", "loss_G", "D_x", "D_G_z"}
    assert all(math.isfinite(float(v)) for v in out.values())


def test_group_labels_and_run_names():
    assert cd.group_labels([5, 20, 30, 35, 45, 70], ["20-30", "40-50"]).tolist() == [-1, 0, 0, -1, 1, -1]
    assert cd.group_labels([70, 25], ["20-30", "60+"]).tolist() == [1, 0]
    with pytest.raises(AgeRangeError, match="overlap"):
        cd.group_labels([20], ["20-30", "25-50"])
    s = CDCGANSettings(image_size=16, batch_size=4, steps=2)
    assert cd.run_name_for(s) == "cdcgan" == cd.run_name_for(s, ("20-30", "40-50"))
    assert cd.run_name_for(s, s.wide_groups) == "cdcgan_20-30_60+"


def test_resume_and_load_generator(tmp_path):
    x = (torch.rand(12, 3, 16, 16) * 255).to(torch.uint8)
    labels = torch.arange(12) % 2

    def trainer(folder, groups=("20-30", "40-50")):
        loader = BatchLoader(x, 4, labels=labels, seed=0)
        return Trainer(tiny(groups), loader, folder, checkpoint_every=2, progress=False)

    reference = trainer(tmp_path / "reference")
    reference.fit(steps=4)
    t = trainer(tmp_path / "run")
    t.fit(steps=2)
    t2 = trainer(tmp_path / "run")
    assert t2.step == 2
    t2.fit(steps=4)
    assert t2.history.to_frame().equals(reference.history.to_frame())  # exactly the same run
    G = cd.load_generator(tmp_path / "run")
    assert G.groups == ["20-30", "40-50"] and G.step == 4
    assert torch.equal(G.state_dict()["net.0.weight"], t2.model.G.state_dict()["net.0.weight"])
    from helpers.training import CheckpointMismatch

    with pytest.raises(CheckpointMismatch, match="groups"):
        trainer(tmp_path / "run", ("20-30", "60+"))
    with pytest.raises(FileNotFoundError):
        cd.load_generator(tmp_path / "empty")


def test_frozen_generator_draws_each_face_on_its_own():
    gan = tiny()
    G = cd.frozen_generator(gan.G, n_batches=3, batch_size=8)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    assert gan.G.training  # the original is untouched
    z, y = torch.randn(5, 8), torch.tensor([0, 1, 0, 1, 1])
    with torch.no_grad():
        assert torch.allclose(G(z, y)[:2], G(z[:2], y[:2]), atol=1e-6)  # no batch statistics


# --------------------------------------------------------------------------- the age classifier


def _bright_dark(n=64, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = (y.float()[:, None, None, None] * 150 + 40 + torch.rand(n, 3, size, size, generator=g) * 40).to(torch.uint8)
    return x, y


def test_the_classifier_learns_separable_groups():
    x, y = _bright_dark()
    clf = train_group_classifier(x, y, steps=40, batch_size=32, group_names=["young", "old"])
    assert isinstance(clf, GroupClassifier) and not clf.training
    assert accuracy(clf, x, y) > 0.9
    floats = x.float() / 127.5 - 1  # the same faces as [-1, 1] floats read the same
    assert (predict_groups(clf, floats) == predict_groups(clf, x)).all()
    table = confusion(clf, x, y)
    assert list(table.index) == ["young", "old"] and np.allclose(table.sum(axis=1), 1)


def test_label_agreement_reports_rates():
    gan = tiny()
    clf = GroupClassifier(2, width=4, image_size=16)
    out = cd.label_agreement(gan, clf.eval(), n_per_group=8)
    assert {"agreement", "agreement_20-30", "agreement_40-50", "paired"} <= set(out)
    assert all(0 <= v <= 1 for v in out.values())
    # a classifier that always answers group 0 agrees on exactly half of a two-group set
    always0 = GroupClassifier(2, width=4, image_size=16).eval()
    with torch.no_grad():
        always0.heads["group"].weight.zero_()
        always0.heads["group"].bias.copy_(torch.tensor([1.0, 0.0]))
    out = cd.label_agreement(gan, always0, n_per_group=8)
    assert out["agreement"] == 0.5 and out["agreement_20-30"] == 1.0 and out["paired"] == 0.0
    with pytest.raises(ValueError):
        train_group_classifier(torch.zeros(3, 3, 16, 16), [0, 1], 2, steps=1)
