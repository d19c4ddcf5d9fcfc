"""Would an output pass for a photo? A small learned blotch detector, the course's realism measure.

Notebook 07's realism column asks of every output: has the model painted something on the face
that no photo has (a bruise-coloured patch, a dark spot, a smear along the jaw)? The first measure
the course tried, :class:`helpers.metrics.RealismJudge`, compares each output with its input by
hand-made colour rules. On 300 planted faces of the UTKFace sample it found only 73.7% of the
artifacts and flagged 5.3% of real faces of another age, because a real face differs from another
person's by dark features (brows, folds, a beard) that look like its "spots".

This one looks at the output alone, as a person does, and is *learned*:

- **The data.** Real faces (the UTKFace sample's training side) and toy faces, half of each batch
  clean, half with 1-3 random artifacts painted on (:func:`random_artifacts`): soft patches of a
  random colour (any hue, or the face's own hue made far more saturated) over 0.5-12% of the face,
  dark spots, and smears along the face's outline. Every face is also flipped, blurred, shrunk and
  brightened at random, so that a plain change of sharpness or light teaches it nothing. What it
  learns is "a photo of a face has no such patch", not the look of one model's output.
- **The network** (:class:`BlotchNet`): six 3x3 convolutions with batch norm on 64-px faces in
  CIE L*a*b*, the colour as it is and relative to the face's own median colour; two of them dilated,
  so each of its 16x16 outputs sees about a quarter of the face. The output's score is a soft
  maximum (log-sum-exp) of that map over the face, so one patch anywhere is enough, and the map
  shows *where* it objects (:meth:`BlotchJudge.where`).
- **The threshold** is set before any validation: the score that 2% of *held-out clean* training
  faces exceed (the measure's false-alarm rate on real photos, by construction).

Validation (:func:`helpers.metrics.realism_check`) plants artifacts with another generator
(:func:`helpers.metrics.plant_artifacts`: four fixed colours, dark spots, a jaw smear) on *test*
faces it never saw, and asks for at least 90% of them flagged, at most 5% of the same faces
unaltered, and at most 5% of real faces of the other age group (grey hair and lines are not
artifacts). The figures are in the model card (``weights/README.md``) and notebook 07.

The trained network ships as ``weights/realism.safetensors``; ``python -m helpers.realism`` trains it
again (about 30 minutes on one CPU thread) and prints the validation.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import config
from .metrics import (FACE_ELLIPSE, _blob, _gaussian_blur, _resize, _soft_disc, _tint, _unit_grid, face_mask,
                      rgb_to_lab, lab_to_rgb, to_unit)

__all__ = ["BlotchNet", "BlotchJudge", "features", "random_artifacts", "train_detector", "judge", "FILE",
           "RealismUnavailable"]

#: The shipped detector.
FILE: Path = config.ROOT / "weights" / "realism.safetensors"
SIZE = 64  # every face is judged at this size
MAP = 16  # the detector's map of where it objects (SIZE / 4)


class RealismUnavailable(RuntimeError):
    """The realism detector's file is missing or not one; the message says what to do."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def features(images) -> torch.Tensor:
    """Faces (uint8 or [-1, 1], any size) -> the detector's input: ``(N, 6, 64, 64)``, CIE L*a*b* scaled to
    about [-1, 1], then the same relative to the face's median colour (so a patch counts against *this* face)."""
    x = _resize(to_unit(images) * 2 - 1, SIZE)
    lab = rgb_to_lab(x)
    face = face_mask(SIZE)
    med = lab[:, :, face].median(2).values[:, :, None, None]
    scale = torch.tensor([50.0, 50.0, 50.0]).view(1, 3, 1, 1)
    return torch.cat([(lab - torch.tensor([50.0, 0.0, 0.0]).view(1, 3, 1, 1)) / scale, (lab - med) / 25.0], 1)


