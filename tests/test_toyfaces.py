"""Tests for the toy faces: naming, determinism, ground truth, and measurable aging."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from helpers import toyfaces
from helpers.toyfaces import (
    COLUMNS, JPEG_SETTINGS, TOY_SOURCE, generate_toy_faces, identity_traits, load_toy_faces,
    render_face,
)

UTK_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{17})\.jpg\.chip\.jpg$")
N, K = 40, 10


@pytest.fixture(scope="module")
def toy_set(tmp_path_factory):
    """A small set written by a pool of two workers."""
    out = tmp_path_factory.mktemp("toy_a")
    return out, generate_toy_faces(out, n_images=N, n_identities=K, seed=0, workers=2, progress=False)


def _mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


# ---------------------------------------------------------------------------------- the files
def test_manifest_columns_and_types(toy_set):
    out, df = toy_set
    assert list(df.columns) == COLUMNS
    assert len(df) == N and df["identity"].nunique() == K
    assert str(df["gender"].dtype) == "Int64" and str(df["race"].dtype) == "Int64"
    assert (df["source"] == TOY_SOURCE).all()
    assert df["age"].between(1, toyfaces.MAX_AGE).all()
    assert all(Path(p).is_absolute() and Path(p).parent == out for p in df["path"])
    # every person is seen at several different ages
    assert (df.groupby("identity")["age"].nunique() == N // K).all()
    # the CSV itself stores paths relative to the folder
    raw = pd.read_csv(out / toyfaces.MANIFEST)
    assert not any(Path(p).is_absolute() for p in raw["path"])


def test_names_are_utkface_names_and_match_labels(toy_set):
    _, df = toy_set
    names = [Path(p).name for p in df["path"]]
    assert len(set(names)) == len(names)
    for name, row in zip(names, df.itertuples()):
        m = UTK_NAME.match(name)
        assert m, name
        assert (int(m[1]), int(m[2]), int(m[3])) == (row.age, row.gender, row.race)
    for p in df["path"][:5]:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (200, 200)


def test_folder_can_move(toy_set, tmp_path):
    out, df = toy_set
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    df2 = load_toy_faces(moved, generate=False)
    assert all(Path(p).parent == moved.resolve() and Path(p).exists() for p in df2["path"])
    assert df2.drop(columns="path").equals(df.drop(columns="path"))


# ---------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_different_seed_differs(toy_set, tmp_path):
    out, df = toy_set
    again = generate_toy_faces(tmp_path / "b", n_images=N, n_identities=K, seed=0, workers=1,
                               progress=False)
    for p, q in zip(df["path"], again["path"]):
        assert Path(p).name == Path(q).name
        assert Path(p).read_bytes() == Path(q).read_bytes()
    other = generate_toy_faces(tmp_path / "c", n_images=N, n_identities=K, seed=1, workers=1,
                               progress=False)
    assert [Path(p).name for p in other["path"]] != [Path(p).name for p in df["path"]]
    assert Path(other["path"][0]).read_bytes() != Path(df["path"][0]).read_bytes()
    assert identity_traits(3, seed=0) == identity_traits(3, seed=0) != identity_traits(3, seed=1)


def test_render_face_reproduces_the_written_file(toy_set):
    _, df = toy_set
    for row in df.sample(6, random_state=0).itertuples():
        im = render_face(row.identity, row.age, row.variant, seed=0)
        buf = io.BytesIO()
        im.save(buf, **JPEG_SETTINGS)
        assert buf.getvalue() == Path(row.path).read_bytes()
        with Image.open(row.path) as written:
            diff = np.abs(np.asarray(written, float) - np.asarray(im, float)).mean()
        assert diff < 3  # JPEG error only


def test_traits_are_json_friendly():
    t = identity_traits(7)
    assert json.loads(json.dumps(t)) == t
    assert t["gender"] in (0, 1) and t["race"] in range(5)
    assert t["hair_style"] in toyfaces.HAIR_STYLES and len(t["skin"]) == 3


# ---------------------------------------------------------------------------------- ground truth
def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im, np.float32)


def _hair_whiteness(im: Image.Image) -> float:
    """Mean of the darkest channel on top of the head: high for grey/white, low for coloured or dark."""
    top = _arr(im)[8:36, 60:140]
    return float(top.min(axis=-1).mean())


def _wrinkle_energy(im: Image.Image) -> float:
    """High-frequency energy (image minus its blur) on both cheeks."""
    g = im.convert("L")
    hf = np.abs(_arr(g) - _arr(g.filter(ImageFilter.BoxBlur(2))))
    return float((hf[110:150, 40:80].mean() + hf[110:150, 120:160].mean()) / 2)


def _trend(stat, ages, identities):
    table = np.array([[stat(render_face(i, a, variant=i % 3)) for a in ages] for i in identities])
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    rho = [np.corrcoef(ranks(row), np.arange(len(ages)))[0, 1] for row in table]
    return table.mean(axis=0), float(np.mean(rho))


def test_hair_greys_with_age():
    means, rho = _trend(_hair_whiteness, [30, 45, 60, 75, 90], range(12))
    assert np.all(np.diff(means) > 0), means
    assert rho > 0.8, (rho, means)


def test_wrinkles_grow_with_age():
    means, rho = _trend(_wrinkle_energy, [10, 30, 50, 70, 90], range(12))
    assert np.all(np.diff(means) > 0), means
    assert rho > 0.8, (rho, means)


def test_identities_differ_and_age_keeps_the_photo():
    a, b = _arr(render_face(0, 40, 0)), _arr(render_face(1, 40, 0))
    assert np.abs(a - b).mean() > 15
    # same person and photo, other age: the background (corner) is untouched
    young, old = _arr(render_face(5, 20, 2)), _arr(render_face(5, 80, 2))
    assert np.abs(young[:12, :12] - old[:12, :12]).max() == 0
    assert np.abs(young - old).mean() > 3


# ---------------------------------------------------------------------------------- caching
def test_generate_is_idempotent(toy_set):
    out, df = toy_set
    before = _mtimes(out)
    again = generate_toy_faces(out, n_images=N, n_identities=K, seed=0, progress=False)
    assert _mtimes(out) == before
    pd.testing.assert_frame_equal(again, df)


def test_interrupted_run_is_redone(tmp_path):
    out = tmp_path / "toy"
    df = generate_toy_faces(out, n_images=8, n_identities=4, workers=1, progress=False)
    (out / toyfaces.MANIFEST).unlink()  # as if the run had stopped before the end
    Path(df["path"][0]).unlink()
    df2 = load_toy_faces(out, n_images=8, n_identities=4, workers=1, progress=False)
    assert Path(df2["path"][0]).exists() and (out / toyfaces.MANIFEST).exists()
    # a different size replaces the old set
    df3 = generate_toy_faces(out, n_images=6, n_identities=3, workers=1, progress=False)
    assert len(df3) == 6 and len(list(out.glob("*.jpg"))) == 6


def test_load_without_generating_says_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m helpers\.toyfaces"):
        load_toy_faces(tmp_path, generate=False)


def test_command_line(tmp_path, capsys):
    toyfaces.main(["--out", str(tmp_path), "--n", "6", "--identities", "2", "--workers", "1"])
    out = capsys.readouterr().out
    assert "6 toy faces" in out and str(tmp_path.resolve()) in out
