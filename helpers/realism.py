"""Would an output pass for a photo? A small learned blotch detector, the course's realism measure.

Notebook 07's realism column asks of every output: has the model painted something on the face
that no photo has (a bruise-coloured patch, a dark spot, a smear along the jaw)? The first measure
the course tried, :class:`RealismJudge`, compares each output with its input by hand-made colour
rules (last paragraph). On 300 planted faces of the UTKFace sample it found only 73.7% of the
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

Validation (:func:`realism_check`) plants artifacts with another generator
(:func:`plant_artifacts`: four fixed colours, dark spots, a jaw smear) on *test*
faces it never saw, and asks for at least 90% of them flagged, at most 5% of the same faces
unaltered, and at most 5% of real faces of the other age group (grey hair and lines are not
artifacts). On 300 test faces of the UTKFace sample the shipped detector flags 96.5% of planted
faces (purple 98%, green 99%, orange 97%, blue 100%, dark 89%, jaw 96%), 1.3% of the same faces
unaltered and 1.7% of real faces of the other age group; on 300 toy test faces 98.6%, 0% and 0%
(the model card, ``weights/README.md``, has the rest). On the shipped models it flags 31% of the
age GAN's outputs and 6-9% of CycleGAN's, and the faces it flags most are the age GAN's smears.

**The first measure, kept for comparison** (:class:`RealismJudge`, :data:`RULES`): hand-made
colour rules comparing each output with its input (in CIE L*a*b*, after a 1-px blur, inside the
face ellipse :data:`FACE_ELLIPSE`): an output colour far from every input colour nearby *and*
from the face's own palette (its skin hue, greys) counts as painted, and so does a lone dark
spot with no mirrored twin. On the same 300 test faces it flagged 73.7% of planted artifacts
(dark spots 32%, orange 68%, jaw 58%) and 5.3% of real faces of the other age: a real face of
another person differs from the input by dark features (brows, folds, a beard) in other places,
and every setting that found more planted spots also flagged more of those real faces. It also
excused a patch in a colour the photo's background has, and read the age GAN's grey-purple
blotches, darker and *less* saturated than the skin, as greying. A measure that learns what a
clean photo looks like avoids both comparisons.

The trained network ships as ``weights/realism.safetensors``; ``python -m helpers.realism`` trains it
again (about 15 minutes on one CPU thread) and prints the validation.
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
from .metrics import _resize, to_unit
from .splits import AgeRange

__all__ = [
    "BlotchNet", "BlotchJudge", "features", "random_artifacts", "train_detector", "judge", "load", "save", "FILE",
    "RealismUnavailable", "FACE_ELLIPSE", "PLANT_KINDS", "rgb_to_lab", "lab_to_rgb", "face_mask", "RealismJudge",
    "RULES", "REALISM_SIZE", "realism_flag_rate", "plant_artifacts", "unaltered", "other_age_pairs",
    "realism_check", "realism_check_lines", "show_realism", "show_planted",
]

#: The shipped detector.
FILE: Path = config.ROOT / "weights" / "realism.safetensors"
SIZE = 64  # every face is judged at this size
MAP = 16  # the detector's map of where it objects (SIZE / 4)


# --------------------------------------------------------------------------- colour, the face, and the first (hand-made) measure

#: Where the face lies in the course's crops (UTKFace framing, which helpers.faces also cuts photos to):
#: an ellipse with centre (cx, cy) and semi-axes (ax, ay), as fractions of the crop's side.
FACE_ELLIPSE = (0.5, 0.56, 0.34, 0.42)
#: The artifacts :func:`plant_artifacts` paints: four colour patches, dark spots, a colour smear along the jaw.
PLANT_KINDS = ("purple", "green", "orange", "blue", "dark", "jaw")
#: The patch colours as CIE a*, b* (and a change of lightness L*): saturated, none of them a skin tone.
PATCH_COLOURS = {"purple": (45.0, -35.0, -8.0), "green": (-40.0, 35.0, -5.0), "orange": (35.0, 65.0, 0.0),
                 "blue": (0.0, -45.0, -5.0)}

_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
_D65 = torch.tensor([0.95047, 1.0, 1.08883])


def rgb_to_lab(images) -> torch.Tensor:
    """sRGB faces (uint8 or [-1, 1] float, ``(N, 3, H, W)``) -> CIE L*a*b* under D65: L* 0..100, a*, b* about -100..100."""
    rgb = to_unit(images)
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", _RGB_TO_XYZ, lin) / _D65[None, :, None, None]
    d = 6 / 29
    f = torch.where(xyz > d**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * d * d) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_lab`: float sRGB in [-1, 1] (colours outside the gamut are clipped)."""
    d = 6 / 29
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    xyz = torch.where(f > d, f**3, 3 * d * d * (f - 4 / 29)) * _D65[None, :, None, None]
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_XYZ), xyz).clamp(0, 1)
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0, 1) * 2 - 1


