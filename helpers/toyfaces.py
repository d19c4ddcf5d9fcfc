"""Toy faces: synthetic cartoon faces whose true age and identity we know.

Real face datasets (UTKFace and friends) need a download and carry only one photo of a person
at one age, so nothing in them says what *that* person would look like twenty years later.
The toy faces fix both problems. They are drawn on the spot, offline, by a small procedural
painter, and every image is a function of three numbers::

    render_face(identity, age, variant)

- ``identity`` fixes a person's traits (:class:`FaceTraits`): gender, race, skin tone, face
  shape, eyes, nose, mouth, brows, hair style and colour, and how that person ages (when the
  hair greys, whether the hairline recedes, when the first wrinkles come).
- ``age`` (1 to ~95) moves the traits along smooth, monotonic curves: a child has a big
  cranium, large eyes low on the face, a small nose and jaw; from the late thirties the hair
  greys (fully by about 70) and may recede; from about 30 wrinkles appear one by one (nasolabial
  folds, forehead lines, crow's feet, under-eye bags, later cheek furrows, jowls, neck lines),
  the skin turns paler and duller and age spots come in.
- ``variant`` fixes everything about the photo that is not the person: a small rotation,
  shift and scale, a lighting gradient, the background and the clothes.

So the same person can be drawn, in the same pose and light, at any age: that is the ground
truth the evaluation notebooks use to measure whether a model really ages a face and keeps
its identity. The aging is deliberately strong (grey hair and wrinkles survive downsampling to
64x64) so that a small GAN can learn it within minutes.

The files are written with UTKFace's naming, ``{age}_{gender}_{race}_{timestamp}.jpg.chip.jpg``,
as 200x200 RGB JPEGs, next to a ``manifest.csv`` that also records identity and variant. Every
output is deterministic: the same seed gives byte-identical files.

Command line::

    python -m helpers.toyfaces [--out DIR] [--n N] [--identities K] [--seed S] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from helpers.config import DATA

TOY_SOURCE = "toy"
#: Bump when the drawing changes, so that folders made by an older version are regenerated.
GENERATOR_VERSION = 1

RACES = ("White", "Black", "Asian", "Indian", "Others")  # UTKFace's race labels 0-4
HAIR_STYLES = ("short", "long", "bob", "curly", "buzz")
COLUMNS = ["path", "age", "gender", "race", "source", "identity", "variant"]
MANIFEST = "manifest.csv"
PARAMS = "toyfaces.json"  # what the folder's manifest was made from
MAX_AGE = 90  # dataset ages are drawn uniformly from 1..MAX_AGE (render_face accepts any age)
#: Pinned encoder settings: same pixels in, same bytes out.
JPEG_SETTINGS = dict(format="JPEG", quality=90, subsampling="4:2:0", optimize=False, progressive=False)

# ----------------------------------------------------------------------------------------------
# Palettes (RGB). Skin tones go from a light to a dark end for each UTKFace race label.
# ----------------------------------------------------------------------------------------------
RACE_FREQ = (0.42, 0.19, 0.15, 0.17, 0.07)  # roughly UTKFace's mix
SKIN_RANGE = {
    0: ((246, 216, 196), (212, 165, 134)),  # White
    1: ((150, 100, 70), (72, 46, 32)),  # Black
    2: ((245, 214, 178), (204, 158, 118)),  # Asian
    3: ((212, 160, 120), (138, 92, 62)),  # Indian
    4: ((232, 186, 150), (158, 112, 78)),  # Others
}
HAIR_COLORS = {
    "black": (28, 24, 24), "dark brown": (62, 42, 32), "brown": (105, 70, 46),
    "light brown": (148, 108, 68), "blond": (212, 176, 112), "red": (158, 72, 38),
}
HAIR_FREQ = {  # by race, in HAIR_COLORS order
    0: (0.10, 0.25, 0.27, 0.14, 0.16, 0.08),
    4: (0.30, 0.38, 0.20, 0.08, 0.03, 0.01),
}
HAIR_FREQ_DARK = (0.62, 0.33, 0.05, 0.0, 0.0, 0.0)  # Black, Asian, Indian
EYE_COLORS = {
    "brown": (96, 60, 34), "dark": (48, 32, 24), "hazel": (120, 94, 50),
    "green": (80, 118, 72), "blue": (74, 116, 168), "grey": (118, 132, 142),
}
EYE_FREQ = {0: (0.30, 0.10, 0.15, 0.13, 0.25, 0.07)}
EYE_FREQ_DARK = (0.50, 0.45, 0.05, 0.0, 0.0, 0.0)
STYLE_FREQ = {  # by gender, in HAIR_STYLES order
    0: (0.45, 0.08, 0.05, 0.20, 0.22),
    1: (0.12, 0.45, 0.25, 0.15, 0.03),
}
GREY_HAIR = (178, 178, 182)  # salt and pepper, then ...
WHITE_HAIR = (236, 236, 240)  # ... white in old age


# ----------------------------------------------------------------------------------------------
# Identity traits
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceTraits:
    """Everything that makes one toy person themselves, at every age.

    Sizes are multipliers around 1 (1 = average); colours are RGB tuples.
    """

    identity: int
    gender: int  # 0 male, 1 female (UTKFace)
    race: int  # 0-4, see RACES
    skin: tuple  # skin tone of a young adult
    face_width: float
    face_height: float
    jaw: float  # 0 narrow and pointed .. 1 wide and square
    eye_color: tuple
    eye_size: float
    eye_spacing: float
    eye_open: float  # eye height / width
    eye_tilt: float  # outer corners up (>0) or down (<0)
    brow_thickness: float
    brow_arch: float
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_fullness: float
    lip_color: tuple
    lashes: bool  # drawn eyelashes (mostly women)
    hair_style: str  # one of HAIR_STYLES
    hair_color: tuple  # before greying
    hair_volume: float
    hair_part: float  # -1..1: to which side the fringe sweeps
    grey_onset: float  # age of the first grey hair
    grey_span: float  # years from the first grey hair to fully grey
    balding: float  # 0..1: how far the hairline recedes by old age
    beard: float  # 0..1: stubble / beard density of an adult man (0: clean-shaven)
    wrinkle_onset: float  # age of the first wrinkle
    detail_seed: int  # places the wrinkles and age spots (the same at every age)


def _rng(*keys: int) -> np.random.Generator:
    """A random generator that depends only on ``keys`` (never on global state)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _mix(c1, c2, t: float) -> tuple:
    """Linear blend of two colours, ``t=0`` gives ``c1``."""
    return tuple(int(round(a + (b - a) * t)) for a, b in zip(c1, c2))


