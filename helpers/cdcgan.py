r"""The conditional DCGAN of seed 004: faces drawn at a chosen age group (notebook 04).

**What it is.** A conditional GAN (Mirza and Osindero, 2014, "Conditional Generative
Adversarial Nets") gives both players the condition :math:`y`, here a one-hot age group:

.. math::

    \min_G \max_D \;
        \mathbb E_{(x, y) \sim p_\text{data}}[\log D(x, y)] +
        \mathbb E_{z \sim \mathcal N(0, I),\, y \sim p(y)}[\log (1 - D(G(z, y), y))].

The discriminator now judges *pairs*: a real 25-year-old labelled "40-50" is a fake pair, so
the generator cannot win by drawing good faces of the wrong age. The networks are the DCGAN of
notebook 02 (Radford, Metz and Chintala, 2016, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks"), built by :class:`helpers.dcgan.DCGAN` with
``n_classes = K``: the generator reads :math:`[z; \text{onehot}(y)]` (length
:math:`n_z + K`), and the discriminator concatenates :math:`K` constant maps (map :math:`k`
is 1 where :math:`y = k`) to the output of its first convolution. Seed 004 does exactly this
with two groups, 20-30 and 40-50, on IMDB-WIKI.

**What this module adds** to :mod:`helpers.dcgan`: the age groups (any number, from
:mod:`helpers.splits`), the *label grid* (the same noise with every label, seed 004's
experiment), a measure of whether the label is obeyed (:func:`label_agreement`, with the age
classifier of :mod:`helpers.metrics`), a generator frozen for inversion
(:func:`frozen_generator`, used by notebook 05's encoder), and its run (:func:`setup_cdcgan`,
trained headless by ``python -m helpers.train cdcgan``, ``cdcgan-wide`` for the wider age gap).
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from . import config, weights
from .dcgan import DCGAN, Generator
from .metrics import accuracy, predict_groups, train_group_classifier
from .plots import show_image_rows
from .runs import Run, default_run_dir, face_loader, labelled_cache, load_split
from .splits import AgeRangeError, check_ranges, group_names
from .training import Precision, load_trained, pick_device, seed_everything

__all__ = ["ConditionalDCGAN", "CDCGANRun", "default_settings", "setup_cdcgan", "group_labels", "run_name_for", "label_agreement", "paired_rate",
           "evaluate", "frozen_generator", "load_generator", "show_image_rows", "show_label_grid"]


class ConditionalDCGAN(DCGAN):
    """:class:`helpers.dcgan.DCGAN` with ``n_classes = len(groups)``, its age groups, and label grids.

    The training step is DCGAN's own (``DCGAN.train_step`` with ``(images, labels)`` batches);
    the checkpoint records the groups, so a run folder of other groups is refused on resume.

    ``condition_noise(z, labels, K)`` and ``condition_features(h, labels, K)`` are the two places
    the label gets in (default: :func:`helpers.dcgan.condition_noise` and
    :func:`helpers.dcgan.condition_features`); notebook 04 passes the student's own, and the
    networks then train with them. They hold no weights, so checkpoints do not depend on them.
    ``input_block(nz, n_classes, c_out)`` builds the generator's first block (default
    :func:`helpers.dcgan.input_block`; notebook 04's exercise); its weights keep the course's names.
    """

    name = "cdcgan"

    def __init__(self, settings=None, *, groups=None, device="cpu", precision: Precision | None = None,
                 condition_noise=None, condition_features=None, input_block=None, **changes):
        s = replace(settings or config.CDCGAN, **changes)
        self.groups = group_names(groups or s.groups)
        super().__init__(s, n_classes=len(self.groups), device=device, precision=precision, first_block=input_block)
        self.config["groups"] = list(self.groups)
        self.fixed_labels = None  # label grids draw the fixed noise with *every* label instead
        self.use(condition_noise=condition_noise, condition_features=condition_features)

    def use(self, condition_noise=None, condition_features=None) -> "ConditionalDCGAN":
        """Join the labels with these functions from now on (None keeps the current one); returns the model."""
        for net, name, fn in [(self.G, "condition_noise", condition_noise), (self.D, "condition_features", condition_features)]:
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be a function (z or h, labels, n_classes) -> tensor, "
                                    f"not {type(fn).__name__}")
                setattr(net, name, fn)
        return self

    @staticmethod
    def n_fixed(s) -> int:
        return s.n_show  # one column of the label grid per fixed noise vector

    @torch.no_grad()
    def label_grid(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """The same noise vectors with every label: ``(K, n, 3, S, S)`` in [-1, 1] (default: the fixed noise).

        Row :math:`k` is :math:`G(z_i, k)`. Only the label differs between rows, so whatever
        changes down a column is what the generator learned the label means.
        """
        z = self.fixed_noise if z is None else z.to(self.device)
        k, n = self.n_classes, len(z)
        labels = torch.arange(k, device=self.device).repeat_interleave(n)
        out = self.sample(z.repeat(k, 1), labels)
        return out.reshape(k, n, *out.shape[1:])

    @torch.no_grad()
    def generate(self, labels, seed: int = 0, batch_size: int = 128) -> torch.Tensor:
        """Faces for the given labels from seeded noise, in batches that mix the labels (as in training)."""
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(len(labels), self.nz, generator=g)
        perm = torch.randperm(len(labels), generator=g)  # mix the groups inside every batch
        out = torch.empty(len(labels), 3, self.G.image_size, self.G.image_size)
        for idx in perm.split(batch_size):
            out[idx] = self.sample(z[idx], labels[idx])
        return out


# --------------------------------------------------------------------------- groups and data


def group_labels(ages, groups) -> np.ndarray:
    """The index of each age's group (0..K-1), -1 for ages in no group; refuses overlapping ranges."""
    ranges = check_ranges(groups)
    ages = np.asarray(ages)
    out = np.full(len(ages), -1)
    for k, r in enumerate(ranges):
        out[r.contains(ages)] = k
    return out


