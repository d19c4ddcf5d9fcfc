"""The training machinery every model in the course shares.

- :func:`pick_device` and :func:`seed_everything`: where to train, and reproducible runs.
- :class:`Precision`: mixed precision on a GPU (bf16 where the GPU has it, else fp16 with a
  gradient scaler), channels-last memory layout on CUDA, and plain fp32 on a CPU or Apple MPS.
- :class:`LossHistory`: every named loss term, every step; plots them.
- :class:`Checkpointer`: atomic checkpoint files in a run folder (write ``*.tmp``, then rename),
  loaded with ``torch.load(weights_only=True)``; old ones are emptied, then deleted.
- :class:`Trainer`: runs a model's ``train_step`` over a loader, with a progress bar (in a
  terminal or a notebook; in a log file, a short line every N steps), loss history,
  checkpoints every N steps and at each epoch's end, automatic and *exact* resume from the
  latest checkpoint, a stop on non-finite losses, and callbacks (sample grids).
- :class:`Snapshots`: a callback that saves an image grid every K steps, for animations.

A model is anything with the attributes of :class:`Trainable`: a ``name``, a ``config`` dict
that identifies it, ``networks``, ``optimizers`` (and optionally ``schedulers``) dicts, a
``precision``, and ``train_step(batch) -> dict`` of named numbers. The training step itself is
the model's own code: that is the part a notebook teaches.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import re
import sys
import time
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

# --------------------------------------------------------------------------- device and seeds


def pick_device(prefer=None) -> torch.device:
    """The device to train on: ``prefer`` if given ("cuda", "cuda:1", "mps", "cpu"), else the best one here.

    The order is CUDA, then Apple's MPS, then the CPU. Asking for a device that is not available
    raises ``ValueError`` saying what is.
    """
    if prefer is not None and str(prefer) not in ("", "auto"):
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for, but CUDA is not available here (try 'cpu' or leave it out)")
        if dev.type == "mps" and not _mps_available():
            raise ValueError(f"device {prefer!r} was asked for, but Apple MPS is not available here (try 'cpu')")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (all devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


# --------------------------------------------------------------------------- precision


def autocast_dtype(capability) -> torch.dtype:
    """The autocast type for a CUDA GPU of compute ``capability`` ``(major, minor)``.

    bfloat16 from 8.0 (A100, L4, H100: tensor cores for it and float32's range, no scaler needed);
    float16 below (T4 at 7.5, V100 at 7.0), which needs a :class:`torch.amp.GradScaler`.
    """
    major = int(capability[0])
    return torch.bfloat16 if major >= 8 else torch.float16



class Precision:
    """Mixed precision and memory layout for one device.

    On CUDA, ``autocast()`` runs the forward pass in bfloat16 where the GPU supports it
    (compute capability 8.0+, e.g. A100, L4, H100) and in float16 otherwise (T4, V100). float16
    has a narrow range, so small gradients would round to zero: a ``GradScaler`` multiplies the
    loss before ``backward`` and divides the gradients back before the optimiser step, skipping
    steps whose gradients overflowed. bfloat16 has float32's range and needs no scaler. On a CPU
    or MPS everything stays in float32 and ``autocast()`` does nothing.

    A training step uses it like this (one ``update()`` per step, which the :class:`Trainer`
    calls)::

        with precision.autocast():
            loss = ...
        optimizer.zero_grad()
        precision.backward(loss)
        precision.step(optimizer)

    On CUDA, networks and batches use the channels-last layout, which convolutions on tensor
    cores run faster: ``prepare(net)`` converts a network and ``memory_format`` is the layout to
    ask a :class:`helpers.cache.BatchLoader` for. ``channels_last=False`` keeps the usual layout.
    """

    def __init__(self, device="cpu", enabled: bool = True, channels_last: bool | None = None,
                 dtype: torch.dtype | None = None, benchmark: bool = True):
        self.device = torch.device(device)
        forced = dtype is not None
        if forced and dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"dtype forces mixed precision: torch.float16 or torch.bfloat16, not {dtype}")
        # dtype forces that autocast on any device: a CPU emulates a T4 (float16 + GradScaler) in the tests.
        self.enabled = bool(enabled) and (forced or self.device.type == "cuda")
        self.dtype = torch.float32
        self.scaler = None
        if self.enabled:
            self.dtype = dtype if forced else autocast_dtype(torch.cuda.get_device_capability(self.device))
            if self.dtype == torch.float16:
                self.scaler = torch.amp.GradScaler(self.device.type)
            if self.device.type == "cuda":
                # Pick the fastest convolution kernels once per input shape. The cache is per shape, so a
                # network whose batch varies (the age GAN's per-group discriminators see 0..batch faces)
                # tunes at most batch + 1 shapes per layer, once each, in its first steps.
                torch.backends.cudnn.benchmark = bool(benchmark)
        # channels_last: None = on CUDA only (and with a forced dtype, to emulate a GPU); False switches it off.
        self.channels_last = (self.device.type == "cuda" or forced) if channels_last is None else bool(channels_last)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

    @classmethod
    def t4(cls, device="cpu") -> "Precision":
        """A T4's precision (float16 autocast, a GradScaler, channels-last) on ``device``: the CPU emulates it."""
        return cls(device, dtype=torch.float16, channels_last=True)

    def __repr__(self) -> str:
        name = {torch.float32: "float32", torch.bfloat16: "bfloat16 autocast", torch.float16: "float16 autocast + GradScaler"}
        layout = ", channels_last" if self.channels_last else ""
        return f"Precision({self.device.type}: {name[self.dtype]}{layout})"

    def autocast(self):
        """Context manager for the forward pass and the loss."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        """Convert a network to channels-last where that helps (CUDA); returns it."""
        return module.to(memory_format=torch.channels_last) if self.channels_last else module

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self._scaler_stepped = True
        else:
            optimizer.step()

    def update(self) -> None:
        """Adjust the loss scale; once per training step, after every optimiser has stepped.

        A step that called ``backward()`` and ``optimizer.step()`` itself (a student's, say) never used
        the scaler: then there is nothing to adjust, and ``GradScaler.update`` would fail with an
        assertion. It is skipped instead, with one warning that says what to call.
        """
        if self.scaler is None:
            return
        if getattr(self, "_scaler_stepped", False):
            self.scaler.update()
            self._scaler_stepped = False
        elif not getattr(self, "_warned_unscaled", False):
            self._warned_unscaled = True
            warnings.warn("this training step called backward() and the optimiser's step() itself, so in float16 "
                          "its gradients are not scaled and the smallest round to zero: call "
                          "precision.backward(loss) and precision.step(optimizer) (gan.precision in the notebooks)",
                          stacklevel=2)

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


# --------------------------------------------------------------------------- loss history


class LossHistory:
    """Every named number a training step returns, step by step.

    ``record(step, loss_D=0.7, loss_G=2.1)`` adds one row; terms may come and go (a missing term
    is NaN in that row). ``to_frame()`` gives a DataFrame indexed by step, ``plot()`` draws it.
    """

    def __init__(self):
        self.steps: list[int] = []
        self.terms: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self.steps)

    def record(self, step: int, **terms: float) -> None:
        n = len(self.steps)
        self.steps.append(int(step))
        for name in terms:
            if name not in self.terms:
                self.terms[name] = [math.nan] * n
        for name, values in self.terms.items():
            values.append(float(terms[name]) if name in terms else math.nan)

    def last(self) -> dict[str, float]:
        """The most recent row, as a dict."""
        return {k: v[-1] for k, v in self.terms.items()} if self.steps else {}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.terms, index=pd.Index(self.steps, name="step"))

    def plot(self, groups=None, smooth: int | None = None, **kwargs):
        """Loss curves, one panel per group (see :func:`helpers.plots.plot_losses`)."""
        from .plots import plot_losses

        return plot_losses(self, groups=groups, smooth=smooth, **kwargs)

    def state_dict(self) -> dict:
        return {
            "steps": torch.tensor(self.steps, dtype=torch.int64),
            "terms": {k: torch.tensor(v, dtype=torch.float64) for k, v in self.terms.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.steps = [int(s) for s in state["steps"].tolist()]
        self.terms = {k: [float(x) for x in v.tolist()] for k, v in state["terms"].items()}


# --------------------------------------------------------------------------- errors


class CheckpointMismatch(RuntimeError):
    """The run folder holds a checkpoint of another model or another configuration."""


class NonFiniteLoss(FloatingPointError):
    """A loss became NaN or infinite; training stopped before saving anything from that step."""


class OutOfGPUMemory(RuntimeError):
    """CUDA ran out of memory during a training step; the last checkpoint is kept, the message says which batch to try."""


def out_of_memory_message(step: int, batch_size, last, setting: str | None = None) -> str:
    """One sentence for a CUDA out-of-memory error at ``step``: the setting, the checkpoint kept, a smaller batch to try."""
    what = f" with {setting}" if setting else ""
    kept = f"the last checkpoint, {last}, is kept" if last else "no checkpoint was written yet"
    if isinstance(batch_size, int) and batch_size > 1:
        half = max(1, batch_size // 2)
        fix = (f"run again with --set batch_size={half} (in a notebook, dataclasses.replace(settings, batch_size={half})), "
               "which resumes from it with half the batch")
    else:
        fix = "close other notebooks that hold GPU memory, or use a smaller image_size (--set image_size=...) in a new run folder"
    return f"CUDA ran out of GPU memory at step {step}{what} at batch {batch_size}: {kept}; {fix}."


# --------------------------------------------------------------------------- checkpoints

_CKPT = re.compile(r"^ckpt_(\d{8,})\.pt$")
#: Bump when the layout of the checkpoint dict changes.
CHECKPOINT_FORMAT = 1


class Checkpointer:
    """Checkpoint files ``ckpt_<step>.pt`` in one run folder, the newest ``keep`` of them kept.

    A save writes ``ckpt_<step>.pt.tmp``, flushes it to disk, and only then renames it to its
    final name (``os.replace`` is atomic), so a crash or a Colab disconnect in the middle of a
    save leaves every earlier checkpoint whole. Loading uses ``torch.load(weights_only=True)``,
    which refuses to run code from a file; the checkpoint therefore holds only tensors and plain
    Python containers.

    After a save, the checkpoint just written and the newest ``keep - 1`` others (by step) stay;
    with the default ``keep=2``, the latest one and the one before it, which :meth:`load` falls
    back to when the latest cannot be read. The rest go, each emptied (truncated to 0 bytes)
    before it is deleted: a file deleted through Colab's Google Drive mount goes to Drive's
    trash and counts against the quota for 30 more days (googlecolab/colabtools#1269); emptied,
    it takes no space there.
    """

    def __init__(self, folder, keep: int = 2):
        self.folder = Path(folder).expanduser()
        self.keep = max(1, int(keep))

    def paths(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _CKPT.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        paths = self.paths()
        return paths[-1] if paths else None

    def save(self, state: dict, step: int) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"ckpt_{int(step):08d}.pt"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        others = [p for p in self.paths() if p != path]  # the one just written always stays
        for old in others[: len(others) - (self.keep - 1)]:
            discard(old)
        for stale in self.folder.glob("*.pt.tmp"):  # left by an earlier crash mid-save
            discard(stale)
        return path

    def load(self, path=None, map_location="cpu") -> tuple[dict, Path] | tuple[None, None]:
        """The newest readable checkpoint and its path (``(None, None)`` when there is none).

        A file that cannot be read (a copy cut short by a cloud drive, say) is skipped with a
        warning and the one before it is tried.
        """
        candidates = [Path(path)] if path is not None else self.paths()[::-1]
        for p in candidates:
            try:
                return torch.load(p, map_location=map_location, weights_only=True), p
            except Exception as e:  # noqa: BLE001 -- any unreadable file: fall back to the previous one
                if path is not None:
                    raise
                warnings.warn(f"checkpoint {p} cannot be read ({type(e).__name__}: {e}); trying the previous one")
        return None, None


def discard(path) -> None:
    """Delete a file after truncating it to 0 bytes, so that a cloud drive's trash keeps nothing of it.

    Through Colab's Google Drive mount a deleted file goes to Drive's trash, where it counts
    against the quota for 30 days; emptied first, it is kept there at 0 bytes. A file that is
    already gone is fine.
    """
    path = Path(path)
    try:
        os.truncate(path, 0)
    except FileNotFoundError:
        return
    path.unlink(missing_ok=True)


def load_trained(run_dir, name: str, train_command: str) -> tuple[dict, Path]:
    """The newest checkpoint of a trained model ``name`` in ``run_dir``: ``(state, path)``, for inference.

    Raises ``FileNotFoundError`` (saying to run ``train_command``) when the folder holds no
    checkpoint, and ``ValueError`` when its checkpoint belongs to another model.
    """
    state, path = Checkpointer(run_dir).load(map_location="cpu")
    if state is None:
        raise FileNotFoundError(f"no checkpoint in {run_dir}: train first ({train_command})")
    if state.get("model") != name:
        raise ValueError(f"{path} belongs to model {state.get('model')!r}, not {name!r}")
    return state, path


def check_compatible(state: dict, name: str, config: dict, where, defaults: Mapping | None = None) -> None:
    """Raise :class:`CheckpointMismatch` unless ``state`` was saved by model ``name`` with ``config``.

    ``defaults``: values for keys a checkpoint lacks because they were added to the settings after
    it was saved (the settings' field defaults). A new option's default keeps the old behaviour, so
    an old run whose other settings match resumes; one that now asks for the option on is refused.
    """
    fix = (f"Use another run folder for this model (run_dir=... / --run-dir), or delete {where} "
           "to start afresh.")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(f"the checkpoint in {where} has format {state.get('format')!r}, "
                                 f"this code writes format {CHECKPOINT_FORMAT}. {fix}")
    if state.get("model") != name:
        raise CheckpointMismatch(f"the checkpoint in {where} belongs to model {state.get('model')!r}, "
                                 f"not {name!r}. {fix}")
    from .config import USE_FIELDS  # noqa: PLC0415 -- config is light; imported here to keep this module standalone

    saved = dict(state.get("config", {}))
    saved.update({k: _plain(v) for k, v in (defaults or {}).items() if k in config and k not in saved})
    keys = sorted((set(saved) | set(config)) - USE_FIELDS)  # how the model is used does not change its training
    diffs = [f"{k}: {saved.get(k, '<missing>')!r} in the checkpoint, {config.get(k, '<missing>')!r} now"
             for k in keys if saved.get(k, "<missing>") != config.get(k, "<missing>")]
    if diffs:
        raise CheckpointMismatch(f"the checkpoint in {where} was made with another {name} configuration:\n  "
                                 + "\n  ".join(diffs) + f"\n{fix}")


def _field_defaults(model) -> dict:
    """The defaults of the model's settings dataclass (``model.settings``), for :func:`check_compatible`."""
    s = getattr(model, "settings", None)
    if s is None or not dataclasses.is_dataclass(s):
        return {}
    return {f.name: f.default for f in dataclasses.fields(s) if f.default is not dataclasses.MISSING}


def _plain(value):
    """Config values as plain Python (what ``weights_only=True`` loads back)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def rng_state() -> dict:
    """Python's, NumPy's and PyTorch's (CPU and CUDA) random states, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    if _mps_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and _mps_available():
        torch.mps.set_rng_state(state["mps"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# --------------------------------------------------------------------------- models and the trainer


class Trainable:
    """What the :class:`Trainer` needs from a model (subclass it, or just provide the same attributes).

    - ``name``: a short name, stored in checkpoints (``"dcgan"``);
    - ``config``: a dict of plain values that identify the model and its training (sizes,
      learning rates); a checkpoint made with another config is refused;
    - ``networks``, ``optimizers``, ``schedulers``: dicts of modules, optimisers and LR
      schedulers (schedulers step once per epoch);
    - ``precision``: a :class:`Precision`;
    - ``train_step(batch) -> dict``: one optimisation step; returns named numbers (floats or
      0-d tensors) to log;
    - optionally ``extra_state()`` / ``load_extra_state(state)`` for anything else to checkpoint
      (an image pool, say), as tensors and plain containers.
    """

    name: str = "model"
    config: Mapping = MappingProxyType({})  # read-only defaults: set your own dicts in __init__
    networks: Mapping = MappingProxyType({})
    optimizers: Mapping = MappingProxyType({})
    schedulers: Mapping = MappingProxyType({})
    precision: Precision | None = None

    def train_step(self, batch) -> dict:
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


class Trainer:
    """Train ``model`` on ``loader``, checkpointing in ``run_dir`` and resuming from it.

    On creation the trainer loads the latest checkpoint in ``run_dir`` (unless ``resume=False``)
    and puts back everything in it: weights, optimisers, schedulers, grad scaler, loss history,
    random states, the loader's shuffling state, the step and the epoch. ``fit(epochs=...)`` or
    ``fit(steps=...)`` then trains *until* that total is reached, so running the same cell or
    command again after a disconnect simply carries on; a finished run trains no further.

    Checkpoints are written every ``checkpoint_every`` steps, at the end of every epoch, and when
    ``fit`` returns. A NaN or infinite loss raises :class:`NonFiniteLoss` before anything from
    that step is saved, so the latest checkpoint stays the last good one.

    Callbacks: ``every(k, fn)`` calls ``fn(trainer)`` after every ``k``-th step,
    ``on_epoch_end(fn)`` after each epoch.

    Progress (``progress=True``): a tqdm bar with every loss term in a terminal or a notebook.
    When stderr is neither (a headless run writing to a log file, where each redraw of the bar
    would be a new line), one short line every ``log_every`` steps instead: the step, steps per
    second, the time left and the mean generator and discriminator losses since the last line.
    """

    def __init__(self, model, loader, run_dir, *, config: dict | None = None, checkpoint_every: int = 500,
                 keep: int = 2, resume: bool = True, progress: bool = True, log_every: int = 50,
                 setting: str | None = None):
        self.model, self.loader = model, loader
        self.run_dir = Path(run_dir).expanduser()
        self.config = _plain({**getattr(model, "config", {}), **(config or {})})
        self.checkpoint_every = int(checkpoint_every) if checkpoint_every else 0
        self.checkpointer = Checkpointer(self.run_dir, keep)
        self.progress = progress
        self.log_every = max(1, int(log_every))
        self.setting = setting  # the settings' name in helpers.config, for messages (None: unnamed)
        self.history = LossHistory()
        self.step = self.epoch = self.batch_in_epoch = 0
        self.resumed_from: Path | None = None
        self._step_callbacks: list[tuple[int, Callable]] = []
        self._epoch_callbacks: list[Callable] = []
        self._epoch_start_loader = self._loader_state()
        self._saving = True
        if resume:
            self.restore()

    # ----- callbacks

    def every(self, steps: int, fn: Callable) -> Callable:
        """Call ``fn(trainer)`` after every ``steps``-th training step."""
        self._step_callbacks.append((int(steps), fn))
        return fn

    def forget(self, fn: Callable) -> None:
        """Stop calling ``fn`` (a step or epoch callback); unknown ones are ignored."""
        self._step_callbacks = [(k, f) for k, f in self._step_callbacks if f is not fn]
        self._epoch_callbacks = [f for f in self._epoch_callbacks if f is not fn]

    def on_epoch_end(self, fn: Callable) -> Callable:
        """Call ``fn(trainer)`` after each epoch (after its checkpoint)."""
        self._epoch_callbacks.append(fn)
        return fn

    # ----- state

    def _loader_state(self):
        return self.loader.state_dict() if hasattr(self.loader, "state_dict") else None

    def state_dict(self) -> dict:
        m = self.model
        precision = getattr(m, "precision", None)
        return {
            "format": CHECKPOINT_FORMAT,
            "model": m.name,
            "config": self.config,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "networks": {k: v.state_dict() for k, v in m.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in m.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in getattr(m, "schedulers", {}).items()},
            "precision": precision.state_dict() if precision is not None else {},
            "history": self.history.state_dict(),
            "rng": rng_state(),
            # Mid-epoch, the loader state from the epoch's start; the batches already used are
            # drawn again (and skipped) on resume, so the rest of the epoch is the same.
            "loader": self._epoch_start_loader if self.batch_in_epoch else self._loader_state(),
            "extra": m.extra_state() if hasattr(m, "extra_state") else {},
        }

    def load_state_dict(self, state: dict) -> None:
        check_compatible(state, self.model.name, self.config, self.run_dir, _field_defaults(self.model))
        m = self.model
        for group, objs in (("networks", m.networks), ("optimizers", m.optimizers),
                            ("schedulers", getattr(m, "schedulers", {}))):
            missing = set(objs) ^ set(state[group])
            if missing:
                raise CheckpointMismatch(f"the checkpoint in {self.run_dir} has {group} {sorted(state[group])}, "
                                         f"the model has {sorted(objs)}. Use another run folder or delete this one.")
            for k, obj in objs.items():
                obj.load_state_dict(state[group][k])
        if getattr(m, "precision", None) is not None:
            m.precision.load_state_dict(state["precision"])
        if hasattr(m, "load_extra_state"):
            m.load_extra_state(state.get("extra", {}))
        self.history.load_state_dict(state["history"])
        set_rng_state(state["rng"])
        if state["loader"] is not None and hasattr(self.loader, "load_state_dict"):
            self.loader.load_state_dict(state["loader"])
        self._epoch_start_loader = self._loader_state()
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]

    def save(self) -> Path | None:
        """Write a checkpoint now (atomically); returns its path (None inside :meth:`trial`, which writes none)."""
        if not self._saving:
            return None
        return self.checkpointer.save(self.state_dict(), self.step)

    @contextlib.contextmanager
    def trial(self):
        """Train inside this block without leaving a trace, then put everything back as it was.

        No checkpoint is written and no callback runs (snapshots, live views); at the end the
        weights, optimisers, loss history, step, epoch and random states are those from before
        the block. A notebook uses it to run a student's code for a few steps as a check.
        """
        before = copy.deepcopy(self.state_dict())
        saving, steps_cb, epochs_cb, resumed = self._saving, self._step_callbacks, self._epoch_callbacks, self.resumed_from
        self._saving, self._step_callbacks, self._epoch_callbacks, self.resumed_from = False, [], [], None
        try:
            yield self
        finally:
            self._saving, self._step_callbacks, self._epoch_callbacks = saving, steps_cb, epochs_cb
            self.load_state_dict(before)
            self.resumed_from = resumed

    def restore(self, path=None) -> Path | None:
        """Load the latest checkpoint of the run folder (or ``path``); returns its path, or None."""
        state, found = self.checkpointer.load(path)
        if state is None:
            return None
        self.load_state_dict(state)
        self.resumed_from = found
        return found

    # ----- training

    def fit(self, epochs: int | None = None, steps: int | None = None) -> LossHistory:
        """Train until ``epochs`` epochs or ``steps`` steps in total (whichever comes first)."""
        if epochs is None and steps is None:
            raise ValueError("say how long to train: fit(epochs=...) or fit(steps=...)")
        n_batches = len(self.loader) if hasattr(self.loader, "__len__") else None
        limits = [steps] if steps is not None else []
        if epochs is not None and n_batches:
            limits.append(epochs * n_batches)
        total = min(limits) if limits else None  # for the progress bar

        def done() -> bool:
            return (steps is not None and self.step >= steps) or (epochs is not None and self.epoch >= epochs)

        if self.resumed_from is not None and self.step:
            print(f"resumed from {self.resumed_from} (step {self.step}, epoch {self.epoch})")
        if done():
            return self.history
        for net in self.model.networks.values():
            net.train()
        bar = progress_display(total, self.step, self.progress, desc=self.model.name, every=self.log_every)
        try:
            while not done():
                stopped = self._run_epoch(bar, steps)
                if stopped:
                    break
        finally:
            bar.close()
        if not self.checkpointer.latest() or _step_of(self.checkpointer.latest()) != self.step:
            self.save()
        return self.history

    def _run_epoch(self, bar, steps) -> bool:
        """One epoch, or what is left of it; True when stopped early by ``steps``."""
        self._epoch_start_loader = self._loader_state()
        batches = iter(self.loader)
        for _ in range(self.batch_in_epoch):  # resumed mid-epoch: draw and skip the used batches
            next(batches, None)
        for batch in batches:
            losses = self._train_one(batch)
            bar.show(losses)
            if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                self.save()
            for k, fn in self._step_callbacks:
                if self.step % k == 0:
                    fn(self)
            if steps is not None and self.step >= steps:
                return True
        self.epoch += 1
        self.batch_in_epoch = 0
        for sched in getattr(self.model, "schedulers", {}).values():
            sched.step()
        self.save()
        for fn in self._epoch_callbacks:
            fn(self)
        return False

    def _train_one(self, batch) -> dict[str, float]:
        try:
            out = self.model.train_step(batch)
        except torch.cuda.OutOfMemoryError:
            # Nothing of this step is saved; the memory the failed step held goes back before the message.
            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()
            raise OutOfGPUMemory(out_of_memory_message(self.step + 1, self.config.get("batch_size"),
                                                       self.checkpointer.latest(), self.setting)) from None
        if getattr(self.model, "precision", None) is not None:
            self.model.precision.update()
        names = list(out)
        values = torch.stack([torch.as_tensor(out[k]).detach().float().cpu().reshape(()) for k in names]).tolist()
        losses = dict(zip(names, values))  # one device sync for all terms
        for k, v in losses.items():
            if not math.isfinite(v):
                last = self.checkpointer.latest()
                kept = f"The last good checkpoint, {last}, is kept" if last else "No checkpoint was written yet"
                raise NonFiniteLoss(
                    f"{k} became {v} at step {self.step + 1} (epoch {self.epoch}); training stopped. {kept}: "
                    "running again resumes from there. What to try: a lower learning rate, full float32 "
                    "precision (Precision(device, enabled=False)), or check the input images for NaNs."
                )
        self.step += 1
        self.batch_in_epoch += 1
        self.history.record(self.step, **losses)
        return losses


def _step_of(path: Path) -> int:
    return int(_CKPT.match(path.name).group(1))


def _interactive(stream) -> bool:
    """True in a terminal or a Jupyter kernel (tqdm draws a widget there); False for a log file or pipe."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_display(total, initial=0, enabled=True, desc="training", every=50):
    """The progress display ``fit`` uses (and the evaluation's classifiers): ``show(losses)`` after each step,
    ``close()`` at the end. A bar in a terminal or notebook; one short line every ``every`` steps in a log file."""
    if not enabled:
        return _Silent()
    if _interactive(sys.stderr):
        return _Bar(total, initial, desc)
    return _LogLines(total, initial, desc, every)


class _Silent:
    def show(self, losses):
        pass

    def close(self):
        pass


class _Bar:
    """A tqdm bar with every loss term after it."""

    def __init__(self, total, initial, desc):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def show(self, losses):
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)

    def close(self):
        self.bar.close()


#: The terms a headless log line shows, when the model has them (else its first two terms).
HEADLINE_TERMS = ("G", "D", "loss_G", "loss_D", "loss")


class _LogLines:
    """Headless progress: a start line, then one short line every ``every`` steps, and one at the end.

    ``dcgan  step 500/2000 (25%)  11.4 steps/s  eta 2m12s  loss_D 0.512  loss_G 2.804``: the
    losses are means over the steps since the previous line.
    """

    def __init__(self, total, initial, desc, every, stream=None):
        self.total, self.desc, self.every = total, desc, max(1, int(every))
        self.stream = stream if stream is not None else sys.stderr
        self.step = int(initial)
        self.names: list[str] | None = None
        self._reset()
        until = f"to step {total}" if total else "on"
        self._write(f"{desc}: training from step {self.step} {until}; a line every {self.every} steps")

    def _reset(self):
        self.t0, self.n, self.sums = time.perf_counter(), 0, {}

    def _write(self, line):
        print(line, file=self.stream, flush=True)

    def show(self, losses):
        if self.names is None:
            self.names = [k for k in HEADLINE_TERMS if k in losses] or list(losses)[:2]
        self.step += 1
        self.n += 1
        for k in self.names:
            if k in losses:
                self.sums[k] = self.sums.get(k, 0.0) + float(losses[k])
        if self.step % self.every == 0 or (self.total and self.step == self.total):
            self._emit()

    def _emit(self):
        rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
        parts = [self.desc, f"step {self.step}/{self.total} ({100 * self.step // self.total}%)" if self.total
                 else f"step {self.step}", f"{rate:.3g} steps/s"]
        if self.total and self.total > self.step:
            parts.append("eta " + _duration((self.total - self.step) / rate))
        parts += [f"{k} {v / self.n:.3f}" for k, v in self.sums.items()]
        self._write("  ".join(parts))
        self._reset()

    def close(self):
        if self.n:
            self._emit()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s % 60:02d}s"


# --------------------------------------------------------------------------- sample grids


class Snapshots:
    """A callback that saves a grid of ``make_images()`` as ``<folder>/step_<step>.png``.

    ``make_images`` returns images in [-1, 1] (a generator's output on a fixed noise batch).
    Because the grids are files in the run folder, they survive a disconnect and the headless
    command writes them too; ``frames()`` reads them back, in step order, for an animation.
    """

    def __init__(self, make_images: Callable[[], torch.Tensor], folder, nrow: int = 8):
        self.make_images, self.folder, self.nrow = make_images, Path(folder).expanduser(), nrow

    def __call__(self, trainer: Trainer | None = None, step: int | None = None) -> Path:
        from .plots import make_grid, save_image

        step = trainer.step if step is None and trainer is not None else int(step or 0)
        return save_image(make_grid(self.make_images(), nrow=self.nrow), self.folder / f"step_{step:08d}.png")

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("step_*.png")) if self.folder.is_dir() else []

    def frames(self, up_to: int | None = None) -> tuple[list[np.ndarray], list[int]]:
        """The saved grids (uint8 HxWx3 arrays) and their steps, oldest first, optionally up to a step."""
        from PIL import Image

        frames, steps = [], []
        for p in self.paths():
            s = int(p.stem.split("_")[1])
            if up_to is None or s <= up_to:
                frames.append(np.asarray(Image.open(p).convert("RGB")))
                steps.append(s)
        return frames, steps
