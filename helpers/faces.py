"""Finding a face in any photo and cropping it the way the course's models saw faces.

The models of notebooks 03-06 were trained on UTKFace's *aligned and cropped* faces: 200x200
pictures in which the face fills most of the frame, from the hairline to just under the chin,
with the eyes about a third of the way down. To age a selfie, the face in it must be found and
cut out with that same framing; a model trained on tight crops does not know what to do with a
whole photo.

**Detection.** We use the Haar-feature cascade of Viola and Jones (2001, "Rapid Object Detection
using a Boosted Cascade of Simple Features"): thousands of rectangle-difference features, each
computed in constant time from an integral image, chosen and weighted by AdaBoost and arranged
in a cascade of stages so that most windows of a photo are rejected after a handful of
features. It slides a window over the photo at every position and several scales and returns
the boxes where enough neighbouring windows agree (``minNeighbors``). Its trained cascades ship
inside the ``opencv-python-headless`` 4.x wheels (``cv2.data.haarcascades``), so detection works
offline, with nothing to download. We use ``haarcascade_frontalface_alt2.xml``: on the real
UTKFace sample it found as many faces as ``haarcascade_frontalface_default.xml`` (about 95%)
but none of the default cascade's false faces in scikit-image's ``coins`` picture. A Haar
cascade sees upright, frontal faces only: a profile, a tilted head or sunglasses defeat it.

**Framing.** A Haar box covers the face from the eyebrows to the mouth. We measured how it maps
onto UTKFace's framing by pasting 571 real UTKFace crops, upscaled, into larger canvases,
detecting the face, and comparing the box with where the crop really was: the UTKFace crop is
a square as wide as the Haar box (median ratio 0.99) whose centre sits 9% of the box width lower
than the box centre (the chin is inside the crop, the top of the hair is not). Cropping with
those two numbers (:data:`UTK_MARGIN`, :data:`UTK_SHIFT`) reproduced the true crops with a mean
IoU of 0.88 (median 0.90) and a mean centre error of 4 px in a 200 px crop, on images not used
for the fit.

Everything a student can get wrong raises a :class:`PhotoError` with a message meant to be read
by the student (no traceback needed): :class:`NotAnImage`, :class:`PhotoNotFound`,
:class:`NoFaceFound` (with tips), :class:`FaceTooSmall`, :class:`FaceChoiceError` and
:class:`DetectorUnavailable`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Side of the cropped face, in pixels (UTKFace's own size; models resize it to theirs).
CROP_SIZE = 200
#: Faces narrower than this (in the photo's own pixels) are refused: upscaled to 200 px they
#: would be a blur, and the models would age the blur.
MIN_FACE = 48
#: Extra border around the Haar box on each side, as a fraction of its width. Measured on real
#: UTKFace crops: the UTKFace square is as wide as the Haar box, so no extra border.
UTK_MARGIN = 0.0
#: How far below the Haar box's centre the crop's centre lies, as a fraction of the box width.
UTK_SHIFT = 0.09
#: The OpenCV cascade file used by default.
CASCADE = "haarcascade_frontalface_alt2.xml"
#: Photos are scaled down so their longer side is at most this before detection (speed); the
#: crop itself is cut from the full-resolution photo.
DETECT_MAX_SIDE = 800
#: The smallest face, in pixels of the (scaled-down) photo, that the detector looks for.
DETECT_MIN_SIZE = 20

NO_FACE_TIPS = (
    "Tips: use a photo where one person faces the camera, with the whole face visible and evenly "
    "lit (no strong shadows or back light), no sunglasses or mask, the head upright, and the "
    "face taking up a good part of the picture (a closer photo, or crop it first)."
)


# --------------------------------------------------------------------------- errors


class PhotoError(Exception):
    """Something is wrong with the photo; ``str(err)`` is a message for the student."""


class NotAnImage(PhotoError, ValueError):
    """The file (or object) is not an image that can be read."""


class PhotoNotFound(PhotoError, FileNotFoundError):
    """There is no file at the path given."""


class NoFaceFound(PhotoError):
    """The detector found no face in the photo."""


class FaceTooSmall(PhotoError):
    """A face was found, but it is too small to crop at the models' resolution."""

    def __init__(self, message: str, size: int = 0, minimum: int = MIN_FACE):
        super().__init__(message)
        self.size, self.minimum = size, minimum


class FaceChoiceError(PhotoError):
    """``choose=`` names a face that does not exist."""


class DetectorUnavailable(PhotoError):
    """OpenCV, or its bundled Haar cascades, are not installed."""


# --------------------------------------------------------------------------- boxes


