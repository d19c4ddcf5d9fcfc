r"""Measuring face aging: did the face get the requested age, does it look real, is it still the same person?

Notebook 07 and ``python -m helpers.evaluate`` score every model of the course with the
functions here. Each question gets its own measure, and each measure says what it was computed
with, so that no two numbers of different kinds end up in one column.

**Age: the course's age classifier.** A small CNN (:class:`AgeClassifier`) reads the age of a
face. Its head has one output per year of age (0, 1, ..., 100+) and is trained with soft labels,
a Gaussian of a few years around the true age (deep label distribution learning; Gao et al.,
2017). Two readings come out of the one softmax :math:`p(a \mid x)`:

- the *age*, the expected value :math:`\hat a(x) = \sum_a a\,p(a \mid x)` (DEX; Rothe, Timofte
  and Van Gool, 2015), from which the mean absolute error (MAE) on real test faces follows;
- the *age group* for **any** set of groups: a group's probability is the sum of
  :math:`p(a \mid x)` over the ages it holds, renormalised over the groups, and the predicted
  group is the most probable one.

So one classifier serves CycleGAN's two domains (15-30 against 50+) and the age-modulated GAN's
six groups alike, instead of one classifier per model: a regression head alone would need
hand-set thresholds, and a classifier over one model's groups could not score another's.
*Age accuracy*, as in seed 001's table, is the share of translated faces that the classifier
puts in the group they were sent to. The classifier's own accuracy and MAE on real test faces
(which it never trained on) are the *ceiling*: a generator is not measured more precisely than
the judge can read real faces.

**Realism: FID.** The Fréchet Inception Distance (Heusel et al., 2017, "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium") fits a Gaussian to the features
of real and of generated faces and measures the distance between the two,

.. math::

    \mathrm{FID} = \lVert \mu_r - \mu_g \rVert^2 + \operatorname{Tr}\big(\Sigma_r + \Sigma_g - 2(\Sigma_r \Sigma_g)^{1/2}\big).

The features are by convention the 2048 pool features of Inception-v3 (Szegedy et al., 2016,
"Rethinking the Inception Architecture for Computer Vision") with the weights of the original
TensorFlow FID code; ``torchmetrics`` computes it with ``torch-fidelity``'s port of them.
Those weights are downloaded on first use. Where they cannot be had (offline, CI), the same
Fréchet distance is computed on the age classifier's penultimate features instead and labelled
**"FID (course classifier features)"**: a stand-in that compares models within this course
only, *never* with an Inception FID or a published number. :func:`choose_fid` decides which,
quickly and without hanging, and every result carries ``fid_kind`` = ``"inception"`` or
``"stand-in"``. FID is biased upwards on small samples; compare models on the same number of
faces.

**The same person: reconstruction and identity.**

- *Cycle reconstruction*: a face translated to the target age and back should return to
  itself. Measured as the mean absolute pixel error (L1, on a 0-1 pixel scale) and as SSIM, the
  structural similarity (Wang, Bovik, Sheikh and Simoncelli, 2004, "Image Quality Assessment:
  From Error Visibility to Structural Similarity"; computed by ``torchmetrics``), which is 1 for
  identical images.
- *Ground truth* (toy faces only): the toy painter draws the same person, in the same photo, at
  the target age (:func:`helpers.toyfaces.render_face`), so a translation can be compared with
  the right answer (L1 and SSIM). Comparing the *unchanged* input with the same truth gives the
  baseline that a model must beat.
- *Identity traits* (toy faces only): a small :class:`TraitClassifier` reads gender, race and
  hair style; "traits kept" is the share of translated faces whose three predicted traits are
  those of the source person (:func:`helpers.toyfaces.identity_traits`).
- *Same person* (real faces): dlib's face recogniser (:mod:`helpers.identity`) maps the input
  and the translation to 128 numbers each; the two are taken to be the same person when they lie
  closer than 0.6. "Same person (%)" is the share of such pairs, "identity distance" their mean
  distance. :mod:`helpers.evaluate` adds two reference rows: the *resolution floor* (each real
  face shrunk to the model's size and enlarged back: the best a model of that size can do) and
  *different people* (random pairs of strangers: what losing the person looks like).

**Would it pass for a photo?** The table's "flagged unrealistic (%)" column, its validation
(the "realism check" rows) and the figures of what it flags are :mod:`helpers.realism`'s.


Everything is returned by :func:`evaluate_translation` as a flat dict; :func:`results_table`
and :func:`write_table` turn a list of them into the course's table (CSV and Markdown).

**Group labels only.** Where a caller knows the faces' groups but not their ages (the
conditional DCGAN of notebooks 04-05), :func:`train_group_classifier` trains a
:class:`GroupClassifier` over those K groups. It and :meth:`AgeClassifier.for_groups` (the age
classifier read as K groups) both output group logits, so :func:`predict_groups`,
:func:`accuracy` (a fraction, the "label agreement" of a generator) and :func:`confusion`
take either.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import config
from .splits import AgeRange
from .training import progress_display

__all__ = [
    "MAX_AGE", "TRAITS", "FaceCNN", "AgeClassifier", "TraitClassifier", "train_classifier",
    "save_classifier", "load_classifier", "course_caches", "get_age_classifier", "get_trait_classifier",
    "classifier_report", "trait_labels", "to_unit", "l1_error", "ssim", "predict_groups", "age_accuracy",
    "AgeGroupView", "GroupClassifier", "train_group_classifier", "accuracy", "confusion", "as_float_images",
    "trait_agreement", "render_truth", "FIDChoice", "choose_fid", "inception_weights_path", "frechet_distance",
    "evaluate_translation", "results_table", "write_table",
    "markdown_table", "PUBLISHED_SEED001", "METRIC_LABELS",
]

#: The age head has one class per year, 0 .. MAX_AGE (the last holds everyone MAX_AGE and older).
MAX_AGE = 100
#: The identity traits the toy trait classifier reads, with their number of classes.
TRAITS = {"gender": 2, "race": 5, "hair_style": 5}


# --------------------------------------------------------------------------- images


def _as_float(x) -> torch.Tensor:
    """uint8 0..255 or float [-1, 1] images -> float [-1, 1]."""
    x = torch.as_tensor(x)
    return x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()


def to_unit(x) -> torch.Tensor:
    """uint8 0..255 or float [-1, 1] images (the generators' range) -> float [0, 1]."""
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        return x.float().div(255.0)
    return x.float().add(1.0).div(2.0).clamp(0.0, 1.0)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


# --------------------------------------------------------------------------- the judges' network


class FaceCNN(nn.Module):
    """A small CNN with named heads: the trunk shared by the age and the trait classifier.

    Four stages halve the resolution (``width``, 2, 4 and 8 ``width`` channels), each a strided
    3x3 convolution followed by a plain one, with batch norm and ReLU; global average pooling
    gives the ``8 * width`` *features* (the stand-in FID's features); dropout and one linear
    layer per head give the logits. Input: uint8 or [-1, 1] float faces of any size, resized to
    ``image_size``.
    """

    def __init__(self, heads: dict, image_size: int = 64, width: int = 16, dropout: float = 0.2):
        super().__init__()
        self.image_size, self.width = int(image_size), int(width)
        layers, c = [], 3
        for n in range(4):
            w = width * 2**n
            layers += [nn.Conv2d(c, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = c
        self.drop = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({k: nn.Linear(c, int(n)) for k, n in heads.items()})

    def prepare(self, x) -> torch.Tensor:
        """Any batch of faces -> float [-1, 1] at ``image_size``, on this network's device."""
        x = _as_float(x).to(next(self.parameters()).device)
        return _resize(x, self.image_size)

    def features(self, x) -> torch.Tensor:
        """The penultimate features ``(B, num_features)``."""
        return self.trunk(self.prepare(x))

    def head_logits(self, x) -> dict:
        """``{head: logits}`` for a batch of faces."""
        h = self.drop(self.features(x))
        return {k: head(h) for k, head in self.heads.items()}

    def forward(self, x) -> dict:
        return self.head_logits(x)

    @property
    def settings(self) -> dict:
        return {"heads": {k: h.out_features for k, h in self.heads.items()}, "image_size": self.image_size,
                "width": self.width}


class AgeClassifier(FaceCNN):
    """Reads a face's age: a softmax over the years 0..MAX_AGE (see the module docstring)."""

    kind = "age"

    def __init__(self, image_size: int = 64, width: int = 16, dropout: float = 0.2):
        super().__init__({"age": MAX_AGE + 1}, image_size, width, dropout)

    @torch.no_grad()
    def age_probs(self, x, batch_size: int = 256) -> torch.Tensor:
        """``p(age | face)``, ``(N, MAX_AGE + 1)`` on the CPU (evaluation mode, in chunks)."""
        was = self.training
        self.eval()
        try:
            out = [F.softmax(self(c)["age"].float(), 1).cpu() for c in torch.as_tensor(x).split(batch_size)]
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.empty(0, MAX_AGE + 1)

    def predict_age(self, x, batch_size: int = 256) -> torch.Tensor:
        """The expected age of every face (DEX), ``(N,)``."""
        return self.age_probs(x, batch_size) @ torch.arange(MAX_AGE + 1, dtype=torch.float32)

    def group_probs(self, x, groups, batch_size: int = 256) -> torch.Tensor:
        """``(N, K)`` probabilities of the age groups ``groups`` (AgeRanges or "15-30", "50+" ...)."""
        return group_probs_from_ages(self.age_probs(x, batch_size), groups)

    def predict_group(self, x, groups, batch_size: int = 256) -> torch.Tensor:
        """The most probable of ``groups`` for every face, ``(N,)`` indices."""
        return self.group_probs(x, groups, batch_size).argmax(1)

    def for_groups(self, groups, group_names=None) -> "AgeGroupView":
        """This classifier read as ``groups``: a module whose output is group log-probabilities (see :class:`AgeGroupView`)."""
        return AgeGroupView(self, groups, group_names)


class AgeGroupView(nn.Module):
    """An :class:`AgeClassifier` seen as a K-group classifier: ``forward`` gives ``log p(group | face)``.

    The log-probabilities work wherever group logits do (``argmax``, cross-entropy), so
    :func:`predict_groups`, :func:`accuracy` and :func:`confusion` take it like a
    :class:`GroupClassifier`. It shares the classifier's weights; nothing is trained.
    """

    def __init__(self, classifier: AgeClassifier, groups, group_names=None):
        super().__init__()
        self.classifier = classifier
        self.groups = [AgeRange.parse(g) for g in groups]
        self.n_groups = len(self.groups)
        self.group_names = list(group_names) if group_names is not None else [str(g) for g in self.groups]
        self.register_buffer("masks", _group_masks(self.groups), persistent=False)

    def forward(self, x) -> torch.Tensor:
        p = F.softmax(self.classifier(x)["age"].float(), 1) @ self.masks.T
        return torch.log(p / p.sum(1, keepdim=True).clamp_min(1e-12) + 1e-12)


class GroupClassifier(FaceCNN):
    """A classifier over one fixed set of K age groups, for data that has group labels only.

    The simple judge of notebooks 04-05: cross-entropy on the groups, ``forward`` returns the
    ``(B, K)`` logits. Prefer :class:`AgeClassifier` (one classifier for every group scheme,
    and an age in years) where the faces' ages are known; this one is for callers that only
    have group labels (:func:`train_group_classifier`).
    """

    kind = "groups"

    def __init__(self, n_groups: int, width: int = 16, group_names=None, image_size: int = 64, dropout: float = 0.0):
        if n_groups < 2:
            raise ValueError(f"an age classifier needs at least two groups, not {n_groups}")
        super().__init__({"group": int(n_groups)}, image_size, width, dropout)
        self.n_groups = int(n_groups)
        self.group_names = list(group_names) if group_names is not None else [f"group {k}" for k in range(n_groups)]

    def forward(self, x) -> torch.Tensor:
        return self.head_logits(x)["group"]


class TraitClassifier(FaceCNN):
    """Reads a toy face's identity traits (:data:`TRAITS`: gender, race, hair style)."""

    kind = "traits"

    def __init__(self, image_size: int = 64, width: int = 16, dropout: float = 0.2):
        super().__init__(TRAITS, image_size, width, dropout)

    @torch.no_grad()
    def predict(self, x, batch_size: int = 256) -> dict:
        """Every trait's predicted class, ``{trait: (N,) tensor}``."""
        was = self.training
        self.eval()
        out = {k: [] for k in TRAITS}
        try:
            for c in torch.as_tensor(x).split(batch_size):
                for k, v in self(c).items():
                    out[k].append(v.argmax(1).cpu())
        finally:
            self.train(was)
        return {k: torch.cat(v) if v else torch.empty(0, dtype=torch.long) for k, v in out.items()}


def _group_masks(groups) -> torch.Tensor:
    ranges = [AgeRange.parse(g) for g in groups]
    ages = np.arange(MAX_AGE + 1)
    # the top bin holds everyone MAX_AGE and older: it belongs to an open group that starts below it
    masks = np.stack([r.contains(ages) | ((ages == MAX_AGE) & (r.lo <= MAX_AGE) & (r.hi is None or r.hi >= MAX_AGE))
                      for r in ranges])
    for r, m in zip(ranges, masks):
        if not m.any():
            raise ValueError(f"age group {r} lies outside the classifier's ages 0..{MAX_AGE}")
    return torch.as_tensor(masks, dtype=torch.float32)


def group_probs_from_ages(age_probs: torch.Tensor, groups) -> torch.Tensor:
    """Sum ``p(age)`` over each group's ages and renormalise over the groups (ages in no group drop out)."""
    p = age_probs.float() @ _group_masks(groups).T
    return p / p.sum(1, keepdim=True).clamp_min(1e-12)


# --------------------------------------------------------------------------- training and checkpoints


def _soft_age_targets(ages: torch.Tensor, sigma: float) -> torch.Tensor:
    grid = torch.arange(MAX_AGE + 1, dtype=torch.float32)
    t = torch.exp(-0.5 * ((grid[None] - ages.float().clamp(0, MAX_AGE)[:, None]) / sigma) ** 2)
    return t / t.sum(1, keepdim=True)


def train_classifier(net: FaceCNN, images, targets: dict, steps: int = 600, batch_size: int = 64, lr: float = 2e-3,
                     age_sigma: float = 3.0, seed: int = 0, device="cpu", progress: bool = False) -> FaceCNN:
    """Train ``net`` on uint8 faces ``(N, 3, H, W)`` and integer ``targets`` (one array per head); returns it in eval mode.

    The ``"age"`` head learns soft labels (a Gaussian of ``age_sigma`` years around the true
    age); every other head plain cross-entropy. Faces are mirrored at random and shifted by up
    to 1/16 of their size. Adam with a cosine learning-rate decay.
    """
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator: leave it as it was
        torch.manual_seed(seed)
        return _train(net, images, targets, steps, batch_size, lr, age_sigma, seed, device, progress)


def _train(net, images, targets, steps, batch_size, lr, age_sigma, seed, device, progress):
    g = torch.Generator().manual_seed(seed)
    net = net.to(device).train()
    x_all = as_float_images(images)
    y_all = {k: torch.as_tensor(np.array(v, dtype=np.int64)) for k, v in targets.items()}
    for k, v in y_all.items():
        if len(v) != len(x_all):
            raise ValueError(f"{len(v)} {k} labels for {len(x_all)} faces")
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    shift = max(1, net.image_size // 16)
    bar = progress_display(steps, 0, progress, desc=f"{getattr(net, 'kind', 'classifier')} classifier", every=250)
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (min(batch_size, len(x_all)),), generator=g)
        x = net.prepare(x_all[idx])
        flip = (torch.rand(len(x), generator=g) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=g))
        x = torch.roll(x, (dy, dx), (-2, -1))
        out = net.head_logits(x)
        loss = 0.0
        for k, logits in out.items():
            y = y_all[k][idx].to(x.device)
            if k == "age":
                loss = loss + F.cross_entropy(logits, _soft_age_targets(y, age_sigma).to(x.device))
            else:
                loss = loss + F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.show({"loss": loss.item()})
    bar.close()
    return net.eval()


_CLASSES = {"age": AgeClassifier, "traits": TraitClassifier}


def save_classifier(net: FaceCNN, path, report: dict | None = None) -> Path:
    """Write a classifier and its report (plain numbers) atomically; :func:`load_classifier` reads it back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"kind": net.kind, "image_size": net.image_size, "width": net.width,
             "n_groups": getattr(net, "n_groups", None), "group_names": getattr(net, "group_names", None),
             "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
             "report": {str(k): v for k, v in (report or {}).items()}}
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_classifier(path, device="cpu") -> FaceCNN:
    """A classifier saved by :func:`save_classifier` (``torch.load(weights_only=True)``), in eval mode, with ``.report``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["kind"] == "groups":
        net = GroupClassifier(state["n_groups"], state["width"], state["group_names"], state["image_size"])
    else:
        net = _CLASSES[state["kind"]](state["image_size"], state["width"])
    net.load_state_dict(state["state_dict"])
    net.report = dict(state.get("report", {}))
    net.path = Path(path)
    return net.to(device).eval()


def trait_labels(table: pd.DataFrame, seed: int = 0) -> dict:
    """The :data:`TRAITS` of every toy face of ``table`` (needs its ``identity`` column), as integer arrays."""
    from .toyfaces import HAIR_STYLES, identity_traits

    if "identity" not in table.columns:
        raise ValueError("identity traits are known for the toy faces only (no 'identity' column here)")
    traits = [identity_traits(int(i), seed) for i in table["identity"]]
    return {"gender": np.array([t["gender"] for t in traits]), "race": np.array([t["race"] for t in traits]),
            "hair_style": np.array([HAIR_STYLES.index(t["hair_style"]) for t in traits])}


def course_caches(source: str = "toy", data_path=None, size: int = 64, max_images: int | None = None,
                  verbose: bool = False):
    """The course's fixed train/test split of ``source`` as two :class:`helpers.cache.FaceCache` at ``size`` px."""
    from .cache import build_cache
    from .sources import load_faces
    from .splits import train_test_split

    faces = load_faces(source, path=data_path, verbose=verbose,
                       max_images=max_images if max_images is not None else config.DATA.max_images)
    train_df, test_df = train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
    return build_cache(train_df, size, verbose=verbose), build_cache(test_df, size, verbose=verbose)


def _data_key(cache) -> str:
    h = hashlib.sha1()
    for p in sorted(Path(str(p)).name for p in cache.table["path"]):
        h.update(p.encode() + b"\n")
    return h.hexdigest()[:10]


def classifier_report(clf: AgeClassifier, images, ages, groups=None) -> dict:
    """The age classifier on real faces: MAE in years and, given ``groups``, group accuracy (%) over the faces in them.

    This is the ceiling for age accuracy: the judge reads real faces this well.
    """
    ages = np.asarray(ages, dtype=float)
    pred = clf.predict_age(images).numpy()
    out = {"faces": int(len(ages)), "age_mae": float(np.abs(pred - ages).mean()) if len(ages) else math.nan}
    if groups is not None:
        ranges = [AgeRange.parse(g) for g in groups]
        label = np.full(len(ages), -1)
        for k, r in enumerate(ranges):
            label[r.contains(ages.astype(int))] = k
        keep = label >= 0
        if keep.any():
            hit = predict_groups(clf, torch.as_tensor(images)[torch.as_tensor(keep)], ranges) == label[keep]
            out["age_accuracy"] = 100.0 * float(hit.mean())
            out["group_faces"] = int(keep.sum())
    return out


def _get(kind: str, source, data_path, settings, retrain, device, verbose, max_images) -> FaceCNN:
    s = settings or config.EVAL
    train, test = course_caches(source, data_path, s.image_size, max_images, verbose=verbose)
    if kind == "traits" and "identity" not in train.table.columns:
        raise ValueError(f"identity traits are known for the toy faces only, not for {source!r}")
    name = f"{kind}_classifier_{source}_{s.image_size}px_w{s.width}_s{s.steps}_{_data_key(train)}.pt"
    path = config.RUNS_DIR / s.run_name / name
    if path.exists() and not retrain:
        net = load_classifier(path, device)
        if verbose:
            print(f"{kind} classifier: loaded {path}")
        return net
    net = (AgeClassifier if kind == "age" else TraitClassifier)(s.image_size, s.width)
    targets = ({"age": train.table["age"].to_numpy()} if kind == "age" else trait_labels(train.table))
    t0 = time.time()
    if verbose:
        print(f"training the {kind} classifier on {len(train):,} {source} faces at {s.image_size}px ({s.steps} steps)")
    train_classifier(net, train.tensor(), targets, s.steps, s.batch_size, s.lr, s.age_sigma, s.seed, device,
                     progress=verbose)
    report = {"source": source, "train_faces": len(train), "test_faces": len(test), "steps": s.steps,
              "train_seconds": round(time.time() - t0, 1)}
    if kind == "age":
        report.update({"test_" + k: v for k, v in classifier_report(net, test.tensor(), test.table["age"]).items()
                       if k == "age_mae"})
    else:
        pred = net.predict(test.tensor())
        truth = trait_labels(test.table)
        hits = {k: (pred[k].numpy() == truth[k]) for k in TRAITS}
        report.update({f"test_{k}_accuracy": 100.0 * float(v.mean()) for k, v in hits.items()})
        report["test_all_traits_accuracy"] = 100.0 * float(np.logical_and.reduce(list(hits.values())).mean())
    save_classifier(net, path, report)
    net.report, net.path = report, path
    if verbose:
        print(f"{kind} classifier saved to {path}: " + ", ".join(f"{k}={v}" for k, v in report.items()))
    return net


def get_age_classifier(source: str = "toy", data_path=None, settings=None, retrain: bool = False, device="cpu",
                       verbose: bool = True, max_images: int | None = None) -> AgeClassifier:
    """The course's age classifier for ``source``: loaded from ``RUNS_DIR/<EVAL.run_name>`` or trained and saved there.

    It trains on the train side of the course's split only. ``.report`` holds its MAE on the
    test side (``test_age_mae``); :func:`classifier_report` gives the group accuracy for any
    groups. ``settings``: a :class:`helpers.config.EvalSettings` (default ``config.EVAL``).
    """
    return _get("age", source, data_path, settings, retrain, device, verbose, max_images)


def get_trait_classifier(settings=None, retrain: bool = False, device="cpu", verbose: bool = True,
                         max_images: int | None = None) -> TraitClassifier:
    """The toy faces' trait classifier (gender, race, hair style), loaded or trained like :func:`get_age_classifier`."""
    return _get("traits", "toy", None, settings, retrain, device, verbose, max_images)


# --------------------------------------------------------------------------- pixel metrics


def l1_error(a, b) -> torch.Tensor:
    """Mean absolute pixel error of every image pair, on a 0-1 pixel scale: ``(N,)``; 0 for identical images."""
    a, b = to_unit(a), to_unit(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return (a - b).abs().flatten(1).mean(1)


def ssim(a, b) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004) of every image pair, via ``torchmetrics``: ``(N,)``; 1 for identical images."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = to_unit(a), to_unit(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    k = 11 if min(a.shape[-2:]) >= 11 else (min(a.shape[-2:]) // 2) * 2 - 1
    return structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=k, reduction="none").reshape(-1)


def render_truth(table: pd.DataFrame, ages, size: int) -> torch.Tensor:
    """The toy faces of ``table`` (``identity``, ``variant``) redrawn at ``ages`` (one per face), uint8 ``(N, 3, size, size)``.

    The right answer for a translation to those ages: the same person, photo, pose and light.
    """
    from PIL import Image

    from .toyfaces import render_face

    ages = np.broadcast_to(np.asarray(ages, dtype=float), (len(table),))
    imgs = [np.asarray(render_face(int(i), float(a), int(v)).resize((size, size), Image.Resampling.BILINEAR))
            for i, v, a in zip(table["identity"], table["variant"], ages)]
    if not imgs:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- age and traits


def as_float_images(images) -> torch.Tensor:
    """A :class:`helpers.cache.FaceCache`, uint8 ``(N, 3, H, W)`` or [-1, 1] float images -> a tensor (uint8 kept)."""
    if hasattr(images, "tensor") and hasattr(images, "table"):  # a FaceCache
        return images.tensor()
    return torch.as_tensor(images)


@torch.no_grad()
def predict_groups(classifier, images, groups=None, batch_size: int = 256) -> np.ndarray:
    """The age group each face is read as, ``(N,)`` integers.

    ``classifier``: an :class:`AgeClassifier` with ``groups`` (ranges; the group is the most
    probable of them), or any module whose output is group logits (a :class:`GroupClassifier`,
    an :class:`AgeGroupView`), with ``groups=None``.
    """
    if groups is not None:
        return group_probs_from_ages(classifier.age_probs(images, batch_size), groups).argmax(1).numpy()
    device = next(classifier.parameters()).device
    was = classifier.training
    classifier.eval()
    out = []
    try:
        for x in as_float_images(images).split(batch_size):
            out.append(classifier(_as_float(x).to(device)).argmax(1).cpu())
    finally:
        classifier.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(classifier, images, labels, groups=None, batch_size: int = 256) -> float:
    """The fraction (0-1) of faces whose group is read as ``labels``: on real faces the classifier's accuracy,
    on generated ones the generator's label agreement. ``groups`` as in :func:`predict_groups`."""
    y = np.asarray(labels)
    if len(y) == 0:
        return float("nan")
    return float((predict_groups(classifier, images, groups, batch_size) == y).mean())


def confusion(classifier, images, labels, groups=None, group_names=None, batch_size: int = 256) -> pd.DataFrame:
    """Rows: the group asked for (or true); columns: the group the classifier reads; each row sums to 1."""
    y = np.asarray(labels)
    pred = predict_groups(classifier, images, groups, batch_size)
    names = group_names or ([str(AgeRange.parse(g)) for g in groups] if groups is not None else classifier.group_names)
    k = len(names)
    m = np.zeros((k, k))
    np.add.at(m, (y, pred), 1)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    return pd.DataFrame(m, index=pd.Index(names, name="asked for"), columns=pd.Index(names, name="classifier reads"))


def train_group_classifier(images, groups, n_groups: int | None = None, steps: int = 600, batch_size: int = 64,
                           lr: float = 2e-3, width: int = 16, seed: int = 0, device="cpu", group_names=None,
                           image_size: int | None = None) -> GroupClassifier:
    """A :class:`GroupClassifier` trained on faces (a FaceCache or images) and their group indices; in eval mode.

    ``image_size`` defaults to the faces' own size. The global random state is left alone.
    """
    x_all = as_float_images(images)
    y = np.asarray(groups)
    if len(x_all) != len(y):
        raise ValueError(f"{len(y)} group labels for {len(x_all)} faces")
    n_groups = int(n_groups or int(y.max()) + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = GroupClassifier(n_groups, width, group_names, int(image_size or x_all.shape[-1]))
    return train_classifier(net, x_all, {"group": y}, steps, batch_size, lr, seed=seed, device=device)


def age_accuracy(classifier, images, target_groups, groups) -> float:
    """Percentage of faces that ``classifier`` puts in their target group (seed 001's "age prediction accuracy")."""
    target = torch.as_tensor(np.asarray(target_groups), dtype=torch.long).reshape(-1)
    if len(target) == 0:
        return math.nan
    if target.min() < 0 or target.max() >= len(groups):
        raise ValueError(f"target groups must be 0..{len(groups) - 1}")
    return 100.0 * float((torch.as_tensor(predict_groups(classifier, images, groups)) == target).float().mean())


def trait_agreement(trait_classifier, images, identities, seed: int = 0) -> dict:
    """Percentage of faces whose predicted traits equal the traits of toy person ``identities[i]``: per trait and all three."""
    truth = trait_labels(pd.DataFrame({"identity": np.asarray(identities)}), seed)
    pred = trait_classifier.predict(images)
    hits = {k: pred[k].numpy() == truth[k] for k in TRAITS}
    out = {f"{k}_kept": 100.0 * float(v.mean()) for k, v in hits.items()}
    out["traits_kept"] = 100.0 * float(np.logical_and.reduce(list(hits.values())).mean())
    return out


# --------------------------------------------------------------------------- FID


#: torch-fidelity's Inception-v3 weights (a port of the TensorFlow FID network) and where torch.hub keeps them.
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
FID_LABELS = {"inception": "FID (Inception)", "stand-in": "FID (course classifier features)"}
STAND_IN_NOTE = ("FID (course classifier features) is a stand-in computed on the course age classifier's features "
                 "because the Inception weights were not available; it is not comparable to Inception FID or to "
                 "any published FID.")


@dataclass(frozen=True)
class FIDChoice:
    """Which FID :func:`frechet_distance` computes: ``kind`` is ``"inception"`` or ``"stand-in"``; ``reason`` says why."""

    kind: str
    reason: str
    weights: str | None = None  # an explicit Inception weight file (None: torch.hub's cache)
    #: The distance itself, from the two sets of features (N, D) as numpy arrays (notebook 07's exercise gives the
    #: student's); None: torchmetrics computes it.
    formula: object = None

    @property
    def label(self) -> str:
        return FID_LABELS[self.kind]


def inception_weights_path() -> Path | None:
    """The Inception FID weight file if it is on disk: ``$FACEAGING_INCEPTION_WEIGHTS`` or torch.hub's cache."""
    env = os.environ.get("FACEAGING_INCEPTION_WEIGHTS")
    if env and Path(env).expanduser().is_file():
        return Path(env).expanduser()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    return cached if cached.is_file() else None


def _offline() -> bool:
    return os.environ.get("FACEAGING_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def choose_fid(prefer: str | None = None, allow_download: bool | None = None, verbose: bool = False) -> FIDChoice:
    """Decide between the Inception FID and the stand-in, without waiting on the network.

    ``prefer`` (default ``config.EVAL.fid``): ``"auto"`` takes Inception when it can be had and
    the stand-in otherwise; ``"inception"`` raises ``RuntimeError`` when it cannot; ``"stand-in"``
    always takes the stand-in. Inception needs ``torch-fidelity`` and its weight file, looked for
    in ``$FACEAGING_INCEPTION_WEIGHTS`` and in torch.hub's cache. When the file is missing and
    ``allow_download`` (default ``config.EVAL.fid_download``: on in Colab, off elsewhere; never with
    ``FACEAGING_OFFLINE=1``), it is fetched once; a failed download falls back to the stand-in.
    Elsewhere, put the file in place by hand (or point ``FACEAGING_INCEPTION_WEIGHTS`` at it).
    """
    s = config.EVAL
    prefer = (prefer or s.fid).strip().lower()
    if prefer not in ("auto", "inception", "stand-in"):
        raise ValueError(f"fid={prefer!r}: use 'auto', 'inception' or 'stand-in'")
    allow_download = s.fid_download if allow_download is None else allow_download

    def fallback(why: str) -> FIDChoice:
        if prefer == "inception":
            raise RuntimeError(f"the Inception FID was asked for but cannot be computed: {why}")
        if verbose:
            print(f"FID: stand-in on the course classifier's features ({why})")
        return FIDChoice("stand-in", why)

    if prefer == "stand-in":
        return FIDChoice("stand-in", "asked for")
    try:
        import torch_fidelity  # noqa: F401  (torchmetrics' Inception FID runs on it)
    except ImportError:
        return fallback("torch-fidelity is not installed (pip install torch-fidelity)")
    path = inception_weights_path()
    if path is None:
        if not allow_download:
            return fallback(f"no {INCEPTION_FILE} on disk and downloading is off")
        if _offline():
            return fallback(f"no {INCEPTION_FILE} on disk and FACEAGING_OFFLINE is set")
        target = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(INCEPTION_URL, str(target), progress=verbose)
        except Exception as e:  # noqa: BLE001 -- any failed download means: no Inception here
            return fallback(f"downloading {INCEPTION_FILE} failed ({type(e).__name__}: {e})")
        path = target
    explicit = None if path.parent == Path(torch.hub.get_dir()) / "checkpoints" else str(path)
    if verbose:
        print(f"FID: Inception-v3 ({path})")
    return FIDChoice("inception", f"weights at {path}", explicit)


class _Features(nn.Module):
    """The age classifier's penultimate features as a torchmetrics feature extractor."""

    def __init__(self, classifier: FaceCNN):
        super().__init__()
        self.net = classifier
        self.num_features = classifier.num_features

    @torch.no_grad()
    def forward(self, x):
        self.net.eval()
        return self.net.features(x).double()


def fid_from_features(real, fake) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features, ``(N, D)`` and ``(M, D)``.

    ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` with unbiased covariances (divided by N - 1, as
    torchmetrics does). The trace of the matrix square root is the sum of the square roots of the
    eigenvalues of ``S_r S_g``, which are real and non-negative (up to rounding) for two covariances.
    """
    real, fake = (np.asarray(torch.as_tensor(f).double().cpu(), dtype=np.float64) for f in (real, fake))
    mu_r, mu_g = real.mean(0), fake.mean(0)
    cov_r, cov_g = np.cov(real, rowvar=False, ddof=1), np.cov(fake, rowvar=False, ddof=1)
    eig = np.linalg.eigvals(np.atleast_2d(cov_r) @ np.atleast_2d(cov_g))
    tr_sqrt = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(((mu_r - mu_g) ** 2).sum() + np.trace(np.atleast_2d(cov_r)) + np.trace(np.atleast_2d(cov_g))
                 - 2 * tr_sqrt)


def fid_features(images, choice: FIDChoice, classifier: FaceCNN | None = None, batch_size: int = 64,
                 device="cpu") -> torch.Tensor:
    """The features FID compares, ``(N, D)`` float64 on the CPU: Inception-v3's pool features, or the stand-in's."""
    if choice.kind == "inception":
        from torchmetrics.image.fid import FrechetInceptionDistance

        net = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=choice.weights).inception.to(device)
        prep = lambda x: (to_unit(x) * 255).round().to(torch.uint8)  # noqa: E731 -- what torchmetrics feeds it
    elif choice.kind == "stand-in":
        if classifier is None:
            raise ValueError("the stand-in FID needs the age classifier whose features it uses")
        net, prep = _Features(classifier), _as_float
    else:
        raise ValueError(f"unknown FID kind {choice.kind!r}")
    with torch.no_grad():
        out = [net(prep(chunk).to(device)).double().cpu() for chunk in torch.as_tensor(images).split(batch_size)]
    return torch.cat(out).reshape(len(images), -1)


def frechet_distance(real, fake, choice: FIDChoice, classifier: FaceCNN | None = None, batch_size: int = 64,
                     device="cpu") -> float:
    """FID between faces ``real`` and ``fake`` (uint8 or [-1, 1], any size), computed by ``torchmetrics``.

    ``choice.kind == "inception"``: Inception-v3 pool features at 299 px. ``"stand-in"``: the
    penultimate features of ``classifier`` (the course's age classifier). Needs two or more faces on
    each side; more than the feature width (2048, or the classifier's) for a stable covariance.
    With ``choice.formula`` set (notebook 07 gives the student's), the same features go to that
    function instead of torchmetrics' own distance.
    """
    if choice.formula is not None:
        feats = [fid_features(x, choice, classifier, batch_size, device).numpy() for x in (real, fake)]
        return float(choice.formula(*feats))
    from torchmetrics.image.fid import FrechetInceptionDistance

    if choice.kind == "inception":
        metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=choice.weights)
        prep = to_unit
    elif choice.kind == "stand-in":
        if classifier is None:
            raise ValueError("the stand-in FID needs the age classifier whose features it uses")
        metric = FrechetInceptionDistance(feature=_Features(classifier))
        prep = _as_float
    else:
        raise ValueError(f"unknown FID kind {choice.kind!r}")
    metric = metric.to(device)
    for imgs, is_real in ((real, True), (fake, False)):
        for chunk in torch.as_tensor(imgs).split(batch_size):
            metric.update(prep(chunk).to(device), real=is_real)
    return float(metric.compute())


# --------------------------------------------------------------------------- one model's scores


def evaluate_translation(source, translated, target_groups, groups, classifier: AgeClassifier,
                         reconstructed=None, ground_truth=None, identities=None, trait_classifier=None,
                         reference=None, fid: FIDChoice | None = None) -> dict:
    """Every metric of one set of translations, as a flat dict of numbers (NaN: not measured).

    - ``source``: the input test faces; ``translated``: the model's outputs (uint8 or [-1, 1],
      ``(N, 3, H, W)``); ``target_groups``: the group index (into ``groups``) each face was sent to.
    - ``reconstructed``: the outputs translated back to the source age -> ``cycle_l1``, ``cycle_ssim``.
    - ``ground_truth``: the same toy person drawn at the target age (:func:`render_truth`) ->
      ``truth_l1``, ``truth_ssim``, and the do-nothing baseline ``input_truth_l1``, ``input_truth_ssim``.
    - ``identities`` + ``trait_classifier`` (toy faces) -> ``traits_kept`` and per-trait shares.
    - ``reference``: real faces of the target groups + ``fid`` (from :func:`choose_fid`) ->
      ``fid`` and ``fid_kind``.

    The same-person share on real faces is added by :func:`helpers.evaluate.score` (dlib's recogniser).
    Always: ``faces``, ``age_accuracy`` (%) and ``mean_age`` (the classifier's mean reading).
    """
    source, translated = torch.as_tensor(source), torch.as_tensor(translated)
    if len(source) != len(translated):
        raise ValueError(f"{len(source)} source faces but {len(translated)} translations")
    out = {"faces": int(len(translated)),
           "age_accuracy": age_accuracy(classifier, translated, target_groups, groups),
           "mean_age": float(classifier.predict_age(translated).mean()) if len(translated) else math.nan,
           "fid": math.nan, "fid_kind": "not measured",
           "cycle_l1": math.nan, "cycle_ssim": math.nan, "truth_l1": math.nan, "truth_ssim": math.nan,
           "input_truth_l1": math.nan, "input_truth_ssim": math.nan, "traits_kept": math.nan,
           "same_person": math.nan, "identity_distance": math.nan}
    if reconstructed is not None:
        out["cycle_l1"] = float(l1_error(reconstructed, source).mean())
        out["cycle_ssim"] = float(ssim(reconstructed, source).mean())
    if ground_truth is not None:
        out["truth_l1"] = float(l1_error(translated, ground_truth).mean())
        out["truth_ssim"] = float(ssim(translated, ground_truth).mean())
        out["input_truth_l1"] = float(l1_error(source, ground_truth).mean())
        out["input_truth_ssim"] = float(ssim(source, ground_truth).mean())
    if identities is not None and trait_classifier is not None:
        out.update(trait_agreement(trait_classifier, translated, identities))
    if reference is not None and fid is not None:
        out["fid"] = frechet_distance(reference, translated, fid, classifier)
        out["fid_kind"] = fid.kind
    return out


# --------------------------------------------------------------------------- the table


#: Display names of the metrics, in table order. The FID column depends on ``fid_kind``.
METRIC_LABELS = {
    "faces": "faces",
    "age_accuracy": "age accuracy (%)",
    "mean_age": "mean predicted age",
    "age_mae": "age MAE (years)",
    "fid:inception": FID_LABELS["inception"],
    "fid:stand-in": FID_LABELS["stand-in"],
    "cycle_l1": "cycle L1",
    "cycle_ssim": "cycle SSIM",
    "truth_l1": "L1 to ground truth",
    "truth_ssim": "SSIM to ground truth",
    "input_truth_l1": "L1 to ground truth, input unchanged",
    "input_truth_ssim": "SSIM to ground truth, input unchanged",
    "traits_kept": "traits kept (%)",
    "same_person": "same person (%)",
    "identity_distance": "identity distance (mean)",
    "same_person_256": "same person at 256 px (%)",
    "identity_distance_256": "identity distance at 256 px (mean)",
    "realism_flagged": "flagged unrealistic (%)",
}
_ID_COLUMNS = ["model", "translation", "data", "status", "fid_kind"]


def results_table(rows) -> pd.DataFrame:
    """One row per model (or direction), one column per metric, from dicts of :func:`evaluate_translation`.

    A row may carry ``model``, ``translation``, ``data`` and ``status`` (e.g. "ok", "not trained",
    "ceiling", "baseline"). The FID goes to the column of its kind, ``FID (Inception)`` or ``FID
    (course classifier features)``, so the two never share a column; ``fid_kind`` says which for
    every row. Metrics that were not measured are NaN (shown as "not measured" by :func:`write_table`).
    """
    rows = list(rows)
    records = []
    for r in rows:
        rec = {c: r.get(c, "") for c in _ID_COLUMNS}
        rec["fid_kind"] = r.get("fid_kind", "not measured")
        rec["status"] = r.get("status", "ok")
        for key, label in METRIC_LABELS.items():
            if key.startswith("fid:"):
                rec[label] = r.get("fid", math.nan) if r.get("fid_kind") == key[4:] else math.nan
            else:
                rec[label] = r.get(key, math.nan)
        records.append(rec)
    df = pd.DataFrame(records, columns=_ID_COLUMNS + list(METRIC_LABELS.values()))
    for label in METRIC_LABELS.values():
        df[label] = pd.to_numeric(df[label], errors="coerce")
    # Keep only the FID column(s) in use, and drop metric columns that no row measured; but on real faces the
    # same-person column stays, as "not measured", when dlib's recogniser is not installed.
    keep = {"age accuracy (%)"}
    if any(r.get("status", "ok") == "ok" and r.get("data", "toy") not in ("toy", "") for r in rows):
        keep.add(METRIC_LABELS["same_person"])
    if any(r.get("status", "ok") == "ok" for r in rows):
        keep.add(METRIC_LABELS["realism_flagged"])
    unused = [c for c in METRIC_LABELS.values() if df[c].isna().all() and c not in keep]
    return df.drop(columns=unused)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "not measured"
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (NaN shown as "not measured"); no extra package needed."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def write_table(df: pd.DataFrame, path_stem, title: str | None = None, notes=()) -> tuple[Path, Path]:
    """Write ``df`` as ``<path_stem>.csv`` and ``<path_stem>.md`` (with ``title`` and ``notes``); returns both paths.

    When the table holds a stand-in FID, the Markdown says under the table that it is not
    comparable to an Inception FID.
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    df.to_csv(csv, index=False, na_rep="not measured")
    notes = list(notes)
    if FID_LABELS["stand-in"] in df.columns and df[FID_LABELS["stand-in"]].notna().any():
        notes.append(STAND_IN_NOTE)
    text = (f"# {title}\n\n" if title else "") + markdown_table(df) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    md.write_text(text)
    return csv, md


#: Seed 001's published results (its model and RAGAN, Makhmudkhujaev et al., 2021), for reference only.
PUBLISHED_SEED001 = pd.DataFrame(
    [("FID", "RAGAN (Makhmudkhujaev et al., 2021)", 57.78),
     ("FID", "seed 001 (first generator)", 336668.44),
     ("FID", "seed 001 (second generator)", 46282.770),
     ("Age prediction accuracy (%)", "RAGAN (Makhmudkhujaev et al., 2021)", 61.405),
     ("Age prediction accuracy (%)", "seed 001 (first generator)", 95.7),
     ("Age prediction accuracy (%)", "seed 001 (second generator)", 85.8)],
    columns=["metric", "method", "score"],
).assign(note="published; different data and setup; not comparable")
