"""Checks for notebook 07's exercise: the Fréchet distance from two sets of features.

:func:`check_fid` runs the student's ``fid_from_features(real, fake)`` and the course's
(:func:`helpers.metrics.fid_from_features`) on random features, and raises :class:`ExerciseError`
naming the mistake when they disagree.
"""

from __future__ import annotations

import math

import numpy as np

from ..metrics import fid_from_features
from .core import ExerciseError, exercise_check, passed


def _features(n: int, d: int, seed: int, shift: float, scale: float) -> np.ndarray:
    """``n`` correlated features of width ``d``: a random linear mix of Gaussians, moved and stretched."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / math.sqrt(d)
    return rng.normal(size=(n, d)) @ mix * scale + shift + rng.normal(size=d)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _parts(real, fake, ddof=1, rowvar=False):
    cov = [np.atleast_2d(np.cov(x, rowvar=rowvar, ddof=ddof)) for x in (real, fake)]
    mu = [x.mean(0) for x in (real, fake)]
    return mu, cov


def _tr_sqrt_product(a, b) -> float:
    return float(np.sqrt(np.clip(np.linalg.eigvals(a @ b).real, 0, None)).sum())


def _wrong_answers(real, fake) -> dict[str, float]:
    """What each classic mistake computes on these features, with the words that explain it."""
    (mu_r, mu_g), (c_r, c_g) = _parts(real, fake)
    d2 = float(((mu_r - mu_g) ** 2).sum())
    tr = float(np.trace(c_r) + np.trace(c_g))
    root = _tr_sqrt_product(c_r, c_g)
    out = {
        "it leaves out the distance between the two means: two sets with the same spread but different "
        "averages would score 0": tr - 2 * root,
        "the distance between the means is not squared: FID adds the *squared* length of the difference "
        "(the sum of squared differences), not the length itself": math.sqrt(d2) + tr - 2 * root,
        "the cross term is missing its factor 2: Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) is 0 for two identical "
        "Gaussians only with the 2": d2 + tr - root,
        "the cross term has the wrong sign: it is subtracted, so that two identical sets score 0": d2 + tr + 2 * root,
        "it uses the product S_r S_g without its square root: the cross term must be in the same units as the "
        "covariances, so it is the (matrix) square root of their product": d2 + tr - 2 * float(np.trace(c_r @ c_g)),
        "it multiplies the square roots of the two covariances, (S_r)^(1/2) (S_g)^(1/2): that is not the square "
        "root of S_r S_g unless the two commute; take the square root of the product":
            d2 + tr - 2 * float(np.trace(_psd_sqrt(c_r) @ _psd_sqrt(c_g))),
    }
    with np.errstate(invalid="ignore"):
        entrywise = float(np.sqrt(np.diag(c_r @ c_g)).sum())
    out["it takes the square root of each *entry* of S_r S_g: that is not its matrix square root (whose trace is "
        "the sum of the square roots of the product's eigenvalues, not of its diagonal)"] = d2 + tr - 2 * entrywise
    (mu_r0, mu_g0), (c_r0, c_g0) = _parts(real, fake, ddof=0)
    out["the covariances are divided by N; FID (and torchmetrics) uses the unbiased covariance, divided by N - 1"] = (
        float(((mu_r0 - mu_g0) ** 2).sum()) + float(np.trace(c_r0) + np.trace(c_g0)) - 2 * _tr_sqrt_product(c_r0, c_g0))
    if len(real) == len(fake):  # only then does a covariance over the samples fit together
        (_, _), (s_r, s_g) = _parts(real, fake, rowvar=True)
        out["the covariances are N x N, one entry per pair of *faces*: each row is a face and each column a "
            "feature, so the covariance is over the columns (D x D); numpy's np.cov treats rows as the "
            "variables unless told rowvar=False"] = d2 + float(np.trace(s_r) + np.trace(s_g)) - 2 * _tr_sqrt_product(s_r, s_g)
        mu_r1, mu_g1 = real.mean(1), fake.mean(1)
        out["the means are taken over the features of each face (one number per face); FID's mean is over the "
            "faces, one number per feature"] = float(((mu_r1 - mu_g1) ** 2).sum()) + tr - 2 * root
    return out


def _as_number(value, what: str) -> float:
    if isinstance(value, complex) or np.iscomplexobj(value):
        raise ExerciseError(f"{what} returned a complex number ({complex(np.asarray(value).item()):.4g}). A matrix "
                            "square root computed by a general routine can keep tiny imaginary parts from rounding; "
                            "the distance is real, so keep the real part")
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExerciseError(f"{what} should return one number, not {type(value).__name__}") from None
    if arr.size != 1:
        raise ExerciseError(f"{what} returned {arr.size} numbers (shape {arr.shape}); FID is one number: sum the "
                            "squared differences of the means and take the trace of the matrix")
    return float(arr.reshape(()))


@exercise_check
def check_fid(fn) -> str:
    """``fn(real, fake)``: the Fréchet distance between two sets of features, ``(N, D)`` and ``(M, D)`` numpy arrays."""
    what = "fid_from_features"
    cases = [(40, 40, 6, 0), (53, 37, 5, 1), (64, 64, 8, 2)]
    for n, m, d, seed in cases:
        real = _features(n, d, seed, 0.0, 1.0)
        fake = _features(m, d, seed + 10, 0.7, 1.6)
        got = _as_number(fn(real.copy(), fake.copy()), what)
        want = fid_from_features(real, fake)
        if not math.isfinite(got):
            raise ExerciseError(f"{what} returned {got}: a square root of a negative number somewhere. Taking the "
                                "square root of each *entry* of a matrix product is not its matrix square root (the "
                                "entries of S_r S_g can be negative); the matrix square root, or the square roots of "
                                "its eigenvalues, is what the trace needs")
        if math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            continue
        for words, wrong in _wrong_answers(real, fake).items():
            if math.isfinite(wrong) and math.isclose(got, wrong, rel_tol=1e-5, abs_tol=1e-6):
                raise ExerciseError(f"{what}: {words}")
        raise ExerciseError(f"{what} gives {got:.5g} on {n} and {m} random feature vectors of width {d}, where "
                            f"the Fréchet distance is {want:.5g}; compare each term of your code with the equation "
                            "above the cell")
    same = _features(30, 4, 7, 0.0, 1.0)
    zero = _as_number(fn(same.copy(), same.copy()), what)
    if abs(zero) > 1e-6:
        raise ExerciseError(f"{what} gives {zero:.4g} for two identical sets of features; the distance from a set "
                            "to itself must be 0")
    return passed(what)
