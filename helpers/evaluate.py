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
import inspect
import time
from pathlib import Path

import numpy as np
import torch

from . import config
from . import metrics as M
from .splits import check_ranges, group_ranges

MODELS = ("cyclegan", "agegan")


# --------------------------------------------------------------------------- finding and loading runs


def _unique(xs):
    return list(dict.fromkeys(xs))


def find_run(model: str, runs_dir=None) -> Path | None:
    """The run folder of ``model`` ("cyclegan" or "agegan") that holds a trained model, or None."""
    from .training import Checkpointer

    runs_dir = Path(runs_dir) if runs_dir is not None else config.RUNS_DIR
    if model == "cyclegan":
        names = _unique([config.CYCLEGAN.run_name, config.CYCLEGAN_CPU.run_name, "cyclegan", "cyclegan-cpu"])
        for n in names:
            d = runs_dir / n
            if (d / "generators.pt").is_file() or Checkpointer(d).latest() is not None:
                return d
        return None
    if model == "agegan":
        for n in _unique([config.AGEGAN.run_name, "agegan"]):
            if Checkpointer(runs_dir / n).latest() is not None:
                return runs_dir / n
        return None
    raise ValueError(f"unknown model {model!r}; choose from {MODELS}")


def load_cyclegan(run_dir, device="cpu"):
    """``(model, info)``: the CycleGAN of a run folder and its ``data``, ``young`` and ``old`` (from the checkpoint)."""
    from .cyclegan import CycleGAN, load_generators
    from .training import Checkpointer

    run_dir = Path(run_dir)
    state, _ = Checkpointer(run_dir).load()
    cfg = dict(state["config"]) if state else {}
    info = {"data": cfg.get("data", "toy"), "young": cfg.get("young"), "old": cfg.get("old")}
    if (run_dir / "generators.pt").is_file():
        model = load_generators(run_dir / "generators.pt", device=device)
    else:
        params = set(inspect.signature(CycleGAN.__init__).parameters) - {"self", "device", "precision", "compile"}
        model = CycleGAN(**{k: v for k, v in cfg.items() if k in params}, device=device)
        for k in ("G_AB", "G_BA"):
            model.networks[k].load_state_dict(state["networks"][k])
    return model, info


# --------------------------------------------------------------------------- shared context


class Judges:
    """The classifiers, FID choice and test faces for one data source, built once and reused by every model."""

    def __init__(self, source: str, data_path=None, settings=None, fid: str | None = None, retrain: bool = False,
                 device="cpu", verbose: bool = True, max_images: int | None = None):
        from .sources import load_faces
        from .splits import train_test_split

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
        self.embedder, self.identity_note = (None, "toy faces: identity is measured by the traits") if self.toy \
            else M.face_embedder(device)
        self._tests = {}

    def test_cache(self, size: int):
        """The test faces at ``size`` px (built once)."""
        from .cache import build_cache

        if size not in self._tests:
            self._tests[size] = build_cache(self.test_df, size, verbose=False)
        return self._tests[size]

    def pick(self, n_total: int, seed: int = 0) -> np.ndarray:
        n = n_total if self.s.n_faces is None else min(self.s.n_faces, n_total)
        return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))

    def ceiling_row(self, images, ages, groups, scheme: str) -> dict:
        """The age classifier on real test faces, and the FID between two halves of them."""
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
        return row


# --------------------------------------------------------------------------- one model family each


