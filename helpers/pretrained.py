"""Shipped weights: trained generators in ``weights/``, so a student can age a photo before training anything.

Each file is ``weights/<key>.safetensors`` (:mod:`helpers.weights` reads and writes them): the
inference networks in float16 with a small JSON header: the model's key, its settings, where it
came from, and its loss history. ``weights/README.md`` is the model card. The notebooks load them
with their ``PRETRAINED`` switch (:meth:`helpers.runs.Run.train`).

- :func:`export` writes one from a run folder (``python -m helpers.pretrained export cyclegan RUN_DIR``);
- :func:`load` reads one back as the same objects a run folder's loader gives
  (:data:`helpers.catalog.MODELS`), refusing a file that is corrupt or belongs to another model
  with :class:`WeightsError`, whose message says what to do.
"""

from __future__ import annotations

import argparse
import sys

from . import cli

#: The file keys that may ship weights (:func:`helpers.weights.keys`: each model, and each model's ``-toy``).
SHIPPED_NAMES = tuple(f"{m}{t}" for m in ("dcgan", "cyclegan", "cdcgan", "cdcgan-wide", "encoder", "agegan")
                      for t in ("", "-toy"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.pretrained", description="Export or check shipped weights.",
                                epilog="exit codes: 0 done; 2 usage error; 3 the weights cannot be written or read")
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("export", help="write weights/<key>.safetensors from a trained run folder")
    e.add_argument("model", choices=list(SHIPPED_NAMES), help="the model's name, with -toy for the toy faces")
    e.add_argument("run_dir", help="the run folder (the encoder's: the improved encoder's; its -seed sibling is read too)")
    e.add_argument("--out", default=None)
    e.add_argument("--strength", type=float, default=None,
                   help="agegan: the share of the change the file is used with (default: the run's own)")
    c = sub.add_parser("check", help="read a shipped file back and print what it holds")
    c.add_argument("model", choices=list(SHIPPED_NAMES))
    return p


def main(argv=None) -> int:
    """``python -m helpers.pretrained``: the arguments are checked before torch is imported (see helpers.cli)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "strength", None) is not None:
        try:
            cli.check_strength(args.strength)
        except ValueError as err:
            parser.error(str(err))
    from . import pretrained as app  # the heavy part below; this module itself when imported

    return app.run(args)


if __name__ == "__main__":
    sys.exit(main())

# ruff: noqa: E402 -- the heavy imports come after the command line, on purpose
from pathlib import Path

from . import agegan, config, cyclegan, weights
from .training import Checkpointer, LossHistory
from .weights import WeightsError  # noqa: F401 -- the error every caller catches, named here as before

#: The networks each shipped file holds, by key (real faces and ``-toy``).
SHIPPED = {k: weights.NETWORKS[weights.model_of(k)] for k in SHIPPED_NAMES}
#: The shipped files that :func:`load` turns into a model that ages a photo (notebook 08, ``evaluate --pretrained``).
PHOTO_MODELS = ("cyclegan", "agegan")


def path_of(model: str, folder=None) -> Path:
    return weights.path_of(model, folder)


def _history(state: dict) -> LossHistory:
    h = LossHistory()
    if state.get("history"):
        h.load_state_dict(state["history"])
    return h


def _checkpoint(run_dir: Path, name: str) -> dict:
    state, _ = Checkpointer(run_dir).load(map_location="cpu")
    if state is None or state.get("model") != name:
        raise WeightsError(f"{run_dir} holds no {name} checkpoint")
    return state


def _networks(key: str, run_dir: Path) -> tuple[dict, dict, dict]:
    """The inference networks' weights, the config and the run records of a trained run folder."""
    model = weights.model_of(key)
    if model == "cyclegan":
        gan, info = cyclegan.load_run(run_dir)
        state = Checkpointer(run_dir).load(map_location="cpu")[0]
        runs = {"": {"step": state["step"], "epoch": state.get("epoch", 0), "history": _history(state)}} if state else {}
        return {k: gan.networks[k].state_dict() for k in SHIPPED[key]}, {**gan.config, **info}, runs
    if model == "encoder":
        nets, runs = {}, {}
        for part, folder in (("seed", run_dir.with_name(run_dir.name + "-seed")), ("real", run_dir)):
            state = _checkpoint(folder, "encoder")
            nets[f"E_{part}"] = state["networks"]["E"]
            runs[part] = {"step": state["step"], "epoch": state.get("epoch", 0), "history": _history(state)}
        return nets, {**state["config"], "steps": int(state["step"])}, runs
    state = _checkpoint(run_dir, "cdcgan" if model.startswith("cdcgan") else model)
    nets = state["networks"]  # the age GAN's moving average of G, when the run kept one, ships as G
    runs = {"": {"step": state["step"], "epoch": state.get("epoch", 0), "history": _history(state)}}
    return ({k: nets[f"{k}_ema"] if f"{k}_ema" in nets else nets[k] for k in SHIPPED[key]},
            {**state["config"], "steps": int(state["step"])}, runs)


def export(model: str, run_dir, out=None, note: dict | None = None, strength: float | None = None) -> Path:
    """Write ``model``'s trained networks from ``run_dir`` as float16 safetensors; returns the file's path.

    ``model`` is a file key (:data:`SHIPPED_NAMES`: ``cdcgan-wide-toy`` for the toy faces' wide-gap
    cDCGAN). ``strength`` (the age GAN only) records another share of the change for the file to
    be used with than the run's own (:func:`helpers.agegan.translate`).
    """
    if model not in SHIPPED:
        raise WeightsError(f"no shipped weights for {model!r}; these models ship weights: {', '.join(SHIPPED)}")
    if strength is not None and weights.model_of(model) != "agegan":
        raise ValueError(f"--strength applies to the age GAN only, not {model}")
    nets, cfg, runs = _networks(model, Path(run_dir))
    if strength is not None:
        cfg = {**cfg, "strength": agegan.check_strength(strength)}
    return weights.write(model, nets, cfg, note, runs, Path(out) if out else path_of(model))


def read(model: str, path=None) -> tuple[dict, dict, dict]:
    """``(tensors by network, config, note)`` of a shipped file; :class:`WeightsError` for any problem."""
    nets, cfg, note, _ = weights.read(model, Path(path) if path else path_of(model))
    return nets, cfg, note


def load(model: str, device="cpu", path=None):
    """The shipped ``model`` ready for inference: for "cyclegan" ``(CycleGAN, info)``, for "agegan" the generator."""
    nets, cfg, note = read(model, path)
    if weights.model_of(model) == "cyclegan":
        gan = cyclegan.CycleGAN(config.settings_from(config.CYCLEGAN, cfg), device=device)
        for k in SHIPPED[model]:
            gan.networks[k].load_state_dict(nets[k])
            gan.networks[k].eval()
        info = {"data": cfg.get("data", "utkface"), "young": cfg.get("young"), "old": cfg.get("old"),
                "steps": cfg.get("steps"), "file": f"shipped {path_of(model).name}"}
        return gan, info
    if weights.model_of(model) == "agegan":
        return agegan.generator_from(cfg, nets["G"], device)
    raise WeightsError(f"{model} is loaded through its notebook's PRETRAINED switch, not for photos "
                       f"(photos use {', '.join(PHOTO_MODELS)})")


def run(args) -> int:
    """The command line's work, once :func:`main` has checked the arguments."""
    try:
        if args.what == "export":
            path = export(args.model, args.run_dir, args.out, strength=args.strength)
            print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
        else:
            nets, cfg, _, runs = weights.read(args.model, path_of(args.model))
            n = sum(t.numel() for sd in nets.values() for t in sd.values())
            print(f"{path_of(args.model)}: {', '.join(nets)}; {n:,} numbers; trained on {cfg.get('data')} "
                  f"for {cfg.get('steps')} steps at {cfg.get('image_size')} px"
                  + (f", used at strength {cfg['strength']:g}" if "strength" in cfg else "")
                  + (f"; loss history of {', '.join(p or 'the run' for p in runs)}" if runs else ""))
    except (WeightsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0