def _scale(c, f: float) -> tuple:
    return tuple(int(min(255, max(0, round(v * f)))) for v in c)


def _pick(rng, names, freq):
    p = np.asarray(freq, float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


@lru_cache(maxsize=4096)
def _traits(identity: int, seed: int) -> FaceTraits:
    rng = _rng(seed, identity, 1)
    u = rng.uniform
    gender = int(rng.integers(2))
    race = int(rng.choice(5, p=RACE_FREQ))
    male = gender == 0
    light, dark = SKIN_RANGE[race]
    skin = _mix(light, dark, u(0, 1))
    skin = tuple(int(np.clip(c + rng.integers(-6, 7), 0, 255)) for c in skin)
    hair_name = _pick(rng, list(HAIR_COLORS), HAIR_FREQ.get(race, HAIR_FREQ_DARK))
    eye_name = _pick(rng, list(EYE_COLORS), EYE_FREQ.get(race, EYE_FREQ_DARK))
    natural_lip = _scale(_mix(skin, (178, 78, 82), 0.45), 0.9)
    lipstick = u() < 0.6 and not male
    lip = _mix(natural_lip, (190, 52, 72), u(0.5, 0.9)) if lipstick else natural_lip
    style = _pick(rng, HAIR_STYLES, STYLE_FREQ[gender])
    balding = u(0.4, 1.0) if male and u() < 0.55 else u(0.0, 0.15)
    if style == "buzz" and male:
        balding = max(balding, u(0.3, 0.8))
    return FaceTraits(
        identity=int(identity), gender=gender, race=race, skin=skin,
        face_width=u(0.93, 1.07) * (1.03 if male else 0.98), face_height=u(0.95, 1.05),
        jaw=u(0.45, 1.0) if male else u(0.0, 0.5),
        eye_color=EYE_COLORS[eye_name], eye_size=u(0.88, 1.12) * (0.97 if male else 1.04),
        eye_spacing=u(0.92, 1.08), eye_open=u(0.42, 0.58), eye_tilt=u(-0.12, 0.2),
        brow_thickness=u(0.8, 1.2) * (1.25 if male else 0.85), brow_arch=u(0.3, 1.0),
        nose_length=u(0.9, 1.1), nose_width=u(0.85, 1.2) * (1.06 if male else 0.95),
        mouth_width=u(0.88, 1.12), lip_fullness=u(0.7, 1.3) * (0.9 if male else 1.12),
        lip_color=lip, lashes=not male and u() < 0.9,
        hair_style=style, hair_color=HAIR_COLORS[hair_name], hair_volume=u(0.7, 1.3),
        hair_part=u(-1, 1), grey_onset=u(33, 45), grey_span=u(22, 32),
        balding=balding, beard=u(0.35, 1.0) if male and u() < 0.5 else 0.0,
        wrinkle_onset=u(26, 35), detail_seed=int(rng.integers(2**31)),
    )


def identity_traits(identity: int, seed: int = 0) -> dict:
    """The fixed traits of toy person ``identity`` as a JSON-friendly dict.

    Keys: ``gender`` (0 male / 1 female), ``race`` (0-4), ``skin`` / ``hair_color`` /
    ``eye_color`` / ``lip_color`` (RGB lists), ``hair_style`` (one of :data:`HAIR_STYLES`),
    face and feature sizes (multipliers around 1), and the aging traits ``grey_onset``,
    ``grey_span``, ``balding``, ``beard`` and ``wrinkle_onset``. The same (identity, seed)
    always gives the same traits.
    """
    d = asdict(_traits(int(identity), int(seed)))
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------------------------
# Aging: the person's traits at a given age
# ----------------------------------------------------------------------------------------------
def _ramp(x: float, lo: float, hi: float) -> float:
    """0 below ``lo``, 1 above ``hi``, linear in between."""
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def _smooth(x: float, lo: float, hi: float) -> float:
    r = _ramp(x, lo, hi)
    return r * r * (3 - 2 * r)


@dataclass(frozen=True)
class _Face:
    """Where everything goes, for one person at one age, in frame units (0..1, y down)."""

    cx: float
    cy: float  # head centre; the cranium is above it, the face below
    a: float  # half-width of the head
    b_up: float  # cranium height above cy
    b_low: float  # face height below cy (cy to chin)
    jaw_taper: float  # how much the jaw narrows towards the chin
    jowl: float  # sagging of the lower cheeks (old age)
    eye_y: float
    eye_dx: float
    eye_rx: float
    eye_ry: float
    hood: float  # how far the upper lid droops over the eye
    brow_y: float
    nose_y: float  # bottom of the nose
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_h: float
    hairline_y: float
    growth: float  # 0 at age 1 .. 1 from age 18
    old: float  # 0 until 45 .. 1 at 90
    grey: float  # 0 .. 1 grey hair
    recede: float  # 0 .. 1 receding hairline
    skin: tuple
    hair: tuple
    lip: tuple


def _face_at_age(t: FaceTraits, age: float) -> _Face:
    """Lay out person ``t`` at ``age``. Every age effect is a monotonic ramp in ``age``."""
    g = _smooth(age, 1, 18)  # childhood -> adult proportions
    c = 1 - g
    old = _ramp(age, 45, 90)
    a = 0.33 * t.face_width * (1 + 0.03 * c)
    b_up = 0.395 * (1 + 0.05 * c)
    b_low = 0.41 * t.face_height * (1 - 0.2 * c) + 0.015 * old
    cy = 0.47 + 0.5 * (b_up - b_low) + 0.02 * c
    top, height = cy - b_up, b_up + b_low

    def at(adult, child):  # a height on the head, as a fraction from crown to chin
        return top + height * (adult * g + child * c)

    eye_y = at(0.47, 0.56)
    eye_rx = a * 0.19 * t.eye_size * (1 + 0.22 * c)
    nose_y = at(0.66 + 0.03 * (t.nose_length - 1), 0.73) + 0.01 * old
    mouth_y = at(0.79, 0.83) + 0.012 * old

    # skin: rosier in children; paler, duller and slightly yellower in old age
    skin = _mix(t.skin, _mix(t.skin, (255, 205, 200), 0.5), 0.25 * c)
    lum = sum(skin) / 3
    skin = _mix(skin, (lum * 1.05 + 8, lum * 1.0 + 6, lum * 0.97 + 4), 0.4 * old)
    grey = _ramp(age, t.grey_onset, t.grey_onset + t.grey_span) ** 0.8
    hair = _mix(t.hair_color, GREY_HAIR, grey)
    hair = _mix(hair, WHITE_HAIR, grey * _ramp(age, 60, 95))
    if t.hair_style == "buzz":
        hair = _mix(hair, skin, 0.35)
    hair = _mix(hair, skin, 0.45 * (1 - _ramp(age, 1, 5)))  # babies' thin hair
    return _Face(
        cx=0.5, cy=cy, a=a, b_up=b_up, b_low=b_low,
        jaw_taper=0.32 * c + (0.44 - 0.22 * t.jaw) * g, jowl=0.06 * old ** 1.3,
        eye_y=eye_y, eye_dx=a * 0.40 * t.eye_spacing * (1 - 0.04 * c),
        eye_rx=eye_rx, eye_ry=eye_rx * t.eye_open * (1 + 0.2 * c) * (1 - 0.12 * old),
        hood=0.35 * old, brow_y=eye_y - height * (0.085 + 0.01 * g),
        nose_y=nose_y, nose_w=a * 0.16 * t.nose_width * (0.65 + 0.35 * g) * (1 + 0.1 * old),
        mouth_y=mouth_y, mouth_w=a * 0.32 * t.mouth_width * (0.78 + 0.22 * g),
        lip_h=0.02 * t.lip_fullness * (0.8 + 0.2 * g) * (1 - 0.4 * old),
        hairline_y=at(0.15, 0.19), growth=g, old=old, grey=grey,
        recede=t.balding * _ramp(age, 22, 75) ** 1.2,
        skin=skin, hair=hair, lip=_mix(t.lip_color, skin, 0.35 * old),
    )


# ----------------------------------------------------------------------------------------------
# The canvas: draws in frame units through the photo's pose (rotation, scale, shift)
# ----------------------------------------------------------------------------------------------
class _Canvas:
    """An RGB image with a pose: every shape is given in frame units and drawn rotated, scaled
    and shifted, so the pose costs nothing extra. Colours may carry an alpha (blended)."""

    def __init__(self, img: Image.Image, angle: float, scale: float, shift: tuple):
        self.img, self.W = img, img.width
        self.draw = ImageDraw.Draw(img, "RGBA")
        cs, sn = math.cos(angle), math.sin(angle)
        self.m = scale * self.W * np.array([[cs, -sn], [sn, cs]])
        self.off = self.W * (0.5 + np.asarray(shift))
        self.px_per_unit = scale * self.W
        self.angle_deg = math.degrees(angle)

    def px(self, pts) -> list:
        p = (np.asarray(pts, float).reshape(-1, 2) - 0.5) @ self.m.T + self.off
        return p.ravel().tolist()

    def polygon(self, pts, fill, outline=None, width=0.0):
        w = max(1, round(width * self.px_per_unit)) if outline else 0
        self.draw.polygon(self.px(pts), fill=fill, outline=outline, width=w)

    def ellipse(self, cx, cy, rx, ry, fill, n=28):
        self.polygon(_unit_circle(n) * (rx, ry) + (cx, cy), fill)

    def line(self, pts, fill, width):
        self.draw.line(self.px(pts), fill=fill, width=max(1, round(width * self.px_per_unit)),
                       joint="curve")

    def arc(self, cx, cy, r, start, end, fill, width):
        (x, y), r_px = self.px([cx, cy]), r * self.px_per_unit
        box = [x - r_px, y - r_px, x + r_px, y + r_px]
        self.draw.arc(box, start + self.angle_deg, end + self.angle_deg, fill=fill,
                      width=max(1, round(width * self.px_per_unit)))


@lru_cache(maxsize=None)
def _unit_circle(n: int) -> np.ndarray:
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(th), np.sin(th)], axis=1)


