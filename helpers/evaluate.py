"""``python -m helpers.evaluate``: score every trained model of the course and write one results table.

For each model family it looks for a run folder in ``RUNS_DIR`` (CycleGAN: ``generators.pt`` or a
checkpoint; the age-modulated GAN: a checkpoint), translates the test faces of the data the model
was trained on, and measures them with :mod:`helpers.metrics`: age accuracy with the course's age
classifier, FID (Inception, or the clearly labelled stand-in), cycle reconstruction, and on toy
faces the error against the ground truth and the share of identity traits kept. A model with no
run folder gets a row that says "not trained". Each group scheme also gets a *ceiling* row: the
age classifier on real test faces (its accuracy and MAE) and the FID between two halves of the
real test faces (how low an FID can go on this many faces).

The table is written as ``<out>.csv`` and ``<out>.md`` (default ``RUNS_DIR/<EVAL.run_name>/results``),
with seed 001's published figures beside it in ``<out>_published.md``, marked as not comparable.

Command line::

    python -m helpers.evaluate [--models cyclegan agegan] [--data SOURCE] [--data-path P]
                               [--n-faces N] [--fid auto|inception|stand-in] [--out STEM]
                               [--retrain] [--threads T] [--device D]
"""

from __future__ import annotations

import argparse
import sys

from . import cli, config

#: The models the table can score (the keys of :data:`MODELS`' rows; checked by a test).
MODEL_NAMES = ("cyclegan", "cdcgan", "cdcgan-wide", "encoder", "agegan")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.split("\n\n")[0] if __doc__ else None,
                                epilog="exit codes: 0 done; 2 usage error; 3 a run folder or the data cannot be used "
                                       "(another model's checkpoint, a missing folder): the message says which")
    p.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES, metavar="MODEL",
                   help=f"which trained models to score (default: all of {', '.join(MODEL_NAMES)})")
    p.add_argument("--data", default=None, help="score on this face source (default: each model's own)")
    p.add_argument("--data-path", default=None, help="folder or zip of the data (as in helpers.train)")
    p.add_argument("--runs-dir", default=None, help=f"where the run folders are (default {config.RUNS_DIR})")
    p.add_argument("--n-faces", type=int, default=None, help=f"test faces per model (default {config.EVAL.n_faces})")
    p.add_argument("--max-images", type=int, default=None, help="cap on the faces loaded (default: the course's)")
    p.add_argument("--steps", type=int, default=None, help=f"classifier training steps (default {config.EVAL.steps})")
    p.add_argument("--fid", default=None, choices=["auto", "inception", "stand-in"],
                   help=f"which FID (default {config.EVAL.fid})")
    p.add_argument("--retrain", action="store_true", help="retrain the classifiers even if saved ones exist")
    p.add_argument("--pretrained", action="store_true",
                   help="score the real-face weights shipped in weights/ instead of your run folders")
    p.add_argument("--out", default=None, help="path stem of the table (default RUNS_DIR/<EVAL.run_name>/results)")
    p.add_argument("--realism-figures", default=None, metavar="DIR",
                   help="also save realism_planted.png (artifacts planted on real test faces, and what the realism "
                        "measure flags) and realism_flagged_<source>.png (the outputs it flags most) in DIR")
    p.add_argument("--strength", type=float, default=None,
                   help="the share of the age GAN's change put on each face, in (0, 2] (default: what its run or "
                        "shipped file says; 1 is the generator's own output)")
    p.add_argument("--strength-curve", default=None, metavar="S1,S2,...",
                   help="instead of the table: the age GAN at these strengths, on test faces the table does not score")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")
    return p


def main(argv=None) -> int:
    """``python -m helpers.evaluate``: the arguments are checked before torch is imported (see helpers.cli)."""
    p = build_parser()
    args = p.parse_args(argv)
    try:
        if args.strength is not None:
            cli.check_strength(args.strength)
        if args.strength_curve:
            [cli.check_strength(v) for v in cli.number_list(args.strength_curve, "--strength-curve")]
    except ValueError as e:
        p.error(str(e))  # exit 2, as --help says
    from . import evaluate as app  # the heavy part below; this module itself when imported

    return app.run(args)


if __name__ == "__main__":
    sys.exit(main())

# ruff: noqa: E402 -- the heavy imports come after the command line, on purpose
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from . import catalog, identity, pretrained
from . import metrics as M
from . import realism as R
from .agegan import apply_strength, check_strength, group_mid_ages, translate
from .cli import number_list
from .cache import build_cache
from .cdcgan import frozen_generator
from .encoder import decode, invert_and_edit
from .sources import load_faces
from .splits import PRESETS, check_ranges, group_ranges, train_test_split
from .toyfaces import MAX_AGE
from .training import Checkpointer, CheckpointMismatch, load_trained, pick_device

#: The models the table covers, named as in ``python -m helpers.train`` (rows of :mod:`helpers.catalog`).
MODELS = ("cyclegan", "cdcgan", "cdcgan-wide", "encoder", "agegan")


# --------------------------------------------------------------------------- finding and loading runs


