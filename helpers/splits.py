"""Age ranges, age domains, age groups and the train/test split.

Face aging needs the faces sorted by age in one of two ways:

- **Two domains** for CycleGAN (notebook 03): "young" and "old" faces, with no pairing between
  them. The seeds use different ranges, and the choice matters: a wide gap (15-30 against 50+)
  gives the model a clear difference to learn, while a narrow one (20-30 against 40-50, seed
  004) leaves two groups that even people find hard to tell apart. A wide "old" range also has a
  large age variance, which seed 000 names as a reason for its mixed results.
- **N age groups** for the conditional models (notebooks 04 and 06): every face gets a group
  index that the networks are conditioned on.

Ranges are inclusive at both ends: ``AgeRange(15, 30)`` holds 15, 16, ..., 30, and
``AgeRange(50)`` (written "50+") holds every age from 50 up.

The train/test split is made once on the whole table, before any domain or group is taken
from it, so every model in the course is trained and measured on the same faces. Where the
table knows who is in each picture (the toy faces' ``identity`` column), all pictures of one
person land on the same side, so a model is never tested on a face it saw in training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd


class AgeRangeError(ValueError):
    """An age range that is empty, inverted, overlapping or holds no faces."""


@dataclass(frozen=True)
class AgeRange:
    """Ages ``lo`` to ``hi``, both included; ``hi=None`` means no upper limit ("50+")."""

    lo: int
    hi: int | None = None

    def __post_init__(self):
        if self.lo < 0:
            raise AgeRangeError(f"age range {self}: ages cannot be negative")
        if self.hi is not None and self.hi < self.lo:
            raise AgeRangeError(
                f"age range {self.lo}-{self.hi} is inverted: the lower age must come first "
                f"(did you mean {self.hi}-{self.lo}?)"
            )

    @classmethod
    def parse(cls, value: "AgeRange | str | tuple | list") -> "AgeRange":
        """Accept ``AgeRange``, ``"15-30"``, ``"50+"``, ``(15, 30)`` or ``(50, None)``."""
        if isinstance(value, AgeRange):
            return value
        if isinstance(value, (tuple, list)) and len(value) == 2:
            lo, hi = value
            return cls(int(lo), None if hi is None else int(hi))
        if isinstance(value, str):
            text = value.replace(" ", "")
            m = re.fullmatch(r"(\d+)-(\d+)", text)
            if m:
                return cls(int(m.group(1)), int(m.group(2)))
            m = re.fullmatch(r"(\d+)\+", text)
            if m:
                return cls(int(m.group(1)))
        raise AgeRangeError(
            f"cannot read {value!r} as an age range: write it like '15-30', '50+' or (15, 30)"
        )

    def contains(self, ages) -> np.ndarray:
        """Boolean mask of the ages that fall in this range."""
        ages = np.asarray(ages)
        mask = ages >= self.lo
        if self.hi is not None:
            mask &= ages <= self.hi
        return mask

    def overlaps(self, other: "AgeRange") -> bool:
        a_hi = np.inf if self.hi is None else self.hi
        b_hi = np.inf if other.hi is None else other.hi
        return self.lo <= b_hi and other.lo <= a_hi

    def __str__(self) -> str:
        return f"{self.lo}+" if self.hi is None else f"{self.lo}-{self.hi}"


@dataclass(frozen=True)
class DomainPreset:
    """A young/old pair of age ranges used by one of the source projects."""

    young: AgeRange
    old: AgeRange
    note: str


#: The seeds' own young/old settings.
PRESETS: dict[str, DomainPreset] = {
    "utkface": DomainPreset(
        AgeRange(15, 30), AgeRange(50), "UTKFace, seeds 000 and 003: young 15-30 against old 50+"
    ),
    "utkface-40-50": DomainPreset(
        AgeRange(15, 30), AgeRange(40, 50), "UTKFace, the narrower old range seed 000 suggests trying"
    ),
    "facial-age": DomainPreset(
        AgeRange(20, 30), AgeRange(70, 80), "facial-age, seed 002: 20-30 against 70-80"
    ),
    "imdb-wiki": DomainPreset(
        AgeRange(20, 30), AgeRange(40, 50), "IMDB-WIKI, seed 004: 20-30 against 40-50"
    ),
}
# The toy faces span the same ages as UTKFace, so they use its preset.
PRESETS["toy"] = PRESETS["utkface"]


def preset(name: str) -> DomainPreset:
    """Look up a preset by name, with a helpful error for unknown names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"no age preset named {name!r}; choose one of {sorted(PRESETS)}") from None


def check_ranges(ranges) -> list[AgeRange]:
    """Parse ranges and refuse any two that overlap (a face must belong to one range only)."""
    parsed = [AgeRange.parse(r) for r in ranges]
    if not parsed:
        raise AgeRangeError("no age ranges given")
    for i, a in enumerate(parsed):
        for b in parsed[i + 1 :]:
            if a.overlaps(b):
                raise AgeRangeError(
                    f"age ranges {a} and {b} overlap: a face of that age would be in both. "
                    "Make them disjoint, e.g. '15-30' and '50+'."
                )
    return parsed