def evaluate_cyclegan(run_dir, judges: Judges, info: dict | None = None, model=None) -> list[dict]:
    """Rows for CycleGAN: young -> old (G_AB) and old -> young (G_BA), plus the ceiling for its two domains."""
    from .splits import PRESETS, split_domains

    if model is None:
        model, info = load_cyclegan(run_dir, judges.device)
    preset = PRESETS.get(judges.source, PRESETS["utkface"])
    young, old = check_ranges([(info or {}).get("young") or preset.young, (info or {}).get("old") or preset.old])
    groups = [young, old]
    size = int(model.config["image_size"])
    test = judges.test_cache(size)
    ages = test.table["age"].to_numpy()
    imgs = test.tensor()
    in_groups = young.contains(ages) | old.contains(ages)
    rows = [judges.ceiling_row(imgs[torch.as_tensor(in_groups)], ages[in_groups], groups, f"{young} / {old}")]
    train_a, train_b = split_domains(judges.train_df, young, old)
    for direction, src, dst, target, train_target in (("A2B", young, old, 1, train_b), ("B2A", old, young, 0, train_a)):
        mask = np.flatnonzero(src.contains(ages))
        idx = mask[judges.pick(len(mask))]
        x = imgs[torch.as_tensor(idx)]
        fake, back = model.cycle(x, direction)
        truth, ids = None, None
        if judges.toy:
            table = test.table.iloc[idx]
            truth = M.render_truth(table, float(train_target["age"].median()), size)
            ids = table["identity"].to_numpy()
        reference = imgs[torch.as_tensor(dst.contains(ages))]
        r = M.evaluate_translation(x, fake, np.full(len(x), target), groups, judges.age, reconstructed=back,
                                   ground_truth=truth, identities=ids, trait_classifier=judges.traits,
                                   reference=reference, fid=judges.fid, embedder=judges.embedder)
        name = "G_AB" if direction == "A2B" else "G_BA"
        rows.append({"model": f"CycleGAN ({name})", "translation": f"{src} -> {dst}", "data": judges.source,
                     "status": "ok", **r})
    return rows


def evaluate_agegan(run_dir, judges: Judges, G=None) -> list[dict]:
    """Rows for the age-modulated GAN: every test face sent to one other group (all pairs covered), and back."""
    from .agegan import group_labels, group_mid_ages, load_generator, translate
    from .toyfaces import MAX_AGE

    if G is None:
        G = load_generator(run_dir, judges.device)
    back_G = G
    if int(G.config.get("generators", 1)) == 2:
        back_G = load_generator(run_dir, judges.device, which="G_back")
    edges = list(G.group_edges or config.AGEGAN.group_edges)
    groups = group_ranges(edges)
    K = len(groups)
    size = int(G.config["image_size"])
    test = judges.test_cache(size)
    ages = test.table["age"].to_numpy()
    src_all = group_labels(ages, edges)
    keep = np.flatnonzero(src_all >= 0)
    imgs = test.tensor()
    rows = [judges.ceiling_row(imgs[torch.as_tensor(keep)], ages[keep], groups, ", ".join(map(str, groups)))]
    idx = keep[judges.pick(len(keep))]
    x, src = imgs[torch.as_tensor(idx)], src_all[idx]
    target = (src + 1 + np.arange(len(idx)) % (K - 1)) % K
    fake = translate(G, x, torch.as_tensor(target))
    back = translate(back_G, fake, torch.as_tensor(src))
    truth, ids = None, None
    if judges.toy:
        table = test.table.iloc[idx]
        mids = np.asarray(group_mid_ages(edges, MAX_AGE))
        truth = M.render_truth(table, mids[target], size)
        ids = table["identity"].to_numpy()
    r = M.evaluate_translation(x, fake, target, groups, judges.age, reconstructed=back, ground_truth=truth,
                               identities=ids, trait_classifier=judges.traits, reference=imgs[torch.as_tensor(keep)],
                               fid=judges.fid, embedder=judges.embedder)
    rows.append({"model": "AgeGAN (age-modulated)", "translation": f"each face to another of {K} groups",
                 "data": judges.source, "status": "ok", **r})
    return rows


def _model_source(model: str, run_dir: Path) -> str:
    from .training import Checkpointer

    state, _ = Checkpointer(run_dir).load()
    return str((state or {}).get("config", {}).get("data", "toy"))


