"""Age your own photo: find the face, crop it, and run it through every model you have trained.

This is the course's FaceApp (seed 002's goal: "put in a selfie and see yourself older or
younger"). The steps:

1. :func:`helpers.faces.find_face` loads the photo, finds the face with a Haar cascade and
   crops it with UTKFace's framing (200x200);
2. each trained model in :data:`AGERS` that has weights in its run folder is loaded
   (:func:`load_ager`) and ages the crop to each of its targets (:meth:`Ager.age`);
3. the results are shown side by side (:func:`show_aged`), on an age slider
   (:func:`age_slider`) and as an animated GIF that runs through the ages (:meth:`Ager.series`).

The models and what they give:

- ``cyclegan`` (notebook 03): two generators, young -> old and old -> young; two targets.
- ``agegan`` (notebook 06): one generator for every age group; a target per group, and because
  its condition may be a *mix* of two groups, a smooth walk through the ages for the animation.
- ``cdcgan`` (notebooks 04 and 05, the encoder + conditional DCGAN): the encoder maps the face to
  the generator's noise, which is refined, then drawn with each age label.

The same thing headless::

    python -m helpers.age_photo PHOTO|--example [--model all|cyclegan|agegan] [--out DIR]
                                [--choose N] [--run-dir DIR] [--device cpu] [--smoke]

writes the crop, the photo with its faces numbered, each model's side-by-side strip, one picture
per target and a GIF. Every problem a student can cause (no face, several faces, a face too
small, a file that is not an image, a model not trained yet) ends with a message, not a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from . import cli, config, faces

# --------------------------------------------------------------------------- command line
#
# The command line comes first, before the heavy imports below: ``--help`` and every usage error
# (a bad --out, an unknown model) answer at once, and torch is imported only once the arguments
# are good and the photo has a face (see helpers.cli).

#: The models that can age a photo (``--model``): the keys of :data:`AGERS`.
MODEL_NAMES = ("cyclegan", "agegan", "cdcgan")
EXIT_PHOTO, EXIT_USAGE, EXIT_NO_MODEL = 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.age_photo",
                                description="Age the face in a photo with every trained model of the course.",
                                epilog="exit codes: 0 done; 1 the photo cannot be used (no face, not an image ...); "
                                       "2 usage error (an unusable --out, an unknown model ...); "
                                       "3 no trained model could age it. A failed run writes nothing.")
    p.add_argument("photo", nargs="?", help="the photo (JPEG, PNG ...); leave out with --example")
    p.add_argument("--example", action="store_true", help="use the example photo that ships with scikit-image")
    p.add_argument("--model", default="all", help=f"all, or one or more of {', '.join(MODEL_NAMES)} (comma-separated)")
    p.add_argument("--out", default="outputs/age_photo",
                   help="folder for the results, created if missing (default: outputs/age_photo)")
    p.add_argument("--choose", type=int, default=None, help="which face, when the photo has several (0 = largest)")
    p.add_argument("--run-dir", default=None, help="the run folder to load (with a single --model)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--frames-between", type=int, default=3, help="in-between ages in the animation (age GAN)")
    p.add_argument("--size", type=int, default=256, help="side of the aged faces in pixels (default 256)")
    p.add_argument("--strength", type=float, default=None,
                   help="age GAN: the share of its change put on the face, in (0, 2] (default: what its run or "
                        "shipped file says; 1 is the generator's own output, 1.5 ages more and keeps less of you)")
    p.add_argument("--no-align", action="store_true",
                   help="crop with the Haar box instead of aligning the face with dlib's landmarks")
    p.add_argument("--raw", action="store_true",
                   help="show the models' raw outputs instead of their change added to the full-resolution crop")
    p.add_argument("--smoke", action="store_true", help="use the smoke runs' small models (as SMOKE=1)")
    return p


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke and not config.SMOKE:  # a fresh process reads the smoke sizes; no module reload
        import subprocess  # noqa: PLC0415

        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--smoke"]
        return subprocess.run([sys.executable, "-m", "helpers.age_photo", *rest],
                              env={**os.environ, "SMOKE": "1"}).returncode
    if args.photo is None and not args.example:
        parser.error("give a photo (python -m helpers.age_photo me.jpg) or --example for the example photo")
    names = list(MODEL_NAMES) if args.model == "all" else [m.strip() for m in args.model.split(",") if m.strip()]
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from all, {', '.join(MODEL_NAMES)}")
    if args.run_dir and len(names) != 1:
        parser.error("--run-dir needs exactly one --model")
    if args.frames_between < 0:
        parser.error(f"--frames-between {args.frames_between}: give 0 or more in-between ages for the animation")
    if args.size < 16:
        parser.error(f"--size {args.size} is too small: give the side of the aged faces in pixels, e.g. 256")
    if args.strength is not None:
        try:
            cli.check_strength(args.strength)
        except ValueError as err:
            parser.error(str(err))
    if args.photo is not None and _inside_results(Path(args.photo), Path(args.out), names):
        return _usage(f"the photo {args.photo!r} is where the results go (--out {args.out!r}): it would be "
                      "overwritten, so give another --out folder.")
    problem = cli.usable_folder(args.out)
    if problem:
        return _usage(problem)
    try:
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", faces.PhotoNote)
            photo = faces.example_photo() if args.photo is None else faces.load_photo(args.photo)
            found = faces.find_face(photo, choose=args.choose, align=not args.no_align, verbose=False)
    except faces.PhotoError as err:
        print(f"Cannot use this photo: {err}", file=sys.stderr)
        return EXIT_PHOTO
    for note in notes:
        print(str(note.message))
    print(found.describe(found.full_side))  # the size face.png will have
    if faces.is_grayscale(found.photo):
        print("The photo is grayscale, so the aged faces will be too.")
    from . import age_photo as app  # the heavy part (torch, the models); this module itself when imported

    return app.run(args, names, found)


def _inside_results(photo: Path, out: Path, names) -> bool:
    """True when ``photo`` is one of the files a run writes into ``out`` (so a run would overwrite it)."""
    try:
        photo, out = photo.resolve(), out.resolve()
    except OSError:
        return False
    if photo.parent == out:
        return photo.name in {"face.png", "faces_found.png", "all_models.gif"} | {
            f"{n}{end}" for n in names for end in (".png", ".gif", "_in_photo.png")}
    return photo.parent.parent == out and photo.parent.name in names


if __name__ == "__main__":
    sys.exit(main())


# --------------------------------------------------------------------------- the heavy part
# ruff: noqa: E402 -- imported after the command line above, on purpose

import contextlib
import io
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from . import catalog, colab, pretrained
from .agegan import translate
from .cache import to_uint8
from .encoder import _as_float, best_source_label, decode, encode, refine_latents
from .faces import CROP_SIZE, PhotoError
from .plots import save_gif, save_image
from .splits import group_ranges
from .training import Checkpointer, pick_device

# --------------------------------------------------------------------------- errors


class NoTrainedModel(PhotoError):
    """A model has no weights yet; the message says which notebook (or command) trains it."""


# --------------------------------------------------------------------------- image helpers


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=interp))


def _to_tensor(face: np.ndarray, size: int):
    """A ``(H, W, 3)`` uint8 face -> a ``(1, 3, size, size)`` uint8 tensor at the model's resolution."""
    return torch.from_numpy(_resize(face, size)).permute(2, 0, 1)[None].contiguous()


