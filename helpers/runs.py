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

import ast
import copy
import functools
import hashlib
import inspect
import json
import textwrap
import time
import types
import warnings
from dataclasses import fields, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import config, weights
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


# --------------------------------------------------------------------------- whose code trains a run

#: the packages whose functions are the course's or a library's, never a student's
_NOT_STUDENT = ("helpers", "torch", "numpy", "functools", "builtins", "math")


def _student_function(value):
    """``value`` as a plain Python function written outside the course and its libraries, else None."""
    while isinstance(value, functools.partial):
        value = value.func
    if isinstance(value, types.MethodType):
        value = value.__func__
    if not isinstance(value, types.FunctionType):
        return None
    module = (getattr(value, "__module__", None) or "").split(".")[0]
    return None if module in _NOT_STUDENT else value


def function_fingerprint(fn) -> str:
    """A short hash of ``fn``'s code: its source as parsed (comments and blank lines do not count).

    Falls back to the compiled code's bytes and constants when the source cannot be read.
    """
    try:
        text = ast.dump(ast.parse(textwrap.dedent(inspect.getsource(fn))))
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = fn.__code__
        text = repr((code.co_code, code.co_consts, code.co_names, code.co_varnames))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_fingerprint(model) -> dict[str, str]:
    """``{function name: hash of its code}`` for every student function ``model`` trains with.

    They are what a notebook gave the model in place of the course's own (``model.step_fn =
    gan_step``, ``model.use(adain=adain)``): plain functions, defined outside ``helpers``, held by
    the model or by any layer of its networks. The course's own code gives ``{}``.
    """
    holders = [model] + [m for net in getattr(model, "networks", {}).values() for m in net.modules()]
    todo = [fn for holder in holders for fn in map(_student_function, list(vars(holder).values())) if fn is not None]
    found: dict[str, str] = {}
    while todo:  # and the student's functions that those call by name (identity_losses inside generator_losses)
        fn = todo.pop()
        if fn.__qualname__ in found:
            continue
        found[fn.__qualname__] = function_fingerprint(fn)
        todo += [g for g in map(_student_function, (fn.__globals__.get(n) for n in _names(fn.__code__))) if g is not None]
    return dict(sorted(found.items()))