def _rgba(c, alpha: float = 255) -> tuple:
    return (*c[:3], int(max(0, min(255, alpha))))


def _curve(p0, p1, p2, n=10) -> np.ndarray:
    """Quadratic Bezier from p0 to p2 pulled towards p1."""
    s = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, float) for p in (p0, p1, p2))
    return (1 - s) ** 2 * p0 + 2 * (1 - s) * s * p1 + s**2 * p2


# ----------------------------------------------------------------------------------------------
# Drawing, one feature at a time
# ----------------------------------------------------------------------------------------------
def _head_outline(f: _Face, th=None) -> np.ndarray:
    """Points on the head's outline for angles ``th`` (0 right, pi/2 chin, 3pi/2 top)."""
    th = np.linspace(0, 2 * np.pi, 56, endpoint=False) if th is None else np.asarray(th)
    s, co = np.sin(th), np.cos(th)
    low = np.clip(s, 0, None)
    xm = 1 - f.jaw_taper * low**2 + f.jowl * np.exp(-(((s - 0.72) / 0.16) ** 2))
    y = f.cy + np.where(s < 0, f.b_up, f.b_low) * s + 0.4 * f.jowl * low**4 * f.b_low
    return np.c_[f.cx + f.a * co * xm, y]


def _draw_body(cv: _Canvas, f: _Face, clothes):
    chin = f.cy + f.b_low
    cv.ellipse(f.cx, chin + 0.30, 0.45 + 0.17 * f.growth, 0.24, _rgba(clothes), n=40)
    neck_w = f.a * (0.5 + 0.08 * f.growth)
    neck = [(f.cx - neck_w, f.cy + 0.3 * f.b_low), (f.cx + neck_w, f.cy + 0.3 * f.b_low),
            (f.cx + neck_w * 1.1, chin + 0.2), (f.cx - neck_w * 1.1, chin + 0.2)]
    cv.polygon(neck, _rgba(_scale(f.skin, 0.86)))