def _from_tensor(x, size: int) -> list[np.ndarray]:
    """Model outputs ``(B, 3, s, s)`` in [-1, 1] -> uint8 ``(size, size, 3)`` pictures."""
    out = to_uint8(x).permute(0, 2, 3, 1).numpy()
    return [_resize(np.ascontiguousarray(o), size) for o in out]


def apply_change(face: np.ndarray, model_in, model_out, size: int) -> list[np.ndarray]:
    """The model's *change*, computed at its own resolution, added to the face at ``size`` px.

    A 64-pixel model's output, enlarged to 256 px, is a blurred face. Its change is not: the
    difference ``model_out - model_in`` (grey hair, lines, a rounder chin) is smooth, so it can
    be enlarged (bilinear) and added to the sharp photo crop, which keeps every pore and eyelash
    the model never saw. ``face``: the crop at any resolution (uint8 ``H x W x 3``);
    ``model_in``: ``(1, 3, s, s)`` uint8, what the model was given; ``model_out``: ``(K, 3, s, s)``
    in [-1, 1]. Returns K uint8 pictures of ``size x size``.
    """
    base = torch.from_numpy(_resize(face, size)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
    start = model_in.float().div(127.5).sub(1.0) if model_in.dtype == torch.uint8 else model_in.float()
    change = model_out.float() - start
    change = torch.nn.functional.interpolate(change, size=(size, size), mode="bilinear", align_corners=False)
    return _from_tensor((base + change).clamp(-1, 1), size)


def _colour_like(face: np.ndarray, images: list[np.ndarray]) -> list[np.ndarray]:
    """The aged pictures, in gray when the face is gray: a model trained on colour faces adds tints to a gray one."""
    return [faces.to_grayscale(im) for im in images] if faces.is_grayscale(face) else images


def _gif_ready(frames) -> list[np.ndarray]:
    """Frames reduced to 256 colours each with Pillow's fast octree quantizer.

    A GIF holds at most 256 colours per frame; left to itself, the GIF writer reduces every
    frame with the slower median-cut method, several times slower for the same look.
    """
    return [np.asarray(Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE).convert("RGB"))
            for f in frames]