def _names(code) -> set[str]:
    """The global names a code object and the functions defined inside it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _cpu_copy(state):
    """A deep copy of a state dict with every tensor on the CPU (the untrained state, kept for a fresh start)."""
    if torch.is_tensor(state):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _cpu_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_cpu_copy(v) for v in state)
    return copy.deepcopy(state)


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
                               resume=False, progress=progress,
                               config={"data": self.source, "batch_size": s.batch_size, **(config or {})},
                               setting=name or f"the {type(s).__name__} of run {s.run_name!r}")
        self._untrained = _cpu_copy(self.trainer.state_dict())  # what a fresh start goes back to
        if resume:
            self.trainer.restore()
        if snapshot_images is not None:
            self.snapshots = Snapshots(snapshot_images, self.run_dir / "samples", nrow=nrow)
            self.trainer.every(s.sample_every, self.snapshots)
            if self.trainer.step == 0:
                self.snapshots(self.trainer)
        return self

    #: the file in the run folder that names the student functions its checkpoints were trained with
    CODE_FILE = "code.json"

    def check_code(self) -> dict[str, str]:
        """Make sure the run folder's checkpoints were trained by the functions the model holds now.

        The run folder records a fingerprint of the student's functions (:func:`code_fingerprint`)
        in ``code.json``. When a resumed run was trained by other code (a function was fixed since,
        or the checkpoints came from the course's own functions), the old run is moved aside, kept
        whole, and this one starts again from step 0, saying so: a fixed function is never silently
        skipped. Returns the fingerprint now in use.
        """
        code = code_fingerprint(self.model)
        path = self.run_dir / self.CODE_FILE
        saved = json.loads(path.read_text()) if path.is_file() else None
        t = self.trainer
        if t.step and (saved or {}) != code:
            self._start_over(code, saved or {})
        if code or saved is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(code, indent=1))
        return code

    def _start_over(self, code: dict, saved: dict) -> None:
        t = self.trainer
        changed = sorted(k for k in set(code) | set(saved) if code.get(k) != saved.get(k))
        mine = [k for k in changed if k in code]
        old = self.run_dir.with_name(f"{self.run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        done = f"{t.step:,} steps in {self.run_dir} were trained"
        why = (f"Your {', '.join(mine)} changed since the {done}" if saved and mine else
               f"The {done} by the course's own functions, not by your {', '.join(mine)}" if mine else
               f"The {done} by your {', '.join(changed)}; the model now uses the course's own code")
        untrained = getattr(self, "_untrained", None)
        if untrained is None:  # a trainer not made by start(): nothing to start again from
            raise RuntimeError(f"{why}; delete {self.run_dir} (or give this run another run_dir) to train it with "
                               "the code you have now")
        self.run_dir.rename(old)
        t.load_state_dict(copy.deepcopy(untrained))
        t.resumed_from = None
        if self.snapshots is not None:
            self.snapshots(t)
        print(f"{why}. So that your code is what trains it, this run starts again from step 0; the old run is "
              f"kept, whole, in {old} (to go back to it, delete {self.run_dir.name} and rename {old.name} to "
              f"{self.run_dir.name}).")

    #: Seconds between two redraws of the live view in a notebook (``train(live=...)`` changes it).
    LIVE_EVERY_S = 30.0

    def train(self, epochs: int | None = None, steps: int | None = None, live=None, pretrained: bool = False):
        """Train until ``epochs`` or ``steps`` in total (default: the settings' length); returns the loss history.

        ``pretrained=True`` trains nothing for long: :meth:`load_pretrained` runs the student's code
        for a few steps as a check, then loads the course's trained weights from ``weights/``.

        First :meth:`check_code`: checkpoints trained by other versions of the student's functions
        are moved aside, and the training starts again with the functions the model holds now.

        ``live``: in a notebook (``None``, the default), one figure redraws in place about every
        :attr:`LIVE_EVERY_S` seconds while it trains: the newest grid of the fixed test inputs beside
        the loss curves (:class:`helpers.plots.LiveView`); a number sets the seconds, ``False`` turns
        it off. A headless run keeps its short log lines and draws nothing.
        """
        if pretrained:
            return self.load_pretrained()
        code = self.check_code()
        if code:
            print("training with your functions:", ", ".join(code))
        length = length_of(self.settings) if epochs is None and steps is None else {"epochs": epochs, "steps": steps}
        view = self._live_view(live)
        if view is None:
            return self.trainer.fit(**length)
        self.trainer.every(1, view)
        try:
            return self.trainer.fit(**length)
        finally:
            self.trainer.forget(view)
            view.close(self.trainer.step)

    # ----- shipped weights instead of a long training

    #: The part of a shipped file this run's history comes from ("" for a file of one run).
    pretrained_part = ""

    def pretrained_key(self) -> str:
        """The key of this run's shipped file in ``weights/`` (:func:`helpers.weights.key`)."""
        return weights.key(self.model.name, self.source)

    def pretrained_networks(self) -> dict[str, str]:
        """``{network of the model: network in the file}``; by default the file's names, and an EMA copy takes G's."""
        inside = weights.NETWORKS[weights.model_of(self.pretrained_key())]
        out = {n: n for n in inside if n in self.model.networks}
        out.update({f"{n}_ema": n for n in inside if f"{n}_ema" in self.model.networks})
        return out

    def load_pretrained(self, check_steps: int | None = None):
        """Run the student's code for ``check_steps`` steps as a check, then load the course's trained weights.

        The check (:meth:`helpers.training.Trainer.trial`) trains from where the run stands, writes
        nothing, and says whether every loss stayed finite and the weights that ship changed; then
        everything goes back. The networks that ship (the generators; :meth:`pretrained_networks`)
        then take the shipped file's weights, and the trainer its step, epoch and loss history, so
        the notebook's later cells show the trained model. The other networks (the discriminators)
        stay untrained: nothing after training needs them. The run folder (its own, ``...-pretrained``:
        :func:`helpers.weights.pretrained_settings`) then gets a checkpoint of the loaded model and a
        sample grid, so notebooks 07 and 08 find it like a trained run. Returns the shipped loss history.
        """
        t, file_key = self.trainer, self.pretrained_key()
        nets, cfg, note, parts = weights.read(file_key)
        mapping = self.pretrained_networks()
        n = config.PRETRAINED_CHECK_STEPS if check_steps is None else int(check_steps)
        code = code_fingerprint(self.model)
        if n:
            self._check_run(n, sorted(set(mapping)), code)
        where = weights.path_of(file_key)
        for net, name in mapping.items():
            try:
                self.model.networks[net].load_state_dict(nets[name])
            except RuntimeError as err:
                first = str(err).strip().splitlines()[-1].strip()
                raise weights.WeightsError(
                    f"{where} holds a {name} of other sizes than this run's ({first}): build the run with the "
                    f"file's settings, default_settings(device, source, pretrained=True)") from None
        part = parts.get(self.pretrained_part, {})
        t.history = weights.history_from(part.get("history", {"step": []}))
        # A file from before the histories has no epoch: its runs were trained to their settings' end.
        done = int(cfg.get("n_epochs_constant") or 0) + int(cfg.get("n_epochs_decay") or 0)
        t.step, t.epoch, t.batch_in_epoch = int(part.get("step", cfg.get("steps", 0))), int(part.get("epoch", done)), 0
        with warnings.catch_warnings():  # the learning rates where the shipped run left them (stepped once per epoch)
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": nothing trains here
            for sched in getattr(self.model, "schedulers", {}).values():
                for _ in range(t.epoch - int(getattr(sched, "last_epoch", 0))):
                    sched.step()
        t.resumed_from = None
        self.pretrained = {"file": str(where), "steps": t.step, **note}
        t.save()
        (self.run_dir / self.CODE_FILE).write_text("{}")  # trained by the course's code, not the student's
        if self.snapshots is not None:
            self.snapshots(t)
        took = f", {note['train_minutes']:g} min on {note.get('hardware', 'a CPU')}" if "train_minutes" in note else ""
        print(f"loaded the course's trained {', '.join(sorted(set(mapping.values())))} from {where.name} "
              f"({cfg.get('data', self.source)} faces, {t.step:,} steps{took}). To train it with your code "
              "instead, set PRETRAINED = False and run the notebook again.")
        return t.history

    def _check_run(self, n: int, watched: list[str], code: dict) -> None:
        """Train ``n`` steps with the model's functions inside :meth:`Trainer.trial`, and say what they did."""
        t = self.trainer
        before = {k: [p.detach().clone() for p in self.model.networks[k].parameters()] for k in watched}
        start = t.step
        with t.trial():
            t.fit(steps=start + n)
            rows = t.history.to_frame().loc[start + 1:]
            moved = [k for k in watched
                     if any(not torch.equal(a, b.detach()) for a, b in zip(before[k], self.model.networks[k].parameters()))]
        first, last = rows.iloc[0], rows.iloc[-1]
        shown = [c for c in rows.columns if rows[c].notna().all()][:4]
        trend = ", ".join(f"{c} {first[c]:.3g} -> {last[c]:.3g}" for c in shown)
        whose = f"your {', '.join(code)}" if code else "the course's code"
        print(f"check: {n} training steps with {whose} ran, every loss finite ({trend}).")
        still = [k for k in watched if k not in moved]
        if still:
            print(f"warning: {', '.join(still)} did not change in those steps: the step never updates "
                  f"{'it' if len(still) == 1 else 'them'} (a fake detached before the loss that trains it, or its "
                  "optimiser never stepped?). The loaded weights below hide that; PRETRAINED = False would show it.")

    def _live_view(self, live):
        from .plots import LiveView, in_notebook

        if live is False or (live is None and not (in_notebook() and getattr(self.trainer, "progress", True))):
            return None
        interval = self.LIVE_EVERY_S if live is None or live is True else float(live)
        return LiveView(self.snapshots, self.trainer.history, self.loss_groups or None, interval,
                        title=getattr(self.model, "name", ""))

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
