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
(:func:`frozen_generator`, used by notebook 05's encoder), and the headless command
``python -m helpers.train cdcgan`` (``cdcgan-wide`` for the wider age gap).
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .dcgan import DCGAN, Generator
from .training import Precision, load_trained

__all__ = ["ConditionalDCGAN", "CDCGANRun", "setup_cdcgan", "group_labels", "run_name_for", "label_agreement",
           "evaluate", "frozen_generator", "load_generator", "show_image_rows", "run_cli"]


class ConditionalDCGAN(DCGAN):
    """:class:`helpers.dcgan.DCGAN` with ``n_classes = len(groups)``, its age groups, and label grids.

    The training step is DCGAN's own (``DCGAN.train_step`` with ``(images, labels)`` batches);
    the checkpoint records the groups, so a run folder of other groups is refused on resume.
    """

    name = "cdcgan"

    def __init__(self, groups=("20-30", "40-50"), n_show: int = 8, **kwargs):
        from .splits import group_names

        self.groups = group_names(groups)
        super().__init__(n_classes=len(self.groups), n_samples=n_show, **kwargs)
        self.config["groups"] = list(self.groups)
        self.fixed_labels = None  # label grids draw the fixed noise with *every* label instead

    @classmethod
    def from_settings(cls, s, groups=None, device="cpu", precision: Precision | None = None) -> "ConditionalDCGAN":
        """Build from a :class:`helpers.config.CDCGANSettings` (``groups`` default: ``s.groups``)."""
        return cls(groups=groups or s.groups, n_show=s.n_show, nz=s.nz, ngf=s.ngf, ndf=s.ndf,
                   image_size=s.image_size, lr=s.lr, beta1=s.beta1, device=device, precision=precision, seed=s.seed)

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
    from .splits import check_ranges

    ranges = check_ranges(groups)
    ages = np.asarray(ages)
    out = np.full(len(ages), -1)
    for k, r in enumerate(ranges):
        out[r.contains(ages)] = k
    return out


def run_name_for(settings, groups=None) -> str:
    """The run folder's name: ``settings.run_name`` for the default groups, with the groups appended otherwise."""
    from .splits import group_names

    names = group_names(groups or settings.groups)
    if names == group_names(settings.groups):
        return settings.run_name
    return settings.run_name + "_" + "_".join(re.sub(r"[^0-9+-]", "", n) for n in names)


def _labelled_cache(cache, groups, what: str):
    from .splits import AgeRangeError, group_names

    labels = group_labels(cache.table["age"], groups)
    counts = np.bincount(labels[labels >= 0], minlength=len(groups))
    empty = [n for n, c in zip(group_names(groups), counts) if c == 0]
    if empty:
        raise AgeRangeError(f"no {what} faces in age group(s) {', '.join(empty)}; choose other groups")
    keep = labels >= 0
    return cache.subset(keep), labels[keep]


class CDCGANRun:
    """Everything :func:`setup_cdcgan` builds: settings, groups, model, training and test faces, trainer, snapshots."""

    def __init__(self, **parts):
        self.__dict__.update(parts)
        self._classifier = None

    def train(self, steps: int | None = None):
        """Train until ``steps`` in all (default: the settings' steps); returns the loss history."""
        return self.trainer.fit(steps=steps or self.settings.steps)

    def label_grid(self, z=None) -> torch.Tensor:
        return self.gan.label_grid(z)

    def classifier(self, steps: int | None = None):
        """A :class:`helpers.metrics.GroupClassifier` trained on this run's real training faces (cached)."""
        if self._classifier is None:
            from .metrics import train_group_classifier

            self._classifier = train_group_classifier(self.cache, self.labels, len(self.groups),
                                                      steps=steps or self.settings.classifier_steps,
                                                      seed=self.settings.seed, device=self.device,
                                                      group_names=self.group_names)
        return self._classifier


def setup_cdcgan(settings=None, groups=None, data: str = "toy", data_path=None, device=None, run_dir=None,
                 max_images: int | None = None, resume: bool = True, progress: bool = True,
                 verbose: bool = True) -> CDCGANRun:
    """Data, model, trainer and label-grid snapshots for a conditional DCGAN, resumed from ``run_dir`` if it has one.

    ``groups`` are age ranges (default: ``settings.groups``, the seed's 20-30 and 40-50); faces
    outside every group are left out. The run folder defaults to ``RUNS_DIR / run_name_for(...)``
    so that runs with different groups never collide. The test side of the course's split is kept
    (``run.test_images``, ``run.test_labels``) for the label-agreement check and for notebook 05.
    Notebook 04, notebook 05 and ``python -m helpers.train cdcgan`` all call this; a finished run
    is loaded, not retrained.
    """
    from . import config
    from .cache import BatchLoader, build_cache
    from .sources import choose_source, load_faces
    from .splits import group_names, train_test_split
    from .train import face_loader
    from .training import Snapshots, Trainer, pick_device, seed_everything

    s = settings or config.CDCGAN
    groups = tuple(group_names(groups or s.groups))
    if data == "auto":
        data, _ = choose_source(data_path)
    device = pick_device(device)
    seed_everything(s.seed)
    precision = Precision(device)

    _, all_train = face_loader(data, data_path, s.image_size, s.batch_size, "cpu", seed=s.seed,
                               max_images=max_images, verbose=verbose)
    cache, labels = _labelled_cache(all_train, groups, "training")
    loader = BatchLoader(cache, s.batch_size, labels=labels, device=device, flip=True, seed=s.seed,
                         memory_format=precision.memory_format)

    faces = load_faces(data, path=data_path, verbose=False, max_images=max_images)
    _, test_df = train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
    test_cache, test_labels = _labelled_cache(build_cache(test_df, s.image_size, verbose=False), groups, "test")

    gan = ConditionalDCGAN.from_settings(s, groups, device=device, precision=precision)
    run_dir = Path(run_dir) if run_dir is not None else config.RUNS_DIR / run_name_for(s, groups)
    trainer = Trainer(gan, loader, run_dir, config={"data": data, "batch_size": loader.batch_size},
                      checkpoint_every=s.checkpoint_every, resume=resume, progress=progress)
    snapshots = Snapshots(lambda: gan.label_grid().flatten(0, 1), run_dir / "samples", nrow=s.n_show)
    trainer.every(s.sample_every, snapshots)
    if trainer.step == 0:
        snapshots(trainer)
    return CDCGANRun(settings=s, groups=groups, group_names=list(groups), device=device, data=data, gan=gan,
                     loader=loader, cache=cache, labels=labels, test_cache=test_cache,
                     test_images=test_cache.tensor(), test_labels=test_labels, trainer=trainer,
                     snapshots=snapshots, run_dir=run_dir)


# --------------------------------------------------------------------------- is the label obeyed?


def label_agreement(gan: ConditionalDCGAN, classifier, n_per_group: int = 256, seed: int = 1) -> dict:
    """How often the classifier reads the requested group in the generator's faces.

    Two numbers:

    - ``agreement``: ``n_per_group`` faces per group from independent noise; the fraction the
      classifier reads as the group they were asked for (chance: 1/K). ``agreement_<group>``
      gives it per group;
    - ``paired``: for ``n_per_group`` noise vectors each drawn with *every* label (the label
      grid), the fraction of vectors for which the classifier follows the label every time,
      i.e. the label alone changes the face's apparent age group. Chance: :math:`K!/K^K`
      (1/2 for two groups).
    """
    from .metrics import predict_groups

    k = gan.n_classes
    asked = np.repeat(np.arange(k), n_per_group)
    pred = predict_groups(classifier, gan.generate(asked, seed=seed))
    out = {"agreement": float((pred == asked).mean())}
    for j, name in enumerate(gan.groups):
        out[f"agreement_{name}"] = float((pred[asked == j] == j).mean())
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn(n_per_group, gan.nz, generator=g)
    grid = torch.cat([gan.label_grid(chunk) for chunk in z.split(64)], dim=1)  # (K, n, ...)
    paired = predict_groups(classifier, grid.flatten(0, 1)).reshape(k, n_per_group)
    out["paired"] = float((paired == np.arange(k)[:, None]).all(0).mean())
    return out


def evaluate(run: CDCGANRun, n_per_group: int | None = None, verbose: bool = True) -> dict:
    """The classifier's accuracy on real test faces (its ceiling) and the generator's label agreement."""
    from .metrics import accuracy

    clf = run.classifier()
    out = {"classifier_real_test": accuracy(clf, run.test_images, run.test_labels),
           **label_agreement(run.gan, clf, n_per_group or run.settings.eval_per_group)}
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


def show_image_rows(rows, row_names=None, col_titles=None, title: str | None = None, size: float = 1.1):
    """Rows of images (each ``(n, 3, H, W)``, [-1, 1] or uint8) as one figure with a name per row; returns it."""
    import matplotlib.pyplot as plt

    from .plots import denormalize

    rows = [torch.as_tensor(r) for r in rows]
    n = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n + 1.2, size * len(rows) + (0.4 if title else 0.1)),
                             squeeze=False)
    for i, r in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(r):
                ax.imshow(denormalize(r[j]).permute(1, 2, 0).numpy())
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(str(col_titles[j]), fontsize=8)
        if row_names is not None:
            axes[i][0].set_ylabel(str(row_names[i]), fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_label_grid(grid: torch.Tensor, group_names, title: str | None = None):
    """:meth:`ConditionalDCGAN.label_grid` as a figure: one row per label, one column per noise vector."""
    return show_image_rows(list(grid), [f"label {n}" for n in group_names], [f"z{i}" for i in range(grid.shape[1])],
                           title=title)


# --------------------------------------------------------------------------- command line


def run_cli(args, wide: bool = False) -> dict:
    """``python -m helpers.train cdcgan`` (the seed's groups) or ``cdcgan-wide`` (``CDCGAN.wide_groups``).

    Trains (or resumes), then writes ``label_grid.png``, ``losses.png``, ``progress.gif`` and
    ``metrics.json`` to the run folder and prints the label agreement.
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    from . import config
    from .plots import plot_losses, save_gif
    from .train import prepare_run_dir

    s = config.CDCGAN
    if args.batch_size is not None:
        s = replace(s, batch_size=args.batch_size)
    groups = s.wide_groups if wide else s.groups
    run_dir = prepare_run_dir(args, config.RUNS_DIR / run_name_for(s, groups))
    t0 = time.time()
    run = setup_cdcgan(s, groups, data=args.data, data_path=args.data_path, device=args.device, run_dir=run_dir,
                       max_images=args.max_images)
    counts = np.bincount(run.labels, minlength=len(groups))
    print(f"groups {', '.join(f'{g}: {c:,}' for g, c in zip(groups, counts))} training faces at {s.image_size}px; "
          f"{len(run.loader)} batches of {run.loader.batch_size} per epoch, on {run.device} ({run.gan.precision}); "
          f"data ready in {time.time() - t0:.0f}s")
    t1 = time.time()
    history = run.train(steps=args.steps or s.steps)
    t_train = time.time() - t1
    run.snapshots(run.trainer)
    fig = show_label_grid(run.label_grid(), run.group_names, title=f"same noise, each label ({run.trainer.step} steps)")
    fig.savefig(run_dir / "label_grid.png", dpi=110)
    frames, _ = run.snapshots.frames(up_to=run.trainer.step)
    save_gif(frames, run_dir / "progress.gif")
    if len(history):
        plot_losses(history, groups={"losses": ["loss_D", "loss_G"], "D outputs": ["D_x", "D_G_z"]}).savefig(
            run_dir / "losses.png", dpi=100)
    t2 = time.time()
    metrics = evaluate(run)
    metrics.update(steps=run.trainer.step, train_seconds=round(t_train, 1), eval_seconds=round(time.time() - t2, 1))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if args.save_grid:
        Path(args.save_grid).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / "label_grid.png", args.save_grid)
    print(f"trained for {t_train:.0f}s (total {time.time() - t0:.0f}s). Label grid: {run_dir / 'label_grid.png'}")
    return metrics
