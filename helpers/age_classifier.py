r"""A small age-group classifier: an independent judge of whether a generated face looks its age.

A conditional generator is asked for a face of age group :math:`k`. Whether it obeyed is a
question about the *picture*, so we ask a network that has only ever seen real faces: a small
CNN trained with cross-entropy on real training faces and their age groups,

.. math::

    \mathcal L = -\log p_\theta(y \mid x), \qquad \hat y = \arg\max_k p_\theta(k \mid x).

Its accuracy on real *test* faces is the ceiling for every number it gives about fakes: if it
tells 20-30 from 40-50 only 70% of the time on real photos, a generator cannot score much
higher. The **label agreement** of a generator is then the fraction of its faces for group
:math:`k` that the classifier reads as :math:`k`; chance is :math:`1/K`.

Unlike a discriminator's age head (AC-GAN, notebook 06), this judge never trains against the
generator, so a generator cannot learn to fool it. Notebook 07's evaluation builds the course's
shared classifier; this one is small on purpose and works on any
:class:`helpers.cache.FaceCache` or image tensor with any number of groups.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AgeClassifier", "train_age_classifier", "predict_groups", "accuracy", "confusion", "as_float_images"]


class AgeClassifier(nn.Module):
    """Faces ``(B, 3, H, W)`` in [-1, 1] (any size of 16 px or more) -> age-group logits ``(B, n_groups)``.

    Four stride-2 3x3 convolutions with batch norm and ReLU, global average pooling and one
    linear layer: about 25k parameters at ``width=16``.
    """

    def __init__(self, n_groups: int, width: int = 16, group_names=None):
        super().__init__()
        if n_groups < 2:
            raise ValueError(f"an age classifier needs at least two groups, not {n_groups}")
        layers, c = [], 3
        for n in range(4):
            layers += [nn.Conv2d(c, width * 2**n, 3, 2, 1, bias=False), nn.BatchNorm2d(width * 2**n), nn.ReLU(True)]
            c = width * 2**n
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, n_groups)
        self.n_groups = n_groups
        self.group_names = list(group_names) if group_names is not None else [f"group {k}" for k in range(n_groups)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def as_float_images(images) -> torch.Tensor:
    """A :class:`FaceCache`, uint8 ``(N, 3, H, W)`` or float images in [-1, 1] -> a tensor (uint8 kept as is)."""
    if hasattr(images, "tensor") and hasattr(images, "table"):  # a FaceCache
        return images.tensor()
    return torch.as_tensor(images)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()


def train_age_classifier(images, groups, n_groups: int | None = None, steps: int = 600, batch_size: int = 64,
                         lr: float = 2e-3, width: int = 16, seed: int = 0, device="cpu",
                         group_names=None) -> AgeClassifier:
    """Train an :class:`AgeClassifier` on real faces and their group indices; returns it in eval mode.

    ``images``: a :class:`helpers.cache.FaceCache`, uint8 ``(N, 3, H, W)`` or floats in [-1, 1].
    ``groups``: one integer 0..K-1 per face. Batches are drawn at random (with a seeded generator)
    and mirrored half of the time; the global random state is left alone.
    """
    x_all = as_float_images(images)
    y_all = torch.as_tensor(np.asarray(groups), dtype=torch.long)
    if len(x_all) != len(y_all):
        raise ValueError(f"{len(y_all)} group labels for {len(x_all)} faces")
    n_groups = int(n_groups or int(y_all.max()) + 1)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = AgeClassifier(n_groups, width, group_names).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    clf.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch_size, len(x_all)),), generator=g)
        x = _to_float(x_all[idx]).to(device)
        flip = (torch.rand(len(x), generator=g) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = F.cross_entropy(clf(x), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return clf.eval()


@torch.no_grad()
def predict_groups(clf: AgeClassifier, images, batch_size: int = 256) -> np.ndarray:
    """The group the classifier reads in each face (uint8 or [-1, 1] float; resized if needed)."""
    device = next(clf.parameters()).device
    was_training = clf.training
    clf.eval()
    out = []
    for x in as_float_images(images).split(batch_size):
        out.append(clf(_to_float(x).to(device)).argmax(1).cpu())
    clf.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(clf: AgeClassifier, images, groups, batch_size: int = 256) -> float:
    """The fraction of faces whose group the classifier reads as ``groups``.

    For real faces that is its accuracy; for generated faces and the groups they were asked
    for, the generator's *label agreement*.
    """
    y = np.asarray(groups)
    if len(y) == 0:
        return float("nan")
    return float((predict_groups(clf, images, batch_size) == y).mean())


def confusion(clf: AgeClassifier, images, groups, batch_size: int = 256):
    """A table: rows = the group asked for (or true), columns = the group the classifier reads; rows sum to 1."""
    import pandas as pd

    y = np.asarray(groups)
    pred = predict_groups(clf, images, batch_size)
    k = clf.n_groups
    m = np.zeros((k, k))
    np.add.at(m, (y, pred), 1)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    names = clf.group_names
    return pd.DataFrame(m, index=pd.Index(names, name="asked for"), columns=pd.Index(names, name="classifier reads"))