def _hair_outer(f: _Face, t: FaceTraits, vol: float, n=30) -> np.ndarray:
    """The top of the hair, from the left temple over the crown to the right temple."""
    th = np.linspace(np.pi, 2 * np.pi, n)
    r = np.ones_like(th)
    if t.hair_style == "curly":
        r = 1 + 0.05 * np.abs(np.sin(9 * (th - np.pi)))
    return np.c_[f.cx + (f.a + vol) * r * np.cos(th), f.cy + (f.b_up + vol) * r * np.sin(th)]


def _hair_volume(f: _Face, t: FaceTraits, age: float) -> float:
    base = {"short": 0.035, "long": 0.04, "bob": 0.045, "curly": 0.07, "buzz": 0.008}[t.hair_style]
    return base * t.hair_volume * (0.4 + 0.6 * _ramp(age, 1, 6)) * (1 - 0.8 * f.recede)


def _draw_back_hair(cv: _Canvas, f: _Face, t: FaceTraits, age: float):
    """Long, bob and curly hair behind the head and down the sides."""
    if t.hair_style not in ("long", "bob", "curly"):
        return
    vol = _hair_volume(f, t, age) * (1 - 0.5 * f.recede)
    end = {"long": f.cy + f.b_low + 0.2, "bob": f.mouth_y + 0.03,
           "curly": f.nose_y + 0.02}[t.hair_style]
    end = f.cy + (end - f.cy) * (0.55 + 0.45 * f.growth)
    flare = 0.02 + (0.04 if t.hair_style == "curly" else 0.0)
    outer = _hair_outer(f, t, vol + 0.01)
    right = [(f.cx + f.a + vol + flare, end - 0.04), (f.cx + f.a * 0.75, end)]
    left = [(f.cx - f.a * 0.75, end), (f.cx - f.a - vol - flare, end - 0.04)]
    cv.polygon(np.r_[outer, right, left], _rgba(_scale(f.hair, 0.85)))


def _draw_ears(cv: _Canvas, f: _Face):
    y = 0.5 * (f.brow_y + f.nose_y) + 0.01
    for sgn in (-1, 1):
        x = f.cx + sgn * f.a * 0.97
        cv.ellipse(x, y, 0.04, 0.075, _rgba(_scale(f.skin, 0.93)), n=20)
        cv.ellipse(x + sgn * 0.008, y, 0.018, 0.045, _rgba(_scale(f.skin, 0.78)), n=16)


def _draw_head(cv: _Canvas, f: _Face, t: FaceTraits):
    cv.polygon(_head_outline(f), _rgba(f.skin), outline=_rgba(_scale(f.skin, 0.78)), width=0.005)
    blush = 50 * (1 - f.growth) + (22 if t.gender == 1 else 0)
    for sgn in (-1, 1):  # rosy cheeks (children, women)
        cv.ellipse(f.cx + sgn * f.eye_dx * 1.1, f.nose_y - 0.01, 0.06, 0.04,
                   _rgba((228, 108, 108), blush), n=20)


def _draw_beard(cv: _Canvas, f: _Face, t: FaceTraits, age: float):
    """Stubble (a shadow) or, for the densest, a full beard on some adult men; it greys too."""
    grown = _ramp(age, 15, 22)
    if t.beard <= 0 or grown <= 0:
        return

    def cheek(sgn):  # from the cheek down to the moustache, on one side
        return [(f.cx + sgn * f.a * 0.8, f.cy + 0.1), (f.cx + sgn * f.mouth_w * 1.3, f.nose_y + 0.02),
                (f.cx + sgn * f.nose_w * 1.2, f.nose_y + 0.008)]

    jaw = _head_outline(f, np.linspace(0.05, np.pi - 0.05, 24))  # ear to ear, under the chin
    area = np.r_[jaw, cheek(-1), cheek(1)[::-1]]
    color = _mix(_scale(t.hair_color, 0.85), GREY_HAIR, min(1.0, f.grey * 1.15))
    if t.beard > 0.75:
        cv.polygon(area, _rgba(color, 235 * grown))
    else:
        cv.polygon(area, _rgba(_mix(color, _scale(f.skin, 0.4), 0.5), 120 * t.beard * grown))