def find_run(model: str, runs_dir=None) -> Path | None:
    """The run folder of ``model`` that holds a trained model (real-face runs first), or None."""
    return catalog.get(model).find_run(runs_dir)


# --------------------------------------------------------------------------- shared context


class Judges:
    """The classifiers, FID choice and test faces for one data source, built once and reused by every model."""

    def __init__(self, source: str, data_path=None, settings=None, fid: str | None = None, retrain: bool = False,
                 device="cpu", verbose: bool = True, max_images: int | None = None):

        self.source, self.data_path, self.device, self.verbose = source, data_path, device, verbose
        self.s = settings or config.EVAL
        self.max_images = max_images
        faces = load_faces(source, path=data_path, verbose=False,
                           max_images=max_images if max_images is not None else config.DATA.max_images)
        self.train_df, self.test_df = train_test_split(faces, config.DATA.test_fraction, config.DATA.split_seed)
        self.toy = "identity" in self.test_df.columns
        self.age = M.get_age_classifier(source, data_path, self.s, retrain, device, verbose, max_images)
        self.traits = M.get_trait_classifier(self.s, retrain, device, verbose, max_images) if self.toy else None
        self.fid = M.choose_fid(fid, verbose=verbose)
        self.recognizer, self.identity_note = None, "toy faces: identity is measured by the traits"
        if not self.toy:
            try:
                self.recognizer = identity.default_recognizer()
                self.recognizer._load()
                self.identity_note = "dlib's face recogniser: same person = descriptors under 0.6 apart"
            except identity.IdentityUnavailable as err:
                self.recognizer, self.identity_note = None, f"not measured: {str(err).splitlines()[0]}"
        self._tests = {}

    def test_cache(self, size: int):
        """The test faces at ``size`` px (built once)."""

        if size not in self._tests:
            self._tests[size] = build_cache(self.test_df, size, verbose=False)
        return self._tests[size]

    def pick(self, n_total: int, seed: int = 0, n: int | None = None) -> np.ndarray:
        """Sorted indices of ``n`` (default ``settings.n_faces``; None: all) of ``n_total`` faces, drawn with ``seed``."""
        n = n if n is not None else self.s.n_faces
        n = n_total if n is None else min(n, n_total)
        return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))

    def ceiling_row(self, images, ages, groups, scheme: str, identities=None) -> dict:
        """The age classifier on real test faces, the FID between two halves of them and, on toy faces,
        how often the trait classifier reads all three traits of real faces right (the ceiling of "traits kept")."""
        rep = M.classifier_report(self.age, images, ages, groups)
        row = {"model": "real test faces (ceiling)", "translation": scheme, "data": self.source, "status": "ceiling",
               "faces": rep.get("group_faces", rep["faces"]), "age_accuracy": rep.get("age_accuracy"),
               "age_mae": rep["age_mae"]}
        n = len(images)
        if n >= 4:
            perm = np.random.default_rng(1).permutation(n)
            half_a, half_b = images[torch.as_tensor(perm[: n // 2])], images[torch.as_tensor(perm[n // 2:])]
            row["fid"] = M.frechet_distance(half_a, half_b, self.fid, self.age)
            row["fid_kind"] = self.fid.kind
        if self.traits is not None and identities is not None:
            row["traits_kept"] = M.trait_agreement(self.traits, images, identities)["traits_kept"]
        return row


# --------------------------------------------------------------------------- one model family each


@dataclass
class Translations:
    """One model's outputs on the test faces, with everything needed to score and to show them.

    ``source``: the input faces (for the cDCGAN, which has none, its own outputs); ``fake``: the
    model's faces; ``target``: the group index (into ``groups``) each was asked for; ``back``: the
    faces sent back to their own group (cycle), or None; ``truth`` and ``identities``: the toy
    ground truth and persons, or None; ``reference``: real test faces of the groups (for FID);
    ``ceiling``: ``(images, ages, identities or None)`` of the real test faces in the groups.
    """

    name: str  # the model family, as in MODELS
    model: str  # the row's name
    translation: str  # what was asked of the model
    groups: list
    source: torch.Tensor
    fake: torch.Tensor
    target: np.ndarray
    reference: torch.Tensor
    ceiling: tuple
    back: torch.Tensor | None = None
    truth: torch.Tensor | None = None
    identities: np.ndarray | None = None
    has_input: bool = True
    run: str = ""
    source_name: str = ""  # the data source the faces come from
    index: np.ndarray | None = None  # each input's row in the test table (for its full-resolution crop)

    @property
    def scheme(self) -> str:
        return " / ".join(map(str, self.groups))


def _test_in_groups(judges: Judges, groups, size: int):
    """The test faces at ``size`` px: ``(images, ages, labels, keep)`` with labels -1 outside every group."""
    test = judges.test_cache(size)
    ages = test.table["age"].to_numpy()
    label = np.full(len(ages), -1)
    for k, g in enumerate(groups):
        label[g.contains(ages)] = k
    return test, ages, label, np.flatnonzero(label >= 0)


def _ceiling(test, keep: np.ndarray) -> tuple:
    """``(images, ages, identities or None)`` of the real test faces ``keep`` (the ceiling row's faces)."""
    table = test.table.iloc[keep]
    ids = table["identity"].to_numpy() if "identity" in table.columns else None
    return test.tensor()[torch.as_tensor(keep)], table["age"].to_numpy(), ids


def _group_targets(src: np.ndarray, k: int) -> np.ndarray:
    """Send face i to another group than its own, taking the other groups in turn (all pairs get covered)."""
    return (src + 1 + np.arange(len(src)) % max(1, k - 1)) % k


def _truth_ages(judges: Judges, groups, target: np.ndarray) -> np.ndarray:
    """The age the toy ground truth is drawn at for each target group: the median age of its training faces."""
    ages = judges.train_df["age"].to_numpy()
    med = [float(np.median(ages[g.contains(ages)])) if g.contains(ages).any() else float(g.lo) for g in groups]
    return np.asarray(med)[target]


def _toy_truth(judges: Judges, test, idx, ages_at, size):
    if not judges.toy:
        return None, None
    table = test.table.iloc[idx]
    return M.render_truth(table, ages_at, size), table["identity"].to_numpy()


def translate_cyclegan(run_dir, judges: Judges, model=None, info: dict | None = None) -> list[Translations]:
    """CycleGAN's two directions on the test faces of its two domains: young -> old (G_AB), old -> young (G_BA)."""
    if model is None:
        model, info = catalog.get("cyclegan").loader(run_dir, judges.device)
    preset = PRESETS.get(judges.source, PRESETS["utkface"])
    young, old = check_ranges([(info or {}).get("young") or preset.young, (info or {}).get("old") or preset.old])
    groups = [young, old]
    size = int(model.config["image_size"])
    test, ages, label, keep = _test_in_groups(judges, groups, size)
    imgs = test.tensor()
    ceiling = _ceiling(test, keep)
    out = []
    for direction, src, target in (("A2B", 0, 1), ("B2A", 1, 0)):
        mask = np.flatnonzero(label == src)
        idx = mask[judges.pick(len(mask))]
        x = imgs[torch.as_tensor(idx)]
        fake, back = model.cycle(x, direction)
        tgt = np.full(len(x), target)
        truth, ids = _toy_truth(judges, test, idx, _truth_ages(judges, groups, tgt), size)
        name = "G_AB" if direction == "A2B" else "G_BA"
        out.append(Translations("cyclegan", f"CycleGAN ({name})", f"{groups[src]} -> {groups[target]}", groups, x,
                                fake, tgt, imgs[torch.as_tensor(label == target)], ceiling, back, truth, ids,
                                index=idx))
    return out


def translate_agegan(run_dir, judges: Judges, G=None) -> list[Translations]:
    """The age-modulated GAN: every test face sent to one other group (the pairs taken in turn), and back."""
    if G is None:
        G = catalog.get("agegan").loader(run_dir, judges.device)
    back_G = catalog.get("agegan").loader(run_dir, judges.device, which="G_back") if int(G.config.get("generators", 1)) == 2 else G
    if judges.s.agegan_strength is not None:  # --strength: another share of the change than the run's own
        G.strength = back_G.strength = check_strength(judges.s.agegan_strength)
    strength = getattr(G, "strength", 1.0)
    edges = list(G.group_edges or config.AGEGAN.group_edges)
    groups = group_ranges(edges)
    K = len(groups)
    size = int(G.config["image_size"])
    test, ages, label, keep = _test_in_groups(judges, groups, size)
    imgs = test.tensor()
    idx = keep[judges.pick(len(keep))]
    x, src = imgs[torch.as_tensor(idx)], label[idx]
    target = _group_targets(src, K)
    fake = translate(G, x, torch.as_tensor(target))
    back = translate(back_G, fake, torch.as_tensor(src))
    truth, ids = _toy_truth(judges, test, idx, np.asarray(group_mid_ages(edges, MAX_AGE))[target], size)
    real = imgs[torch.as_tensor(keep)]
    name = "AgeGAN (age-modulated)" + (f", strength {strength:g}" if strength != 1.0 else "")
    return [Translations("agegan", name, f"each face to another of {K} groups", groups, x, fake,
                         target, real, _ceiling(test, keep), back, truth, ids, index=idx)]


def strength_curve(G, judges: Judges, strengths, n_faces: int | None = None) -> list[dict]:
    """The age GAN ``G`` at each of ``strengths``, on test faces the results table does *not* score.

    Putting less of the generator's change on a face keeps more of the person and reaches the
    target age less often (:func:`helpers.agegan.translate`). This measures that trade-off on the
    test faces left out of :func:`translate_agegan`'s draw (``n_faces`` of them, default the table's
    number), so a strength chosen here is not tuned on the faces it is then scored on. Each face
    goes to another group, as in the table. One row per strength: ``age_accuracy`` (%),
    ``same_person`` (%, on ``identity_faces`` of them) and ``mean_distance``.
    """
    strengths = [check_strength(v) for v in strengths]
    groups = group_ranges(list(G.group_edges or config.AGEGAN.group_edges))
    test, _, label, keep = _test_in_groups(judges, groups, int(G.config["image_size"]))
    rest = np.setdiff1d(np.arange(len(keep)), judges.pick(len(keep)))
    if len(rest) == 0:
        raise ValueError("the results table scores every test face, so none are left to choose a strength on: "
                         "score fewer (--n-faces) or use a larger data folder")
    n = len(rest) if n_faces is None else min(n_faces, len(rest))
    idx = keep[rest[:n]]
    x = test.tensor()[torch.as_tensor(idx)].float().div(127.5).sub(1.0)
    target = _group_targets(label[idx], len(groups))
    full = translate(G, x, torch.as_tensor(target), strength=1.0)
    n_id = n if judges.s.identity_faces is None else min(judges.s.identity_faces, n)
    rec = judges.recognizer
    src_desc = rec.descriptors(identity.as_faces(x[:n_id])) if rec is not None else None
    rows = []
    for v in strengths:
        fake = apply_strength(x, full, v)
        row = {"strength": v, "faces": n, "age_accuracy": M.age_accuracy(judges.age, fake, target, groups)}
        if src_desc is not None:
            rep = identity.report(identity.distances(src_desc, rec.descriptors(identity.as_faces(fake[:n_id]))))
            row.update(same_person=100.0 * rep["same_person"], mean_distance=rep["mean_distance"], identity_faces=n_id)
        rows.append(row)
    return rows


def translate_cdcgan(run_dir, judges: Judges, G=None) -> list[Translations]:
    """The conditional DCGAN on its own: faces drawn from noise with each age label (no input face).

    Only age accuracy and FID apply; reconstruction and ground truth belong to the encoder route.
    """
    if G is None:
        G = catalog.get("cdcgan").loader(run_dir, judges.device)
    groups = check_ranges(list(G.groups))
    frozen = frozen_generator(G, seed=judges.s.seed)
    test, ages, label, keep = _test_in_groups(judges, groups, int(G.image_size))
    real = test.tensor()[torch.as_tensor(keep)]
    n = judges.s.n_faces or len(keep)
    target = np.arange(n) % len(groups)
    z = torch.randn(n, G.nz, generator=torch.Generator().manual_seed(judges.s.seed + 1))
    fake = decode(frozen, z, torch.as_tensor(target))
    return [Translations("cdcgan", f"cDCGAN ({' / '.join(map(str, groups))})", "noise + age label -> a new face",
                         groups, fake, fake, target, real, _ceiling(test, keep), has_input=False)]


def translate_encoder(run_dir, judges: Judges, refine_steps: int | None = None) -> list[Translations]:
    """The encoder + conditional DCGAN route: real test faces encoded, refined, drawn with the other group.

    The cycle goes the same way back: the edited face is encoded, refined under its new group and
    drawn with its own group again.
    """
    G, E, _, _ = catalog.get("encoder").loader(run_dir, judges.device)
    groups = check_ranges(list(G.groups))
    size = int(G.image_size)
    test, ages, label, keep = _test_in_groups(judges, groups, size)
    imgs = test.tensor()
    idx = keep[judges.pick(len(keep), n=judges.s.encoder_faces or judges.s.n_faces)]
    x, src = imgs[torch.as_tensor(idx)], label[idx]
    target = _group_targets(src, len(groups))
    fake, _ = invert_and_edit(G, E, x, src, target, refine_steps)
    back, _ = invert_and_edit(G, E, fake, target, src, refine_steps)
    truth, ids = _toy_truth(judges, test, idx, _truth_ages(judges, groups, target), size)
    real = imgs[torch.as_tensor(keep)]
    return [Translations("encoder", "encoder + cDCGAN", f"{' <-> '.join(map(str, groups))} (encode, refine, redraw)",
                         groups, x, fake, target, real, _ceiling(test, keep), back, truth, ids)]


#: How each model family's test translations are made.
TRANSLATORS = {"cyclegan": translate_cyclegan, "cdcgan": translate_cdcgan, "cdcgan-wide": translate_cdcgan,
               "encoder": translate_encoder, "agegan": translate_agegan}


def score(t: Translations, judges: Judges) -> dict:
    """The table row of one set of translations (:func:`helpers.metrics.evaluate_translation`)."""
    r = M.evaluate_translation(t.source, t.fake, t.target, t.groups, judges.age, reconstructed=t.back,
                               ground_truth=t.truth, identities=t.identities, trait_classifier=judges.traits,
                               reference=t.reference, fid=judges.fid)
    row = {"model": t.model, "translation": t.translation, "data": judges.source, "status": "ok", **r}
    if t.has_input:  # a model with no input face (the cDCGAN) has no change to judge
        row["realism_flagged"] = R.realism_flag_rate(t.fake, t.source)
    if judges.recognizer is not None and t.has_input:
        n = len(t.source) if judges.s.identity_faces is None else min(judges.s.identity_faces, len(t.source))
        row.update(_identity_columns(identity.identity_report(t.source[:n], t.fake[:n], judges.recognizer)))
        if t.index is not None:
            row.update(_identity_columns(full_resolution_identity(t, judges, n), suffix="_256"))
    if t.run:
        row["run"] = t.run
    return row


def _identity_columns(rep: dict, suffix: str = "") -> dict:
    return {"same_person" + suffix: 100.0 * rep["same_person"], "identity_distance" + suffix: rep["mean_distance"]}


#: The side of the photo path's result that the full-resolution identity column measures.
PHOTO_SIZE = 256


def _full_crop() -> int:
    """The side of the full-resolution test crops (UTKFace's 200 px; the small size in smoke mode)."""
    return config.DATA.image_size if config.SMOKE else 200


def full_resolution_photos(t: Translations, judges: Judges, n: int | None = None, size: int = PHOTO_SIZE):
    """``(crops, results)``: the first ``n`` inputs' full-resolution crops at ``size`` px and the photo
    path's result for each (:func:`helpers.age_photo.apply_change`: the model's change, made at its own
    size, enlarged and added to the sharp crop), as lists of uint8 ``(size, size, 3)`` pictures."""
    from .age_photo import apply_change  # the photo path's own function (an app of the same layer)

    n = len(t.source) if n is None else min(n, len(t.source))
    full = judges.test_cache(_full_crop()).images
    crops, results = [], []
    for k in range(n):
        face = np.asarray(full[int(t.index[k])])
        out = apply_change(face, t.source[k : k + 1], t.fake[k : k + 1], size)[0]
        start = t.source[k : k + 1]
        crops.append(np.asarray(apply_change(face, start, M._as_float(start), size)[0]))  # no change: the crop
        results.append(out)
    return crops, results


def full_resolution_identity(t: Translations, judges: Judges, n: int | None = None) -> dict:
    """Same person on the photo path's 256-px results against the 256-px crops (:func:`full_resolution_photos`)."""
    crops, results = full_resolution_photos(t, judges, n)
    return identity.identity_report(crops, results, judges.recognizer)


def identity_rows(judges: Judges, sizes) -> list[dict]:
    """The two reference rows of the same-person column, on real test faces at full size (200 px).

    - one *resolution floor* per model size: every face shrunk to that size and enlarged back,
      against itself (a model of that size that keeps the person perfectly still scores this);
    - *different people*: random pairs of two test faces (what a model that loses the person scores).
    """
    if judges.recognizer is None:
        return []
    test = judges.test_cache(_full_crop()).tensor()
    idx = torch.as_tensor(judges.pick(len(test), seed=2, n=judges.s.identity_faces))
    faces = test[idx]
    base = {"data": judges.source, "status": "baseline", "faces": len(faces)}
    rows = [{**base, "model": f"real faces shrunk to {size} px and back", "translation": "resolution floor",
             **_identity_columns(identity.resolution_floor(faces, int(size), judges.recognizer))}
            for size in sorted(set(int(s) for s in sizes))]
    # Strangers at each size a same-person figure is measured at (the same pairs, seed 3): the models' sizes,
    # enlarged to 200 px by the recogniser as their outputs are, and full size (the recogniser reads the 256-px
    # photo-path pictures at 200 px too, so the full-size figure is the strangers' rate for that column).
    pairs = dict(n_pairs=judges.s.identity_pairs, seed=3, recognizer=judges.recognizer)
    for size in sorted(set(int(s) for s in sizes)):
        small = M._resize(test.float(), size).round().clamp(0, 255).to(torch.uint8)
        rows.append({**base, "model": f"different people (random pairs), shrunk to {size} px and back",
                     "translation": "strangers", "faces": judges.s.identity_pairs,
                     **_identity_columns(identity.different_people(small, **pairs))})
    full = _identity_columns(identity.different_people(test, **pairs))
    rows.append({**base, "model": "different people (random pairs)", "translation": "strangers at full size",
                 "faces": judges.s.identity_pairs, **full,
                 **{k + "_256": v for k, v in full.items()}})
    return rows


def realism_rows(judges: Judges) -> dict:
    """The realism measure's validation on this source's real test faces (:func:`helpers.realism.realism_check`)."""
    test = judges.test_cache(R.REALISM_SIZE)
    n = 300 if judges.s.n_faces is None else min(300, max(judges.s.n_faces, 24))
    return R.realism_check(test.tensor(), test.table, n=n)


def realism_check_rows(judges: Judges) -> list[dict]:
    """Three reference rows of the realism column: planted artifacts (must be flagged), the same faces
    unaltered and real faces of the other age group (must not be); the per-kind rates go to the notes."""
    c = realism_rows(judges)
    base = {"data": judges.source, "status": "realism check", "translation": "realism check"}
    kinds = ", ".join(f"{k} {c[f'planted:{k}']:.0f}%" for k in R.PLANT_KINDS)
    return [{**base, "model": f"real faces with planted artifacts ({len(R.PLANT_KINDS)} kinds)",
             "faces": c["faces"] * len(R.PLANT_KINDS), "realism_flagged": c["planted"],
             "realism_note": f"realism check on {judges.source}: planted artifacts flagged by kind: {kinds}; "
                             + "; ".join(R.realism_check_lines(c)[1:])},
            {**base, "model": "the same faces unaltered (shrunk to half size and back)", "faces": c["faces"],
             "realism_flagged": c["clean"]},
            {**base, "model": "real faces of the other age group (15-30 <-> 50+)", "faces": c["other age faces"],
             "realism_flagged": c["other age"]}]


def predicted_groups(t: Translations, judges: Judges) -> np.ndarray:
    """The group the age classifier reads in each of ``t``'s outputs."""
    return M.predict_groups(judges.age, t.fake, t.groups)


def _model_source(model: str, run_dir: Path) -> str:
    """The data source a run trained on; refuses a folder whose checkpoint is another model's, before any work."""
    spec = catalog.get(model)
    if spec.weights != "generators.pt":  # CycleGAN may have only its exported generators.pt
        state, _ = load_trained(run_dir, spec.checkpoint, spec.command)
    else:
        state, _ = Checkpointer(run_dir).load()
    return str((state or {}).get("config", {}).get("data", "toy"))


def translate_all(models=MODELS, data: str | None = None, data_path=None, runs_dir=None, settings=None,
                  fid: str | None = None, retrain: bool = False, device="cpu", verbose: bool = True,
                  max_images: int | None = None, judges: dict | None = None, use_pretrained: bool = False):
    """Every trained model's test translations: ``(translations, judges, missing)``.

    ``judges`` maps each data source to its :class:`Judges` (pass some in to reuse them); ``missing``
    lists the models with no run folder. ``data``: score on this source instead of the one each
    model was trained on. ``use_pretrained``: score the weights shipped in ``weights/``
    (:mod:`helpers.pretrained`) instead of run folders.
    """
    sets, judges, missing = [], dict(judges or {}), []
    for name in models:
        if use_pretrained:
            if name not in pretrained.PHOTO_MODELS:
                raise ValueError(f"no shipped weights to score for {name!r}; these models ship weights that "
                                 f"translate faces: {', '.join(pretrained.PHOTO_MODELS)}")
            loaded = pretrained.load(name, device)  # WeightsError (a RuntimeError) says what to do
            run_dir = pretrained.path_of(name)
            source = data or (loaded[1]["data"] if name == "cyclegan" else loaded.config.get("data", "utkface"))
        else:
            run_dir = find_run(name, runs_dir)
            if run_dir is None:
                missing.append(name)
                continue
            source = data or _model_source(name, run_dir)
        if source not in judges:
            judges[source] = Judges(source, data_path, settings, fid, retrain, device, verbose, max_images)
        t0 = time.time()
        if use_pretrained and name == "cyclegan":
            new = translate_cyclegan(run_dir, judges[source], model=loaded[0], info=loaded[1])
        elif use_pretrained:
            new = translate_agegan(run_dir, judges[source], G=loaded)
        else:
            new = TRANSLATORS[name](run_dir, judges[source])
        for t in new:
            t.run, t.source_name = str(run_dir), source
        sets += new
        if verbose:
            print(f"{name} ({run_dir}): translated in {time.time() - t0:.0f}s")
    return sets, judges, missing


def score_all(sets, judges: dict, missing=()) -> list[dict]:
    """Rows of the results table: one ceiling row per group scheme and source, one row per set, one per missing model."""
    rows, seen = [], set()
    for t in sets:
        j = judges[_source_of(t, judges)]
        key = (t.scheme, j.source)
        if key not in seen:
            seen.add(key)
            images, ages, ids = t.ceiling
            row = j.ceiling_row(images, ages, t.groups, t.scheme, ids)
            rows.append(row)
        row = score(t, j)
        if not j.toy:
            row["identity_note"] = f"same person on {j.source}: {j.identity_note}"
        rows.append(row)
    for source, j in judges.items():
        sizes = [t.source.shape[-1] for t in sets if t.has_input and _source_of(t, judges) == source]
        if sizes:
            rows += identity_rows(j, sizes)
            rows += realism_check_rows(j)
    for name in missing:
        rows.append({"model": name, "status": "not trained",
                     "translation": f"train it first: python -m helpers.train {name}"})
    return rows


def _source_of(t: Translations, judges: dict) -> str:
    return t.source_name if t.source_name in judges else next(iter(judges))


def evaluate_all(models=MODELS, data: str | None = None, data_path=None, runs_dir=None, settings=None,
                 fid: str | None = None, retrain: bool = False, device="cpu", verbose: bool = True,
                 max_images: int | None = None, use_pretrained: bool = False) -> list[dict]:
    """Rows of the results table for ``models``; one "not trained" row for each model with no run folder."""
    sets, judges, missing = translate_all(models, data, data_path, runs_dir, settings, fid, retrain, device, verbose,
                                          max_images, use_pretrained=use_pretrained)
    return score_all(sets, judges, missing)


# --------------------------------------------------------------------------- figures


def plot_group_accuracy(sets, judges: dict):
    """Bar charts: for each model, the share of its faces that the age classifier reads in the requested group, per group."""
    n = max(1, len(sets))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(sets):]:
        ax.axis("off")
    for ax, t in zip(axes.flat, sets):
        pred = predicted_groups(t, judges[_source_of(t, judges)])
        names = [str(g) for g in t.groups]
        acc = [100.0 * float((pred[t.target == k] == k).mean()) if (t.target == k).any() else np.nan
               for k in range(len(names))]
        ax.bar(range(len(names)), acc, color="tab:blue")
        ax.axhline(100.0 / len(names), color="grey", ls="--", lw=1, label="chance")
        ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 3 else 0, fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_title(f"{t.model}\n{t.translation}", fontsize=8)
        ax.set_xlabel("requested group", fontsize=8)
        ax.set_ylabel("age accuracy (%)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_successes_and_failures(t: Translations, judges: Judges, n: int = 4):
    """Faces the age classifier reads in the requested group (left) beside faces it does not (right).

    Rows: the input, the model's face (titled with the group and age the classifier reads) and,
    on toy faces, the ground truth.
    """
    pred = predicted_groups(t, judges)
    read_age = judges.age.predict_age(t.fake).numpy()
    ok, bad = np.flatnonzero(pred == t.target)[:n], np.flatnonzero(pred != t.target)[:n]
    cols = list(ok) + list(bad)
    rows = ([("input", t.source)] if t.has_input else []) + [("output", t.fake)]
    if t.truth is not None:
        rows.append(("ground truth", t.truth))
    fig, axes = plt.subplots(len(rows), max(1, len(cols)), figsize=(1.5 * max(1, len(cols)), 1.6 * len(rows)),
                             squeeze=False)
    for j, i in enumerate(cols):
        for r, (name, images) in enumerate(rows):
            ax = axes[r][j]
            ax.imshow(M.to_unit(images[i : i + 1])[0].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
        verdict = "success" if i in ok else "failure"
        axes[0][j].set_title(f"{verdict}: asked {t.groups[t.target[i]]}", fontsize=7,
                             color="tab:green" if i in ok else "tab:red")
        axes[len(rows) - 1 if t.truth is None else len(rows) - 2][j].set_xlabel(
            f"reads {t.groups[pred[i]]}, ~{read_age[i]:.0f} y", fontsize=7)
    for ax in axes.flat[len(cols) * len(rows):]:
        ax.axis("off")
    fig.suptitle(f"{t.model}: {len(ok)} of the first successes and {len(bad)} failures "
                 f"(age accuracy {100 * float((pred == t.target).mean()):.0f}%)", fontsize=9)
    fig.tight_layout()
    return fig


def show_most_flagged(sets, n: int = 10, order: str = "most"):
    """The outputs the realism measure flags most (``order="least"``: the ones it passes most easily),
    over every model's translations in ``sets`` (those with an input face), with what it flags on each."""
    sets = [t for t in sets if t.has_input]
    if not sets:
        raise ValueError("no translations of input faces to judge (the cDCGAN alone has no input)")
    size = R.REALISM_SIZE
    src = torch.cat([M._resize(M._as_float(t.source), size) for t in sets])
    fake = torch.cat([M._resize(M._as_float(t.fake), size) for t in sets])
    labels = [f"{t.model.split(' (')[0].split(',')[0]}\n-> {t.groups[k]}" for t in sets for k in t.target]
    which = "flagged most" if order == "most" else "passed most easily"
    return R.show_realism(src, fake, n=n, order=order, labels=labels,
                          title=f"The outputs the realism measure {which} (magenta: where it objects)")


def save_realism_figures(sets, judges: dict, folder) -> list[Path]:
    """``realism_planted.png`` (artifacts planted on 7 real test faces, and what the measure flags) and
    ``realism_flagged_<source>.png`` (the outputs of ``sets`` flagged most) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    j = judges[_source_of(sets[0], judges)]
    test = j.test_cache(R.REALISM_SIZE).tensor()
    fig = R.show_planted(test[torch.as_tensor(j.pick(len(test), seed=5, n=len(R.PLANT_KINDS) + 1))])
    paths.append(folder / "realism_planted.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    fig = show_most_flagged(sets)
    paths.append(folder / f"realism_flagged_{j.source}.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def table_notes(rows) -> list[str]:
    """The notes printed under the table: what each column means, and which FID it holds."""
    notes = ["age accuracy: share of translated faces that the course's age classifier puts in the requested "
             "group; the ceiling row is the same classifier on real test faces (with its MAE in years).",
             "L1 is the mean absolute pixel error on a 0-1 scale; SSIM (Wang et al., 2004) is 1 for identical images.",
             "ground truth (toy faces): the same person drawn at the target age; 'input unchanged' is the "
             "do-nothing baseline a model must beat.",
             "traits kept (toy faces): share of translations whose gender, race and hair style, as the trait "
             "classifier reads them, are the source person's; on the ceiling row, the share of real test faces "
             "whose three traits it reads right (no model can score higher).",
             "seed 001's published figures are in the *_published file: different data and setup, not comparable."]
    notes += sorted({r["identity_note"] for r in rows if r.get("identity_note")})
    if any(r.get("realism_flagged") is not None for r in rows):
        notes.append("flagged unrealistic: share of outputs that would not pass for a photo of the input's face: "
                     "a patch of colour, a dark spot or a smear painted on the face, as a small detector trained on clean "
                     "and painted real faces sees it in the output alone (helpers.realism; lower is better). The 'realism check' rows validate it: "
                     "artifacts planted on real test faces must be flagged (>= 90%), the same faces unaltered and "
                     "real faces of the other age group must not (<= 5%).")
    notes += sorted({r["realism_note"] for r in rows if r.get("realism_note")})
    if any(r.get("same_person_256") is not None for r in rows):
        notes.append(f"same person at {PHOTO_SIZE} px: the photo path's result (helpers.age_photo.apply_change: the "
                     f"model's change enlarged and added to the sharp {PHOTO_SIZE}-px crop) against that crop; "
                     "the strangers rows give how often two different people pass at each size.")
    kinds = {r.get("fid_kind") for r in rows} - {None, "not measured"}
    if kinds:
        notes.append("FID compares the translations with the real test faces of the target group(s); the ceiling "
                     "row's FID is between two halves of the real test faces (the floor on this many faces).")
    if "inception" in kinds:
        notes.append("FID (Inception): Heusel et al. (2017) on Inception-v3 (Szegedy et al., 2016) pool features, "
                     "via torchmetrics/torch-fidelity; lower is better.")
    return notes


def run(args) -> int:
    """The command line's work, once :func:`main` has checked the arguments."""
    if args.threads:
        torch.set_num_threads(args.threads)
    s = config.EVAL
    if args.n_faces is not None:
        s = replace(s, n_faces=args.n_faces)
    if args.steps is not None:
        s = replace(s, steps=args.steps)
    if args.strength is not None:
        s = replace(s, agegan_strength=check_strength(args.strength))
    device = pick_device(args.device)
    print(config.summary())
    t0 = time.time()
    if args.strength_curve:
        return _print_strength_curve(args, s, device)
    try:
        models = args.models
        if args.pretrained and args.models == list(MODELS):  # no --models: every shipped file there is
            models = ([m for m in pretrained.PHOTO_MODELS if pretrained.path_of(m).is_file()]
                      or list(pretrained.PHOTO_MODELS))
        sets, judges, missing = translate_all(models, args.data, args.data_path, args.runs_dir, s, args.fid,
                                              args.retrain, device, max_images=args.max_images,
                                              use_pretrained=args.pretrained)
        rows = score_all(sets, judges, missing)
    except (FileNotFoundError, ValueError, CheckpointMismatch, pretrained.WeightsError) as e:  # a wrong folder or data: say so, no traceback
        print(f"\nerror: {e}", file=sys.stderr)
        return 3
    df = M.results_table(rows)
    stem = Path(args.out) if args.out else config.RUNS_DIR / s.run_name / "results"
    csv, md = M.write_table(df, stem, "Face aging: results", table_notes(rows))
    M.write_table(M.PUBLISHED_SEED001.astype({"score": str}), stem.with_name(stem.name + "_published"),
                  "Seed 001's published results (reference only)",
                  ["published; different data and setup; not comparable with the course's table"])
    print(M.markdown_table(df))
    print(f"\nwritten {csv} and {md} in {time.time() - t0:.0f}s")
    if args.realism_figures:
        if not sets:
            print("no realism figures: no trained model was scored", file=sys.stderr)
        for path in save_realism_figures(sets, judges, args.realism_figures) if sets else []:
            print(f"written {path}")
    return 0


def _print_strength_curve(args, s, device) -> int:
    """``--strength-curve``: the age GAN's trade-off between age and identity, printed and written as CSV."""
    try:
        values = [check_strength(v) for v in number_list(args.strength_curve, "--strength-curve")]
        if args.pretrained:
            G, run_dir = pretrained.load("agegan", device), pretrained.path_of("agegan")
        else:
            run_dir = find_run("agegan", args.runs_dir)
            if run_dir is None:
                raise FileNotFoundError("no age GAN run folder: train one (python -m helpers.train agegan) or add "
                                        "--pretrained for the shipped weights")
            G = catalog.get("agegan").loader(run_dir, device)
        source = args.data or G.config.get("data", "utkface")
        judges = Judges(source, args.data_path, s, args.fid, args.retrain, device, True, args.max_images)
        rows = strength_curve(G, judges, values, s.n_faces)
    except (FileNotFoundError, ValueError, CheckpointMismatch, pretrained.WeightsError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 3
    df = pd.DataFrame(rows)
    print(f"\nthe age GAN of {run_dir} at each strength, on {rows[0]['faces']} held-out {source} test faces "
          f"(its own strength: {getattr(G, 'strength', 1.0):g}):")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if "same_person" in df:
        ok = df[df["same_person"] >= 90.0]
        if len(ok):
            best = ok.loc[ok["age_accuracy"].idxmax()]
            print(f"the most age with at least 90% the same person: strength {best['strength']:g} "
                  f"({best['age_accuracy']:.1f}% of the groups, {best['same_person']:.1f}% the same person)")
    stem = Path(args.out) if args.out else config.RUNS_DIR / s.run_name / "strength_curve"
    stem.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(stem.with_suffix(".csv"), index=False)
    print(f"written {stem.with_suffix('.csv')}")
    return 0