def run_name_for(settings, groups=None) -> str:
    """The run folder's name: ``settings.run_name`` for the default groups, with the groups appended otherwise."""
    names = group_names(groups or settings.groups)
    if names == group_names(settings.groups):
        return settings.run_name
    return settings.run_name + "_" + "_".join(re.sub(r"[^0-9+-]", "", n) for n in names)


def _labelled(df, size: int, groups, what: str):
    cache, labels = labelled_cache(df, size, lambda ages: group_labels(ages, groups))
    counts = np.bincount(labels, minlength=len(groups))
    empty = [n for n, c in zip(group_names(groups), counts) if c == 0]
    if empty:
        raise AgeRangeError(f"no {what} faces in age group(s) {', '.join(empty)}; choose other groups")
    return cache, labels


class CDCGANRun(Run):
    """Everything :func:`setup_cdcgan` builds (see :class:`helpers.runs.Run`).

    Also: ``groups`` / ``group_names``, ``cache`` and ``labels`` (training faces and their
    groups), and the test side: ``test_cache``, ``test_images``, ``test_labels``.
    """

    loss_groups = {"losses": ["loss_D", "loss_G"], "D outputs": ["D_x", "D_G_z"]}
    _classifier = None

    def describe(self) -> str:
        counts = np.bincount(self.labels, minlength=len(self.groups))
        return (f"groups {', '.join(f'{g}: {c:,}' for g, c in zip(self.group_names, counts))} training faces at "
                f"{self.settings.image_size}px; " + super().describe())

    def label_grid(self, z=None) -> torch.Tensor:
        return self.gan.label_grid(z)

    def pretrained_key(self) -> str:
        """The course ships a run for each of the settings' two pairs of groups: ``cdcgan`` and ``cdcgan-wide``."""
        groups = tuple(str(g) for g in self.groups)
        for model, pair in (("cdcgan", self.settings.groups), ("cdcgan-wide", self.settings.wide_groups)):
            if groups == tuple(str(g) for g in pair):
                return weights.key(model, self.source)
        raise weights.WeightsError(
            f"the course ships cDCGAN weights for the groups {' / '.join(self.settings.groups)} and "
            f"{' / '.join(self.settings.wide_groups)} only, not {' / '.join(groups)}: train this run (PRETRAINED = False)")

    def classifier(self, steps: int | None = None):
        """A :class:`helpers.metrics.GroupClassifier` trained on this run's real training faces (cached)."""
        if self._classifier is None:
            self._classifier = train_group_classifier(self.cache, self.labels, len(self.groups),
                                                      steps=steps or self.settings.classifier_steps,
                                                      seed=self.settings.seed, device=self.device,
                                                      group_names=self.group_names)
        return self._classifier

    def figures(self) -> dict:
        title = f"same noise, each label ({self.trainer.step} steps)"
        return {"label_grid": show_label_grid(self.label_grid(), self.group_names, title=title)}

    def metrics(self) -> dict:
        return evaluate(self)