def _draw_wrinkles(cv: _Canvas, f: _Face, t: FaceTraits, age: float):
    """Wrinkles appear one by one after ``wrinkle_onset`` and deepen for ~22 years each."""
    rng = _rng(t.detail_seed, 2)  # same placement at every age
    jit = rng.uniform(-1, 1, size=64)
    col = _scale(f.skin, 0.5)
    w0 = t.wrinkle_onset

    def stroke(pts, onset, i):
        k = _ramp(age, onset + 3 * jit[i], onset + 3 * jit[i] + 22)
        if k > 0:
            cv.line(pts, _rgba(col, 205 * k), 0.005 + 0.006 * k)

    # forehead lines (above the brows, below the hairline; fringes hide them)
    for j in range(4):
        y = f.brow_y - 0.045 - 0.03 * j
        half = f.a * (0.5 - 0.06 * j)
        x = np.linspace(-half, half, 9)
        pts = np.c_[f.cx + x, y - 0.012 * (1 - (x / half) ** 2) + 0.004 * np.sin(6 * x / half + jit[j])]
        stroke(pts, w0 + 4 + 7 * j, j)
    for sgn in (-1, 1):
        i = 10 if sgn < 0 else 30
        ex, ey = f.cx + sgn * f.eye_dx, f.eye_y
        for j, ang in enumerate((-0.4, 0.05, 0.5)):  # crow's feet
            d = (math.cos(ang) * sgn, math.sin(ang))
            x0, y0 = ex + sgn * f.eye_rx * 1.25 + 0.006 * d[0], ey + 0.01 * d[1]
            stroke([(x0, y0), (x0 + 0.03 * d[0], y0 + 0.03 * d[1])], w0 + 6 + 5 * j, i + j)
        bag = _curve((ex - f.eye_rx * 0.8, ey + f.eye_ry * 1.4),  # under-eye bags
                     (ex, ey + f.eye_ry * 1.4 + 0.03), (ex + f.eye_rx * 0.8, ey + f.eye_ry * 1.4))
        stroke(bag, w0 + 12, i + 4)
        fold = _curve((f.cx + sgn * f.nose_w * 1.3, f.nose_y - 0.03),  # nasolabial fold
                      (f.cx + sgn * f.mouth_w * 1.35, f.nose_y + 0.02),
                      (f.cx + sgn * f.mouth_w * 1.2, f.mouth_y + 0.04))
        stroke(fold, w0, i + 5)
        cheek = _curve((f.cx + sgn * f.a * 0.56, f.eye_y + 0.1),  # cheek furrow
                       (f.cx + sgn * f.a * 0.62, f.nose_y), (f.cx + sgn * f.a * 0.6, f.nose_y + 0.04))
        stroke(cheek, w0 + 30, i + 6)
        corner = (f.cx + sgn * f.mouth_w * 1.05, f.mouth_y + 0.01)  # marionette lines
        stroke([corner, (corner[0] + sgn * 0.01, corner[1] + 0.06)], w0 + 24, i + 7)
        jowl = _head_outline(f, [np.pi / 2 - sgn * 0.9, np.pi / 2 - sgn * 0.6, np.pi / 2 - sgn * 0.3])
        stroke(jowl + [[-sgn * 0.03, -0.03]], w0 + 34, i + 8)
    chin = f.cy + f.b_low
    for j in range(2):  # neck lines
        stroke(_curve((f.cx - 0.1, chin + 0.05 + 0.04 * j), (f.cx, chin + 0.07 + 0.04 * j),
                      (f.cx + 0.1, chin + 0.05 + 0.04 * j)), w0 + 30 + 8 * j, 50 + j)


def _draw_age_spots(cv: _Canvas, f: _Face, t: FaceTraits, age: float):
    rng = _rng(t.detail_seed, 3)
    n = 12
    xs, ys = rng.uniform(-0.75, 0.75, n), rng.uniform(0, 1, n)
    onsets, radii = rng.uniform(55, 85, n), rng.uniform(0.006, 0.011, n)
    col = _mix(_scale(f.skin, 0.62), (110, 70, 40), 0.3)
    for x, y, onset, r in zip(xs, ys, onsets, radii):
        k = _ramp(age, onset, onset + 10)
        if k > 0:  # forehead and temples for the first half, cheeks for the rest
            yy = f.hairline_y + 0.03 + y * (f.mouth_y - f.hairline_y - 0.05)
            if abs(yy - f.eye_y) < 0.05:
                yy += 0.1
            cv.ellipse(f.cx + x * f.a, yy, r, r * 0.8, _rgba(col, 170 * k), n=12)


def _draw_eyes(cv: _Canvas, f: _Face, t: FaceTraits):
    u = np.linspace(-1, 1, 13)
    dark = (38, 28, 28)
    for sgn in (-1, 1):
        ex, ey, rx, ry = f.cx + sgn * f.eye_dx, f.eye_y, f.eye_rx, f.eye_ry
        lift = -t.eye_tilt * ry * u * sgn  # outer corner up
        top = np.c_[ex + rx * u, ey - ry * (1 - u**2) ** 0.7 + lift]
        bottom = np.c_[ex + rx * u, ey + 0.85 * ry * (1 - u**2) ** 0.8 + lift]
        cv.polygon(np.r_[top, bottom[::-1]], _rgba((240, 236, 230)))
        ri = 0.8 * ry
        cv.ellipse(ex, ey + 0.05 * ry, ri, ri, _rgba(t.eye_color), n=20)
        cv.ellipse(ex, ey + 0.05 * ry, ri * 0.45, ri * 0.45, _rgba((18, 14, 14)), n=14)
        cv.ellipse(ex - 0.3 * ri, ey - 0.25 * ri, ri * 0.2, ri * 0.2, _rgba((255, 255, 255), 230), n=10)
        lid = top + np.c_[0 * u, f.hood * ry * (1 - u**2)]  # old age: the upper lid droops
        if f.hood > 0:
            cover = top - [0, 0.5 * ry]
            cv.polygon(np.r_[cover, lid[::-1]], _rgba(_scale(f.skin, 0.93)))
        cv.line(lid, _rgba(dark), 0.006 + (0.002 if t.lashes else 0))
        cv.line(bottom[2:-2], _rgba(_scale(f.skin, 0.7), 160), 0.003)
        if t.lashes:
            for j in (8, 10, 12):
                i = j if sgn > 0 else 12 - j
                x0, y0 = lid[i]
                cv.line([(x0, y0), (x0 + sgn * 0.012 * (j - 6) / 6, y0 - 0.014)], _rgba(dark), 0.004)


