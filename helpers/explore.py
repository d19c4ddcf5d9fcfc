"""Plots for looking at a face table before training on it (notebook 01).

Every function takes the table that :func:`helpers.sources.load_faces` returns (columns
``path, age, gender, race, source``) and draws on a new matplotlib figure, which it returns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

GENDERS = {0: "male", 1: "female"}
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_age_histogram(df: pd.DataFrame, ranges=(), title: str | None = None):
    """Histogram of ages, one bar per year, with named age ranges shaded over it.

    ``ranges`` is a list of ``(label, AgeRange)`` pairs, e.g. the young and old domains.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 3.2))
    top = int(df["age"].max()) if len(df) else 1
    ax.hist(df["age"], bins=np.arange(0, top + 2) - 0.5, color="#4c72b0")
    colors = ["#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#dd8452"]
    for (label, rng), color in zip(ranges, colors):
        hi = top if rng.hi is None else rng.hi
        ax.axvspan(rng.lo - 0.5, hi + 0.5, alpha=0.18, color=color, label=f"{label} ({rng})")
    if ranges:
        ax.legend(loc="upper right")
    ax.set_xlabel("age (years)")
    ax.set_ylabel("faces")
    ax.set_title(title or f"{len(df):,} faces, ages {df['age'].min()}-{df['age'].max()}")
    fig.tight_layout()
    return fig


def plot_breakdown(df: pd.DataFrame):
    """Bar charts of gender and race, with the count of missing labels shown as its own bar."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, col, names in ((axes[0], "gender", GENDERS), (axes[1], "race", RACES)):
        values = df[col].map(lambda v: "missing" if pd.isna(v) else names.get(int(v), str(v)))
        counts = values.value_counts().reindex(list(names.values()) + ["missing"]).dropna()
        ax.bar(counts.index, counts.values, color="#4c72b0")
        for i, v in enumerate(counts.values):
            ax.text(i, v, f"{int(v):,}\n{v / len(df):.0%}", ha="center", va="bottom", fontsize=8)
        ax.set_title(col)
        ax.set_ylim(0, counts.max() * 1.3 if len(counts) else 1)
    fig.tight_layout()
    return fig


def show_faces(images, titles=None, ncols: int = 8, size: float = 1.4, suptitle: str | None = None):
    """A grid of faces. ``images`` holds file paths, PIL images or HxWx3 uint8 arrays."""
    plt = _plt()
    images = list(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.18 if titles else 1)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        if isinstance(img, (str, bytes)) or hasattr(img, "__fspath__"):
            with Image.open(img) as im:
                img = im.convert("RGB")
        axes.flat[i].imshow(np.asarray(img))
        if titles is not None:
            axes.flat[i].set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def faces_per_band(df: pd.DataFrame, bands, per_band: int = 6, seed: int = 0):
    """Pick ``per_band`` random faces from each age band; returns (paths, titles, nrows)."""
    from .splits import AgeRange

    paths, titles = [], []
    for band in bands:
        band = AgeRange.parse(band)
        part = df[band.contains(df["age"].to_numpy())]
        pick = part.sample(min(per_band, len(part)), random_state=seed) if len(part) else part
        for _, row in pick.iterrows():
            paths.append(row["path"])
            titles.append(f"{band}: {row['age']}")
        paths += [np.full((8, 8, 3), 255, np.uint8)] * (per_band - len(pick))
        titles += [""] * (per_band - len(pick))
    return paths, titles


def image_sizes(df: pd.DataFrame, n: int = 500, seed: int = 0) -> pd.Series:
    """Counts of (width x height) over a random sample of the files (headers only, fast)."""
    sample = df.sample(min(n, len(df)), random_state=seed)
    sizes = []
    for p in sample["path"]:
        try:
            with Image.open(p) as im:
                sizes.append(f"{im.size[0]}x{im.size[1]} {im.mode}")
        except OSError:
            sizes.append("unreadable")
    return pd.Series(sizes).value_counts()