def default_settings(device="cpu", source: str = "toy", pretrained: bool = False) -> config.CDCGANSettings:
    """The settings for a device and a face source (both ``cdcgan`` and ``cdcgan-wide``).

    - toy faces: :data:`helpers.config.CDCGAN` on every device;
    - real faces: :data:`helpers.config.CDCGAN_REAL` on a CUDA GPU (full-width networks, more steps of
      bigger batches), :data:`helpers.config.CDCGAN_REAL_CPU` elsewhere (the toy setting, measured on real faces).

    ``pretrained=True``: the settings of the course's trained weights for these faces (``weights/``,
    :func:`helpers.weights.pretrained_settings`), whatever the device, in a run folder of their own.
    """
    if pretrained:
        return weights.pretrained_settings(default_settings("cpu", source), weights.key("cdcgan", source))
    if source == "toy":
        return config.CDCGAN
    return config.CDCGAN_REAL if torch.device(device).type == "cuda" else config.CDCGAN_REAL_CPU


def setup_cdcgan(settings=None, groups=None, data: str | None = None, data_path=None, device=None, run_dir=None,
                 max_images: int | None = None, resume: bool = True, progress: bool = True,
                 verbose: bool = True, condition_noise=None, condition_features=None,
                 input_block=None) -> CDCGANRun:
    """Data, model, trainer and label-grid snapshots for a conditional DCGAN, resumed from ``run_dir`` if it has one.

    ``groups`` are age ranges (default: ``settings.groups``, the seed's 20-30 and 40-50); faces
    outside every group are left out. ``data``: the face source (default: the course's). The run
    folder defaults to ``RUNS_DIR / run_name_for(...)`` (plus the source for real faces) so that
    runs with different groups never collide. The test side of the course's split is kept
    (``run.test_images``, ``run.test_labels``) for the label-agreement check and for notebook 05.
    Notebook 04, notebook 05 and ``python -m helpers.train cdcgan`` all call this; a finished run
    is loaded, not retrained. ``condition_noise`` and ``condition_features`` replace the
    functions that join the labels, ``input_block`` the generator's first block (see
    :class:`ConditionalDCGAN`). ``settings`` default to
    :func:`default_settings` for the device and the faces that were loaded.
    """
    device = pick_device(device)
    source, train_df, test_df = load_split(data, data_path, max_images, verbose)
    s = settings or default_settings(device, source)
    groups = tuple(group_names(groups or s.groups))
    seed_everything(s.seed)
    precision = Precision(device)
    cache, labels = _labelled(train_df, s.image_size, groups, "training")
    test_cache, test_labels = _labelled(test_df, s.image_size, groups, "test")
    loader = face_loader(cache, s.batch_size, device, precision, seed=s.seed, labels=labels)
    gan = ConditionalDCGAN(s, groups=groups, device=device, precision=precision, condition_noise=condition_noise,
                           condition_features=condition_features, input_block=input_block)
    run = CDCGANRun(s, device, source, gan, loader, run_dir or default_run_dir(run_name_for(s, groups), source),
                    groups=groups, group_names=list(groups), cache=cache, labels=labels, test_cache=test_cache,
                    test_images=test_cache.tensor(), test_labels=test_labels)
    return run.start(lambda: gan.label_grid().flatten(0, 1), nrow=s.n_show, resume=resume, progress=progress)


# --------------------------------------------------------------------------- is the label obeyed?


def paired_rate(pred) -> float:
    """The paired test's score from the classifier's readings of a label grid, ``pred`` of shape ``(K, n)``.

    ``pred[k, i]`` is the group read in :math:`G(z_i, k)`; the score is the fraction of noise
    vectors :math:`z_i` whose every row is read as its own label.
    """
    pred = np.asarray(pred)
    return float((pred == np.arange(pred.shape[0])[:, None]).all(0).mean())


