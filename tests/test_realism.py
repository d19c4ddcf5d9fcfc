"""The realism measure (helpers.metrics.RealismJudge): planted artifacts are flagged, real faces are not.

Runs everywhere on toy faces drawn by the test. Where the real UTKFace sample is present
(tests/conftest.py), the same check also runs on real test-split faces; where it is absent that
test skips and says so. The floors below are what the measure reaches today (see the module
docstring of helpers.metrics for the figures): they keep it from quietly getting worse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import metrics as M
from helpers import toyfaces

pytestmark = pytest.mark.usefixtures("one_thread")

N_TOY = 48


def _toy(ages, n=N_TOY, size=64):
    """Toy people 0..n-1, person i drawn at ages[i % len(ages)], as uint8 (n, 3, size, size)."""
    imgs = [np.asarray(toyfaces.render_face(i, float(ages[i % len(ages)]), i % 3, size=size)) for i in range(n)]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def toy_young():
    return _toy([18, 22, 26, 29])


@pytest.fixture(scope="module")
def toy_old():
    return _toy([55, 63, 70, 78])


def _rates(faces, seed=0):
    out = {}
    for i, kind in enumerate(M.PLANT_KINDS):
        planted = M.plant_artifacts(faces, kind, np.random.default_rng(seed + i))
        out[kind] = 100.0 * M.REALISM.flags(planted, faces).mean()
    return out


# --------------------------------------------------------------------------- the pieces


def test_lab_round_trip_and_known_colours():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    back = M.lab_to_rgb(M.rgb_to_lab(x))
    assert (back.add(1).mul(127.5) - x.float()).abs().max() < 1.0
    lab = M.rgb_to_lab(torch.tensor([[[[255]], [[255]], [[255]]], [[[0]], [[0]], [[0]]]], dtype=torch.uint8))
    assert torch.allclose(lab[0, :, 0, 0], torch.tensor([100.0, 0.0, 0.0]), atol=0.05)  # white
    assert torch.allclose(lab[1, :, 0, 0], torch.zeros(3), atol=0.05)  # black


def test_plant_artifacts_is_seeded_keeps_the_type_and_paints_the_face(toy_young):
    faces = toy_young[:6]
    a = M.plant_artifacts(faces, "purple", np.random.default_rng(3))
    b = M.plant_artifacts(faces, "purple", np.random.default_rng(3))
    assert a.dtype == torch.uint8 and a.shape == faces.shape and torch.equal(a, b)
    changed = (a.float() - faces.float()).abs().amax(1) > 8  # (N, H, W)
    face = M.face_mask(64)
    share = changed[:, face].float().sum(1) / face.sum()
    assert (share > 0.01).all() and (share < 0.25).all(), share  # a patch of 2-10% of the face, soft edges
    assert not changed[:, ~M.face_mask(64, 1.3)].any()  # nothing far outside the face
    as_float = M.plant_artifacts(faces.float() / 127.5 - 1, "dark", np.random.default_rng(0))
    assert as_float.dtype == torch.float32 and as_float.min() >= -1 and as_float.max() <= 1
    with pytest.raises(ValueError, match="unknown artifact"):
        M.plant_artifacts(faces, "pink", np.random.default_rng(0))


def test_scores_name_what_was_found(toy_young):
    faces = toy_young[:8]
    patched = M.plant_artifacts(faces, "green", np.random.default_rng(1))
    s = M.REALISM.scores(patched, faces)
    assert list(s.columns) == ["colour_patch", "dark_spot", "severity", "flagged"]
    assert (s["colour_patch"] > s["dark_spot"]).mean() > 0.5  # a green patch is colour, not a dark spot
    same = M.REALISM.scores(faces, faces)
    assert not same["flagged"].any() and (same["severity"] == 0).all()
    with pytest.raises(ValueError, match="one input per output"):
        M.REALISM.scores(faces, faces[:3])


# --------------------------------------------------------------------------- the rates on toy faces (everywhere)


def test_planted_artifacts_are_flagged_on_toy_faces(toy_young, toy_old):
    faces = torch.cat([toy_young[: N_TOY // 2], toy_old[: N_TOY // 2]])
    r = _rates(faces)
    print("toy faces, planted flagged (%):", {k: round(v) for k, v in r.items()})
    for kind in ("purple", "green", "orange", "blue"):
        assert r[kind] >= 60, (kind, r)
    assert np.mean(list(r.values())) >= 60, r


def test_unaltered_toy_faces_and_real_aging_are_not_flagged(toy_young, toy_old):
    faces = torch.cat([toy_young, toy_old])
    assert M.REALISM.flag_rate(M.unaltered(faces), faces) <= 5.0
    # The toy painter draws the same person older: grey hair, wrinkles, age spots, paler skin.
    older = _toy([72])
    younger = _toy([22])
    assert M.REALISM.flag_rate(older, younger) <= 5.0
    assert M.REALISM.flag_rate(younger, older) <= 5.0


# --------------------------------------------------------------------------- the rates on real faces (with the sample)


def test_realism_check_on_real_test_faces(real_utkface_dir):
    """With the sample: 100 real test-split faces. Without it: skips (the fixture says why)."""
    from helpers.cache import build_cache
    from helpers.sources import load_faces
    from helpers.splits import train_test_split
    from helpers import config

    table = load_faces("utkface", path=real_utkface_dir, verbose=False)
    _, test = train_test_split(table, config.DATA.test_fraction, config.DATA.split_seed)
    test = test.sample(n=min(400, len(test)), random_state=0).reset_index(drop=True)
    cache = build_cache(test, 64, verbose=False)
    c = M.realism_check(cache.tensor(), cache.table, n=100)
    print("\n".join(M.realism_check_lines(c)))
    for kind in ("purple", "green", "blue"):
        assert c[f"planted:{kind}"] >= 85, c
    assert c["planted:orange"] >= 50 and c["planted:jaw"] >= 40 and c["planted:dark"] >= 15, c
    assert c["planted"] >= 65, c
    assert c["clean"] <= 5, c
    # Issue 23's target is 5%; on 100 faces one or two more real faces flagged is noise, and today's
    # rate on 300 test faces is 5.3% (helpers.metrics' docstring): this guards against it growing.
    assert c["other age"] <= 10, c
