"""One training run, built the same way for every model family.

A *run* is everything a notebook or ``python -m helpers.train MODEL`` needs to train one model:
its settings, the device, the face source, the model, the batches, a
:class:`helpers.training.Trainer` that checkpoints and resumes, snapshots of its progress, and a
run folder. :class:`Run` holds those parts and does what every family does alike:

- ``train(epochs=, steps=)`` trains *until* that total (default: the settings' own length), so
  running it again after a disconnect carries on where the last checkpoint left off;
- ``save_outputs()`` writes the loss curves, the progress animation and the family's own
  figures (``figures()``) and numbers (``metrics()``) into the run folder.

Each family module subclasses it (``CycleGANRun``, ``AgeGANRun`` ...) and writes a
``setup_*`` function that builds the parts with :func:`load_split` and :meth:`Run.start`.

Settings flow one way: a frozen settings dataclass from :mod:`helpers.config`, changed with
``dataclasses.replace`` (:func:`with_length`, the command line's ``--set``), goes into
``setup_*`` and from there into the model. Nothing writes back into :mod:`helpers.config`.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import config
from .config import name_of as setting_name
from .cache import BatchLoader, build_cache
from .plots import save_gif
from .sources import choose_source, load_faces
from .splits import train_test_split
from .training import Snapshots, Trainer

# --------------------------------------------------------------------------- data


def resolve_source(data: str | None = None, data_path=None) -> str:
    """The face source a run will use: ``data`` (default ``config.DATA_SOURCE``), with ``"auto"`` decided.

    ``"auto"`` means UTKFace when it is at hand (a path, a folder under ``DATA_DIR``, Kaggle
    credentials) and the toy faces otherwise (:func:`helpers.sources.choose_source`).
    """
    source = (data or config.DATA_SOURCE).strip().lower()
    if source == "auto":
        source, _ = choose_source(data_path or config.DATA_SOURCE_PATH)
    return source


def load_split(data: str | None = None, data_path=None, max_images: int | None = None, verbose: bool = True):
    """The faces of a source, split into the course's fixed train and test sides: ``(source, train_df, test_df)``.

    ``data`` defaults to the course's source (``config.DATA_SOURCE``, ``FACEAGING_SOURCE``), and
    ``data_path`` to ``FACEAGING_SOURCE_PATH``. ``source`` is what was really loaded: ``"auto"``
    and a UTKFace that cannot be had both fall back to the toy faces, and say so.
    """
    path = data_path or (config.DATA_SOURCE_PATH if data in (None, "auto", config.DATA_SOURCE) else None)
    faces = load_faces(data or config.DATA_SOURCE, path=path, verbose=verbose,
                       max_images=max_images or config.DATA.max_images)
    source = str(faces["source"].iloc[0])
    train_df, test_df = train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
    return source, train_df, test_df


def labelled_cache(df, size: int, labels_of, verbose: bool = False):
    """The uint8 cache of ``df`` at ``size`` px, with ``labels_of(ages)`` per face; faces labelled -1 are left out.

    Returns ``(cache, labels)``.
    """
    cache = build_cache(df, size, verbose=verbose)
    labels = np.asarray(labels_of(cache.table["age"]))
    if (labels < 0).any():
        cache, labels = cache.subset(labels >= 0), labels[labels >= 0]
    return cache, labels


def face_loader(cache, batch_size: int, device, precision, seed: int = 0, labels=None, crop: int | None = None,
                balance: bool = False):
    """A shuffling :class:`helpers.cache.BatchLoader` over ``cache`` (with flips) on ``device`` (``balance``: labels drawn equally often)."""
    return BatchLoader(cache, batch_size, labels=labels, device=data_device(device, cache.nbytes), crop=crop,
                       flip=True, seed=seed, memory_format=precision.memory_format, balance=balance)


def data_device(device: torch.device, nbytes: int) -> torch.device:
    """Keep the uint8 faces on the GPU when they take under a third of its free memory; else on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return device if nbytes < free / 3 else torch.device("cpu")
    return device


def default_run_dir(run_name: str, source: str) -> Path:
    """``RUNS_DIR / run_name`` for the toy faces, ``RUNS_DIR / f"{run_name}-{source}"`` for a real source.

    Toy and real runs never share a folder, so neither resumes the other's checkpoints.
    """
    return config.RUNS_DIR / (run_name if source == "toy" else f"{run_name}-{source}")


def show_indices(groups, n: int) -> list[int]:
    """``n`` indices that take the groups in turn: group 0's first face, group 1's first, ... (the faces to show)."""
    groups = np.asarray(groups)
    pools = [list(np.flatnonzero(groups == k)) for k in range(int(groups.max()) + 1)] if len(groups) else []
    picked: list[int] = []
    while len(picked) < min(n, len(groups)):
        for members in pools:
            if members and len(picked) < n:
                picked.append(int(members.pop(0)))
    return picked


# --------------------------------------------------------------------------- settings


