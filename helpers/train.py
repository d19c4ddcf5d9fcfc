"""Headless training: the notebooks' trainings from the command line, for long runs on a GPU server.

    python -m helpers.train dcgan [--data toy|utkface|facial-age|imdb-wiki] [--data-path P]
                                  [--epochs E] [--steps S] [--batch-size B] [--run-dir DIR]
                                  [--device cuda|mps|cpu] [--max-images N] [--smoke] [--fresh]
                                  [--set KEY=VALUE ...] [--threads T]

A run folder holds the checkpoints, the sample grids (``samples/``), a GIF of them, the loss
curves and the final samples. Running the same command again resumes from the latest
checkpoint (``--fresh`` deletes the folder first). The notebook and this command build the
same model with the same code (:func:`setup_dcgan`), so either can resume the other's run.

Each model registers itself in :data:`MODELS` with a function ``run(args)``; later notebooks
add theirs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable


def face_loader(source: str = "toy", path=None, size: int = 64, batch_size: int = 64, device="cpu",
                seed: int = 0, flip: bool = True, memory_format=None, max_images: int | None = None,
                verbose: bool = True):
    """The training faces of ``source`` as a :class:`helpers.cache.BatchLoader` on ``device``.

    Loads the face table, keeps the train side of the course's fixed train/test split, decodes it
    once into the uint8 cache at ``size`` px, and puts that on the device. Returns
    ``(loader, cache)``.
    """
    import torch

    from . import config
    from .cache import BatchLoader, build_cache
    from .sources import load_faces
    from .splits import train_test_split

    faces = load_faces(source, path=path, verbose=verbose, max_images=max_images)
    train_df, _ = train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
    cache = build_cache(train_df, size, verbose=verbose)
    loader = BatchLoader(cache, batch_size, device=device, flip=flip, seed=seed,
                         memory_format=memory_format or torch.contiguous_format)
    return loader, cache


def prepare_run_dir(args, default: Path) -> Path:
    """The run folder of a ``python -m helpers.train`` command: ``--run-dir`` or ``default``, emptied first with
    ``--fresh``. Prints the course settings in use."""
    from . import config

    run_dir = Path(args.run_dir) if args.run_dir else Path(default)
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    print(config.summary())
    return run_dir


@dataclass
class DCGANRun:
    """Everything :func:`setup_dcgan` builds."""

    settings: object
    device: object
    gan: object
    loader: object
    cache: object
    trainer: object
    snapshots: object

    def train(self, epochs: int | None = None, steps: int | None = None):
        """Train to ``epochs`` (default: the settings' epochs) or ``steps`` in total; returns the history."""
        if epochs is None and steps is None:
            epochs = self.settings.epochs
        return self.trainer.fit(epochs=epochs, steps=steps)


def setup_dcgan(settings=None, data: str = "toy", data_path=None, device=None, run_dir=None,
                max_images: int | None = None, resume: bool = True, progress: bool = True,
                verbose: bool = True) -> DCGANRun:
    """Data, model, trainer and sample snapshots for a DCGAN run, resumed from ``run_dir`` if it has one."""
    from . import config
    from .dcgan import DCGAN
    from .training import Precision, Snapshots, Trainer, pick_device, seed_everything

    s = settings or config.DCGAN
    device = pick_device(device)
    seed_everything(s.seed)
    precision = Precision(device)
    loader, cache = face_loader(data, data_path, s.image_size, s.batch_size, device, seed=s.seed,
                                memory_format=precision.memory_format, max_images=max_images, verbose=verbose)
    gan = DCGAN.from_settings(s, device=device, precision=precision)
    run_dir = Path(run_dir) if run_dir is not None else config.RUNS_DIR / s.run_name
    trainer = Trainer(gan, loader, run_dir, config={"data": data, "batch_size": loader.batch_size},
                      checkpoint_every=s.checkpoint_every, resume=resume, progress=progress)
    snapshots = Snapshots(gan.sample, run_dir / "samples", nrow=int(s.n_samples**0.5))
    trainer.every(s.sample_every, snapshots)
    if trainer.step == 0:
        snapshots(trainer)  # the untrained generator: the animation's first frame
    return DCGANRun(s, device, gan, loader, cache, trainer, snapshots)


def _run_dcgan(args) -> None:
    from . import config
    from .plots import make_grid, plot_losses, save_gif, save_image

    s = config.DCGAN
    changes = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None}
    s = replace(s, **changes)
    run_dir = prepare_run_dir(args, config.RUNS_DIR / s.run_name)
    t0 = time.time()
    run = setup_dcgan(s, data=args.data, data_path=args.data_path, device=args.device, run_dir=run_dir,
                      max_images=args.max_images)
    t_data = time.time() - t0
    print(f"{len(run.cache):,} training faces at {s.image_size}px, {len(run.loader)} batches of "
          f"{run.loader.batch_size} per epoch, on {run.device} ({run.gan.precision}); data ready in {t_data:.0f}s")
    t1 = time.time()
    history = run.train(epochs=s.epochs if args.steps is None else None, steps=args.steps)
    t_train = time.time() - t1
    trainer = run.trainer
    if not run.snapshots.paths() or not run.snapshots.paths()[-1].name.endswith(f"{trainer.step:08d}.png"):
        run.snapshots(trainer)
    final = save_image(make_grid(run.gan.sample(), nrow=int(s.n_samples**0.5)), run_dir / "final_samples.png")
    frames, _ = run.snapshots.frames(up_to=trainer.step)
    gif = save_gif(frames, run_dir / "progress.gif")
    if len(history):
        fig = plot_losses(history, groups={"losses": ["loss_D", "loss_G"], "D outputs": ["D_x", "D_G_z"]})
        fig.savefig(run_dir / "losses.png", dpi=100)
    if args.save_grid:
        shutil.copyfile(final, args.save_grid)
    last = history.last()
    print(f"step {trainer.step}, epoch {trainer.epoch}: " + ", ".join(f"{k}={v:.3f}" for k, v in last.items()))
    print(f"trained for {t_train:.0f}s (total {time.time() - t0:.0f}s). Samples: {final}; animation: {gif}")