def _draw_brows(cv: _Canvas, f: _Face, t: FaceTraits):
    color = _mix(_scale(t.hair_color, 0.85), GREY_HAIR, f.grey * 0.7)
    width = 0.011 * t.brow_thickness * (0.7 + 0.3 * f.growth)
    for sgn in (-1, 1):
        ex = f.cx + sgn * f.eye_dx
        u = np.linspace(-1, 1, 7)
        pts = np.c_[ex + sgn * f.eye_rx * 1.15 * u, f.brow_y - 0.02 * t.brow_arch * (1 - u**2) + 0.006 * u]
        cv.line(pts, _rgba(color, 235), width)


def _draw_nose(cv: _Canvas, f: _Face):
    w, y = f.nose_w, f.nose_y
    shade = _scale(f.skin, 0.8)
    cv.ellipse(f.cx, y - 0.022, w * 0.75, w * 0.5, _rgba(_scale(f.skin, 0.92), 120), n=20)
    cv.line([(f.cx + 0.25 * w, f.eye_y + 0.03), (f.cx + 0.45 * w, y - 0.04)], _rgba(shade, 150), 0.006)
    for sgn in (-1, 1):
        nostril = _rgba(_scale(f.skin, 0.45), 220)
        cv.ellipse(f.cx + sgn * w * 0.45, y - 0.006, w * 0.28, w * 0.14, nostril, n=12)
        cv.line(_curve((f.cx + sgn * w * 0.9, y - 0.035), (f.cx + sgn * w * 1.15, y - 0.005),
                       (f.cx + sgn * w * 0.7, y)), _rgba(shade, 200), 0.005)


def _draw_mouth(cv: _Canvas, f: _Face):
    u = np.linspace(-1, 1, 13)
    x = f.cx + f.mouth_w * u
    line_y = f.mouth_y + 0.012 * f.old * u**2  # corners droop with age
    bow = 1 - 0.35 * np.exp(-((u / 0.2) ** 2))  # cupid's bow
    upper = np.c_[x, line_y - f.lip_h * (1 - u**2) ** 0.8 * bow]
    lower = np.c_[x, line_y + 1.25 * f.lip_h * (1 - u**2) ** 0.9]
    mid = np.c_[x, line_y]
    cv.polygon(np.r_[upper, mid[::-1]], _rgba(_scale(f.lip, 0.92)))
    cv.polygon(np.r_[mid, lower[::-1]], _rgba(f.lip))
    cv.line(mid, _rgba(_scale(f.lip, 0.5)), 0.006)


def _draw_front_hair(cv: _Canvas, f: _Face, t: FaceTraits, age: float):
    """The hair on top of the head, down to a hairline that recedes (M-shaped) with age."""
    vol = _hair_volume(f, t, age)
    outer = _hair_outer(f, t, vol)
    x = np.linspace(0.88, -0.88, 15) * f.a
    xr = x / f.a
    y = np.full_like(x, f.hairline_y)
    if t.hair_style == "bob":  # straight fringe
        y = np.maximum(y, f.brow_y - 0.045) + 0.01 * xr**2
    elif t.hair_style == "long":  # side-swept fringe
        y = y + 0.04 * np.clip(xr * t.hair_part + 0.3, 0, None) + 0.03 * xr**2
    else:
        y = y + 0.02 * xr**2 + 0.03 * np.abs(xr) ** 6
    depth = (f.hairline_y - (f.cy - f.b_up)) + 0.02
    y = y - f.recede * depth * (0.7 + 0.6 * xr**2)
    skull = f.cy - (f.b_up + vol) * np.sqrt(np.clip(1 - (x / (f.a + vol)) ** 2, 0, 1))
    y = np.maximum(y, skull + 0.012)
    side_y = f.eye_y - 0.01 if t.hair_style != "buzz" else f.brow_y + 0.01
    right = [(f.cx + f.a + vol * 0.6, side_y), (f.cx + f.a * 0.93, side_y)]
    left = [(f.cx - f.a * 0.93, side_y), (f.cx - f.a - vol * 0.6, side_y)]
    cap = np.r_[outer, right, np.c_[f.cx + x, y], left]
    cv.polygon(cap, _rgba(f.hair))
    _draw_hair_texture(cv, f, t, vol, x, y)


def _draw_hair_texture(cv, f, t, vol, hx, hy):
    """A few strands (or curls) in a darker and a lighter shade, so hair reads as hair."""
    if t.hair_style == "buzz":
        return
    dark, light = _rgba(_scale(f.hair, 0.7), 110), _rgba(_mix(f.hair, (255, 255, 255), 0.25), 90)
    top = (f.cx + 0.25 * f.a * t.hair_part, f.cy - f.b_up - 0.4 * vol)
    if t.hair_style == "curly":
        rng = _rng(t.detail_seed, 4)
        for px, py in rng.uniform(-1, 1, size=(14, 2)):
            cx = f.cx + px * (f.a + vol * 0.5)
            cy = f.cy - f.b_up * (0.75 + 0.25 * (1 - px * px)) + py * vol * 0.5
            cv.arc(cx, cy, 0.015, 200, 520 - 160 * abs(py), dark, 0.004)
        return
    for j, k in enumerate(np.linspace(1, len(hx) - 2, 7).astype(int)):
        end = (f.cx + hx[k], hy[k] - 0.005)
        mid = (0.5 * (top[0] + end[0]) + 0.03 * np.sign(hx[k]), 0.5 * (top[1] + end[1]) - 0.02)
        cv.line(_curve(top, mid, end, 8), dark if j % 2 else light, 0.005)


