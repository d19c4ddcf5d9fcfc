"""The files in ``weights/``: trained networks that ship with the course, one file per model and face source.

A file is ``weights/<key>.safetensors``. The key is the model's command-line name
(``python -m helpers.train NAME``) for real faces, and ``NAME-toy`` for the toy faces
(:func:`key`). It holds the inference networks in float16 (half the size of float32;
safetensors holds only tensors, so loading one can never run code) and a small JSON header in
the file's metadata:

- ``model``: the key, so that a file renamed to another model's name is refused;
- ``config``: the settings the networks were built with (:func:`helpers.config.model_config` and more);
- ``note``: where they came from (command, data, time);
- ``runs``: for each training run in the file, its step, epoch and loss history, averaged into at
  most :data:`HISTORY_ROWS` rows, so that a notebook can draw the curves of a run it did not train.

This module reads and writes such files and nothing more; :mod:`helpers.pretrained` exports them
from run folders, and :meth:`helpers.runs.Run.train` with ``pretrained=True`` loads one into a
notebook's run (:func:`pretrained_settings` gives the settings it was built with).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import torch

from . import config
from .training import LossHistory

#: Where the shipped weights live.
WEIGHTS_DIR: Path = config.ROOT / "weights"
#: Loss-history rows kept per run in a file (the steps are averaged in equal bins).
HISTORY_ROWS = 300
#: The networks each shipped file must hold, by model (the same for its toy file).
NETWORKS = {"dcgan": ("G",), "cyclegan": ("G_AB", "G_BA"), "cdcgan": ("G",), "cdcgan-wide": ("G",),
            "encoder": ("E_seed", "E_real"), "agegan": ("G",)}


class WeightsError(RuntimeError):
    """A shipped weight file is missing, unreadable, or another model's; the message says what to do."""

    def _render_traceback_(self) -> list[str]:
        """In Jupyter, the message alone: it says what to do, and the frames of the loader would only hide it."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def _unreadable(path: Path, err: Exception) -> WeightsError:
    return WeightsError(f"{path} is not a readable safetensors file ({err}): it may be cut short or damaged; "
                        "restore it with `git checkout weights/` or delete it and train the model")


def key(model: str, source: str = "utkface") -> str:
    """The file key of ``model`` trained on ``source``: the model's name for real faces, ``NAME-toy`` for the toy faces."""
    if model not in NETWORKS:
        raise WeightsError(f"no shipped weights for {model!r}; these models ship weights: {', '.join(NETWORKS)}")
    return f"{model}-toy" if source == "toy" else model


def model_of(file_key: str) -> str:
    """The model name of a file key (``"cdcgan-wide-toy"`` -> ``"cdcgan-wide"``)."""
    return file_key[: -len("-toy")] if file_key.endswith("-toy") else file_key


def keys() -> list[str]:
    """Every key a shipped file may have: each model, for real faces and for the toy faces."""
    return [k for m in NETWORKS for k in (m, f"{m}-toy")]


def path_of(file_key: str, folder=None) -> Path:
    return Path(folder or WEIGHTS_DIR) / f"{file_key}.safetensors"


def train_command(file_key: str) -> str:
    return f"python -m helpers.train {model_of(file_key)}" + (" --data toy" if file_key.endswith("-toy") else "")


# --------------------------------------------------------------------------- histories


def binned_history(history: LossHistory, rows: int = HISTORY_ROWS) -> dict:
    """A loss history as plain lists, each term averaged over equal bins of steps (at most ``rows`` rows)."""
    n = len(history)
    if n == 0:
        return {"step": []}
    edges = [round(i * n / min(rows, n)) for i in range(min(rows, n) + 1)]
    out: dict = {"step": [history.steps[b - 1] for b in edges[1:]]}
    for term, values in history.terms.items():
        col = []
        for a, b in zip(edges, edges[1:]):
            seen = [v for v in values[a:b] if not math.isnan(v)]
            col.append(round(sum(seen) / len(seen), 5) if seen else None)
        out[term] = col
    return out


def history_from(table: dict) -> LossHistory:
    """The :class:`helpers.training.LossHistory` of a file's run record (:func:`binned_history`)."""
    h = LossHistory()
    terms = {k: v for k, v in table.items() if k != "step"}
    for i, step in enumerate(table.get("step", [])):
        h.record(step, **{k: (math.nan if v[i] is None else v[i]) for k, v in terms.items()})
    return h


