"""Shipped weights: trained generators in ``weights/``, so a student can age a photo before training anything.

Each file is ``weights/<model>.safetensors``: the inference networks in float16 (half the size
of float32, and safe to load: safetensors holds only tensors, never code) with a small JSON
header in the file's metadata: the model's name, its settings (``config``) and where it came
from (data, steps, command). ``weights/README.md`` is the model card.

- :func:`export` writes one from a run folder (``python -m helpers.pretrained export cyclegan RUN_DIR``);
- :func:`load` reads one back as the same objects a run folder's loader gives
  (:data:`helpers.catalog.MODELS`), refusing a file that is corrupt or belongs to another model
  with :class:`WeightsError`, whose message says what to do.
"""

from __future__ import annotations

import argparse
import sys

from . import cli

#: The models that ship weights (the keys of :data:`SHIPPED`).
SHIPPED_NAMES = ("cyclegan", "agegan")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.pretrained", description="Export or check shipped weights.",
                                epilog="exit codes: 0 done; 2 usage error; 3 the weights cannot be written or read")
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("export", help="write weights/<model>.safetensors from a trained run folder")
    e.add_argument("model", choices=list(SHIPPED_NAMES))
    e.add_argument("run_dir")
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
import json
from pathlib import Path

import torch

from . import agegan, catalog, config, cyclegan
from .training import Checkpointer

#: Where the shipped weights live.
WEIGHTS_DIR: Path = config.ROOT / "weights"
#: The models that ship weights, and the networks each file holds.
SHIPPED = {"cyclegan": ("G_AB", "G_BA"), "agegan": ("G",)}


class WeightsError(RuntimeError):
    """A shipped weight file is missing, unreadable, or another model's; the message says what to do."""


def path_of(model: str, folder=None) -> Path:
    return Path(folder or WEIGHTS_DIR) / f"{model}.safetensors"


def _networks(model: str, run_dir: Path) -> tuple[dict, dict]:
    """The inference networks' weights and the config of a trained run folder."""
    if model == "cyclegan":
        gan, info = cyclegan.load_run(run_dir)
        return {k: gan.networks[k].state_dict() for k in SHIPPED[model]}, {**gan.config, **info}
    state, _ = Checkpointer(run_dir).load(map_location="cpu")
    if state is None or state.get("model") != model:
        raise WeightsError(f"{run_dir} holds no {model} checkpoint")
    nets = state["networks"]  # the age GAN's moving average of G, when the run kept one, ships as G
    return ({k: nets[f"{k}_ema"] if f"{k}_ema" in nets else nets[k] for k in SHIPPED[model]},
            {**state["config"], "steps": int(state["step"])})


def export(model: str, run_dir, out=None, note: dict | None = None, strength: float | None = None) -> Path:
    """Write ``model``'s trained networks from ``run_dir`` as float16 safetensors; returns the file's path.

    ``strength`` (the age GAN only) records another share of the change for the file to be used
    with than the run's own (:func:`helpers.agegan.translate`).
    """
    from safetensors.torch import save_file  # noqa: PLC0415 -- optional at import time; a dependency of the course

    if model not in SHIPPED:
        raise WeightsError(f"no shipped weights for {model!r}; these models ship weights: {', '.join(SHIPPED)}")
    if strength is not None and model != "agegan":
        raise ValueError(f"--strength applies to the age GAN only, not {model}")
    nets, cfg = _networks(model, Path(run_dir))
    if strength is not None:
        cfg = {**cfg, "strength": agegan.check_strength(strength)}
    tensors = {f"{net}.{k}": v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous().cpu()
               for net, sd in nets.items() for k, v in sd.items()}
    meta = {"model": model, "config": json.dumps(cfg, default=str), "note": json.dumps(note or {})}
    path = Path(out) if out else path_of(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read(model: str, path=None) -> tuple[dict, dict, dict]:
    """``(tensors by network, config, note)`` of a shipped file; :class:`WeightsError` for any problem."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    path = Path(path) if path else path_of(model)
    if not path.is_file():
        raise WeightsError(f"no shipped weights at {path}: get the course's weights/ folder again (git checkout "
                           f"weights/), or train the model yourself ({catalog.get(model).command})")
    try:
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path} is not a readable safetensors file ({err}): it may be cut short or damaged; "
                           "restore it with `git checkout weights/` or delete it and train the model") from None
    if meta.get("model") != model:
        raise WeightsError(f"{path} holds weights of model {meta.get('model')!r}, not {model!r}: "
                           f"use weights/{model}.safetensors")
    nets: dict = {}
    for key, t in tensors.items():
        net, _, name = key.partition(".")
        nets.setdefault(net, {})[name] = t.float()
    missing = [n for n in SHIPPED[model] if n not in nets]
    if missing:
        raise WeightsError(f"{path} lacks the network(s) {', '.join(missing)}: restore it with `git checkout weights/`")
    return nets, json.loads(meta.get("config", "{}")), json.loads(meta.get("note", "{}"))


def load(model: str, device="cpu", path=None):
    """The shipped ``model`` ready for inference: for "cyclegan" ``(CycleGAN, info)``, for "agegan" the generator."""
    nets, cfg, note = read(model, path)
    if model == "cyclegan":
        gan = cyclegan.CycleGAN(config.settings_from(config.CYCLEGAN, cfg), device=device)
        for k in SHIPPED[model]:
            gan.networks[k].load_state_dict(nets[k])
            gan.networks[k].eval()
        info = {"data": cfg.get("data", "utkface"), "young": cfg.get("young"), "old": cfg.get("old"),
                "steps": cfg.get("steps"), "file": f"shipped {path_of(model).name}"}
        return gan, info
    return agegan.generator_from(cfg, nets["G"], device)


def run(args) -> int:
    """The command line's work, once :func:`main` has checked the arguments."""
    try:
        if args.what == "export":
            path = export(args.model, args.run_dir, args.out, strength=args.strength)
            print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
        else:
            nets, cfg, _ = read(args.model)
            n = sum(t.numel() for sd in nets.values() for t in sd.values())
            print(f"{path_of(args.model)}: {', '.join(nets)}; {n:,} numbers; trained on {cfg.get('data')} "
                  f"for {cfg.get('steps')} steps at {cfg.get('image_size')} px"
                  + (f", used at strength {cfg['strength']:g}" if "strength" in cfg else ""))
    except (WeightsError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0