class Box(NamedTuple):
    """A face box in photo pixels: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


# --------------------------------------------------------------------------- loading


def _describe_bytes(head: bytes, size: int) -> str:
    """A guess, in words, at what a file that is not an image is."""
    if size == 0:
        return "it is empty (0 bytes)"
    low = head.lstrip()[:64].lower()
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1"):
        return ("it is a HEIC/HEIF photo (the iPhone format), which Pillow cannot read: "
                "export or convert it to JPEG or PNG first")
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive (or an Office document)"
    if low.startswith((b"<!doctype html", b"<html")):
        return "it is a web page (HTML), perhaps saved from a browser instead of the picture itself"
    if low.startswith(b"<svg") or (low.startswith(b"<?xml") and b"<svg" in head.lower()):
        return "it is an SVG drawing (vector graphics), not a photo: export it as PNG"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it holds {size:,} bytes of binary data that is not in any image format Pillow knows"
    snippet = " ".join(text.split())[:40]
    return f"it is a text file (it starts with {snippet!r})"


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    im = ImageOps.exif_transpose(im)  # phones store the rotation in EXIF instead of the pixels
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float grayscale
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        im = Image.fromarray(a.round().astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)  # transparency over white
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(a: np.ndarray, name: str = "The array") -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channels first (a torch-style CHW array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise NotAnImage(f"{name} has shape {a.shape}: a photo is (height, width) for grayscale or "
                         "(height, width, 3) for RGB (4 with transparency)")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise NotAnImage(f"{name} contains NaN or infinite values")
        # Floats in [0, 1] (scikit-image's convention), [-1, 1] (the generators') or 0..255.
        if a.min() >= -1.0 and a.max() <= 1.0:
            a = (a + 1.0) * 127.5 if a.min() < 0 else a * 255.0
        a = np.clip(a.round(), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[-1] == 4:
        alpha = a[..., 3:].astype(np.float64) / 255.0
        a = (a[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def load_photo(photo) -> np.ndarray:
    """Any photo -> a ``(H, W, 3)`` uint8 RGB array.

    ``photo`` may be a file path (``str`` or ``Path``), the bytes of an image file (what an
    upload widget gives), an open binary file, a ``PIL.Image``, or a NumPy array (grayscale
    ``(H, W)``, RGB or RGBA ``(H, W, 3|4)``, uint8 or floats in [0, 1]). The EXIF orientation
    that phones write is applied, grayscale becomes RGB, and transparency is laid over white.
    Raises :class:`NotAnImage` (a file that is not a picture, with what it seems to be) or
    :class:`PhotoNotFound` (also a ``FileNotFoundError``).
    """
    if isinstance(photo, np.ndarray):
        return _array_to_rgb(photo)
    if hasattr(photo, "detach") and hasattr(photo, "numpy"):  # a torch tensor
        return _array_to_rgb(photo.detach().cpu().numpy(), "The tensor")
    if isinstance(photo, Image.Image):
        return _pil_to_rgb(photo)
    if isinstance(photo, (bytes, bytearray, memoryview)):
        data = bytes(photo)
        return _open_bytes(data, "The uploaded file")
    if hasattr(photo, "read"):
        name = getattr(photo, "name", None)
        return _open_bytes(photo.read(), repr(Path(name).name) if isinstance(name, str) else "The file")
    if isinstance(photo, (str, os.PathLike)):
        path = Path(photo).expanduser()
        if path.is_dir():
            raise NotAnImage(f"{str(path)!r} is a folder, not a photo: give the path of one image file in it")
        if not path.exists():
            raise PhotoNotFound(f"There is no file {str(path)!r} (paths are relative to the current folder, "
                                f"{os.getcwd()!r}). Check the name and the folder.")
        return _open_bytes(path.read_bytes(), repr(path.name))
    raise NotAnImage(f"A {type(photo).__name__} is not a photo: give a file path, image bytes, a PIL image or a NumPy array")


def _open_bytes(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return _pil_to_rgb(im)
    except Image.DecompressionBombError as e:
        raise NotAnImage(f"{name} is too large to open safely ({e}); scale it down first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        if isinstance(e, UnidentifiedImageError) or len(data) == 0:
            what = _describe_bytes(data[:512], len(data))
        else:
            what = f"it looks like an image but could not be decoded ({e}); the file may be truncated or damaged"
        raise NotAnImage(f"{name} is not an image that can be opened: {what}.") from None


def example_photo(name: str = "astronaut") -> np.ndarray:
    """A photo with a face that ships inside an installed package, so it works offline.

    ``"astronaut"``: scikit-image's portrait of astronaut Eileen Collins (NASA, public domain),
    512x512, one frontal face about 95 px wide. ``"astronaut-pair"``: the same photo twice, side
    by side, once at full size and once at 60%, to practise choosing between several faces.
    """
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        raise PhotoError("the example photo ships with scikit-image: pip install scikit-image") from None
    if name == "astronaut":
        return np.ascontiguousarray(data.astronaut())
    if name == "astronaut-pair":
        a = data.astronaut()
        small = np.asarray(Image.fromarray(a).resize((307, 307), Image.Resampling.LANCZOS))
        canvas = np.full((512, 512 + 307, 3), 255, dtype=np.uint8)
        canvas[:, :512] = a
        canvas[100:407, 512:] = small
        return canvas
    raise ValueError(f"no example photo {name!r}; there are 'astronaut' and 'astronaut-pair'")


# --------------------------------------------------------------------------- detection

_CASCADES: dict[str, object] = {}


def _cascade(name: str = CASCADE):
    if name in _CASCADES:
        return _CASCADES[name]
    try:
        import cv2
    except ImportError:
        raise DetectorUnavailable(
            "face detection needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'") from None
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(name) if Path(name).is_file() else (Path(folder) / name if folder else None)
    if path is None or not path.is_file():
        raise DetectorUnavailable(
            f"OpenCV {cv2.__version__} has no bundled Haar cascade {name!r} (the cascades ship in "
            "the 4.x wheels, not in 5.x): pip install 'opencv-python-headless>=4.8,<5'")
    c = cv2.CascadeClassifier(str(path))
    if c.empty():
        raise DetectorUnavailable(f"OpenCV could not read the cascade file {str(path)!r}")
    _CASCADES[name] = c
    return c


def _run_cascade(gray: np.ndarray, cascade, min_size: int) -> list[Box]:
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return [Box(*map(int, b)) for b in (found if len(found) else [])]


def detect_faces(image, cascade: str = CASCADE, min_size: int = DETECT_MIN_SIZE,
                 max_side: int = DETECT_MAX_SIDE) -> list[Box]:
    """Every frontal face in ``image`` (anything :func:`load_photo` reads), largest first.

    Boxes are in the photo's own pixels. The photo is scaled down so that its longer side is at
    most ``max_side`` for the search, turned to grayscale and histogram-equalised (which evens
    out dim or harsh light). If no face is found, the search runs once more on the photo with a
    border added around it: a photo that is already a tight crop of a face (as UTKFace's are)
    leaves the cascade no room for its window otherwise. Boxes may then reach past the photo's
    edges; :func:`crop_face` pads there.
    """
    import cv2

    rgb = load_photo(image)
    c = _cascade(cascade)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    boxes = _run_cascade(gray, c, min_size)
    if not boxes:
        pad = max(gray.shape) // 4
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        boxes = [Box(b.x - pad, b.y - pad, b.w, b.h) for b in _run_cascade(padded, c, min_size)]
    if scale != 1.0:
        boxes = [Box(round(b.x / scale), round(b.y / scale), round(b.w / scale), round(b.h / scale)) for b in boxes]
    return sorted(boxes, key=lambda b: (-b.area, b.x, b.y))


# --------------------------------------------------------------------------- cropping


def crop_box(box: Box, margin: float = UTK_MARGIN, shift: float = UTK_SHIFT) -> Box:
    """The square, in photo pixels, that :func:`crop_face` cuts for a face box."""
    x, y, w, h = box
    side = max(1, round(w * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2 + shift * w
    return Box(round(cx - side / 2), round(cy - side / 2), side, side)


def crop_face(image, box, size: int = CROP_SIZE, margin: float = UTK_MARGIN, shift: float = UTK_SHIFT,
              pad_mode: str = "reflect") -> np.ndarray:
    """Cut the face in ``box`` out of ``image`` with UTKFace's framing: a ``(size, size, 3)`` uint8 array.

    The square is ``w * (1 + 2 * margin)`` wide, centred ``shift * w`` below the box's centre
    (see the module docstring for how these were measured). Where it reaches past the photo's
    edges, the photo is extended by mirroring (``pad_mode="reflect"``) or by repeating its edge
    pixels (``"edge"``). Shrinking uses area averaging (no aliasing); enlarging, bicubic.
    """
    import cv2

    rgb = load_photo(image)
    x, y, side, _ = crop_box(Box(*box), margin, shift)
    h, w = rgb.shape[:2]
    top, left = max(0, -y), max(0, -x)
    bottom, right = max(0, y + side - h), max(0, x + side - w)
    if top or left or bottom or right:
        mode = pad_mode if min(h, w) > 1 else "edge"
        rgb = np.pad(rgb, ((top, bottom), (left, right), (0, 0)), mode=mode)
        x, y = x + left, y + top
    patch = rgb[y : y + side, x : x + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(patch, (size, size), interpolation=interp))


# --------------------------------------------------------------------------- one call


@dataclass
class FoundFace:
    """What :func:`find_face` found: the crop, and where it came from."""

    crop: np.ndarray  # (size, size, 3) uint8, UTKFace framing
    box: Box  # the chosen face's box in the photo
    index: int  # its number in ``boxes`` (0 = the largest)
    boxes: list[Box]  # every face found, largest first
    photo: np.ndarray = field(repr=False)  # the photo as loaded (RGB uint8)
    message: str = ""  # what happened, in one or two sentences for the student

    @property
    def n_faces(self) -> int:
        return len(self.boxes)


def find_face(photo, choose: int | None = None, size: int = CROP_SIZE, min_face: int = MIN_FACE,
              verbose: bool = True, **detect_kwargs) -> FoundFace:
    """Load ``photo``, find its faces, and crop one with UTKFace's framing.

    With several faces, the largest is used unless ``choose`` gives the number of another
    (0 is the largest; :func:`show_faces` draws the numbers). ``verbose`` prints what was found.
    Raises :class:`NotAnImage`, :class:`PhotoNotFound`, :class:`NoFaceFound`,
    :class:`FaceTooSmall` or :class:`FaceChoiceError`, each with a message for the student.
    """
    rgb = load_photo(photo)
    boxes = detect_faces(rgb, **detect_kwargs)
    h, w = rgb.shape[:2]
    if not boxes:
        raise NoFaceFound(f"No face was found in this {w}x{h} photo. {NO_FACE_TIPS}")
    n = len(boxes)
    if choose is None:
        index = 0
    else:
        if not isinstance(choose, (int, np.integer)) or isinstance(choose, bool) or not -n <= choose < n:
            valid = "0" if n == 1 else f"0 to {n - 1}"
            raise FaceChoiceError(f"choose={choose!r}, but the photo has {n} face{'s' if n > 1 else ''}: "
                                  f"use a number from {valid} (0 is the largest; show_faces(photo) shows the numbers).")
        index = int(choose) % n
    box = boxes[index]
    if box.w < min_face:
        which = "The largest face" if index == 0 else f"Face #{index}"
        raise FaceTooSmall(
            f"{which} in this photo is only {box.w} px wide, and faces need at least {min_face} px to be "
            f"aged at {size}x{size} without turning into a blur. Use a photo taken closer, or at a higher "
            "resolution (crop the photo around the face rather than shrinking it).",
            size=box.w, minimum=min_face)
    crop = crop_face(rgb, box, size=size)
    if n == 1:
        message = f"Found 1 face ({box.w} px wide) and cropped it to {size}x{size}."
    else:
        others = ", ".join(str(i) for i in range(n) if i != index)
        what = "the largest (#0)" if index == 0 else f"face #{index}"
        message = (f"Found {n} faces; using {what}, {box.w} px wide. To age another one, pass "
                   f"choose= one of {others} (show_faces(photo) draws the numbers).")
    if verbose:
        print(message)
    return FoundFace(crop=crop, box=box, index=index, boxes=boxes, photo=rgb, message=message)


# --------------------------------------------------------------------------- showing the faces


def draw_faces(image, boxes=None, chosen: int | None = 0) -> np.ndarray:
    """A copy of the photo with every face box drawn and numbered (``boxes`` default: detect them).

    The ``chosen`` face is drawn in green, the others in orange; faces too small to use are
    drawn with a thin line.
    """
    import cv2

    rgb = load_photo(image).copy()
    if boxes is None:
        boxes = detect_faces(rgb)
    h, w = rgb.shape[:2]
    thick = max(2, round(max(h, w) / 300))
    for i, b in enumerate(boxes):
        color = (40, 200, 60) if i == chosen else (255, 140, 0)
        t = thick if b.w >= MIN_FACE else max(1, thick // 2)
        cv2.rectangle(rgb, (b.x, b.y), (b.x + b.w, b.y + b.h), color, t)
        font = max(0.5, b.w / 120)
        label = str(i)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, t)
        ty = b.y - 4 if b.y - th - 8 >= 0 else b.y + b.h + th + 4
        cv2.rectangle(rgb, (b.x, ty - th - 4), (b.x + tw + 6, ty + base), color, -1)
        cv2.putText(rgb, label, (b.x + 3, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), t, cv2.LINE_AA)
    return rgb


def show_faces(photo, chosen: int | None = 0, figsize=(7, 7)):
    """Show the photo with its faces numbered, largest first (for ``find_face(..., choose=i)``)."""
    import matplotlib.pyplot as plt

    rgb = load_photo(photo)
    boxes = detect_faces(rgb)
    fig, ax = plt.subplots(figsize=figsize)
    ax.imshow(draw_faces(rgb, boxes, chosen))
    ax.set_axis_off()
    n = len(boxes)
    ax.set_title("no face found" if n == 0 else f"{n} face{'s' if n > 1 else ''} found (0 = largest)")
    return fig