def _run_agegan(args) -> None:
    """``python -m helpers.train agegan``: train (or resume) the age-modulated GAN of notebook 06."""
    from . import config
    from .agegan import LOSS_GROUPS, evaluate_toy, setup_agegan, show_age_grid
    from .plots import make_grid, plot_losses, save_gif, save_image

    s = config.AGEGAN
    if args.batch_size is not None:
        s = replace(s, batch_size=args.batch_size)
    run_dir = prepare_run_dir(args, config.RUNS_DIR / s.run_name)
    t0 = time.time()
    run = setup_agegan(s, data=args.data, data_path=args.data_path, device=args.device, run_dir=run_dir,
                       image_size=getattr(args, "image_size", None), max_images=args.max_images)
    print(f"{len(run.cache):,} training faces at {run.image_size}px in {len(run.groups)} age groups "
          f"({', '.join(run.group_names)}), {len(run.loader)} batches of {run.loader.batch_size} per epoch, "
          f"on {run.device} ({run.gan.precision}); data ready in {time.time() - t0:.0f}s")
    t1 = time.time()
    epochs = args.epochs if args.epochs is not None else (s.epochs if args.steps is None else None)
    history = run.train(epochs=epochs, steps=args.steps)
    t_train = time.time() - t1
    trainer = run.trainer
    if not run.snapshots.paths() or not run.snapshots.paths()[-1].name.endswith(f"{trainer.step:08d}.png"):
        run.snapshots(trainer)
    grid = run.grid()
    final = save_image(make_grid(grid.flatten(0, 1), nrow=grid.shape[1]), run_dir / "final_samples.png")
    truth = None
    if run.data == "toy":
        from .agegan import toy_ground_truth

        truth = toy_ground_truth(run.test_table.iloc[run.show], s.group_edges, run.image_size)
    fig = show_age_grid(grid, run.group_names, truth=truth, title=f"{trainer.step} steps")
    fig.savefig(run_dir / "age_grid.png", dpi=100)
    frames, _ = run.snapshots.frames(up_to=trainer.step)
    gif = save_gif(frames, run_dir / "progress.gif")
    if len(history):
        plot_losses(history, groups=LOSS_GROUPS).savefig(run_dir / "losses.png", dpi=100)
    if args.save_grid:
        shutil.copyfile(run_dir / "age_grid.png", args.save_grid)
    last = history.last()
    print(f"step {trainer.step}, epoch {trainer.epoch}: " + ", ".join(f"{k}={v:.3f}" for k, v in last.items()))
    if run.data == "toy":
        evaluate_toy(run)
    print(f"trained for {t_train:.0f}s (total {time.time() - t0:.0f}s). Age grid: {run_dir / 'age_grid.png'}; "
          f"samples: {final}; animation: {gif}")