def _require_faces(df: pd.DataFrame, rng: AgeRange, what: str) -> pd.DataFrame:
    part = df[rng.contains(df["age"].to_numpy())]
    if len(part) == 0:
        have = f"{df['age'].min()}-{df['age'].max()}" if len(df) else "none (the table is empty)"
        raise AgeRangeError(
            f"the {what} range {rng} holds no faces; the ages in this table are {have}. "
            "Widen the range or pick another preset."
        )
    return part


def split_domains(df: pd.DataFrame, young="15-30", old="50+") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a face table into the young and old domains.

    ``young`` and ``old`` are anything :meth:`AgeRange.parse` accepts. Faces outside both ranges
    are left out. Raises :class:`AgeRangeError` for inverted, overlapping or empty ranges, and
    when ``young`` is not the younger range.
    """
    young, old = check_ranges([young, old])
    if young.lo > old.lo:
        raise AgeRangeError(f"the young range {young} starts after the old range {old}; swap them")
    return (
        _require_faces(df, young, "young").reset_index(drop=True),
        _require_faces(df, old, "old").reset_index(drop=True),
    )


def split_preset(df: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`split_domains` with one of the seeds' presets (see :data:`PRESETS`)."""
    p = preset(name)
    return split_domains(df, p.young, p.old)


def group_ranges(edges) -> list[AgeRange]:
    """Age groups from their lower edges: ``[0, 20, 40, 60]`` -> 0-19, 20-39, 40-59, 60+."""
    edges = [int(e) for e in edges]
    if len(edges) < 2:
        raise AgeRangeError("at least two age groups are needed (give two or more lower edges)")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise AgeRangeError(f"group edges {edges} must increase strictly")
    groups = [AgeRange(a, b - 1) for a, b in zip(edges, edges[1:])]
    return groups + [AgeRange(edges[-1])]


def balanced_groups(df: pd.DataFrame, n_groups: int, min_age: int = 0) -> list[AgeRange]:
    """``n_groups`` contiguous age groups that hold about the same number of faces each."""
    if n_groups < 2:
        raise AgeRangeError(f"n_groups={n_groups}: at least two age groups are needed")
    ages = df["age"].to_numpy()
    ages = ages[ages >= min_age]
    if len(ages) == 0:
        raise AgeRangeError(f"no faces aged {min_age} or more to split into groups")
    cuts = np.quantile(ages, np.linspace(0, 1, n_groups + 1)[1:-1])
    edges = [min_age] + sorted({int(np.ceil(c)) for c in cuts if c > min_age})
    if len(edges) < n_groups:
        raise AgeRangeError(
            f"cannot make {n_groups} distinct age groups: the ages here take too few values"
        )
    return group_ranges(edges)


def assign_groups(df: pd.DataFrame, groups) -> pd.DataFrame:
    """Add a ``group`` column (0, 1, ...) by age; faces outside every group are left out.

    ``groups`` is a list of ranges (``["20-30", "40-50"]``). Every group must hold at least one
    face, otherwise a conditional model would be asked to learn a group it never sees.
    """
    groups = check_ranges(groups)
    ages = df["age"].to_numpy()
    label = np.full(len(df), -1)
    for i, g in enumerate(groups):
        label[g.contains(ages)] = i
    out = df.assign(group=label)
    out = out[out["group"] >= 0].reset_index(drop=True)
    counts = np.bincount(out["group"].to_numpy(), minlength=len(groups))
    empty = [str(g) for g, c in zip(groups, counts) if c == 0]
    if empty:
        raise AgeRangeError(f"age group(s) {', '.join(empty)} hold no faces; change the groups")
    return out


def group_names(groups) -> list[str]:
    """Readable names of age groups, for plot labels."""
    return [str(AgeRange.parse(g)) for g in groups]


def train_test_split(
    df: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split into train and test tables (80/20 by default).

    When the table has an ``identity`` column, whole identities go to one side. Otherwise each
    image is its own unit. The split depends only on the seed and on which units are present,
    not on the row order.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    if len(df) < 2:
        raise ValueError(f"cannot split {len(df)} face(s) into train and test; load more faces")
    key = df["identity"] if "identity" in df.columns else df["path"]
    units = np.array(sorted(key.unique()))
    order = np.random.default_rng(seed).permutation(len(units))
    n_test = min(len(units) - 1, max(1, round(test_fraction * len(units))))
    test_units = set(units[order[:n_test]].tolist())
    is_test = key.isin(test_units).to_numpy()
    return df[~is_test].reset_index(drop=True), df[is_test].reset_index(drop=True)