class BlotchNet(nn.Module):
    """Six 3x3 convolutions (two of stride 2, two dilated) to a 16x16 map of "painted here" logits."""

    def __init__(self, width: int = 32):
        super().__init__()
        w1, w2, w3 = width, width * 3 // 2, width * 2

        def block(cin, cout, stride=1, dilation=1):
            return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                    nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(6, w1), *block(w1, w2, 2), *block(w2, w2, dilation=2), *block(w2, w3, 2),
                                  *block(w3, w3, dilation=2), *block(w3, w3, dilation=4), nn.Conv2d(w3, 1, 1))
        # Only the face counts (grown a little: a smear on the outline sits on its edge).
        c = (torch.arange(MAP, dtype=torch.float32) + 0.5) / MAP
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        cx, cy, ax, ay = FACE_ELLIPSE
        self.register_buffer("face", (((xx - cx) / (ax * 1.15)) ** 2 + ((yy - cy) / (ay * 1.15)) ** 2 <= 1.0),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(score (N,), map (N, 16, 16))``: the map's soft maximum over the face, and the map."""
        m = self.body(x)[:, 0]
        inside = m.masked_fill(~self.face, -1e4)
        score = torch.logsumexp(inside.flatten(1), 1) - math.log(float(self.face.sum()))
        return score, m


# --------------------------------------------------------------------------- what it learns from


def _random_colour(rng: np.random.Generator, skin_ab: torch.Tensor):
    """An a*, b*, L*-change: any hue at a strong chroma, or the face's own hue far more saturated."""
    if rng.random() < 0.6:
        h, c = rng.uniform(0, 2 * math.pi), rng.uniform(22, 70)
    else:
        h = math.atan2(float(skin_ab[1]), float(skin_ab[0])) + rng.uniform(-0.7, 0.7)
        c = float(skin_ab.norm()) * rng.uniform(1.7, 3.2) + rng.uniform(4, 14)
    return c * math.cos(h), c * math.sin(h), rng.uniform(-18, 6)


def random_artifacts(images, rng: np.random.Generator) -> torch.Tensor:
    """Each face with 1-3 random artifacts painted on (the detector's training data; uint8 in, uint8 out).

    Kinds, drawn per artifact: a soft colour patch (55%; 0.5-12% of the face, 30-85% opaque at its
    centre, colour from :func:`_random_colour`), a dark spot (25%; 0.3-2.5% of the face, 30-70%
    darker), a smear along the face's outline (20%; anywhere on its lower two thirds).
    """
    x = torch.as_tensor(images)
    lab = rgb_to_lab(x)
    n, _, size, _ = lab.shape
    cx, cy, ax, ay = FACE_ELLIPSE
    face_area = math.pi * ax * ay
    face = face_mask(size)
    xx, yy = _unit_grid(size)
    for i in range(n):
        skin = lab[i, 1:, face].median(1).values
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.choice(["patch", "dark", "outline"], p=[0.55, 0.25, 0.2])
            if kind == "patch":
                centre = _in_face(rng, 0.75)
                alpha = rng.uniform(0.3, 0.85) * _blob(size, centre, rng.uniform(0.005, 0.12) * face_area,
                                                      rng.uniform(0.35, 1.0), rng.uniform(0, math.pi))
                _tint(lab[i], alpha, _random_colour(rng, skin))
            elif kind == "dark":
                alpha = _blob(size, _in_face(rng, 0.7), rng.uniform(0.003, 0.025) * face_area, rng.uniform(0.3, 1.0),
                              rng.uniform(0, math.pi))
                lab[i, 0] *= 1 - alpha * rng.uniform(0.3, 0.7)
                lab[i, 1:] *= 1 - alpha * rng.uniform(0.0, 0.5)
            else:
                s = rng.uniform(0.78, 0.95)
                u, v = (xx - cx) / (ax * s), (yy - cy) / (ay * s)
                theta, r = torch.atan2(v, u), torch.sqrt(u * u + v * v)
                mid = math.pi / 2 + rng.uniform(-1.4, 1.4)
                d = torch.remainder(theta - mid + math.pi, 2 * math.pi) - math.pi
                along = (d.abs() / rng.uniform(0.35, 1.1)).clamp(0, 1)
                along = 1 - along * along * (3 - 2 * along)
                width = rng.uniform(0.03, 0.08) / min(ax, ay)
                alpha = rng.uniform(0.45, 0.85) * along * _soft_disc((r - 1).abs() / (width / 2))
                _tint(lab[i], alpha, _random_colour(rng, skin))
    out = lab_to_rgb(lab)
    return ((out + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _in_face(rng, scale: float):
    cx, cy, ax, ay = FACE_ELLIPSE
    while True:
        u, v = rng.uniform(-1, 1, 2)
        if u * u + v * v <= 1:
            return cx + u * ax * scale, cy + v * ay * scale


def _jitter(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random flips, blur, shrink-and-enlarge and brightness on uint8 faces, the same for clean and painted ones."""
    y = to_unit(x)
    flip = torch.as_tensor(rng.random(len(y)) < 0.5)
    y = torch.where(flip[:, None, None, None], y.flip(-1), y)
    out = []
    for img in y:
        img = img[None]
        r = rng.random()
        if r < 0.25:
            img = F.interpolate(_resize(img, int(rng.integers(24, 48))), size=(SIZE, SIZE), mode="bilinear",
                                align_corners=False)
        elif r < 0.55:
            img = _gaussian_blur(img, rng.uniform(0.3, 1.2))
        img = (img * rng.uniform(0.9, 1.1) + rng.uniform(-0.04, 0.04)).clamp(0, 1)
        out.append(img)
    return (torch.cat(out) * 255).round().to(torch.uint8)


def train_detector(faces: torch.Tensor, steps: int = 3500, batch: int = 48, lr: float = 2e-3, seed: int = 0,
                   width: int = 32, log_every: int = 100) -> BlotchNet:
    """Teach a :class:`BlotchNet` to tell clean faces (uint8 ``(N, 3, 64, 64)``) from the same with artifacts."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = BlotchNet(width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    half = batch // 2
    t0, seen = time.time(), []
    for step in range(1, steps + 1):
        idx = torch.as_tensor(rng.choice(len(faces), batch, replace=False))
        x = faces[idx]
        x = torch.cat([x[:half], random_artifacts(x[half:], rng)])
        x = _jitter(x, rng)
        y = torch.cat([torch.zeros(half), torch.ones(batch - half)])
        net.train()
        score, _ = net(features(x))
        loss = F.binary_cross_entropy_with_logits(score, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen.append(float(((score > 0).float() == y).float().mean()))
        if log_every and (step % log_every == 0 or step == steps):
            print(f"step {step:,}/{steps:,}: loss {loss.item():.3f}, accuracy {100 * np.mean(seen[-log_every:]):.1f}% "
                  f"({time.time() - t0:.0f} s)", flush=True)
    return net.eval()


# --------------------------------------------------------------------------- the judge


@dataclass
class BlotchJudge:
    """Flags outputs a trained :class:`BlotchNet` scores above ``threshold`` (a painted patch, spot or smear).

    Same questions as :class:`helpers.metrics.RealismJudge` (``scores``, ``flags``, ``flag_rate``,
    ``where``); the inputs are accepted and not used: it judges the output alone, as a viewer does.
    """

    net: BlotchNet
    threshold: float
    note: dict
    size: int = SIZE

    @torch.no_grad()
    def score(self, outputs, batch: int = 256) -> tuple[np.ndarray, torch.Tensor]:
        """``(scores (N,), maps (N, 16, 16))`` of the outputs."""
        outputs = torch.as_tensor(outputs)
        self.net.eval()
        s, m = [], []
        for i in range(0, len(outputs), batch):
            a, b = self.net(features(outputs[i : i + batch]))
            s.append(a)
            m.append(b)
        if not s:
            return np.zeros(0), torch.zeros(0, MAP, MAP)
        return torch.cat(s).numpy(), torch.cat(m)

    def scores(self, outputs, inputs=None) -> pd.DataFrame:
        """One row per output: ``score`` (the detector's), ``severity`` (score minus the threshold) and ``flagged``."""
        if inputs is not None and len(torch.as_tensor(inputs)) != len(torch.as_tensor(outputs)):
            raise ValueError(f"{len(outputs)} outputs but {len(inputs)} inputs: give one input per output")
        s, _ = self.score(outputs)
        return pd.DataFrame({"score": s, "severity": s - self.threshold, "flagged": s > self.threshold})

    def flags(self, outputs, inputs=None) -> np.ndarray:
        return self.scores(outputs, inputs)["flagged"].to_numpy()

    def flag_rate(self, outputs, inputs=None) -> float:
        """Percentage of the outputs flagged (NaN for none)."""
        outputs = torch.as_tensor(outputs)
        return 100.0 * float(self.flags(outputs).mean()) if len(outputs) else math.nan

    def where(self, outputs, inputs=None) -> torch.Tensor:
        """``(N, size, size)`` booleans: where on each output the detector objects (its map above the threshold
        that the map's own scale implies, enlarged to the face)."""
        _, m = self.score(outputs)
        hot = m - (self.threshold + math.log(float(self.net.face.sum())))  # one such cell alone would pass the score
        up = F.interpolate(hot[:, None], size=(self.size, self.size), mode="bilinear", align_corners=False)[:, 0]
        return (up > -1.0) & face_mask(self.size, 1.15)

    def caption(self, row) -> str:
        return f"score {row['score']:+.1f}\n(flag > {self.threshold:+.1f})"


def save(net: BlotchNet, threshold: float, note: dict, path=None) -> Path:
    from safetensors.torch import save_file

    path = Path(path or FILE)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()
               if v.is_floating_point()}
    tensors.update({k: v.detach().contiguous() for k, v in net.state_dict().items() if not v.is_floating_point()})
    meta = {"model": "realism", "threshold": repr(float(threshold)), "width": str(net.body[0].out_channels),
            "note": json.dumps(note)}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load(path=None) -> BlotchJudge:
    """The shipped detector (or the one at ``path``) as a :class:`BlotchJudge`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path or FILE)
    redo = "restore it with `git checkout weights/realism.safetensors`, or train it again: python -m helpers.realism"
    if not path.is_file():
        raise RealismUnavailable(f"the realism detector {path} is missing: {redo}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 -- any failure to read is the same advice
        raise RealismUnavailable(f"{path} is not a readable safetensors file ({err}): {redo}") from None
    if meta.get("model") != "realism":
        raise RealismUnavailable(f"{path} holds {meta.get('model')!r} weights, not the realism detector: {redo}")
    net = BlotchNet(int(meta.get("width", 32)))
    state = net.state_dict()
    net.load_state_dict({k: tensors[k].to(state[k].dtype) for k in state})
    return BlotchJudge(net.eval(), float(meta["threshold"]), json.loads(meta.get("note", "{}")))


_JUDGE: BlotchJudge | None = None


def judge() -> BlotchJudge:
    """The course's realism measure: the shipped detector, loaded once."""
    global _JUDGE
    if _JUDGE is None:
        _JUDGE = load()
    return _JUDGE


# --------------------------------------------------------------------------- training it again


def _faces(source: str, path=None, max_images=None):
    from .cache import build_cache
    from .runs import load_split

    src, train_df, test_df = load_split(source, path, max_images, verbose=False)
    return src, build_cache(train_df, SIZE, verbose=False), build_cache(test_df, SIZE, verbose=False)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m helpers.realism", description="Train the realism detector again "
                                "(real faces and toy faces), set its threshold, validate it and save it.")
    p.add_argument("--faces", default=None, help="the real faces' folder (default: FACEAGING_SOURCE_PATH or the sample)")
    p.add_argument("--steps", type=int, default=3500)
    p.add_argument("--held-out", type=int, default=600, help="clean training faces per source kept for the threshold")
    p.add_argument("--false-alarms", type=float, default=2.0, help="%% of held-out clean faces above the threshold")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(FILE))
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from . import metrics as M

    rng = np.random.default_rng(0)
    train, held, tests = [], [], {}
    for source, path in (("utkface", a.faces), ("toy", None)):
        src, tr, te = _faces(source, path)
        x = tr.tensor()
        order = rng.permutation(len(x))
        held.append(x[torch.as_tensor(order[: a.held_out])])
        train.append(x[torch.as_tensor(order[a.held_out:])])
        tests[src] = te
        print(f"{src}: {len(x) - a.held_out:,} training faces, {a.held_out} held out, {len(te):,} test faces", flush=True)
    t0 = time.time()
    net = train_detector(torch.cat(train), steps=a.steps)
    minutes = (time.time() - t0) / 60
    probe = BlotchJudge(net, 0.0, {})
    held_scores = np.concatenate([probe.score(h)[0] for h in held])
    threshold = float(np.percentile(held_scores, 100 - a.false_alarms))
    j = BlotchJudge(net, threshold, {})
    checks = {}
    for src, te in tests.items():
        checks[src] = M.realism_check(te.tensor(), te.table, n=300, judge=j)
        print(f"{src}:", *M.realism_check_lines(checks[src]), sep="\n  ", flush=True)
    note = {"command": "python -m helpers.realism", "steps": a.steps, "train_minutes": round(minutes, 1),
            "threads": torch.get_num_threads(), "false_alarms_held_out": a.false_alarms,
            "checks": {k: {kk: (round(v, 1) if isinstance(v, float) else v) for kk, v in c.items()}
                       for k, c in checks.items()}}
    out = save(net, threshold, note, a.out)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB), threshold {threshold:+.2f}, {minutes:.1f} min")


if __name__ == "__main__":
    main()
