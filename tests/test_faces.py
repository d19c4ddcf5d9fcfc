"""Face detection and cropping (helpers.faces): the shipped example photo, and every bad input."""

from __future__ import annotations

import io

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
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent: white
    assert (faces.load_photo(rgba) == 255).all()
    assert (faces.load_photo(Image.fromarray(rgba, "RGBA")) == 255).all()
    floats = faces.load_photo(np.ones((5, 5)) * 0.5)
    assert floats.dtype == np.uint8 and floats.shape == (5, 5, 3) and floats[0, 0, 0] in (127, 128)
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "PNG")
    assert np.array_equal(faces.load_photo(buf.getvalue()), base)  # upload widgets give bytes


def test_detector_unavailable_message():
    with pytest.raises(faces.DetectorUnavailable, match="4.x"):
        faces._cascade("no_such_cascade.xml")