# ----------------------------------------------------------------------------------------------
# The photo: pose, light, background, clothes
# ----------------------------------------------------------------------------------------------
def _photo(identity: int, variant: int, seed: int) -> dict:
    """Everything about one photo that is not the person (depends on the variant only)."""
    rng = _rng(seed, identity, 2, variant)
    u = rng.uniform
    muted = lambda: _mix(rng.integers(30, 235, 3), (128, 128, 128), u(0.2, 0.6))  # noqa: E731
    return dict(
        angle=math.radians(u(-7, 7)), scale=u(0.94, 1.05), shift=tuple(u(-0.03, 0.03, 2)),
        bg=(muted(), muted()), bg_dir=u(0, 2 * np.pi), clothes=muted(),
        light_dir=u(0, 2 * np.pi), light=u(0.06, 0.2), brightness=u(0.9, 1.07),
        tint=tuple(u(0.95, 1.05, 3)), noise_seed=int(rng.integers(2**31)),
    )


def _gradient(n: int, direction: float) -> np.ndarray:
    """An n x n ramp from -1 to 1 along ``direction`` (radians)."""
    v = np.linspace(-0.707, 0.707, n, dtype=np.float32)
    return v[None, :] * math.cos(direction) + v[:, None] * math.sin(direction)


def _background(n: int, ph: dict) -> Image.Image:
    """A two-colour linear gradient (computed small and enlarged: it is linear anyway)."""
    t = (_gradient(16, ph["bg_dir"]) * 0.5 + 0.5)[..., None]
    c1, c2 = (np.asarray(c, np.float32) for c in ph["bg"])
    small = Image.fromarray((c1 * (1 - t) + c2 * t + 0.5).astype(np.uint8), "RGB")
    return small.resize((n, n), Image.BILINEAR)


@lru_cache(maxsize=2)
def _noise_bank(n: int) -> np.ndarray:
    """A fixed field of sensor noise, cut at a random place for each photo (cheaper than new noise)."""
    return 2.0 * _rng(12345).standard_normal((2 * n, 2 * n, 3), dtype=np.float32)


def _light_and_noise(img: Image.Image, ph: dict) -> Image.Image:
    x = np.asarray(img, np.float32)
    gain = ph["brightness"] * (1 + ph["light"] * _gradient(x.shape[0], ph["light_dir"]))
    x = x * gain[..., None] * np.asarray(ph["tint"], np.float32)
    n = x.shape[0]
    i, j = _rng(ph["noise_seed"]).integers(0, n, 2)
    x += _noise_bank(n)[i:i + n, j:j + n]
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8), "RGB")


def render_face(identity: int, age: float, variant: int = 0, seed: int = 0, size: int = 200) -> Image.Image:
    """Draw toy person ``identity`` at ``age`` in photo ``variant`` as a ``size`` x ``size`` RGB image.

    The same arguments always give the same pixels. Keeping identity, variant and seed and
    changing only the age shows the same person, in the same pose and light, older or younger:
    the ground truth for aging. The picture is painted at twice the size and downsampled.
    """
    t = _traits(int(identity), int(seed))
    f = _face_at_age(t, float(age))
    ph = _photo(int(identity), int(variant), int(seed))
    cv = _Canvas(_background(2 * size, ph), ph["angle"], ph["scale"], ph["shift"])
    _draw_body(cv, f, ph["clothes"])
    _draw_back_hair(cv, f, t, age)
    _draw_ears(cv, f)
    _draw_head(cv, f, t)
    _draw_beard(cv, f, t, age)
    _draw_wrinkles(cv, f, t, age)
    _draw_age_spots(cv, f, t, age)
    _draw_eyes(cv, f, t)
    _draw_brows(cv, f, t)
    _draw_nose(cv, f)
    _draw_mouth(cv, f)
    _draw_front_hair(cv, f, t, age)
    return _light_and_noise(cv.img.reduce(2), ph)


# ----------------------------------------------------------------------------------------------
# The data set on disk
# ----------------------------------------------------------------------------------------------
def _plan(n_images: int, n_identities: int, seed: int) -> pd.DataFrame:
    """Which image shows whom, at what age, under which file name (nothing is drawn yet).

    Image i shows identity ``i % n_identities``; each identity's images get ages spread over
    1..MAX_AGE (one per equal age band, shuffled), so ages are uniform overall and every
    person is seen young and old.
    """
    rng = _rng(seed, 3)
    ids = np.arange(n_images) % n_identities
    ages, variants = np.zeros(n_images, int), np.zeros(n_images, int)
    for k in range(min(n_identities, n_images)):
        rows = np.flatnonzero(ids == k)
        m = len(rows)
        bands = (np.arange(m) + rng.uniform(0, 1, m)) / m
        ages[rows] = 1 + np.floor(rng.permutation(bands) * MAX_AGE).astype(int)
        variants[rows] = np.arange(m)
    start = datetime(2017, 1, 1, 9, 0, 0)
    steps = np.arange(n_images) * 60_000 + rng.integers(0, 59_000, n_images)  # ms, unique
    names, genders, races = [], [], []
    for i in range(n_images):
        t = _traits(int(ids[i]), seed)
        ts = start + timedelta(milliseconds=int(steps[i]))
        stamp = ts.strftime("%Y%m%d%H%M%S") + f"{ts.microsecond // 1000:03d}"
        names.append(f"{ages[i]}_{t.gender}_{t.race}_{stamp}.jpg.chip.jpg")
        genders.append(t.gender)
        races.append(t.race)
    return pd.DataFrame({
        "path": names, "age": ages, "gender": pd.array(genders, dtype="Int64"),
        "race": pd.array(races, dtype="Int64"), "source": TOY_SOURCE, "identity": ids,
        "variant": variants,
    })[COLUMNS]


