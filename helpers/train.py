"""Headless training: the notebooks' trainings from the command line, for long runs on a GPU server.

    python -m helpers.train MODEL [--data auto|toy|utkface|facial-age|imdb-wiki] [--data-path P]
                                  [--epochs E] [--steps S] [--batch-size B] [--run-dir DIR]
                                  [--device cuda|mps|cpu] [--max-images N] [--smoke] [--fresh]
                                  [--set KEY=VALUE ...] [--threads T] [--save-grid PATH [--grid-colors N]]

MODEL is a row of :data:`helpers.catalog.MODELS`. A run folder holds the checkpoints, the
progress frames (``samples/``) and their GIF, the loss curves, the model's result figures and
numbers. Running the same command again resumes from the latest checkpoint (``--fresh``
deletes the folder first). The notebook and this command build the same run with the same
code, so either can resume the other's.

Exit codes: 0 done; 2 a usage error (an unknown model or setting); 3 the run folder holds an
incompatible checkpoint, or a loss became NaN; 4 the GPU ran out of memory (the last checkpoint is
kept, and the message names the ``--set batch_size=`` to resume with). Each message says what to do.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import config

EXIT_USAGE, EXIT_REFUSED, EXIT_MEMORY = 2, 3, 4

#: The models' command-line names, titles and notebooks, so that --help needs no torch.
#: tests/test_cli.py checks them against :data:`helpers.catalog.MODELS`, the table that trains them.
MODEL_TITLES = {
    "dcgan": ("DCGAN on faces", "02"),
    "cyclegan": ("CycleGAN young <-> old", "03"),
    "cdcgan": ("conditional DCGAN, the seed's age groups 20-30 / 40-50", "04"),
    "cdcgan-wide": ("conditional DCGAN, the wider age gap of CDCGAN.wide_groups", "04"),
    "encoder": ("encoder + conditional DCGAN", "05"),
    "agegan": ("age-modulated GAN, one face to any age group", "06"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n\n")[0],
                                epilog="exit codes: 0 done; 2 usage error (unknown model or setting); "
                                       "3 incompatible checkpoint in the run folder, or a NaN loss; 4 out of GPU "
                                       "memory (the last checkpoint is kept)",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=list(MODEL_TITLES),
                   help="; ".join(f"{k}: {title} (notebook {nb})" for k, (title, nb) in MODEL_TITLES.items()))
    p.add_argument("--data", default=None,
                   help="face source: auto (UTKFace when at hand, else toy), toy (offline), utkface, facial-age, "
                        f"imdb-wiki (default: FACEAGING_SOURCE or auto; now {config.DATA_SOURCE})")
    p.add_argument("--data-path", default=None, help="a folder or archive of the source you already have")
    p.add_argument("--max-images", type=int, default=None, help="use a random subset of this many faces")
    p.add_argument("--epochs", type=int, default=None, help="train until this many epochs in total (default: config)")
    p.add_argument("--steps", type=int, default=None, help="train until this many steps in total instead")
    p.add_argument("--batch-size", type=int, default=None, help="default: config")
    p.add_argument("--run-dir", default=None, help="checkpoints and samples (default: RUNS_DIR/<run name>[-<source>])")
    p.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: the best available)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, as SMOKE=1 (for a quick check)")
    p.add_argument("--fresh", action="store_true", help="delete the run folder first instead of resuming")
    p.add_argument("--save-grid", default=None, help="also copy the final result grid to this path")
    p.add_argument("--grid-colors", type=int, default=0, metavar="N",
                   help="save that copy as an N-colour palette PNG (2-256; a third of the size, for the README's "
                        "imgs/); default 0: an exact copy")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one of the model's settings in helpers/config.py, e.g. --set ngf=32 (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    return p


def save_grid_copy(grid, dest, colors: int = 0) -> Path:
    """Copy the result grid ``grid`` to ``dest``: exactly, or with ``colors`` > 0 as a palette PNG of that many colours.

    The palette (median cut, no dithering) keeps the picture and shrinks a grid of noisy GAN faces to about a
    third of its size. Raises ``ValueError`` for a number of colours outside 2-256.
    """
    if colors and not 2 <= colors <= 256:
        raise ValueError(f"--grid-colors takes 2 to 256 colours (or 0 for an exact copy), not {colors}")
    from PIL import Image

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not colors:
        shutil.copyfile(grid, dest)
    else:
        with Image.open(grid) as im:
            im.convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT,
                                       dither=Image.Dither.NONE).save(dest, format="PNG", optimize=True)
    return dest


def parse_value(text: str):
    """``--set`` values: Python literals (``32``, ``1e-4``, ``True``, ``(0, 20, 40)``), otherwise the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(overrides) -> dict:
    """``["ngf=32", "lr=1e-4"]`` -> ``{"ngf": 32, "lr": 1e-4}``; a malformed item raises ``ValueError``."""
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, not {item!r}")
        changes[key.strip().replace("-", "_")] = parse_value(value.strip())
    return changes