def save_animation(frames, path, duration_ms: int = 250, bounce: bool = True) -> Path:
    """Write frames as a looping GIF (with :func:`helpers.plots.save_gif`); ``bounce`` plays them forth and back."""
    frames = list(frames)
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    return save_gif(_gif_ready(frames), path, duration_ms=duration_ms, final_pause_ms=duration_ms)


def caption(img: np.ndarray, text: str, height: int | None = None) -> np.ndarray:
    """The picture with ``text`` written in a white band under it."""
    h, w = img.shape[:2]
    height = height or max(18, w // 8)
    band = np.full((height, w, 3), 255, np.uint8)
    scale = height / 40
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    while tw > w - 4 and scale > 0.25:
        scale *= 0.9
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(band, text, ((w - tw) // 2, (height + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([img, band], axis=0)


def strip(images, labels=None, gap: int = 4) -> np.ndarray:
    """Pictures of one size side by side (with captions when ``labels`` are given), as one uint8 picture."""
    images = [caption(im, str(lb)) if labels is not None else im
              for im, lb in zip(images, labels if labels is not None else [None] * len(images))]
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        parts.append(im)
    return np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------- results


@dataclass
class AgedFaces:
    """One model's results for one face: the input crop, and the face at each target."""

    model: str  # the ager's name, e.g. "cyclegan"
    title: str  # e.g. "CycleGAN young <-> old"
    face: np.ndarray  # the input crop (uint8, CROP_SIZE x CROP_SIZE x 3)
    labels: list[str]  # one per target, youngest first
    images: list[np.ndarray]  # the face at each target (uint8, same size as the input)
    note: str = ""  # where the weights came from

    def strip(self, with_input: bool = True) -> np.ndarray:
        """The input and every target side by side, with captions."""
        ims = ([self.face] if with_input else []) + list(self.images)
        labels = (["your photo"] if with_input else []) + list(self.labels)
        return strip(ims, labels)


# --------------------------------------------------------------------------- agers


class Ager:
    """A trained model that ages a face crop. Subclasses set ``labels`` and implement :meth:`_targets`."""

    name = "ager"
    title = "an aging model"

    def __init__(self, run_dir: Path, image_size: int, steps: int | None, source: str):
        self.run_dir, self.image_size, self.steps, self.source = Path(run_dir), int(image_size), steps, source
        self.labels: list[str] = []
        self.trained_on = "unknown"  # the face source it learned from ("toy", "utkface" ...)

    @property
    def warning(self) -> str:
        """A plain warning when the model never saw a real face ("" otherwise)."""
        if self.trained_on != "toy":
            return ""
        return (f"{self.title} was trained on the course's toy (cartoon) faces, not on real ones: on a real photo "
                "expect colour blotches and cartoon hair rather than aging. Train it on UTKFace (notebook 01 says "
                "how to get it) or use the shipped real-face weights.")

    def __repr__(self) -> str:
        trained = f"{self.steps} steps, " if self.steps is not None else ""
        return (f"{type(self).__name__}({self.title}: {trained}{self.image_size}px, from {self.source}, "
                f"trained on {self.trained_on} faces)")

    #: True: add the model's change to the full-resolution crop (:func:`apply_change`); False: show its raw output
    keep_detail = True

    def age(self, face: np.ndarray, size: int = CROP_SIZE) -> AgedFaces:
        """The face (a ``(H, W, 3)`` uint8 crop, at any resolution) at every target, shown at ``size`` px."""
        face = faces.load_photo(face)
        x = _to_tensor(face, self.image_size)
        images = _colour_like(face, self._render(face, x, self._targets(x), size))
        return AgedFaces(self.name, self.title, _resize(face, size), list(self.labels), images, repr(self))

    def _render(self, face, x, out, size: int) -> list[np.ndarray]:
        return apply_change(face, x, out, size) if self.keep_detail else _from_tensor(out, size)

    def series(self, face: np.ndarray, frames_between: int = 3, size: int = CROP_SIZE) -> tuple[list[np.ndarray], list[str]]:
        """Frames that run through the ages, youngest first, with a label each (for a GIF or a slider)."""
        aged = self.age(face, size)
        return aged.images, aged.labels

    def _targets(self, x):  # (1, 3, S, S) uint8 -> (K, 3, S, S) in [-1, 1], one per label
        raise NotImplementedError


class CycleGANAger(Ager):
    """CycleGAN's two generators: ``G_BA`` makes the face younger, ``G_AB`` older."""

    name = "cyclegan"
    title = "CycleGAN young <-> old"

    def __init__(self, model, run_dir, steps, source, young: str | None = None, old: str | None = None):
        super().__init__(run_dir, model.config["image_size"], steps, source)
        self.model = model
        self.labels = [f"younger ({young})" if young else "younger", f"older ({old})" if old else "older"]

    def _targets(self, x):
        return torch.cat([self.model.translate(x, "B2A"), self.model.translate(x, "A2B")])

    def series(self, face, frames_between: int = 3, size: int = CROP_SIZE):
        """Younger, the photo itself, older: CycleGAN knows only two ages, so there is nothing in between."""
        aged = self.age(face, size)
        return [aged.images[0], aged.face, aged.images[1]], [aged.labels[0], "your photo", aged.labels[1]]


class AgeGANAger(Ager):
    """The age-modulated generator: one target per age group, and any mix of two neighbouring groups."""

    name = "agegan"
    title = "age-modulated GAN"

    def __init__(self, G, run_dir, steps, source):
        super().__init__(run_dir, G.config["image_size"], steps, source)
        self.G = G
        edges = getattr(G, "group_edges", None)
        if edges:
            self.labels = [str(g) for g in group_ranges(edges)]
        else:
            self.labels = [f"group {k}" for k in range(G.n_groups)]

    def __repr__(self) -> str:
        strength = getattr(self.G, "strength", 1.0)
        return super().__repr__()[:-1] + (f", strength {strength:g})" if strength != 1.0 else ")")

    def _targets(self, x):
        k = self.G.n_groups
        return translate(self.G, x.expand(k, -1, -1, -1), torch.arange(k))

    def series(self, face, frames_between: int = 3, size: int = CROP_SIZE):
        """Every group and ``frames_between`` mixes between neighbours (the condition is a soft one-hot)."""
        face = faces.load_photo(face)
        k = self.G.n_groups
        positions = np.linspace(0, k - 1, (k - 1) * (frames_between + 1) + 1)
        rows = torch.zeros(len(positions), k)
        for i, p in enumerate(positions):
            lo = int(np.floor(p))
            hi = min(lo + 1, k - 1)
            frac = float(p - lo)
            rows[i, lo] += 1 - frac
            rows[i, hi] += frac
        x = _to_tensor(face, self.image_size)
        images = _colour_like(face, self._render(face, x, translate(self.G, x.expand(len(positions), -1, -1, -1), rows),
                                                 size))
        labels = []
        for p in positions:
            lo = int(np.floor(p))
            frac = p - lo
            labels.append(self.labels[lo] if frac < 1e-6 else f"{self.labels[lo]} .. {self.labels[lo + 1]}")
        return images, labels


class EncoderAger(Ager):
    """The encoder + conditional DCGAN route (notebook 05): encode, refine, redraw with every label.

    A photo has no age label, so the face's own group is the one under which the generator
    redraws the encoder's guess best (:func:`helpers.encoder.best_source_label`); the noise is
    refined under that label and drawn with every label.
    """

    name = "cdcgan"
    title = "encoder + conditional DCGAN"

    def __init__(self, loaded, run_dir):
        G, E, state, path = loaded
        super().__init__(run_dir, G.image_size, int(state.get("step", 0)), path.name)
        self.G, self.E, self.labels = G, E, list(G.groups)

    def _targets(self, x):
        s = config.ENCODER
        x = _as_float(x)
        src = best_source_label(self.G, self.E, x)
        z, _ = refine_latents(self.G, x, [src], encode(self.E, x), s.refine_steps, s.refine_lr, s.lambda_prior)
        self._redrawn = decode(self.G, z, src)  # the face as the generator redraws it at its own age
        return torch.cat([decode(self.G, z, k) for k in range(self.G.n_classes)])

    def _render(self, face, x, out, size: int) -> list[np.ndarray]:
        # The generator redraws a somewhat different person; what the *label* changes is the difference
        # between its drawing at the target age and at the face's own age, and that goes onto the photo.
        if not self.keep_detail:
            return _from_tensor(out, size)
        return apply_change(face, self._redrawn, out, size)


# --------------------------------------------------------------------------- the models that age photos


def _shipped_ager(spec: "AgerSpec", device) -> Ager:
    """The ager built from ``weights/<model>.safetensors``; a damaged or foreign file ends as :class:`NoTrainedModel`."""
    path = pretrained.path_of(spec.model)
    try:
        loaded = pretrained.load(spec.model, device)
    except pretrained.WeightsError as err:
        raise NoTrainedModel(f"{err} (or train your own: {spec.spec.command})") from None
    if spec.model == "cyclegan":
        gan, info = loaded
        ager = CycleGANAger(gan, path.parent, info["steps"], info["file"], info["young"], info["old"])
    else:
        ager = AgeGANAger(loaded, path.parent, None, f"shipped {path.name}")
    ager.trained_on = "utkface"
    return ager


def _cyclegan_ager(run_dir: Path, device) -> Ager:
    model, info = catalog.get("cyclegan").loader(run_dir, device)
    ager = CycleGANAger(model, run_dir, info["steps"], info["file"], info["young"], info["old"])
    ager.trained_on = info["data"]
    return ager


def _agegan_ager(run_dir: Path, device) -> Ager:
    G = catalog.get("agegan").loader(run_dir, device)
    state, path = Checkpointer(run_dir).load(map_location="cpu")
    ager = AgeGANAger(G, run_dir, int(state.get("step", 0)), path.name)
    ager.trained_on = str(state["config"].get("data", "unknown"))
    return ager


def _encoder_ager(run_dir: Path, device) -> Ager:
    loaded = catalog.get("encoder").loader(run_dir, device)
    ager = EncoderAger(loaded, run_dir)
    ager.trained_on = str(loaded[2]["config"].get("data", "unknown"))
    return ager


@dataclass(frozen=True)
class AgerSpec:
    """A model that can age a photo: its ager name, the catalog row it comes from, and how to make its ager."""

    name: str  # the ager's name (``--model``)
    model: str  # its row in :data:`helpers.catalog.MODELS`
    make: Callable[[Path, object], Ager]  # make(run_dir, device)

    @property
    def spec(self) -> catalog.ModelSpec:
        return catalog.get(self.model)

    @property
    def title(self) -> str:
        return self.spec.title

    def run_dirs(self) -> list[Path]:
        return self.spec.candidate_dirs()

    def find_run(self) -> Path | None:
        return self.spec.find_run()

    def missing_message(self, looked_in=None) -> str:
        where = ", ".join(str(d) for d in (looked_in or self.run_dirs()))
        smoke = " (with SMOKE=1 for a tiny model in a minute)" if config.SMOKE else ""
        return (f"No trained {self.title} yet (looked in {where}). Train it in notebook {self.spec.notebook}, "
                f"or run `{self.spec.command}`{smoke}; then come back here.")


#: The models that can age a photo, by ager name.
AGERS: dict[str, AgerSpec] = {a.name: a for a in [
    AgerSpec("cyclegan", "cyclegan", _cyclegan_ager),
    AgerSpec("agegan", "agegan", _agegan_ager),
    AgerSpec("cdcgan", "encoder", _encoder_ager),
]}


def load_ager(name: str, run_dir=None, device=None) -> Ager:
    """The trained model ``name`` (see :data:`AGERS`), from ``run_dir``, its default run folder, or the shipped weights.

    Your own run comes first; without one, the real-face weights shipped in ``weights/``
    (:mod:`helpers.pretrained`) are used, and the ager's ``note`` says so. Raises
    :class:`NoTrainedModel`, whose message names the notebook and the command that train it.
    """
    if name not in AGERS:
        raise NoTrainedModel(f"There is no model {name!r}; choose from {', '.join(AGERS)}.")
    spec = AGERS[name]
    if run_dir is not None:
        run_dir = Path(run_dir).expanduser()
        if not (run_dir.is_dir() and spec.spec.is_trained(run_dir)):
            raise NoTrainedModel(spec.missing_message([run_dir]))
    else:
        run_dir = spec.find_run()
        if run_dir is None and spec.model in pretrained.PHOTO_MODELS and pretrained.path_of(spec.model).is_file():
            return _shipped_ager(spec, pick_device(device))
        if run_dir is None:
            raise NoTrainedModel(spec.missing_message())
    try:
        return spec.make(run_dir, pick_device(device))
    except FileNotFoundError:
        raise NoTrainedModel(spec.missing_message([run_dir])) from None
    except ValueError as err:  # the folder holds another model's checkpoint
        raise NoTrainedModel(f"{err}; give the {spec.title}'s run folder") from None


def available_agers(names=None, device=None, verbose: bool = True) -> dict[str, Ager]:
    """Every model in ``names`` (default: all of :data:`AGERS`) that has been trained, loaded.

    With ``verbose``, says for each model whether it was found, and for a missing one which
    notebook trains it.
    """
    out = {}
    for name in names or list(AGERS):
        try:
            out[name] = load_ager(name, device=device)
            if verbose:
                print(f"[ok]   {name}: {out[name]!r}")
                if out[name].warning:
                    print(f"       WARNING: {out[name].warning}")
        except NoTrainedModel as err:
            if verbose:
                print(f"[--]   {name}: {err}")
    return out


# --------------------------------------------------------------------------- the whole thing


def get_face(photo=None, choose: int | None = None, fallback: bool = True, verbose: bool = True, align: bool = True):
    """:func:`helpers.faces.find_face` that never ends in a traceback (``align``: frame it from dlib's landmarks).

    ``photo=None`` uses the example photo. If the photo cannot be used, the reason is printed
    and, with ``fallback``, the example photo is used instead so the rest of a notebook still
    runs; without it, None is returned.
    """
    if photo is None:
        photo = faces.example_photo()
        if verbose:
            print("Using the example photo (scikit-image's astronaut portrait).")
    try:
        return faces.find_face(photo, choose=choose, verbose=verbose, align=align)
    except PhotoError as err:
        print(f"Cannot use this photo: {err}")
        if not fallback:
            return None
        print("-> carrying on with the example photo instead, so the rest of the notebook runs.")
        return faces.find_face(faces.example_photo(), verbose=verbose, align=align)


def age_all(face: np.ndarray, agers: dict[str, Ager], size: int = CROP_SIZE) -> dict[str, AgedFaces]:
    """Every loaded model's results for one face crop."""
    return {name: ager.age(face, size) for name, ager in agers.items()}


def show_aged(results: dict[str, AgedFaces], face: np.ndarray | None = None, size: float = 1.8):
    """One row per model: the photo's crop, then the face at each of the model's targets. Returns the figure."""
    if not results:
        fig, ax = plt.subplots(figsize=(3, 3))
        if face is not None:
            ax.imshow(face)
        ax.set_title("no trained model yet", fontsize=9)
        ax.set_axis_off()
        return fig
    cols = 1 + max(len(r.images) for r in results.values())
    fig, axes = plt.subplots(len(results), cols, figsize=(size * cols, size * 1.15 * len(results)), squeeze=False)
    for row, r in zip(axes, results.values()):
        for ax in row:
            ax.set_axis_off()
        row[0].imshow(r.face)
        row[0].set_title("your photo", fontsize=9)
        row[0].text(-0.08, 0.5, r.title, transform=row[0].transAxes, rotation=90, ha="right", va="center",
                    fontsize=9)
        for ax, im, lb in zip(row[1:], r.images, r.labels):
            ax.imshow(im)
            ax.set_title(lb, fontsize=9)
    fig.tight_layout()
    return fig


def series_frames(face: np.ndarray, agers: dict[str, Ager], frames_between: int = 3,
                  size: int = CROP_SIZE) -> tuple[list[np.ndarray], list[str]]:
    """Animation frames that walk through the ages, every model side by side in each frame.

    Models with fewer steps hold their last frame. Returns ``(frames, labels)``; each frame is
    a captioned strip, ready for :func:`helpers.plots.save_gif`.
    """
    per_model = {n: a.series(face, frames_between, size) for n, a in agers.items()}
    n = max(len(f) for f, _ in per_model.values())
    frames, labels = [], []
    for i in range(n):
        ims, lbs = [], []
        for name, (fr, lb) in per_model.items():
            j = round(i * (len(fr) - 1) / max(1, n - 1))  # stretch shorter series over the same time
            ims.append(fr[j])
            lbs.append(f"{name}: {lb[j]}")
        frames.append(strip(ims, lbs))
        labels.append(" | ".join(lbs))
    return frames, labels


def save_results(face: np.ndarray, results: dict[str, AgedFaces], agers: dict[str, Ager], out_dir,
                 frames_between: int = 3, photo_with_boxes: np.ndarray | None = None, found=None) -> dict[str, Path]:
    """Write the crop, each model's strip and target pictures, and the GIFs to ``out_dir``; returns the paths.

    With ``found`` (the :class:`helpers.faces.FoundFace` the crop came from), each model's oldest
    face is also put back into the whole photo (``<model>_in_photo.png``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"face": save_image(face, out_dir / "face.png")}
    if photo_with_boxes is not None:
        paths["faces_found"] = save_image(photo_with_boxes, out_dir / "faces_found.png")
    for name, r in results.items():
        paths[f"{name}_strip"] = save_image(r.strip(), out_dir / f"{name}.png")
        for i, (im, lb) in enumerate(zip(r.images, r.labels)):
            safe = "".join(c if c.isalnum() or c in "-+" else "_" for c in lb).strip("_")
            paths[f"{name}_{i}"] = save_image(im, out_dir / name / f"{i:02d}_{safe}.png")
        frames, labels = agers[name].series(face, frames_between)
        frames = [caption(f, lb) for f, lb in zip(frames, labels)]
        paths[f"{name}_gif"] = save_animation(frames, out_dir / f"{name}.gif")
        if found is not None and r.images:
            paths[f"{name}_in_photo"] = save_image(found.paste(r.images[-1]), out_dir / f"{name}_in_photo.png")
    return paths


def age_slider(face: np.ndarray, agers: dict[str, Ager], frames_between: int = 3, size: int = CROP_SIZE):
    """An ipywidgets slider over the ages; every model's face at that age side by side. Returns the widget.

    Without ipywidgets (or where widgets cannot be used) it falls back to a plain figure: the
    frames in one strip, youngest first, which shows the same ages without the slider.
    """
    widgets = None
    if colab.widgets_usable():  # ipywidgets installed, a kernel, and on Colab the widget version it renders
        import ipywidgets as widgets  # noqa: PLC0415 -- optional: the slider falls back to a strip without it
    if not agers:
        message = "No trained model yet: train one in notebook 03 or 06 first (see above)."
        return widgets.HTML(f"<b>{message}</b>") if widgets else print(message)
    frames, labels = series_frames(face, agers, frames_between, size)
    if widgets is None:
        print("widgets cannot be shown here (no ipywidgets, no notebook, or a version Colab cannot render): "
              "every age in one strip instead of a slider")
        fig, ax = plt.subplots(figsize=(min(2.0 * len(frames), 20), 2.6))
        ax.imshow(strip(frames, labels))
        ax.set_axis_off()
        return fig

    def png(i: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(frames[i]).save(buf, "PNG")
        return buf.getvalue()

    image = widgets.Image(value=png(0), format="png")
    slider = widgets.IntSlider(value=0, min=0, max=len(frames) - 1, step=1, description="age",
                               continuous_update=True, readout=False, layout=widgets.Layout(width="60%"))
    caption_ = widgets.Label(labels[0])

    def on_change(change):
        image.value = png(change["new"])
        caption_.value = labels[change["new"]]

    slider.observe(on_change, names="value")
    return widgets.VBox([widgets.HBox([slider, caption_]), image])


def upload_photo():
    """On Google Colab: an upload button; returns the uploaded file's bytes (None elsewhere, or if cancelled)."""
    if "google.colab" not in sys.modules:
        return None
    from google.colab import files  # type: ignore

    uploaded = files.upload()
    if not uploaded:
        return None
    name, data = next(iter(uploaded.items()))
    print(f"uploaded {name} ({len(data):,} bytes)")
    return data


# --------------------------------------------------------------------------- a command-line run


def run(args, names, found) -> int:
    """The command line's work once the arguments are checked and a face is found (:func:`main`)."""
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    agers = {}
    for name in names:
        try:
            agers[name] = load_ager(name, run_dir=args.run_dir, device=args.device)
            print(f"{name}: {agers[name]!r}")
            if agers[name].warning:
                print(f"  WARNING: {agers[name].warning}")
        except NoTrainedModel as err:
            print(f"{name}: {err}")
    if not agers:
        print("No model could age the photo, so nothing was written: train one (notebook 03 or 06) or restore "
              "the shipped files in weights/ (git checkout weights/).", file=sys.stderr)
        return EXIT_NO_MODEL
    if args.strength is not None and not any(isinstance(a, AgeGANAger) for a in agers.values()):
        print("--strength changes only the age GAN, which is not among these models: ignored")
    for ager in agers.values():
        ager.keep_detail = not args.raw
        if args.strength is not None and isinstance(ager, AgeGANAger):
            ager.G.strength = cli.check_strength(args.strength)
            print(f"{ager.name}: at strength {ager.G.strength:g}")
    face = found.full_crop()  # the crop at the photo's own resolution: the models' changes go onto it
    out = Path(args.out)
    with staged_folder(out) as stage:  # nothing replaces earlier results until every file is written
        results = age_all(face, agers, size=args.size)
        boxes = faces.draw_faces(found.photo, found.boxes, found.index)
        paths = save_results(face, results, agers, stage, args.frames_between, photo_with_boxes=boxes, found=found)
        if len(agers) > 1:
            frames, _ = series_frames(face, agers, args.frames_between, size=args.size)
            paths["all_gif"] = save_animation(frames, stage / "all_models.gif")
    paths = {key: out / Path(p).relative_to(stage) for key, p in paths.items()}
    for key, path in paths.items():
        if "/" not in key and not key[-1].isdigit():
            print(f"  {key:>16}: {path}")
    print(f"wrote {len(paths)} files to {out}")
    return 0


@contextlib.contextmanager
def staged_folder(out: Path):
    """A hidden folder inside ``out`` to write into; on success its files replace those in ``out``.

    If anything fails on the way, the staged files are deleted and ``out`` keeps what it had.
    """
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".incoming-", dir=out))
    try:
        yield stage
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            target = out / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