def label_agreement(gan: ConditionalDCGAN, classifier, n_per_group: int = 256, seed: int = 1,
                    paired=paired_rate) -> dict:
    """How often the classifier reads the requested group in the generator's faces.

    Two numbers:

    - ``agreement``: ``n_per_group`` faces per group from independent noise; the fraction the
      classifier reads as the group they were asked for (chance: 1/K). ``agreement_<group>``
      gives it per group;
    - ``paired``: for ``n_per_group`` noise vectors each drawn with *every* label (the label
      grid), the fraction of vectors for which the classifier follows the label every time,
      i.e. the label alone changes the face's apparent age group (:func:`paired_rate`, or the
      function passed as ``paired``). Two baselines, for two groups or more: a generator
      that ignores its label draws the same face in every row, which can be read as only one
      group, so it scores **0**; a classifier that guesses each face's group at random, independently,
      scores :math:`1/K^K` (**1/4** for two groups).
    """
    k = gan.n_classes
    asked = np.repeat(np.arange(k), n_per_group)
    pred = predict_groups(classifier, gan.generate(asked, seed=seed))
    out = {"agreement": float((pred == asked).mean())}
    for j, name in enumerate(gan.groups):
        out[f"agreement_{name}"] = float((pred[asked == j] == j).mean())
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(n_per_group, gan.nz, generator=g)
    grid = torch.cat([gan.label_grid(chunk) for chunk in z.split(64)], dim=1)  # (K, n, ...)
    pred_grid = predict_groups(classifier, grid.flatten(0, 1)).reshape(k, n_per_group)
    out["paired"] = float(paired(pred_grid))
    return out


def evaluate(run: CDCGANRun, n_per_group: int | None = None, verbose: bool = True, paired=paired_rate) -> dict:
    """The classifier's accuracy on real test faces (its ceiling) and the generator's label agreement.

    ``paired``: the function that scores the paired test (:func:`paired_rate`).
    """
    clf = run.classifier()
    out = {"classifier_real_test": accuracy(clf, run.test_images, run.test_labels),
           **label_agreement(run.gan, clf, n_per_group or run.settings.eval_per_group, paired=paired)}
    if verbose:
        print(f"groups {' vs '.join(run.group_names)}: classifier on real test faces {out['classifier_real_test']:.1%}, "
              f"label agreement {out['agreement']:.1%} (chance {1 / len(run.groups):.0%}), "
              f"label alone flips the group {out['paired']:.1%}")
    return out


# --------------------------------------------------------------------------- a generator for inversion


@torch.no_grad()
def frozen_generator(G: Generator, n_batches: int = 32, batch_size: int = 64, seed: int = 0) -> Generator:
    """A copy of ``G`` for inversion: batch-norm statistics re-estimated, eval mode, no gradients to its weights.

    During training, batch norm normalises each layer with the statistics of the current batch,
    so a face depends on the other faces in its batch, and the running averages kept for eval
    mode lag behind the weights (an eval-mode DCGAN often draws washed-out faces). Inverting the
    generator needs a fixed function of :math:`(z, y)`, one face at a time. So the copy's
    statistics are reset and averaged afresh over ``n_batches`` random batches (equal weights:
    ``momentum=None``), and then frozen.
    """
    G = copy.deepcopy(G).float().to(memory_format=torch.contiguous_format)
    device = next(G.parameters()).device
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    G.train()
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_batches):
        z = torch.randn(batch_size, G.nz, generator=g).to(device)
        y = torch.randint(0, max(1, G.n_classes), (batch_size,), generator=g).to(device)
        G(z, y if G.n_classes else None)
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    return G


def load_generator(run_dir, device="cpu") -> Generator:
    """The generator of a conditional DCGAN run folder (newest checkpoint), with ``groups`` and ``config`` attached."""
    state, _ = load_trained(run_dir, ConditionalDCGAN.name, "python -m helpers.train cdcgan")
    c = state["config"]
    G = Generator(c["nz"], c["ngf"], len(c["groups"]), c["image_size"])
    G.load_state_dict(state["networks"]["G"])
    G.groups, G.config, G.step = list(c["groups"]), c, int(state.get("step", 0))
    return G.to(device)


# --------------------------------------------------------------------------- figures


def show_label_grid(grid: torch.Tensor, group_names, title: str | None = None):
    """:meth:`ConditionalDCGAN.label_grid` as a figure: one row per label, one column per noise vector."""
    return show_image_rows(list(grid), [f"label {n}" for n in group_names], [f"z{i}" for i in range(grid.shape[1])],
                           title=title)