def _rerun_in_smoke_mode(argv) -> int:
    """``--smoke`` after helpers.config was read in full mode: run the same command again with SMOKE=1.

    A fresh process reads every size afresh; reloading modules in place would leave stale copies behind.
    """
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--smoke"]
    env = {**os.environ, "SMOKE": "1"}
    return subprocess.run([sys.executable, "-m", "helpers.train", *argv], env=env).returncode


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke and not config.SMOKE:
        return _rerun_in_smoke_mode(argv)
    from . import train as app  # the heavy part (torch, the models): this module itself when imported

    if args.threads:
        app.torch.set_num_threads(args.threads)
    try:
        app.train(app.catalog.get(args.model), args)
    except ValueError as e:  # a bad --set, --epochs for a step-counted model ...
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (app.CheckpointMismatch, app.NonFiniteLoss) as e:  # the message says what to do; no traceback needed
        print(f"\n{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except app.OutOfGPUMemory as e:  # one sentence: the setting, the checkpoint kept, the batch to try
        print(f"\n{e}", file=sys.stderr)
        return EXIT_MEMORY
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------- the heavy part
# ruff: noqa: E402 -- imported after the command line above, on purpose

import time
from dataclasses import fields, replace

import torch

from . import catalog, runs
from .training import CheckpointMismatch, NonFiniteLoss, OutOfGPUMemory, pick_device


def run_settings(spec: catalog.ModelSpec, args, device, source: str):
    """The settings this command trains with: the model's for the device and source, with every change applied.

    Changes flow one way, through ``dataclasses.replace``: ``--set``, then ``--batch-size``,
    then ``--epochs`` / ``--steps`` (which also move a decaying learning-rate schedule's end).
    Unknown keys raise ``ValueError`` with the valid ones listed.
    """
    s = spec.settings(device, source)
    changes = parse_overrides(args.overrides)
    valid = {f.name for f in fields(s)}
    unknown = sorted(set(changes) - valid)
    if unknown:
        raise ValueError(f"{spec.name} has no setting {', '.join(unknown)}; its settings are: {', '.join(sorted(valid))}")
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    return runs.with_length(replace(s, **changes), epochs=args.epochs, steps=args.steps), changes


def train(spec: catalog.ModelSpec, args) -> dict:
    """Set up (or resume) the run, train it, and write its outputs; returns what :meth:`Run.save_outputs` wrote."""
    if args.grid_colors and not 2 <= args.grid_colors <= 256:  # said before training, not after it
        raise ValueError(f"--grid-colors takes 2 to 256 colours (or 0 for an exact copy), not {args.grid_colors}")
    device = pick_device(args.device)
    source = runs.resolve_source(args.data, args.data_path)
    s, changes = run_settings(spec, args, device, source)
    if changes:
        print("settings changed for this run: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))
    run_dir = Path(args.run_dir) if args.run_dir else runs.default_run_dir(spec.run_name(s), source)
    if args.fresh:
        for d in [run_dir, *(run_dir.with_name(run_dir.name + x) for x in spec.extra_dirs)]:
            shutil.rmtree(d, ignore_errors=True)
    print(config.summary())
    t0 = time.time()
    run = spec.setup(s, data=source, data_path=args.data_path, device=device, run_dir=run_dir,
                     max_images=args.max_images)
    print(f"{run.describe()}; data ready in {time.time() - t0:.0f}s")
    t1 = time.time()
    history = run.train(steps=args.steps) if args.steps is not None and not hasattr(s, "steps") else run.train()
    t_train = time.time() - t1
    out = run.save_outputs()
    if args.save_grid and out.get("grid"):
        save_grid_copy(out["grid"], args.save_grid, args.grid_colors)
    last = history.last()
    print(f"step {run.trainer.step}, epoch {run.trainer.epoch}: "
          + ", ".join(f"{k}={v:.3f}" for k, v in list(last.items())[:8]))
    if out.get("numbers"):
        print("numbers: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in out["numbers"].items()))
    print(f"trained for {t_train:.0f}s (total {time.time() - t0:.0f}s). Results in {run.run_dir}: "
          + ", ".join(f"{k}={Path(v).name}" for k, v in out.items() if isinstance(v, Path)))
    return out