def with_length(settings, epochs: int | None = None, steps: int | None = None):
    """``settings`` trained for ``epochs`` (or, for step-counted models, ``steps``) in all; the rest unchanged.

    A model whose learning rate decays over its epochs (``n_epochs_constant`` + ``n_epochs_decay``)
    gets both changed, the first half of the epochs at the full rate, so the schedule reaches
    zero exactly at the new end.
    """
    names = {f.name for f in fields(settings)}
    changes = {}
    if epochs is not None:
        if "n_epochs_constant" in names:
            changes.update(n_epochs_constant=epochs - epochs // 2, n_epochs_decay=epochs // 2)
        elif "epochs" in names:
            changes["epochs"] = epochs
        else:
            raise ValueError(f"{type(settings).__name__} counts training in steps: use steps, not epochs")
    if steps is not None and "steps" in names:
        changes["steps"] = steps
    return replace(settings, **changes)


def length_of(settings) -> dict:
    """The settings' own training length, as keywords for :meth:`helpers.training.Trainer.fit`."""
    return {"steps": settings.steps} if hasattr(settings, "steps") else {"epochs": settings.epochs}


# --------------------------------------------------------------------------- the run


class Run:
    """The parts of one training run; families subclass it (see the module docstring).

    ``settings``, ``device``, ``source`` (the faces really used), ``model`` (also ``gan``),
    ``loader``, ``run_dir``; after :meth:`start`, ``trainer`` and ``snapshots``.
    """

    #: panels of the loss plot: {title: [logged terms]} (default: every term in one panel)
    loss_groups: dict = {}

    def __init__(self, settings, device, source: str, model, loader, run_dir, **parts):
        self.settings, self.device, self.source = settings, torch.device(device), source
        self.model, self.loader, self.run_dir = model, loader, Path(run_dir)
        self.trainer = self.snapshots = None
        self.__dict__.update(parts)

    @property
    def gan(self):
        return self.model

    @property
    def data(self) -> str:
        """The face source (the older name of :attr:`source`)."""
        return self.source

    def start(self, snapshot_images, nrow: int, config: dict | None = None, resume: bool = True,
              progress: bool = True) -> "Run":
        """Create the trainer (resumed from the run folder's newest checkpoint) and the snapshots.

        ``snapshot_images()`` returns the images of one progress frame, drawn every
        ``settings.sample_every`` steps into ``run_dir/samples``; the untrained model's frame
        is drawn at step 0. ``None``: no snapshots (a model with nothing to draw).
        """
        s = self.settings
        name = setting_name(s)
        self.trainer = Trainer(self.model, self.loader, self.run_dir, checkpoint_every=s.checkpoint_every,
                               resume=resume, progress=progress,
                               config={"data": self.source, "batch_size": s.batch_size, **(config or {})},
                               setting=name or f"the {type(s).__name__} of run {s.run_name!r}")
        if snapshot_images is not None:
            self.snapshots = Snapshots(snapshot_images, self.run_dir / "samples", nrow=nrow)
            self.trainer.every(s.sample_every, self.snapshots)
            if self.trainer.step == 0:
                self.snapshots(self.trainer)
        return self

    def train(self, epochs: int | None = None, steps: int | None = None):
        """Train until ``epochs`` or ``steps`` in total (default: the settings' length); returns the loss history."""
        if epochs is None and steps is None:
            return self.trainer.fit(**length_of(self.settings))
        return self.trainer.fit(epochs=epochs, steps=steps)

    # ----- what a run leaves behind

    def describe(self) -> str:
        """One line about the data and the model, printed before a headless run trains."""
        return (f"{self.source}: {len(self.loader.images):,} training faces, {len(self.loader)} batches of "
                f"{self.loader.batch_size} per epoch, on {self.device} ({self.model.precision})")

    def figures(self) -> dict:
        """The family's result figures, ``{file stem: matplotlib figure}``; the first is the run's grid."""
        return {}

    def metrics(self) -> dict:
        """The family's quick numbers after training (written to ``metrics.json``)."""
        return {}

    def save_outputs(self) -> dict:
        """Write the losses, the progress GIF, :meth:`figures` and :meth:`metrics` into the run folder.

        Returns ``{name: path}``; ``"grid"`` is the first figure, ``"metrics"`` the numbers' file.
        """
        out: dict = {}
        step = self.trainer.step
        snaps = self.snapshots
        if snaps is not None and (not snaps.paths() or not snaps.paths()[-1].name.endswith(f"{step:08d}.png")):
            snaps(self.trainer)
        history = self.trainer.history
        if len(history):
            have = set(history.terms)
            groups = {k: [t for t in v if t in have] for k, v in self.loss_groups.items()}
            groups = {k: v for k, v in groups.items() if v} or None  # panels of options that were off go
            fig = history.plot(groups=groups)
            out["losses"] = self._save(fig, "losses")
        frames, _ = snaps.frames(up_to=step) if snaps is not None else ([], [])
        if frames:
            out["animation"] = save_gif(frames, self.run_dir / "progress.gif")
        for i, (name, fig) in enumerate(self.figures().items()):
            out[name] = self._save(fig, name)
            if i == 0:
                out["grid"] = out[name]
        t0 = time.time()
        numbers = self.metrics()
        if numbers:
            numbers = {"steps": int(step), **numbers, "eval_seconds": round(time.time() - t0, 1)}
            out["metrics"] = self.run_dir / "metrics.json"
            out["metrics"].write_text(json.dumps(numbers, indent=2, default=float))
            out["numbers"] = numbers
        return out

    def _save(self, fig, name: str) -> Path:
        path = self.run_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
