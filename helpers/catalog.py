"""The course's models, one row each: the single table that the command lines and notebook 08 read.

A row names a model (as ``python -m helpers.train NAME`` spells it), its title, the notebook
that teaches it, how to choose its settings for a device and a face source, how to set up a
run, which checkpoints and run folders are its own, and how to load a trained one for
inference. Adding a model to the course means one family module and one row here.

Only this module and the apps above it (:mod:`helpers.train`, :mod:`helpers.evaluate`,
:mod:`helpers.age_photo`, :mod:`helpers.benchmark`) import the family modules by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable


from . import agegan, cdcgan, config, cyclegan, dcgan, encoder, weights
from .sources import SOURCES
from .training import Checkpointer


@dataclass(frozen=True)
class ModelSpec:
    """One model of the course (see the module docstring)."""

    name: str  # the command-line name
    title: str
    notebook: str  # the notebook that trains it
    settings: Callable  # settings(device, source) -> the settings dataclass for that machine and those faces
    setup: Callable  # setup(settings, data=, data_path=, device=, run_dir=, max_images=) -> a run
    checkpoint: str  # the model name its checkpoints record
    run_names: Callable[[], list[str]]  # its run folders' names under RUNS_DIR (toy faces), preferred first
    loader: Callable | None = None  # loader(run_dir, device): the trained model, for inference
    weights: str = "ckpt"  # "ckpt": a checkpoint marks a trained run; else a file name that must exist too
    extra_dirs: tuple = ()  # suffixes of sibling run folders a fresh start empties too

    @property
    def command(self) -> str:
        return f"python -m helpers.train {self.name}"

    def run_name(self, settings) -> str:
        """The run folder's name for these settings (the toy faces'; real faces add ``-<source>``)."""
        if self.name.startswith("cdcgan"):
            return cdcgan.run_name_for(settings, settings.wide_groups if self.name == "cdcgan-wide" else settings.groups)
        return settings.run_name

    def candidate_dirs(self, runs_dir=None) -> list[Path]:
        """Every folder a run of this model may live in: each run name, for real faces first, then toy."""
        runs_dir = Path(runs_dir) if runs_dir is not None else config.RUNS_DIR
        real = [s for s in SOURCES if s != "toy"]
        out = []
        for name in self.run_names():
            out += [runs_dir / f"{name}-{src}" for src in real] + [runs_dir / name]
        return list(dict.fromkeys(out))

    def is_trained(self, run_dir: Path) -> bool:
        run_dir = Path(run_dir)
        if self.weights == "ckpt":
            return Checkpointer(run_dir).latest() is not None
        if self.weights == "generators.pt":  # CycleGAN: the exported generators alone are enough
            return (run_dir / self.weights).is_file() or Checkpointer(run_dir).latest() is not None
        return (run_dir / self.weights).is_file() and Checkpointer(run_dir).latest() is not None

    def find_run(self, runs_dir=None) -> Path | None:
        """The first of :meth:`candidate_dirs` that holds a trained model, or None."""
        return next((d for d in self.candidate_dirs(runs_dir) if d.is_dir() and self.is_trained(d)), None)


def _names(*settings_names: str) -> Callable[[], list[str]]:
    """The run names of these settings, then those of their pretrained runs (a notebook's PRETRAINED switch)."""
    def names() -> list[str]:
        trained = [getattr(config, n).run_name for n in settings_names]
        return list(dict.fromkeys(trained + [n + weights.RUN_SUFFIX for n in trained]))

    return names


def _cdcgan_names(wide: bool, *settings_names: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        out = []
        for suffix in ("", weights.RUN_SUFFIX):
            for n in settings_names:
                c = getattr(config, n)
                c = replace(c, run_name=c.run_name + suffix)
                out.append(cdcgan.run_name_for(c, c.wide_groups if wide else c.groups))
        return list(dict.fromkeys(out))

    return names


def _setup_cdcgan(wide: bool) -> Callable:
    def setup(settings, **kw):
        return cdcgan.setup_cdcgan(settings, settings.wide_groups if wide else settings.groups, **kw)

    return setup


#: The models, by command-line name.
MODELS: dict[str, ModelSpec] = {m.name: m for m in [
    ModelSpec("dcgan", "DCGAN on faces", "02_gan_basics.ipynb", dcgan.default_settings,
              dcgan.setup_dcgan, "dcgan", _names("DCGAN_REAL_CPU", "DCGAN_REAL", "DCGAN")),
    ModelSpec("cyclegan", "CycleGAN young <-> old", "03_cyclegan.ipynb", cyclegan.default_settings,
              cyclegan.setup_cyclegan, "cyclegan", _names("CYCLEGAN_REAL_CPU", "CYCLEGAN_REAL", "CYCLEGAN", "CYCLEGAN_CPU"), cyclegan.load_run,
              weights="generators.pt"),
    ModelSpec("cdcgan", "conditional DCGAN, the seed's age groups 20-30 / 40-50", "04_conditional_dcgan.ipynb",
              cdcgan.default_settings, _setup_cdcgan(False), "cdcgan",
              _cdcgan_names(False, "CDCGAN_REAL_CPU", "CDCGAN_REAL", "CDCGAN"), cdcgan.load_generator),
    ModelSpec("cdcgan-wide", "conditional DCGAN, the wider age gap of CDCGAN.wide_groups", "04_conditional_dcgan.ipynb",
              cdcgan.default_settings, _setup_cdcgan(True), "cdcgan",
              _cdcgan_names(True, "CDCGAN_REAL_CPU", "CDCGAN_REAL", "CDCGAN"), cdcgan.load_generator),
    ModelSpec("encoder", "encoder + conditional DCGAN", "05_encoder.ipynb",
              encoder.default_settings, encoder.setup_inversion, "encoder",
              _names("ENCODER_REAL_CPU", "ENCODER_REAL", "ENCODER"),
              encoder.load_inversion, weights="generator.pt", extra_dirs=("-seed",)),
    ModelSpec("agegan", "age-modulated GAN, one face to any age group", "06_age_modulated_gan.ipynb",
              agegan.default_settings, agegan.setup_agegan, "agegan", _names("AGEGAN_REAL_CPU", "AGEGAN_REAL", "AGEGAN_CPU", "AGEGAN"),
              agegan.load_generator),
]}


def get(name: str) -> ModelSpec:
    """The row of model ``name``; an unknown name raises ``KeyError`` listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"there is no model {name!r}; the course's models are: {', '.join(MODELS)}") from None