def face_mask(size: int, scale: float = 1.0) -> torch.Tensor:
    """``(size, size)`` booleans: the face ellipse (:data:`FACE_ELLIPSE`, its semi-axes times ``scale``)."""
    cx, cy, ax, ay = FACE_ELLIPSE
    xx, yy = _unit_grid(size)
    return ((xx - cx) / (ax * scale)) ** 2 + ((yy - cy) / (ay * scale)) ** 2 <= 1.0


def _unit_grid(size: int):
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return xx, yy


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    k = int(math.ceil(3 * sigma))
    t = torch.arange(-k, k + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    x = F.pad(x, (k, k, k, k), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _max_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """The maximum over a (2r+1)-square window, same size (x: ``(N, C, H, W)``)."""
    return F.max_pool2d(F.pad(x, (r,) * 4, mode="replicate"), 2 * r + 1, 1) if r > 0 else x


def _min_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    return -_max_filter(-x, r)


@dataclass(frozen=True)
class RealismJudge:
    """Flags outputs that would not pass for a photo: colour or dark spots that the change painted on the face.

    The settings (sizes in pixels of the ``size``-px analysis grid, colours in CIE Lab units,
    where a difference of about 2.3 is just noticeable) are the method's, fixed before it was
    measured; :func:`realism_check` says how it does on planted artifacts and real faces.
    """

    size: int = 64  # every pair is compared at this size (the course's models work at 64 px)
    blur: float = 1.0  # Gaussian blur (px) before anything: colour and shape, not pixel noise
    reach: int = 4  # the change may move a colour this far (px) without creating it
    gain: float = 1.3  # ... and make it this much more saturated (ruddier cheeks), or any amount greyer
    hue_tolerance: float = 40.0  # degrees of hue either side of the face's own skin colour that are natural
    chroma_gain: float = 1.4  # natural colours are at most this times the skin's chroma ...
    chroma_extra: float = 8.0  # ... plus this
    grey: float = 8.0  # colours of chroma under this (greys: white hair, shadows) are always natural
    colour_threshold: float = 7.0  # a*b* units beyond both references for a pixel to count as foreign colour
    colour_area: float = 0.01  # a connected foreign patch this share of the face flags the output
    spot_size: int = 3  # dark spots up to about 2 * spot_size + 1 px across (the black-hat's window)
    spot_reach: int = 2  # a spot must be darker than every input pixel within this many px
    symmetry_reach: int = 5  # a dark spot mirrored within this many px on the other half of the face is a feature
    dark_threshold: float = 12.0  # L* units darker than both references for a pixel to count as a spot
    dark_area: float = 0.005  # a connected spot this share of the face flags the output
    skin_colour: float = 14.0  # skin: a*b* within this of the face's median colour ...
    skin_light: float = 35.0  # ... and L* within this of its median lightness
    skin_grow_input: int = 1  # judged where the input's skin is (grown by this many px) ...
    skin_grow_output: int = 1  # ... and, for dark spots, the output's skin (holes filled; grown by this many px)
    background: float = 8.0  # Lab units: colour this close to one the output has outside the face is not judged

    def maps(self, outputs, inputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(colour, dark, face)``: per-pixel foreign colour (a*b* units) and added darkness (L*), and the face mask."""
        outputs, inputs = torch.as_tensor(outputs), torch.as_tensor(inputs)
        if outputs.shape[0] != inputs.shape[0]:
            raise ValueError(f"{len(outputs)} outputs but {len(inputs)} inputs: give one input per output")
        face = face_mask(self.size)
        y = _gaussian_blur(rgb_to_lab(_resize(to_unit(outputs) * 2 - 1, self.size)), self.blur)
        x = _gaussian_blur(rgb_to_lab(_resize(to_unit(inputs) * 2 - 1, self.size)), self.blur)
        colour = torch.minimum(self._added_colour(y, x), self._unnatural_colour(y, face))
        darker = _min_filter(x[:, :1], self.spot_reach) - y[:, :1]
        dark = torch.minimum(darker, self._lone_dark_spots(y[:, :1]))[:, 0]
        on_skin = self._skin(x, face, self.skin_grow_input)  # where the input has skin ...
        colour_on = on_skin & ~self._like_background(y, face)  # ... not what the output's surroundings have
        dark_on = on_skin & self._skin(y, face, self.skin_grow_output)  # ... inside the output's skin
        return colour.masked_fill(~colour_on, 0.0), dark.masked_fill(~dark_on, 0.0), face

    def _like_background(self, lab, face) -> torch.Tensor:
        """Face pixels whose colour (L*a*b*) is within ``background`` of a colour the output has outside
        the face ellipse: background, clothes or hair reaching in, not something painted on the face."""
        outside = ~face_mask(lab.shape[-1], 1.1)
        out = []
        for img in lab:
            ring = img[:, outside].T[::2]  # (M, 3)
            inner = img[:, face].T  # (K, 3)
            d = torch.cdist(inner, ring).min(1).values if len(ring) else torch.full((len(inner),), float("inf"))
            m = torch.zeros(face.shape, dtype=torch.bool)
            m[face] = d <= self.background
            out.append(m)
        return torch.stack(out) if out else torch.zeros((0, *face.shape), dtype=torch.bool)

    def _skin(self, lab, face, grow: int) -> torch.Tensor:
        """The face's skin with everything it encloses (eyes, mouth, a patch painted on it), grown by
        ``grow`` px: pixels near the face's median colour, closed and hole-filled. What it leaves out,
        background, hair and clothes reaching into the face's ellipse, no change there is judged on."""
        from scipy import ndimage

        ref_ab = lab[:, 1:, face].median(2).values
        ref_l = lab[:, 0, face].median(1).values
        near = (((lab[:, 1:] - ref_ab[:, :, None, None]).norm(dim=1) <= self.skin_colour)
                & ((lab[:, 0] - ref_l[:, None, None]).abs() <= self.skin_light) & face)
        cross = ndimage.generate_binary_structure(2, 1)
        out = []
        for m in near.numpy():
            m = ndimage.binary_fill_holes(ndimage.binary_closing(m, cross, iterations=2))
            out.append(ndimage.binary_dilation(m, cross, iterations=grow) if grow else m)
        return torch.from_numpy(np.stack(out)) if out else torch.zeros_like(near)

    def _added_colour(self, y, x) -> torch.Tensor:
        """How far (a*b*) each output colour lies from every input colour within ``reach``, each allowed
        to grow greyer or up to ``gain`` times more saturated: colour that the change created."""
        r, h = self.reach, y.shape[-1]
        yab = y[:, 1:]
        xab = F.pad(x[:, 1:] * self.gain, (r,) * 4, mode="replicate")
        best = torch.full_like(y[:, 0], float("inf"))
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy * dy + dx * dx > r * r + r:
                    continue
                v = xab[:, :, r + dy : r + dy + h, r + dx : r + dx + h]
                t = ((yab * v).sum(1) / (v * v).sum(1).clamp_min(1e-6)).clamp(0, 1)
                best = torch.minimum(best, (yab - t[:, None] * v).pow(2).sum(1))
        return best.sqrt()

    def _unnatural_colour(self, lab, face) -> torch.Tensor:
        """How far (a*b*) each colour lies outside the colours a face has: its own skin hue within
        ``hue_tolerance`` up to ``chroma_gain`` times its chroma (+ ``chroma_extra``), or near-grey."""
        ab = lab[:, 1:]
        ref = ab[:, :, face].median(2).values  # (N, 2): the skin colour, robust to a patch
        c_ref = ref.norm(dim=1)
        h_ref = torch.atan2(ref[:, 1], ref[:, 0])
        rmax = (self.chroma_gain * c_ref + self.chroma_extra)[:, None, None]
        chroma = ab.norm(dim=1)
        dh = torch.remainder(torch.atan2(ab[:, 1], ab[:, 0]) - h_ref[:, None, None] + math.pi, 2 * math.pi) - math.pi
        off = dh.abs() - math.radians(self.hue_tolerance)
        # outside the hue range: the distance to the nearer edge of the sector (a segment from 0 to rmax)
        along = torch.minimum((chroma * torch.cos(off.clamp(max=math.pi / 2))).clamp_min(0), rmax)
        to_edge = (chroma**2 - 2 * chroma * along * torch.cos(off) + along**2).clamp_min(0).sqrt()
        d = torch.where(off <= 0, (chroma - rmax).clamp_min(0), to_edge)
        return torch.minimum(d, (chroma - self.grey).clamp_min(0))

    def _lone_dark_spots(self, L) -> torch.Tensor:
        """Small dark blobs (a black-hat: the closing minus the image) that have no twin on the other
        half of the face: eyes, nostrils and mouth corners come in mirrored pairs, a bruise does not."""
        k = self.spot_size
        hat = _min_filter(_max_filter(L, k), k) - L
        return hat - _max_filter(hat.flip(-1), self.symmetry_reach)

    def scores(self, outputs, inputs) -> pd.DataFrame:
        """One row per output: ``colour_patch`` and ``dark_spot`` (the largest connected foreign-colour /
        dark-spot region, as a share of the face), ``flagged`` and ``severity`` (how far past its limit)."""
        from scipy import ndimage

        colour, dark, face = self.maps(outputs, inputs)
        face_np, area = face.numpy(), float(face.sum())
        rows = []
        for c, d in zip(colour.numpy(), dark.numpy()):
            rec = {}
            for name, m in (("colour_patch", c > self.colour_threshold), ("dark_spot", d > self.dark_threshold)):
                lab, n = ndimage.label(m & face_np)
                rec[name] = float(np.bincount(lab.ravel())[1:].max()) / area if n else 0.0
            rows.append(rec)
        df = pd.DataFrame(rows, columns=["colour_patch", "dark_spot"])
        df["severity"] = np.maximum(df["colour_patch"] / self.colour_area, df["dark_spot"] / self.dark_area)
        df["flagged"] = (df["colour_patch"] >= self.colour_area) | (df["dark_spot"] >= self.dark_area)
        return df

    def flags(self, outputs, inputs) -> np.ndarray:
        """Booleans: which outputs would not pass for a real photo of the input's face."""
        return self.scores(outputs, inputs)["flagged"].to_numpy()

    def where(self, outputs, inputs) -> torch.Tensor:
        """``(N, size, size)`` booleans: the foreign colour and the lone dark spots the change painted."""
        colour, dark, face = self.maps(outputs, inputs)
        return ((colour > self.colour_threshold) | (dark > self.dark_threshold)) & face

    def caption(self, row) -> str:
        return f"colour {100 * row['colour_patch']:.1f}%\nspot {100 * row['dark_spot']:.1f}%"

    def flag_rate(self, outputs, inputs, batch: int = 256) -> float:
        """Percentage of outputs flagged (computed in batches)."""
        outputs, inputs = torch.as_tensor(outputs), torch.as_tensor(inputs)
        if len(outputs) == 0:
            return math.nan
        hits = sum(int(self.flags(outputs[i : i + batch], inputs[i : i + batch]).sum())
                   for i in range(0, len(outputs), batch))
        return 100.0 * hits / len(outputs)


#: The first realism measure, hand-made colour rules (kept for comparison; the module docstring has its figures).
RULES = RealismJudge()
#: The size (px) every realism measure judges faces at.
REALISM_SIZE = SIZE


def realism_flag_rate(outputs, inputs, judge=None) -> float:
    """Percentage of ``outputs`` that would not pass for a real photo (the table's realism column)."""
    return (judge or _course_judge()).flag_rate(outputs, inputs)


def _soft_disc(rho: torch.Tensor) -> torch.Tensor:
    """1 inside 0.6 of the radius, 0 beyond 1.4, a smooth step between (0.5 at the radius)."""
    t = ((1.4 - rho) / 0.8).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _blob(size: int, centre, area: float, aspect: float, angle: float) -> torch.Tensor:
    xx, yy = _unit_grid(size)
    a = math.sqrt(area / (math.pi * aspect))
    dx, dy = xx - centre[0], yy - centre[1]
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / a
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / (a * aspect)
    return _soft_disc(torch.sqrt(u * u + v * v))


def _point_in_face(rng, scale: float):
    cx, cy, ax, ay = FACE_ELLIPSE
    while True:
        u, v = rng.uniform(-1, 1, 2)
        if u * u + v * v <= 1:
            return cx + u * ax * scale, cy + v * ay * scale


def _tint(lab_i: torch.Tensor, alpha: torch.Tensor, colour) -> None:
    a_t, b_t, dl = colour
    lab_i[0] += alpha * dl
    lab_i[1] = (1 - alpha) * lab_i[1] + alpha * a_t
    lab_i[2] = (1 - alpha) * lab_i[2] + alpha * b_t


def plant_artifacts(images, kind: str, rng: np.random.Generator):
    """The faces with artifacts like the age GAN's painted on, to check that a realism measure sees them.

    ``kind`` (one of :data:`PLANT_KINDS`, or ``"patch"`` for a colour drawn per face):

    - ``"purple"``, ``"green"``, ``"orange"``, ``"blue"``: a soft, saturated patch of that colour
      covering 2-10% of the face (an ellipse of random shape, angle and place, 55-80% opaque at its
      centre, fading out over its edge; the face's shading shows through);
    - ``"dark"``: one to three soft dark spots (0.6-2% of the face each), 45-70% darker, put on skin
      (where the face is at least as light as its median), like the bruises and X marks;
    - ``"jaw"``: a smear of one of the four colours along the lower outline of the face.

    ``images``: uint8 or [-1, 1] float ``(N, 3, H, W)``; returns the same type. ``rng``: a NumPy
    Generator, so a given seed plants the same artifacts.
    """
    x = torch.as_tensor(images)
    if kind not in PLANT_KINDS + ("patch",):
        raise ValueError(f"unknown artifact {kind!r}: use one of {', '.join(PLANT_KINDS + ('patch',))}")
    lab = rgb_to_lab(x)
    n, _, size, _ = lab.shape
    cx, cy, ax, ay = FACE_ELLIPSE
    face_area = math.pi * ax * ay
    xx, yy = _unit_grid(size)
    for i in range(n):
        k = rng.choice(list(PATCH_COLOURS)) if kind == "patch" else kind
        if k in PATCH_COLOURS:
            area = rng.uniform(0.02, 0.10) * face_area
            alpha = rng.uniform(0.55, 0.8) * _blob(size, _point_in_face(rng, 0.55), area, rng.uniform(0.5, 1.0),
                                                   rng.uniform(0, math.pi))
            _tint(lab[i], alpha, PATCH_COLOURS[k])
        elif k == "dark":
            light = _gaussian_blur(lab[i : i + 1, :1], 1.5)[0, 0]
            inner = face_mask(size, 0.7)
            skin = torch.nonzero(inner & (light >= light[inner].median()))
            alpha = torch.zeros(size, size)
            for _ in range(int(rng.integers(1, 4))):
                py, px = skin[int(rng.integers(len(skin)))].tolist()
                spot = _blob(size, ((px + 0.5) / size, (py + 0.5) / size), rng.uniform(0.006, 0.02) * face_area,
                             rng.uniform(0.3, 1.0), rng.uniform(0, math.pi))
                alpha = torch.maximum(alpha, spot)
            lab[i, 0] *= 1 - alpha * rng.uniform(0.45, 0.7)
            lab[i, 1:] *= 1 - alpha * 0.4
        else:  # "jaw": along the ellipse's lower arc, just inside the outline
            s = rng.uniform(0.82, 0.9)
            u, v = (xx - cx) / (ax * s), (yy - cy) / (ay * s)
            theta, r = torch.atan2(v, u), torch.sqrt(u * u + v * v)  # the chin is at theta = pi / 2
            along = ((theta - (math.pi / 2 + rng.uniform(-0.5, 0.5))).abs() / rng.uniform(0.5, 1.0)).clamp(0, 1)
            along = 1 - along * along * (3 - 2 * along)
            width = rng.uniform(0.04, 0.07) / min(ax, ay)
            alpha = rng.uniform(0.6, 0.85) * along * _soft_disc((r - 1).abs() / (width / 2))
            _tint(lab[i], alpha, PATCH_COLOURS[rng.choice(list(PATCH_COLOURS))])
    out = lab_to_rgb(lab)
    return ((out + 1) * 127.5).round().clamp(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else out


def unaltered(images) -> torch.Tensor:
    """What a model that changes nothing returns: each face shrunk to half size and back, shifted by a
    pixel and 5% brighter (uint8 or [-1, 1] in, the same type out)."""
    x = torch.as_tensor(images)
    s = to_unit(x)
    h = s.shape[-1]
    s = F.interpolate(_resize(s, max(1, h // 2)), size=(h, h), mode="bilinear", align_corners=False)
    s = (torch.roll(s, 1, -1) * 1.05).clamp(0, 1)
    return (s * 255).round().to(torch.uint8) if x.dtype == torch.uint8 else s * 2 - 1


def other_age_pairs(images, table: pd.DataFrame, young="15-30", old="50+", n: int | None = None,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(outputs, inputs)`` index pairs: real faces of one age group judged as if they were the model's
    output for a real face of the other group, both ways (old for young inputs, young for old inputs).

    Each output face is paired with the face of the other group that looks most like it at 8x8 px
    (pose, light and skin; of the same gender and race where the table says), the nearest real
    stand-in for "this input, aged" that a data set without repeated people has. ``n`` faces per
    direction at most (a seeded draw).
    """
    ages = table["age"].to_numpy()
    groups = [np.flatnonzero(AgeRange.parse(g).contains(ages)) for g in (young, old)]
    small = _resize(to_unit(torch.as_tensor(images)), 8).flatten(1)
    rng = np.random.default_rng(seed)
    outs, ins = [], []
    for src, dst in ((groups[1], groups[0]), (groups[0], groups[1])):  # old faces for young inputs, and back
        if len(src) == 0 or len(dst) == 0:
            continue
        pick = np.sort(rng.choice(src, min(n or len(src), len(src)), replace=False))
        for b in pick:
            pool = dst
            for col in ("gender", "race"):
                if col in table.columns and pd.notna(table[col].iloc[b]):
                    same = pool[table[col].iloc[pool].to_numpy() == table[col].iloc[b]]
                    pool = same if len(same) else pool
            outs.append(b)
            ins.append(pool[int((small[pool] - small[b]).pow(2).sum(1).argmin())])
    return np.asarray(outs, dtype=int), np.asarray(ins, dtype=int)


def realism_check(images, table: pd.DataFrame, n: int = 300, seed: int = 0, judge=None,
                  young="15-30", old="50+") -> dict:
    """The realism measure's validation on real faces: the flag rates (%) it must get right.

    - ``planted:<kind>`` for each of :data:`PLANT_KINDS` and ``planted`` (all kinds together):
      ``n`` faces with artifacts planted (:func:`plant_artifacts`), judged against the clean
      face; it must flag at least 90%;
    - ``clean``: the same faces unaltered (:func:`unaltered`: what a do-nothing model returns);
      at most 5%;
    - ``other age``: real faces of the other age group against a young (old) input
      (:func:`other_age_pairs`): real aging, grey hair, paler skin and lines, must not be flagged;
      at most 5%.

    ``images``: uint8 ``(N, 3, H, W)`` faces; ``table``: their ``age`` (and ``gender``, ``race``) columns.
    """
    judge = judge or _course_judge()
    x = torch.as_tensor(images)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), min(n, len(x)), replace=False))
    faces = x[torch.as_tensor(idx)]
    out = {"faces": int(len(faces))}
    hits = []
    for i, kind in enumerate(PLANT_KINDS):
        flags = judge.flags(plant_artifacts(faces, kind, np.random.default_rng(seed + 1 + i)), faces)
        out[f"planted:{kind}"] = 100.0 * float(flags.mean())
        hits.append(flags)
    out["planted"] = 100.0 * float(np.concatenate(hits).mean())
    out["clean"] = judge.flag_rate(unaltered(faces), faces)
    o, i = other_age_pairs(x, table, young, old, n=n // 2 if n else None, seed=seed)
    out["other age"] = judge.flag_rate(x[torch.as_tensor(o)], x[torch.as_tensor(i)]) if len(o) else math.nan
    out["other age faces"] = int(len(o))
    return out


def realism_check_lines(check: dict) -> list[str]:
    """:func:`realism_check`'s rates as lines of text, with the targets."""
    kinds = ", ".join(f"{k} {check[f'planted:{k}']:.0f}%" for k in PLANT_KINDS)
    ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
    return [f"planted artifacts flagged: {check['planted']:.1f}% of {check['faces']} faces x {len(PLANT_KINDS)} kinds "
            f"(target >= 90%: {ok(check['planted'] >= 90)}); {kinds}",
            f"the same faces unaltered flagged: {check['clean']:.1f}% (target <= 5%: {ok(check['clean'] <= 5)})",
            f"real faces of the other age group flagged: {check['other age']:.1f}% of {check['other age faces']} "
            f"(target <= 5%: {ok(check['other age'] <= 5)})"]


def show_realism(inputs, outputs, judge=None, n: int = 8, order: str = "most",
                 labels=None, title: str | None = None):
    """Inputs, outputs and what the realism measure flags on them, as a figure of three rows.

    Row 3 shows the output greyed, with where the measure objects in magenta (``judge.where``),
    and each column is titled with the verdict and captioned with the measure's figures. ``order``: ``"most"`` shows the ``n`` outputs flagged most (highest
    severity), ``"least"`` the ones it passes most easily, ``"given"`` the first ``n``. ``labels``:
    one caption per face (e.g. the artifact planted or the group asked for).
    """
    import matplotlib.pyplot as plt

    judge = judge or _course_judge()
    inputs, outputs = torch.as_tensor(inputs), torch.as_tensor(outputs)
    s = judge.scores(outputs, inputs)
    idx = {"most": np.argsort(-s["severity"].to_numpy(), kind="stable"),
           "least": np.argsort(s["severity"].to_numpy(), kind="stable"),
           "given": np.arange(len(s))}[order][:n]
    sel = torch.as_tensor(idx)
    hot = judge.where(outputs[sel], inputs[sel])
    shown = to_unit(_resize(to_unit(outputs[sel]) * 2 - 1, judge.size))
    grey = shown.mean(1, keepdim=True).expand(-1, 3, -1, -1) * 0.6 + 0.2
    over = grey.clone()
    over[:, 0][hot], over[:, 1][hot], over[:, 2][hot] = 1.0, 0.0, 1.0
    rows = [("input", to_unit(inputs[sel])), ("output", to_unit(outputs[sel])), ("flagged where", over)]
    fig, axes = plt.subplots(3, max(1, len(idx)), figsize=(1.45 * max(1, len(idx)) + 0.8, 4.9), squeeze=False)
    for j, i in enumerate(idx):
        for r, (name, imgs) in enumerate(rows):
            ax = axes[r][j]
            ax.imshow(imgs[j].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
        row = s.iloc[int(i)]
        verdict = "FLAGGED" if row["flagged"] else "passes"
        head = f"{labels[int(i)]}\n" if labels is not None else ""
        axes[0][j].set_title(f"{head}{verdict}", fontsize=7, color="tab:red" if row["flagged"] else "tab:green")
        axes[2][j].set_xlabel(judge.caption(row), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def show_planted(images, seed: int = 0, judge=None):
    """One real face per artifact kind (:data:`PLANT_KINDS`), then the same faces unaltered, with what the
    measure flags (:func:`show_realism`): the validation in one picture. ``images``: at least 7 faces."""
    x = torch.as_tensor(images)
    k = len(PLANT_KINDS)
    if len(x) < k + 1:
        raise ValueError(f"show_planted needs {k + 1} faces, one per artifact and one unaltered; got {len(x)}")
    planted = torch.cat([plant_artifacts(x[i : i + 1], kind, np.random.default_rng(seed + i))
                         for i, kind in enumerate(PLANT_KINDS)] + [unaltered(x[k : k + 1])])
    return show_realism(x[: k + 1], planted, judge, n=k + 1, order="given",
                        labels=[f"planted {kind}" for kind in PLANT_KINDS] + ["unaltered"],
                        title="Artifacts planted on real faces, and where the realism measure finds them")


# --------------------------------------------------------------------------- the learned detector


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
                centre = _point_in_face(rng, 0.75)
                alpha = rng.uniform(0.3, 0.85) * _blob(size, centre, rng.uniform(0.005, 0.12) * face_area,
                                                      rng.uniform(0.35, 1.0), rng.uniform(0, math.pi))
                _tint(lab[i], alpha, _random_colour(rng, skin))
            elif kind == "dark":
                alpha = _blob(size, _point_in_face(rng, 0.7), rng.uniform(0.003, 0.025) * face_area, rng.uniform(0.3, 1.0),
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

    Same questions as :class:`RealismJudge` (``scores``, ``flags``, ``flag_rate``,
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
    try:
        net = BlotchNet(int(meta.get("width", 32)))
        state = net.state_dict()
        net.load_state_dict({k: tensors[k].to(state[k].dtype) for k in state})
        return BlotchJudge(net.eval(), float(meta["threshold"]), json.loads(meta.get("note", "{}")))
    except (KeyError, ValueError, RuntimeError) as err:  # a tensor, the threshold or a shape not as written
        raise RealismUnavailable(f"{path} is not a complete realism detector ({type(err).__name__}: {err}): "
                                 f"{redo}") from None


_JUDGE: BlotchJudge | None = None


def judge() -> BlotchJudge:
    """The course's realism measure: the shipped detector, loaded once."""
    global _JUDGE
    if _JUDGE is None:
        _JUDGE = load()
    return _JUDGE


_course_judge = judge  # the functions above take a ``judge`` argument, which hides this name inside them


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
        checks[src] = realism_check(te.tensor(), te.table, n=300, judge=j)
        print(f"{src}:", *realism_check_lines(checks[src]), sep="\n  ", flush=True)
    note = {"command": "python -m helpers.realism", "steps": a.steps, "train_minutes": round(minutes, 1),
            "threads": torch.get_num_threads(), "false_alarms_held_out": a.false_alarms,
            "checks": {k: {kk: (round(v, 1) if isinstance(v, float) else v) for kk, v in c.items()}
                       for k, c in checks.items()}}
    out = save(net, threshold, note, a.out)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB), threshold {threshold:+.2f}, {minutes:.1f} min")


if __name__ == "__main__":
    main()