def evaluate_all(models=MODELS, data: str | None = None, data_path=None, runs_dir=None, settings=None,
                 fid: str | None = None, retrain: bool = False, device="cpu", verbose: bool = True,
                 max_images: int | None = None) -> list[dict]:
    """Rows of the results table for ``models``; one "not trained" row for each model with no run folder.

    ``data``: score on this source instead of the one each model was trained on.
    """
    rows, judges = [], {}
    for name in models:
        run_dir = find_run(name, runs_dir)
        if run_dir is None:
            rows.append({"model": name, "status": "not trained",
                         "translation": f"train it first: python -m helpers.train {name}"})
            continue
        source = data or _model_source(name, run_dir)
        if source not in judges:
            judges[source] = Judges(source, data_path, settings, fid, retrain, device, verbose, max_images)
        t0 = time.time()
        new = (evaluate_cyclegan if name == "cyclegan" else evaluate_agegan)(run_dir, judges[source])
        for r in new:
            r.setdefault("run", str(run_dir))
            if not judges[source].toy:
                r.setdefault("identity_note", f"face-embedding similarity on {source}: {judges[source].identity_note}")
        rows += new
        if verbose:
            print(f"{name} ({run_dir}): scored in {time.time() - t0:.0f}s")
    return rows


def table_notes(rows) -> list[str]:
    """The notes printed under the table: what each column means, and which FID it holds."""
    notes = ["age accuracy: share of translated faces that the course's age classifier puts in the requested "
             "group; the ceiling row is the same classifier on real test faces (with its MAE in years).",
             "L1 is the mean absolute pixel error on a 0-1 scale; SSIM (Wang et al., 2004) is 1 for identical images.",
             "ground truth (toy faces): the same person drawn at the target age; 'input unchanged' is the "
             "do-nothing baseline a model must beat.",
             "traits kept (toy faces): share of translations whose gender, race and hair style, as the trait "
             "classifier reads them, are the source person's.",
             "seed 001's published figures are in the *_published file: different data and setup, not comparable."]
    notes += sorted({r["identity_note"] for r in rows if r.get("identity_note")})
    kinds = {r.get("fid_kind") for r in rows} - {None, "not measured"}
    if kinds:
        notes.append("FID compares the translations with the real test faces of the target group(s); the ceiling "
                     "row's FID is between two halves of the real test faces (the floor on this many faces).")
    if "inception" in kinds:
        notes.append("FID (Inception): Heusel et al. (2017) on Inception-v3 (Szegedy et al., 2016) pool features, "
                     "via torchmetrics/torch-fidelity; lower is better.")
    return notes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--data", default=None, help="score on this face source (default: each model's own)")
    p.add_argument("--data-path", default=None, help="folder or zip of the data (as in helpers.train)")
    p.add_argument("--runs-dir", default=None, help=f"where the run folders are (default {config.RUNS_DIR})")
    p.add_argument("--n-faces", type=int, default=None, help=f"test faces per model (default {config.EVAL.n_faces})")
    p.add_argument("--max-images", type=int, default=None, help="cap on the faces loaded (default: the course's)")
    p.add_argument("--steps", type=int, default=None, help=f"classifier training steps (default {config.EVAL.steps})")
    p.add_argument("--fid", default=None, choices=["auto", "inception", "stand-in"],
                   help=f"which FID (default {config.EVAL.fid})")
    p.add_argument("--retrain", action="store_true", help="retrain the classifiers even if saved ones exist")
    p.add_argument("--out", default=None, help="path stem of the table (default RUNS_DIR/<EVAL.run_name>/results)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy machine)")
    args = p.parse_args(argv)

    from dataclasses import replace

    from .training import pick_device

    if args.threads:
        torch.set_num_threads(args.threads)
    s = config.EVAL
    if args.n_faces is not None:
        s = replace(s, n_faces=args.n_faces)
    if args.steps is not None:
        s = replace(s, steps=args.steps)
    device = pick_device(args.device)
    print(config.summary())
    t0 = time.time()
    rows = evaluate_all(args.models, args.data, args.data_path, args.runs_dir, s, args.fid, args.retrain, device,
                        max_images=args.max_images)
    df = M.results_table(rows)
    stem = Path(args.out) if args.out else config.RUNS_DIR / s.run_name / "results"
    csv, md = M.write_table(df, stem, "Face aging: results", table_notes(rows))
    M.write_table(M.PUBLISHED_SEED001.astype({"score": str}), stem.with_name(stem.name + "_published"),
                  "Seed 001's published results (reference only)",
                  ["published; different data and setup; not comparable with the course's table"])
    print(M.markdown_table(df))
    print(f"\nwritten {csv} and {md} in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