# --------------------------------------------------------------------------- writing and reading


def write(file_key: str, networks: dict, cfg: dict, note: dict | None = None, runs: dict | None = None,
          path=None) -> Path:
    """Write ``networks`` ({name: state dict}) as float16 safetensors with their header; returns the path.

    ``runs``: ``{part: {"step": n, "epoch": e, "history": LossHistory}}`` (part ``""`` for a
    file of one run); the histories are binned (:func:`binned_history`).
    """
    from safetensors.torch import save_file  # noqa: PLC0415 -- a dependency of the course, loaded when used

    missing = [n for n in NETWORKS[model_of(file_key)] if n not in networks]
    if missing:
        raise WeightsError(f"{file_key} needs the network(s) {', '.join(missing)}")
    tensors = {f"{net}.{k}": v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous().cpu()
               for net, sd in networks.items() for k, v in sd.items()}
    runs = {part: {"step": int(r["step"]), "epoch": int(r.get("epoch", 0)),
                   "history": binned_history(r["history"]) if isinstance(r.get("history"), LossHistory)
                   else r.get("history", {"step": []})}
            for part, r in (runs or {}).items()}
    meta = {"model": file_key, "config": json.dumps(cfg, default=str), "note": json.dumps(note or {}),
            "runs": json.dumps(runs)}
    path = Path(path) if path else path_of(file_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def _header(file_key: str, path: Path) -> dict:
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415

    if not path.is_file():
        raise WeightsError(f"no shipped weights at {path}: get the course's weights/ folder again (git checkout "
                           f"weights/), or train the model yourself ({train_command(file_key)})")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from None
    if meta.get("model") != file_key:
        raise WeightsError(f"{path} holds weights of model {meta.get('model')!r}, not {file_key!r}: "
                           f"use weights/{file_key}.safetensors")
    return meta


def read_config(file_key: str, path=None) -> dict:
    """The settings a shipped file's networks were built with (its header only; the tensors are not read)."""
    meta = _header(file_key, Path(path) if path else path_of(file_key))
    return json.loads(meta.get("config", "{}"))


def read(file_key: str, path=None) -> tuple[dict, dict, dict, dict]:
    """``(tensors by network, config, note, runs)`` of a shipped file; :class:`WeightsError` for any problem.

    The tensors come back in float32. ``runs`` is ``{part: {"step", "epoch", "history"}}`` (empty
    for a file written before the histories were kept).
    """
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    path = Path(path) if path else path_of(file_key)
    meta = _header(file_key, path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from None
    nets: dict = {}
    for name, t in tensors.items():
        net, _, param = name.partition(".")
        nets.setdefault(net, {})[param] = t.float() if t.is_floating_point() else t
    missing = [n for n in NETWORKS[model_of(file_key)] if n not in nets]
    if missing:
        raise WeightsError(f"{path} lacks the network(s) {', '.join(missing)}: restore it with `git checkout weights/`")
    return (nets, json.loads(meta.get("config", "{}")), json.loads(meta.get("note", "{}")),
            json.loads(meta.get("runs", "{}")))


# --------------------------------------------------------------------------- settings


#: The suffix of a pretrained run's folder, so that loading shipped weights never touches a run you trained.
RUN_SUFFIX = "-pretrained"


def pretrained_settings(base, file_key: str, path=None):
    """``base`` with the model fields of a shipped file's networks, and a run folder of its own.

    Every field that shapes the networks comes from the file (``image_size``, widths, blocks ...),
    so the networks built from these settings take its weights; the bookkeeping fields
    (:data:`helpers.config.RUN_FIELDS`: batch size, how many faces to evaluate ...) stay ``base``'s,
    so smoke mode stays small. The run name gets :data:`RUN_SUFFIX`.
    """
    cfg = read_config(file_key, path)
    keep = {k: v for k, v in cfg.items() if k not in config.RUN_FIELDS}
    s = config.settings_from(base, keep)
    if getattr(s, "load_size", None) is not None and s.load_size < s.image_size:  # smoke's small crops, full-size networks
        s = replace(s, load_size=s.image_size + s.image_size // 8)
    return s if s.run_name.endswith(RUN_SUFFIX) else replace(s, run_name=s.run_name + RUN_SUFFIX)