@dataclass(frozen=True)
class ModelEntry:
    run: Callable  # run(args): train (or resume) and write the run folder's results
    help: str


#: The models ``python -m helpers.train`` knows. Later notebooks add theirs.
MODELS: dict[str, ModelEntry] = {
    "dcgan": ModelEntry(_run_dcgan, "DCGAN on faces (notebook 02)"),
    "cyclegan": ModelEntry(lambda args: __import__("helpers.cyclegan", fromlist=["run_cli"]).run_cli(args),
                           "CycleGAN young <-> old (notebook 03)"),
    "agegan": ModelEntry(_run_agegan, "age-modulated GAN, one face to any age group (notebook 06)"),
    "cdcgan": ModelEntry(lambda args: __import__("helpers.cdcgan", fromlist=["run_cli"]).run_cli(args),
                         "conditional DCGAN, the seed's age groups 20-30 / 40-50 (notebook 04)"),
    "cdcgan-wide": ModelEntry(lambda args: __import__("helpers.cdcgan", fromlist=["run_cli"]).run_cli(args, wide=True),
                              "conditional DCGAN, the wider age gap of config.CDCGAN.wide_groups (notebook 04)"),
    "encoder": ModelEntry(lambda args: __import__("helpers.encoder", fromlist=["run_cli"]).run_cli(args),
                          "encoder that inverts the conditional DCGAN to age real faces (notebook 05)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=sorted(MODELS), help="; ".join(f"{k}: {v.help}" for k, v in MODELS.items()))
    p.add_argument("--data", default="toy", help="face source: toy (default, offline), utkface, facial-age, imdb-wiki")
    p.add_argument("--data-path", default=None, help="a folder or archive of the source you already have")
    p.add_argument("--max-images", type=int, default=None, help="use a random subset of this many faces")
    p.add_argument("--epochs", type=int, default=None, help="train until this many epochs in total (default: config)")
    p.add_argument("--steps", type=int, default=None, help="train until this many steps in total instead")
    p.add_argument("--batch-size", type=int, default=None, help="default: config")
    p.add_argument("--run-dir", default=None, help="checkpoints and samples (default: RUNS_DIR/<run name>)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: the best available)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, as SMOKE=1 (for a quick check)")
    p.add_argument("--fresh", action="store_true", help="delete the run folder first instead of resuming")
    p.add_argument("--save-grid", default=None, help="also copy the final sample grid to this path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one of the model's settings in helpers/config.py, e.g. --set ngf=32 (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    return p


#: Which settings in helpers/config.py each model reads (``--set`` changes them for this run).
SETTINGS = {"dcgan": ("DCGAN",), "cyclegan": ("CYCLEGAN", "CYCLEGAN_CPU"), "agegan": ("AGEGAN",),
            "cdcgan": ("CDCGAN",), "cdcgan-wide": ("CDCGAN",), "encoder": ("ENCODER",)}


def parse_value(text: str):
    """``--set`` values: Python literals (``32``, ``1e-4``, ``True``, ``(0, 20, 40)``), otherwise the text itself."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(model: str, overrides) -> dict:
    """Replace fields of ``model``'s settings in :mod:`helpers.config` for this process; returns the changes.

    Unknown keys and malformed items raise ``ValueError`` with the valid keys listed.
    """
    from dataclasses import fields

    from . import config

    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set takes KEY=VALUE, not {item!r}")
        changes[key.strip().replace("-", "_")] = parse_value(value.strip())
    for name in SETTINGS.get(model, ()):
        current = getattr(config, name)
        valid = {f.name for f in fields(current)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(f"{model} has no setting {', '.join(unknown)}; its settings are: {', '.join(sorted(valid))}")
        setattr(config, name, replace(current, **changes))
    return changes


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke and os.environ.get("SMOKE") != "1":
        os.environ["SMOKE"] = "1"
        if "helpers.config" in sys.modules:  # imported before --smoke was seen: read the sizes again
            import importlib

            importlib.reload(sys.modules["helpers.config"])
    from .training import CheckpointMismatch, NonFiniteLoss

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        changes = apply_overrides(args.model, args.overrides)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if changes:
        print("settings changed for this run: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))
    try:
        MODELS[args.model].run(args)
    except (CheckpointMismatch, NonFiniteLoss) as e:  # the message says what to do; no traceback needed
        print(f"\n{type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