def _render_chunk(job) -> int:
    """Worker: draw and save a list of (file name, identity, age, variant)."""
    out_dir, seed, rows = job
    for name, identity, age, variant in rows:
        render_face(identity, age, variant, seed).save(os.path.join(out_dir, name), **JPEG_SETTINGS)
    return len(rows)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _params(n_images, n_identities, seed) -> dict:
    return dict(n_images=int(n_images), n_identities=int(n_identities), seed=int(seed),
                version=GENERATOR_VERSION)


def _read_manifest(out_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(out_dir / MANIFEST, dtype={"gender": "Int64", "race": "Int64"})
    df["path"] = [str((out_dir / p).resolve()) for p in df["path"]]
    return df[COLUMNS]


def _complete(out_dir: Path, params: dict) -> pd.DataFrame | None:
    """The folder's manifest if it is complete and was made from ``params``, else None."""
    try:
        if json.loads((out_dir / PARAMS).read_text()) != params:
            return None
        df = _read_manifest(out_dir)
    except (OSError, ValueError):
        return None
    if len(df) != params["n_images"] or not all(os.path.exists(p) for p in df["path"]):
        return None
    return df


def generate_toy_faces(out_dir=None, n_images=None, n_identities=None, seed=0, workers=None,
                       progress=True) -> pd.DataFrame:
    """Write ``n_images`` toy faces of ``n_identities`` people into ``out_dir``; return the manifest.

    Defaults come from :data:`helpers.config.DATA` (``toy_dir``, ``toy_images``,
    ``toy_identities``). Files are UTKFace-named 200x200 JPEGs plus ``manifest.csv`` (columns
    ``path, age, gender, race, source, identity, variant``; paths relative to the folder, made
    absolute here). If the folder already holds a complete set made with the same
    (n_images, n_identities, seed), it is returned at once. The manifest is written last, so an
    interrupted run is noticed and redone. Drawing runs on ``workers`` processes (default: all
    cores).
    """
    out_dir = Path(out_dir if out_dir is not None else DATA.toy_dir).expanduser().resolve()
    n_images = int(n_images if n_images is not None else DATA.toy_images)
    n_identities = int(n_identities if n_identities is not None else DATA.toy_identities)
    if n_images < 1 or n_identities < 1:
        raise ValueError("n_images and n_identities must be at least 1")
    params = _params(n_images, n_identities, seed)
    done = _complete(out_dir, params)
    if done is not None:
        return done

    out_dir.mkdir(parents=True, exist_ok=True)
    old = out_dir / MANIFEST
    if old.exists():  # drop the images of an earlier set (only files we wrote ourselves)
        try:
            for p in _read_manifest(out_dir)["path"]:
                Path(p).unlink(missing_ok=True)
        except (OSError, ValueError, KeyError):
            pass
        old.unlink()
    (out_dir / PARAMS).write_text(json.dumps(params))

    plan = _plan(n_images, n_identities, seed)
    rows = list(zip(plan["path"], plan["identity"].tolist(), plan["age"].tolist(), plan["variant"].tolist()))
    workers = int(workers or _cpu_count())
    chunk = max(10, min(100, len(rows) // (workers * 8) or 1))
    jobs = [(str(out_dir), seed, rows[i:i + chunk]) for i in range(0, len(rows), chunk)]
    with tqdm(total=n_images, desc="toy faces", unit="img", disable=not progress) as bar:
        if workers == 1 or len(jobs) == 1:
            for n in map(_render_chunk, jobs):
                bar.update(n)
        else:
            with multiprocessing.get_context().Pool(min(workers, len(jobs))) as pool:
                for n in pool.imap_unordered(_render_chunk, jobs):
                    bar.update(n)

    tmp = out_dir / (MANIFEST + ".tmp")
    plan.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / MANIFEST)
    return _read_manifest(out_dir)


def load_toy_faces(out_dir=None, generate=True, **kw) -> pd.DataFrame:
    """The toy-face manifest of ``out_dir`` (default ``DATA.toy_dir``) as a DataFrame.

    Columns: ``path`` (absolute), ``age``, ``gender``, ``race`` (nullable Int64), ``source``
    ("toy"), ``identity``, ``variant``. With ``generate=True`` a missing set is generated first
    (keyword arguments go to :func:`generate_toy_faces`, which also makes sure the set matches
    them); with ``generate=False`` a missing set raises FileNotFoundError.
    """
    out_dir = Path(out_dir if out_dir is not None else DATA.toy_dir).expanduser().resolve()
    if generate and kw:
        return generate_toy_faces(out_dir, **kw)
    if (out_dir / MANIFEST).exists():
        return _read_manifest(out_dir)
    if generate:
        return generate_toy_faces(out_dir)
    raise FileNotFoundError(
        f"no toy faces in {out_dir} (no {MANIFEST}). Generate them with "
        f"`python -m helpers.toyfaces --out {out_dir}` or, in Python, "
        f"`helpers.toyfaces.generate_toy_faces({str(out_dir)!r})`."
    )


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m helpers.toyfaces", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help=f"output folder (default {DATA.toy_dir})")
    p.add_argument("--n", type=int, default=None, help=f"number of images (default {DATA.toy_images})")
    p.add_argument("--identities", type=int, default=None,
                   help=f"number of people (default {DATA.toy_identities})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    df = generate_toy_faces(args.out, args.n, args.identities, args.seed, args.workers)
    where = Path(df["path"].iloc[0]).parent
    print(f"{len(df)} toy faces of {df['identity'].nunique()} people in {where} "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
